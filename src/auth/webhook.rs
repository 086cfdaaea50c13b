//! Webhooks (`auth.on_publish`, `on_play`, `on_done`), called from a small pool of threads so
//! no worker loop ever waits on one.
//!
//! A worker [`ask`](Webhooks::ask)s: a cached answer comes back at once (allow: 60 s, deny:
//! 5 s, per action, app, stream and client address); a call already in flight for the same key
//! takes the worker as one more waiter; otherwise a job is queued. A pool thread POSTs the
//! JSON body over a blocking HTTP/1.1 connection (std::net, bounded by the call's deadline,
//! which runs from the request: a job that waited its whole time in the queue is not sent),
//! caches the answer and hands it to every waiter through the `deliver` callback (the server
//! sends it over the bus to the worker that owns the connection).

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Denial, Role};
use crate::fanout::ConnKey;

/// How long an allow answer is reused.
pub const ALLOW_TTL: Duration = Duration::from_secs(60);
/// How long a denial is reused.
pub const DENY_TTL: Duration = Duration::from_secs(5);
/// Past this many cached answers, expired ones are swept at the next call.
const SWEEP_AT: usize = 10_000;
/// Most bytes of a hook's answer read while looking for its status line.
const MAX_STATUS_LINE: usize = 8 * 1024;

/// A hook's address: `http://host[:port]/path[?query]`. `Display` leaves the query out
/// (it may carry the hook's own credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookUrl {
    host: String,
    port: u16,
    /// Path and query, as sent in the request line.
    target: String,
}

impl HookUrl {
    /// Parses an `http://` URL; the reason when it is not one.
    pub fn parse(url: &str) -> Result<Self, &'static str> {
        let rest = url
            .strip_prefix("http://")
            .ok_or("only http:// webhooks are supported")?;
        let (authority, target) = match rest.find(['/', '?']) {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        let target = if target.starts_with('?') {
            format!("/{target}")
        } else {
            target.to_owned()
        };
        if authority.contains('@') {
            return Err("credentials in the URL are not supported");
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => {
                (host, port.parse().map_err(|_| "the port is not a number")?)
            }
            _ => (authority, 80),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err("no host");
        }
        if target.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err("spaces or control characters in the path");
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            target,
        })
    }
}

impl fmt::Display for HookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.target.split('?').next().unwrap_or("/");
        if self.host.contains(':') {
            write!(f, "http://[{}]:{}{path}", self.host, self.port)
        } else {
            write!(f, "http://{}:{}{path}", self.host, self.port)
        }
    }
}

/// What a hook is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookAction {
    /// Before a publish or play is accepted (its role).
    Ask(Role),
    /// An allowed publisher or player stopped or left.
    Done(Role),
}

/// One webhook call: where, what, and how long it may take.
#[derive(Debug, Clone)]
pub struct HookCall {
    pub url: HookUrl,
    pub action: HookAction,
    pub app: String,
    pub stream: String,
    /// The request's query without `sig` (see [`sign::without_sig`](super::sign::without_sig)).
    pub query: String,
    pub ip: IpAddr,
    pub worker: usize,
    /// The connection id within its worker (the `conn` of its log lines).
    pub conn: u64,
    /// `rtmp`, `http-flv`, `hls` or `dash`.
    pub protocol: &'static str,
    pub timeout: Duration,
    /// A failed call (not a refusal) allows.
    pub fail_open: bool,
}

impl HookCall {
    /// The JSON body POSTed to the hook.
    pub fn body(&self) -> String {
        let (action, role) = match self.action {
            HookAction::Ask(role) => (role.as_str(), role),
            HookAction::Done(role) => ("done", role),
        };
        let mut out = String::with_capacity(160 + self.query.len());
        out.push('{');
        for (i, (key, value)) in [
            ("action", action),
            ("role", role.as_str()),
            ("app", &self.app),
            ("stream", &self.stream),
            ("query", &self.query),
            ("ip", &self.ip.to_string()),
            ("protocol", self.protocol),
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                out.push(',');
            }
            json_string(&mut out, key);
            out.push(':');
            json_string(&mut out, value);
        }
        out.push_str(&format!(
            ",\"worker\":{},\"conn\":{}}}",
            self.worker, self.conn
        ));
        out
    }
}

/// Appends `text` as a JSON string.
fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Who waits for an answer: a connection on a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiter {
    pub worker: usize,
    pub conn: ConnKey,
}

