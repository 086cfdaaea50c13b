//! The admin listener's `/metrics` as tests read it: scraped and parsed with a Prometheus
//! text parser.

use prometheus_parse::{Scrape, Value};

use super::{get, TestServer, WAIT};

/// Scrapes `/metrics` of `server` and parses it.
pub fn scrape(server: &TestServer) -> Scrape {
    let addr = server.server().admin_addr().expect("admin listener runs");
    let (head, body) = get(addr, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let text = String::from_utf8(body).unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    Scrape::parse(lines).expect("valid exposition")
}

/// The sum over workers of `name` (with `reason` when given).
pub fn total(scrape: &Scrape, name: &str, reason: Option<&str>) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| reason.map_or(true, |r| s.labels.get("reason") == Some(r)))
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// Scrapes until `ok` holds for a scrape (the gauges follow the workers' 100 ms tick).
pub fn scrape_until(server: &TestServer, what: &str, ok: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let s = scrape(server);
        if ok(&s) {
            return s;
        }
        assert!(std::time::Instant::now() < deadline, "never: {what}");
    }
}