/// Hands an answer to a waiter (the server: over the bus to its worker).
pub type Deliver = Box<dyn Fn(Waiter, Result<(), Denial>) + Send + Sync>;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    role: Role,
    app: String,
    stream: String,
    ip: IpAddr,
}

enum Entry {
    /// A call is in flight; these wait for it.
    Asking(Vec<Waiter>),
    Answered {
        answer: Result<(), Denial>,
        until: Instant,
    },
}

struct Job {
    call: HookCall,
    /// `None`: a `done` notice nobody waits for.
    key: Option<CacheKey>,
    deadline: Instant,
}

struct Inner {
    answers: Mutex<HashMap<CacheKey, Entry>>,
    deliver: Deliver,
}

/// The webhook pool: shared by every worker.
pub struct Webhooks {
    inner: Arc<Inner>,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Webhooks {
    /// Starts `threads` pool threads (logging through `dispatch` when given).
    pub fn start(
        threads: usize,
        deliver: Deliver,
        dispatch: Option<tracing::Dispatch>,
    ) -> io::Result<Self> {
        let inner = Arc::new(Inner {
            answers: Mutex::new(HashMap::new()),
            deliver,
        });
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads.max(1) {
            let (inner, rx, dispatch) = (inner.clone(), rx.clone(), dispatch.clone());
            let handle = std::thread::Builder::new()
                .name(format!("webhook-{i}"))
                .spawn(move || match dispatch {
                    Some(d) => tracing::dispatcher::with_default(&d, || serve(&inner, &rx)),
                    None => serve(&inner, &rx),
                })?;
            handles.push(handle);
        }
        Ok(Self {
            inner,
            jobs: Mutex::new(Some(tx)),
            threads: Mutex::new(handles),
        })
    }

    /// Asks the hook of `call` for `waiter`: `Some(answer)` at once when cached, else `None`
    /// and the answer is delivered later (once, to this waiter).
    pub fn ask(&self, call: HookCall, waiter: Waiter, now: Instant) -> Option<Result<(), Denial>> {
        let HookAction::Ask(role) = call.action else {
            self.tell(call);
            return Some(Ok(()));
        };
        let key = CacheKey {
            role,
            app: call.app.clone(),
            stream: call.stream.clone(),
            ip: call.ip,
        };
        let mut answers = self.inner.answers.lock().unwrap_or_else(|p| p.into_inner());
        match answers.get_mut(&key) {
            Some(Entry::Answered { answer, until }) if *until > now => {
                return Some(answer.clone());
            }
            Some(Entry::Asking(waiters)) => {
                waiters.push(waiter);
                return None;
            }
            _ => {}
        }
        if answers.len() >= SWEEP_AT {
            answers.retain(|_, e| !matches!(e, Entry::Answered { until, .. } if *until <= now));
        }
        let deadline = now + call.timeout;
        if !self.send(Job {
            call,
            key: Some(key.clone()),
            deadline,
        }) {
            return Some(Err(Denial::HookFailed {
                error: "the webhook pool has stopped".into(),
            }));
        }
        answers.insert(key, Entry::Asking(vec![waiter]));
        None
    }

    /// Sends `call` (a `done` notice) without waiting for or caching its answer.
    pub fn tell(&self, call: HookCall) {
        let deadline = Instant::now() + call.timeout;
        self.send(Job {
            call,
            key: None,
            deadline,
        });
    }

    fn send(&self, job: Job) -> bool {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.as_ref().is_some_and(|tx| tx.send(job).is_ok())
    }

    /// Stops taking calls and waits for the threads (each ends within its call's timeout).
    pub fn stop(&self) {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        let handles = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for handle in handles {
            let _ = handle.join();
        }
    }
}

/// A pool thread: runs jobs until the pool stops.
fn serve(inner: &Inner, rx: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
            rx.recv()
        };
        let Ok(job) = job else {
            return;
        };
        let answer = call(&job);
        let Some(key) = job.key else {
            continue;
        };
        let ttl = if answer.is_ok() { ALLOW_TTL } else { DENY_TTL };
        let waiters = {
            let mut answers = inner.answers.lock().unwrap_or_else(|p| p.into_inner());
            let entry = Entry::Answered {
                answer: answer.clone(),
                until: Instant::now() + ttl,
            };
            match answers.insert(key, entry) {
                Some(Entry::Asking(waiters)) => waiters,
                _ => Vec::new(),
            }
        };
        for waiter in waiters {
            (inner.deliver)(waiter, answer.clone());
        }
    }
}

/// Runs one call: the hook's verdict, or its failure (allowing when fail-open).
fn call(job: &Job) -> Result<(), Denial> {
    let c = &job.call;
    let ms = c.timeout.as_millis() as u64;
    let result = if Instant::now() >= job.deadline {
        Err(io::Error::from(io::ErrorKind::TimedOut))
    } else {
        post(&c.url, &c.body(), job.deadline)
    };
    let failure = match result {
        Ok(status) if (200..300).contains(&status) => return Ok(()),
        Ok(status) => {
            tracing::info!(url = %c.url, worker = c.worker, conn = c.conn, app = %c.app,
                stream = %c.stream, status, action = ?c.action, "webhook refused");
            return Err(Denial::HookRefused { status });
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
        {
            Denial::HookTimeout { ms }
        }
        Err(e) => Denial::HookFailed {
            error: e.to_string(),
        },
    };
    tracing::warn!(url = %c.url, worker = c.worker, conn = c.conn, app = %c.app,
        stream = %c.stream, action = ?c.action, fail_open = c.fail_open, error = %failure,
        "webhook call failed");
    if c.fail_open {
        Ok(())
    } else {
        Err(failure)
    }
}

/// POSTs `body` to `url` and returns the answer's status, all before `deadline`.
fn post(url: &HookUrl, body: &str, deadline: Instant) -> io::Result<u16> {
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))
    };
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
    let mut socket = None;
    for addr in (url.host.as_str(), url.port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, left()?) {
            Ok(s) => {
                socket = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let mut socket = socket.ok_or(last)?;
    let host = if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\nUser-Agent: rtmp-edge\r\n\r\n{body}",
        url.target,
        body.len()
    );
    socket.set_write_timeout(Some(left()?))?;
    socket.write_all(request.as_bytes())?;
    let mut head = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = head.windows(2).position(|w| w == b"\r\n") {
            return status_of(&head[..end]);
        }
        if head.len() > MAX_STATUS_LINE {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "no status line"));
        }
        socket.set_read_timeout(Some(left()?))?;
        let n = socket.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before its status line",
            ));
        }
        head.extend_from_slice(&chunk[..n]);
    }
}

/// The status code of `HTTP/1.x NNN reason`.
fn status_of(line: &[u8]) -> io::Result<u16> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed status line");
    let line = std::str::from_utf8(line).map_err(|_| bad())?;
    let mut words = line.split(' ');
    if !words.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(bad());
    }
    let code = words.next().ok_or_else(bad)?;
    if code.len() != 3 {
        return Err(bad());
    }
    code.parse().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_urls_parse_and_display_without_their_query() {
        let url = HookUrl::parse("http://hooks.local:9000/auth?key=secret").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("hooks.local", 9000));
        assert_eq!(url.target, "/auth?key=secret");
        assert_eq!(url.to_string(), "http://hooks.local:9000/auth");
        let v6 = HookUrl::parse("http://[::1]:81").unwrap();
        assert_eq!(
            (v6.host.as_str(), v6.port, v6.target.as_str()),
            ("::1", 81, "/")
        );
        assert_eq!(HookUrl::parse("http://h").unwrap().port, 80);
        assert!(HookUrl::parse("https://h/").is_err());
        assert!(HookUrl::parse("http://:80/").is_err());
        assert!(HookUrl::parse("http://h:x/").is_err());
        assert!(HookUrl::parse("http://u:p@h/").is_err());
    }

    #[test]
    fn the_body_is_json_with_every_field_escaped() {
        let call = HookCall {
            url: HookUrl::parse("http://h/").unwrap(),
            action: HookAction::Ask(Role::Play),
            app: "live".into(),
            stream: "a\"b\\c\n".into(),
            query: "exp=5&token=t".into(),
            ip: "::1".parse().unwrap(),
            worker: 0,
            conn: 7,
            protocol: "rtmp",
            timeout: Duration::from_secs(2),
            fail_open: false,
        };
        assert_eq!(
            call.body(),
            r#"{"action":"play","role":"play","app":"live","stream":"a\"b\\c\n","query":"exp=5&token=t","ip":"::1","protocol":"rtmp","worker":0,"conn":7}"#
        );
    }

    #[test]
    fn status_lines_are_read_strictly() {
        assert_eq!(status_of(b"HTTP/1.1 204 No Content").unwrap(), 204);
        assert_eq!(status_of(b"HTTP/1.0 403").unwrap(), 403);
        assert!(status_of(b"HTTP/2 200 OK").is_err());
        assert!(status_of(b"HTTP/1.1 2000 OK").is_err());
        assert!(status_of(b"garbage").is_err());
    }
}
