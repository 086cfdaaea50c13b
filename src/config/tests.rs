//! Unit tests of parsing, validation, worker placement and the generated documentation.

use super::*;

/// Cores the tests pretend the machine has, so results do not depend on the host.
const CORES: &[usize] = &[0, 1, 2, 3];

fn rejected_key(mutate: impl FnOnce(&mut Config)) -> String {
    let mut config = Config::default();
    mutate(&mut config);
    let error = config
        .validate_with_cores(CORES)
        .expect_err("the mutated config must be rejected");
    let key = error
        .key()
        .expect("validation errors name a key")
        .to_string();
    assert!(
        error.to_string().contains(&format!("`{key}`")),
        "message {error} names {key}"
    );
    key
}

fn malformed(text: &str) -> (Option<String>, Option<usize>, String) {
    match Config::from_toml_str(text) {
        Err(ConfigError::Malformed {
            key, line, message, ..
        }) => (key, line, message),
        other => panic!("expected a Malformed error, got {other:?}"),
    }
}

#[test]
fn defaults_validate() {
    Config::default()
        .validate_with_cores(CORES)
        .expect("defaults are valid");
    Config::default()
        .validate()
        .expect("defaults are valid on this machine");
}

#[test]
fn empty_text_gives_the_defaults() {
    assert_eq!(Config::from_toml_str("").unwrap(), Config::default());
}

#[test]
fn missing_keys_take_their_defaults() {
    let config = Config::from_toml_str("[workers]\nmax_connections = 10\n").unwrap();
    assert_eq!(config.workers.max_connections, 10);
    assert_eq!(config.workers.accept_budget, 64);
    assert_eq!(config.rtmp, RtmpConfig::default());
}

#[test]
fn rejects_empty_listen_list() {
    assert_eq!(rejected_key(|c| c.rtmp.listen.clear()), "rtmp.listen");
}

#[test]
fn rejects_a_listen_address_given_twice() {
    let key = rejected_key(|c| {
        let first = c.rtmp.listen[0];
        c.rtmp.listen.push(first);
    });
    assert_eq!(key, "rtmp.listen");
}

#[test]
fn rejects_chunk_size_below_128_and_above_24_bits() {
    assert_eq!(rejected_key(|c| c.rtmp.chunk_size = 127), "rtmp.chunk_size");
    assert_eq!(
        rejected_key(|c| c.rtmp.chunk_size = 0x100_0000),
        "rtmp.chunk_size"
    );
    for ok in [128, 0xFF_FFFF] {
        let mut config = Config::default();
        config.rtmp.chunk_size = ok;
        config.validate_with_cores(CORES).unwrap();
    }
}

#[test]
fn rejects_zero_window_ack_size_and_peer_bandwidth() {
    assert_eq!(
        rejected_key(|c| c.rtmp.window_ack_size = 0),
        "rtmp.window_ack_size"
    );
    assert_eq!(
        rejected_key(|c| c.rtmp.peer_bandwidth = 0),
        "rtmp.peer_bandwidth"
    );
}

#[test]
fn rejects_unusable_protocol_limits() {
    assert_eq!(
        rejected_key(|c| c.rtmp.max_message_size = 0),
        "rtmp.max_message_size"
    );
    assert_eq!(
        rejected_key(|c| c.rtmp.max_chunk_size = 64),
        "rtmp.max_chunk_size"
    );
    assert_eq!(
        rejected_key(|c| c.rtmp.max_chunk_size = 0x8000_0000),
        "rtmp.max_chunk_size"
    );
    assert_eq!(
        rejected_key(|c| c.rtmp.max_chunk_streams = 0),
        "rtmp.max_chunk_streams"
    );
    assert_eq!(
        rejected_key(|c| c.rtmp.max_amf_depth = 0),
        "rtmp.max_amf_depth"
    );
}

#[test]
fn rejects_max_connections_outside_1_to_a_million() {
    assert_eq!(
        rejected_key(|c| c.workers.max_connections = 0),
        "workers.max_connections"
    );
    assert_eq!(
        rejected_key(|c| c.workers.max_connections = 1_000_001),
        "workers.max_connections"
    );
}

#[test]
fn rejects_more_workers_than_the_cap() {
    assert_eq!(
        rejected_key(|c| c.workers.count = MAX_WORKERS + 1),
        "workers.count"
    );
}

#[test]
fn the_worker_cap_is_what_the_bus_can_address() {
    assert_eq!(MAX_WORKERS, 64, "workers are bits of a u64 on the bus");
    assert_eq!(rejected_key(|c| c.workers.count = 100), "workers.count");
    let mut config = Config::default();
    config.workers.count = MAX_WORKERS;
    config.validate_with_cores(CORES).expect("64 workers run");
}

#[test]
fn rejects_a_cores_list_longer_than_the_worker_cap() {
    let mut config = Config::default();
    config.workers.cores = vec![1; MAX_WORKERS + 1];
    let error = config.validate_with_cores(CORES).unwrap_err();
    assert!(
        matches!(
            error,
            ConfigError::TooManyEntries {
                key: "workers.cores",
                len: 65,
                max: 64
            }
        ),
        "{error:?}"
    );
    config.workers.cores = vec![1; MAX_WORKERS];
    config.validate_with_cores(CORES).expect("64 entries run");
}

#[test]
fn one_worker_per_core_stops_at_the_worker_cap() {
    let many: Vec<usize> = (0..100).collect();
    let cores = Config::default().worker_cores_with(&many);
    assert_eq!(cores.len(), MAX_WORKERS);
    assert_eq!(cores[63], Some(63));
}

#[test]
fn rejects_a_core_this_process_cannot_run_on() {
    let mut config = Config::default();
    config.workers.cores = vec![1, 4];
    let error = config.validate_with_cores(CORES).unwrap_err();
    assert!(
        matches!(error, ConfigError::CoreNotAvailable { core: 4, .. }),
        "{error:?}"
    );
    assert_eq!(error.key(), Some("workers.cores"));
}

#[test]
fn rejects_zero_budgets() {
    assert_eq!(
        rejected_key(|c| c.workers.accept_budget = 0),
        "workers.accept_budget"
    );
    assert_eq!(
        rejected_key(|c| c.workers.read_budget_bytes = 0),
        "workers.read_budget_bytes"
    );
    assert_eq!(
        rejected_key(|c| c.workers.write_budget_bytes = 0),
        "workers.write_budget_bytes"
    );
    assert_eq!(
        rejected_key(|c| c.streams.gop_cache_max_bytes = 0),
        "streams.gop_cache_max_bytes"
    );
}

#[test]
fn rejects_player_queue_below_64_kib() {
    assert_eq!(
        rejected_key(|c| c.streams.player_queue_bytes = 64 * 1024 - 1),
        "streams.player_queue_bytes"
    );
    let mut config = Config::default();
    config.streams.player_queue_bytes = 64 * 1024;
    config.validate_with_cores(CORES).unwrap();
}

#[test]
fn rejects_zero_timeouts() {
    assert_eq!(
        rejected_key(|c| c.timeouts.handshake_ms = 0),
        "timeouts.handshake_ms"
    );
    assert_eq!(rejected_key(|c| c.timeouts.idle_ms = 0), "timeouts.idle_ms");
    assert_eq!(
        rejected_key(|c| c.timeouts.slow_player_ms = 0),
        "timeouts.slow_player_ms"
    );
    assert_eq!(
        rejected_key(|c| c.timeouts.shutdown_ms = 0),
        "timeouts.shutdown_ms"
    );
}

#[test]
fn rejects_hls_timings_that_cannot_work() {
    assert_eq!(
        rejected_key(|c| c.http.hls_segment_ms = 50),
        "http.hls_segment_ms"
    );
    assert_eq!(
        rejected_key(|c| c.http.hls_part_ms = c.http.hls_segment_ms),
        "http.hls_part_ms"
    );
    assert_eq!(rejected_key(|c| c.http.hls_window = 0), "http.hls_window");
    // Packaging must outlive a player's reload interval (three target durations).
    assert_eq!(
        rejected_key(|c| c.http.hls_idle_ms = 3 * u64::from(c.http.hls_segment_ms) - 1),
        "http.hls_idle_ms"
    );
    assert_eq!(
        rejected_key(|c| c.http.max_request_bytes = 0),
        "http.max_request_bytes"
    );
    // A segment cap must leave room for a keyframe arriving after the target.
    assert_eq!(
        rejected_key(|c| c.http.hls_max_segment_ms = 2 * c.http.hls_segment_ms - 1),
        "http.hls_max_segment_ms"
    );
    assert_eq!(
        rejected_key(|c| c.http.hls_max_segment_bytes = MIN_SEGMENT_CAP_BYTES - 1),
        "http.hls_max_segment_bytes"
    );
    let mut config = Config::default();
    config.http.hls_max_segment_ms = 2 * config.http.hls_segment_ms;
    config.http.hls_max_segment_bytes = MIN_SEGMENT_CAP_BYTES;
    config.http.hls_part_ms = 0;
    config.http.hls_idle_ms = 3 * u64::from(config.http.hls_segment_ms);
    config.validate_with_cores(CORES).unwrap();
}

#[test]
fn rejects_a_record_format_other_than_flv_or_mp4_naming_the_key_and_line() {
    let (key, line, message) = malformed("[record]\ndir = \"/rec\"\nformat = \"mkv\"\n");
    assert_eq!(key.as_deref(), Some("record.format"));
    assert_eq!(line, Some(3));
    assert!(
        message.contains("flv") && message.contains("mp4"),
        "{message}"
    );
    let config = Config::from_toml_str("[record]\ndir = \"/rec\"\nformat = \"mp4\"\n").unwrap();
    assert_eq!(config.record.format, crate::record::RecordFormat::Mp4);
    config.validate_with_cores(CORES).unwrap();
}

#[test]
fn rejects_a_record_queue_below_1_mib_and_recording_no_app() {
    assert_eq!(
        rejected_key(|c| c.record.queue_bytes = MIN_RECORD_QUEUE_BYTES - 1),
        "record.queue_bytes"
    );
    assert_eq!(
        rejected_key(|c| {
            c.record.dir = "/rec".into();
            c.record.apps.clear();
        }),
        "record.apps"
    );
    // Off, the app list does not matter.
    let mut config = Config::default();
    config.record.apps.clear();
    config.validate_with_cores(CORES).unwrap();
}

#[test]
fn rejects_a_log_level_that_is_not_a_filter() {
    assert_eq!(
        rejected_key(|c| c.log.level = "rtmp_edge=loud".into()),
        "log.level"
    );
    let mut config = Config::default();
    config.log.level = "warn,rtmp_edge::shard=debug".into();
    config.validate_with_cores(CORES).unwrap();
}

#[test]
fn rejects_a_zero_drain_time() {
    assert_eq!(
        rejected_key(|c| c.timeouts.drain_ms = 0),
        "timeouts.drain_ms"
    );
}

#[test]
fn rejects_a_drain_redirect_that_is_not_an_rtmp_url_with_an_app() {
    for bad in [
        "http://edge-2/live",
        "edge-2/live",
        "rtmp://edge-2",
        "rtmp://edge-2:0/live",
        "rtmp://edge 2/live",
    ] {
        assert_eq!(
            rejected_key(|c| c.drain.redirect_url = bad.into()),
            "drain.redirect_url",
            "{bad}"
        );
    }
    for good in ["", "rtmp://edge-2/live", "rtmps://[::1]:443/live?token=1"] {
        let mut config = Config::default();
        config.drain.redirect_url = good.into();
        config.validate_with_cores(CORES).unwrap();
    }
}

#[test]
fn rejects_unknown_key_with_its_path_and_line() {
    let (key, line, message) = malformed("[workers]\ncount = 1\nmax_conections = 5\n");
    assert_eq!(key.as_deref(), Some("workers.max_conections"));
    assert_eq!(line, Some(3));
    assert!(message.contains("unknown field"), "{message}");
}

#[test]
fn rejects_unknown_section_with_its_name() {
    let (key, line, _) = malformed("[rtmp]\nchunk_size = 4096\n\n[worker]\ncount = 1\n");
    assert_eq!(key.as_deref(), Some("worker"));
    assert_eq!(line, Some(4));
}

#[test]
fn rejects_wrong_type_with_key_path_and_line() {
    let text = "[log]\nlevel = \"info\"\n[workers]\nmax_connections = \"many\"\n";
    let (key, line, _) = malformed(text);
    assert_eq!(key.as_deref(), Some("workers.max_connections"));
    assert_eq!(line, Some(4));
    let shown = Config::from_toml_str(text).unwrap_err().to_string();
    assert!(
        shown.starts_with("`workers.max_connections` (line 4, column 19): "),
        "{shown}"
    );
}

#[test]
fn rejects_wrong_type_given_as_a_dotted_key() {
    let (key, line, _) = malformed("\nworkers.count = -1\n");
    assert_eq!(key.as_deref(), Some("workers.count"));
    assert_eq!(line, Some(2));
}

#[test]
fn rejects_a_bad_listen_address_naming_rtmp_listen() {
    let (key, line, _) = malformed("[rtmp]\nlisten = [\"0.0.0.0:1935\", \"nowhere\"]\n");
    assert_eq!(key.as_deref(), Some("rtmp.listen"));
    assert_eq!(line, Some(2));
}

#[test]
fn rejects_a_section_that_is_not_a_table() {
    let (key, line, _) = malformed("rtmp = 5\n");
    assert_eq!(key.as_deref(), Some("rtmp"));
    assert_eq!(line, Some(1));
}

#[test]
fn reports_line_of_a_syntax_error_without_a_key() {
    let (key, line, _) = malformed("[rtmp]\nchunk_size = = 4\n");
    assert_eq!(key, None);
    assert_eq!(line, Some(2));
}

#[test]
fn finds_the_line_of_a_key_for_validation_messages() {
    let text = "# c\n[workers]\ncount = 2\n\nmax_connections = 0\n";
    assert_eq!(key_position(text, "workers.max_connections"), Some((5, 19)));
    assert_eq!(key_position(text, "rtmp.chunk_size"), None);
}

#[test]
fn commented_toml_of_defaults_parses_back_to_defaults() {
    let text = Config::default().to_commented_toml();
    assert_eq!(Config::from_toml_str(&text).unwrap(), Config::default());
}

#[test]
fn commented_toml_of_changed_values_parses_back_and_shows_defaults() {
    let mut config = Config::default();
    config.rtmp.listen = vec!["127.0.0.1:1936".parse().unwrap()];
    config.workers.cores = vec![0, 2];
    config.workers.pin = false;
    config.streams.publish_takeover = true;
    config.timeouts.idle_ms = 1;
    config.log.level = r#"debug,rtmp_edge[conn{peer="1.2.3.4"}]=trace"#.into();
    let text = config.to_commented_toml();
    assert_eq!(Config::from_toml_str(&text).unwrap(), config);
    assert!(text.contains("# Default: 30000\nidle_ms = 1\n"), "{text}");
}

#[test]
fn commented_toml_puts_the_field_doc_above_every_key() {
    let text = Config::default().to_commented_toml();
    assert!(text.contains(
        "# Connections per worker; the slab is preallocated to this size. Range 1..=1000000.\n\
         max_connections = 16384\n"
    ));
    for section in Config::SECTIONS {
        for key in section.keys {
            let line = text
                .lines()
                .position(|l| l.starts_with(&format!("{} = ", key.name)))
                .unwrap_or_else(|| panic!("{} is printed", key.name));
            let above = text.lines().nth(line - 1).unwrap();
            assert!(above.starts_with("# "), "{} has a comment", key.name);
        }
    }
}

#[test]
fn every_serialized_key_is_documented_and_every_documented_key_is_serialized() {
    let root = toml::Table::try_from(Config::default()).unwrap();
    let serialized: Vec<String> = root
        .iter()
        .flat_map(|(section, value)| {
            let table = value.as_table().expect("every top-level key is a section");
            table.keys().map(move |key| format!("{section}.{key}"))
        })
        .collect();
    let mut documented: Vec<String> = Config::SECTIONS
        .iter()
        .flat_map(|s| s.keys.iter().map(move |k| format!("{}.{}", s.name, k.name)))
        .collect();
    for section in Config::SECTIONS {
        assert!(
            !section.doc.trim().is_empty(),
            "[{}] has a doc",
            section.name
        );
        for key in section.keys {
            assert!(!key.doc.trim().is_empty(), "{} has a doc", key.name);
        }
    }
    let mut serialized_sorted = serialized.clone();
    serialized_sorted.sort();
    documented.sort();
    assert_eq!(serialized_sorted, documented);
}

#[test]
fn worker_cores_defaults_to_one_pinned_worker_per_available_core() {
    let cores = Config::default().worker_cores_with(CORES);
    assert_eq!(cores, vec![Some(0), Some(1), Some(2), Some(3)]);
    assert_eq!(
        Config::default().worker_cores().len(),
        available_cores().len()
    );
}

#[test]
fn worker_cores_spreads_a_count_round_robin() {
    let mut config = Config::default();
    config.workers.count = 3;
    assert_eq!(
        config.worker_cores_with(&[4, 6]),
        vec![Some(4), Some(6), Some(4)]
    );
}

#[test]
fn worker_cores_uses_exactly_the_listed_cores() {
    let mut config = Config::default();
    config.workers.count = 8;
    config.workers.cores = vec![2, 3];
    assert_eq!(config.worker_cores_with(CORES), vec![Some(2), Some(3)]);
}

#[test]
fn worker_cores_are_unpinned_when_pin_is_false() {
    let mut config = Config::default();
    config.workers.pin = false;
    config.workers.count = 2;
    assert_eq!(config.worker_cores_with(CORES), vec![None, None]);
    config.workers.count = 0;
    assert_eq!(config.worker_cores_with(CORES), vec![None; 4]);
}

/// The generated part of docs/CONFIG.md: every key, its default and meaning, and the full
/// default `--print-config` output. Regenerate with
/// `RTMP_EDGE_BLESS=1 cargo test --lib config::tests::config_doc`.
fn reference_markdown() -> String {
    let defaults = Config::default();
    let mut out = String::new();
    for section in Config::SECTIONS {
        let values = section_table(&defaults, section.name);
        let doc = one_line(section.doc);
        out.push_str(&format!("### `[{}]`\n\n{doc}\n\n", section.name));
        out.push_str("| Key | Default | Meaning |\n|---|---|---|\n");
        for key in section.keys {
            let default = values
                .get(key.name)
                .map_or_else(String::new, |v| v.to_string());
            out.push_str(&format!(
                "| `{}.{}` | `{}` | {} |\n",
                section.name,
                key.name,
                default,
                one_line(key.doc).replace('|', "\\|")
            ));
        }
        out.push('\n');
    }
    out.push_str("### Default configuration (`rtmp-edge --print-config`)\n\n```toml\n");
    out.push_str(&defaults.to_commented_toml());
    out.push_str("```\n");
    out
}

fn one_line(doc: &str) -> String {
    doc.lines().map(str::trim).collect::<Vec<_>>().join(" ")
}

const BEGIN: &str = "<!-- BEGIN GENERATED: config reference -->\n";
const END: &str = "<!-- END GENERATED: config reference -->";

#[test]
fn config_doc_matches_the_field_docs_and_defaults() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/CONFIG.md");
    let doc = std::fs::read_to_string(path).expect("docs/CONFIG.md exists");
    let (Some(begin), Some(end)) = (doc.find(BEGIN), doc.find(END)) else {
        panic!("docs/CONFIG.md has the generated-section markers");
    };
    let current = &doc[begin + BEGIN.len()..end];
    let wanted = reference_markdown();
    if current != wanted && std::env::var_os("RTMP_EDGE_BLESS").is_some() {
        let updated = format!("{}{BEGIN}{wanted}{}", &doc[..begin], &doc[end..]);
        std::fs::write(path, updated).expect("docs/CONFIG.md is writable");
        return;
    }
    assert!(
        current == wanted,
        "docs/CONFIG.md is stale: run RTMP_EDGE_BLESS=1 cargo test --lib config::tests::config_doc"
    );
}

#[test]
fn load_reads_a_file_and_names_a_missing_one() {
    let dir = std::env::temp_dir().join(format!("rtmp-edge-config-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("edge.toml");
    std::fs::write(&path, "[timeouts]\nidle_ms = 1234\n").unwrap();
    let loaded = Config::load(&path);
    let missing = Config::load(dir.join("missing.toml"));
    let _ = std::fs::remove_dir_all(&dir);
    let (config, text) = loaded.unwrap();
    assert_eq!(config.timeouts.idle_ms, 1234);
    assert!(
        text.contains("idle_ms = 1234"),
        "the text comes back for error positions"
    );
    let error = missing.unwrap_err();
    assert!(matches!(error, ConfigError::Unreadable { .. }), "{error:?}");
    assert!(error.to_string().contains("missing.toml"), "{error}");
}

#[test]
fn relay_origins_and_repeated_push_tables_parse_and_print_back() {
    let text = r#"
[relay]
origins = ["rtmp://origin-a:1935", "rtmp://[::1]:1936/prefix"]
origin_timeout_ms = 1500

[[relay.push]]
app = "live"
url = "rtmp://origin-a:1935/live"

[[relay.push]]
app = "*"
url = "rtmp://backup:1935/ingest?key=abc"
"#;
    let config = Config::from_toml_str(text).unwrap();
    config.validate_with_cores(&[0]).unwrap();
    assert_eq!(config.relay.origins.len(), 2);
    assert_eq!(config.relay.origin_timeout_ms, 1500);
    assert_eq!(config.relay.push.len(), 2);
    assert_eq!(config.relay.push[1].app, "*");
    let printed = config.to_commented_toml();
    let again = Config::from_toml_str(&printed).expect("--print-config output parses");
    assert_eq!(again.relay, config.relay);
}

#[test]
fn unusable_relay_urls_are_refused_with_their_key() {
    for (text, key) in [
        (
            "[relay]\norigins = [\"http://origin:80\"]\n",
            "relay.origins",
        ),
        (
            "[relay]\norigins = [\"rtmp://a:1935\", \"rtmp://A:1935/\"]\n",
            "relay.origins",
        ),
        (
            "[relay]\norigin_timeout_ms = 0\n",
            "relay.origin_timeout_ms",
        ),
        (
            "[[relay.push]]\napp = \"live\"\nurl = \"rtmp://host\"\n",
            "relay.push",
        ),
        (
            "[[relay.push]]\napp = \"a/b\"\nurl = \"rtmp://host/live\"\n",
            "relay.push",
        ),
        // Pushing to the origins with none known.
        (
            "[[relay.push]]\napp = \"*\"\nurl = \"origins\"\n",
            "relay.push",
        ),
    ] {
        let config = Config::from_toml_str(text).unwrap();
        let error = config.validate_with_cores(&[0]).unwrap_err();
        assert_eq!(error.key(), Some(key), "{text}: {error}");
    }
}

#[test]
fn a_push_to_the_origins_is_accepted_with_origins_or_a_directory() {
    for text in [
        "[relay]\norigins = [\"rtmp://a\"]\n[[relay.push]]\napp = \"*\"\nurl = \"origins\"\n",
        "[cluster]\ndirectory = \"redis\"\n[[relay.push]]\napp = \"*\"\nurl = \"origins\"\n",
    ] {
        let config = Config::from_toml_str(text).unwrap();
        config.validate_with_cores(&[0]).unwrap();
    }
}

#[test]
fn rtmps_origins_and_push_targets_are_accepted() {
    let text = "[relay]\norigins = [\"rtmps://a.example\"]\n\
                [[relay.push]]\napp = \"live\"\nurl = \"rtmps://b.example/live\"\n";
    let config = Config::from_toml_str(text).unwrap();
    config
        .validate_with_cores(&[0])
        .expect("rtmps upstreams are valid");
}

/// A self-signed certificate and its key, as PEM files in a fresh directory.
fn pem_files(test: &str) -> (std::path::PathBuf, String, String) {
    let dir = std::env::temp_dir().join(format!("rtmp-edge-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let path = |p: std::path::PathBuf| p.to_str().unwrap().to_string();
    (dir, path(cert_path), path(key_path))
}

#[test]
fn rtmps_listeners_need_a_certificate_and_key_that_load() {
    let (dir, cert, key) = pem_files("rtmps-config");
    fn with(cert: &str, key: &str, ca: &str) -> impl FnOnce(&mut Config) {
        let (cert, key, ca) = (cert.to_string(), key.to_string(), ca.to_string());
        move |c: &mut Config| {
            c.rtmps.listen = vec!["127.0.0.1:1936".parse().unwrap()];
            c.rtmps.cert = cert;
            c.rtmps.key = key;
            c.rtmps.ca_file = ca;
        }
    }
    let mut good = Config::default();
    with(&cert, &key, &cert)(&mut good);
    good.validate_with_cores(CORES).expect("a loadable pair");
    assert_eq!(rejected_key(with("", &key, "")), "rtmps.cert");
    assert_eq!(rejected_key(with(&cert, "", "")), "rtmps.key");
    assert_eq!(
        rejected_key(with("/nonexistent.pem", &key, "")),
        "rtmps.cert"
    );
    // A certificate file given as the key: no private key in it.
    assert_eq!(rejected_key(with(&cert, &cert, "")), "rtmps.key");
    assert_eq!(rejected_key(with(&cert, &key, &key)), "rtmps.ca_file");
    // A key of another certificate.
    let (other_dir, _, other_key) = pem_files("rtmps-config-other");
    assert_eq!(rejected_key(with(&cert, &other_key, "")), "rtmps.key");
    // Off (no listener): nothing is read.
    Config::default().validate_with_cores(CORES).unwrap();
    let shared = |c: &mut Config| {
        with(&cert, &key, "")(c);
        c.rtmps.listen = c.rtmp.listen.clone();
    };
    assert_eq!(rejected_key(shared), "rtmps.listen");
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(other_dir);
}

#[test]
fn the_earlier_write_delay_name_is_still_read() {
    let old = Config::from_toml_str("[workers]\nwrite_coalesce_ms = 20\n").unwrap();
    old.validate_with_cores(CORES).unwrap();
    assert_eq!(old.workers.max_write_delay(), 20);
    let new = Config::from_toml_str("[workers]\nmax_write_delay_ms = 7\n").unwrap();
    assert_eq!(new.workers.max_write_delay(), 7);
    let both = Config::from_toml_str("[workers]\nmax_write_delay_ms = 7\nwrite_coalesce_ms = 20\n")
        .unwrap();
    assert_eq!(both.workers.max_write_delay(), 20);
    assert_eq!(Config::default().workers.max_write_delay(), 5);
    assert_eq!(
        rejected_key(|c| c.workers.max_write_delay_ms = MAX_WRITE_DELAY_MS + 1),
        "workers.max_write_delay_ms"
    );
}

#[test]
fn a_heavily_loaded_worker_uses_the_busy_budget_unless_the_budget_is_0() {
    let default = Config::default().workers;
    assert_eq!(default.write_delay(false), 5);
    assert_eq!(default.write_delay(true), 30);
    let off = Config::from_toml_str("[workers]\nmax_write_delay_ms = 0\n").unwrap();
    assert_eq!(
        off.workers.write_delay(true),
        0,
        "0 writes at once at every load"
    );
    let long = Config::from_toml_str("[workers]\nmax_write_delay_ms = 50\n").unwrap();
    assert_eq!(long.workers.write_delay(true), 50, "the larger of the two");
    assert_eq!(
        rejected_key(|c| c.workers.max_write_delay_busy_ms = MAX_WRITE_DELAY_MS + 1),
        "workers.max_write_delay_busy_ms"
    );
    assert_eq!(
        rejected_key(|c| c.workers.unwatched_read_ms = MAX_UNWATCHED_READ_MS + 1),
        "workers.unwatched_read_ms"
    );
}

#[test]
fn unwatched_publishers_are_read_well_inside_the_message_and_idle_timeouts() {
    let mut config = Config::default();
    assert_eq!(config.unwatched_read_ms(), 50);
    config.workers.unwatched_read_ms = 1_000;
    config.timeouts.message_ms = 2_000;
    assert_eq!(config.unwatched_read_ms(), 500, "a quarter of message_ms");
    config.timeouts.idle_ms = 400;
    assert_eq!(config.unwatched_read_ms(), 100, "a quarter of idle_ms");
    config.validate_with_cores(CORES).unwrap();
}

#[test]
fn the_io_backend_is_named_epoll_or_io_uring() {
    let config = Config::from_toml_str("[workers]\nio = \"io_uring\"\n").unwrap();
    assert_eq!(config.workers.io, IoBackend::IoUring);
    assert_eq!(
        Config::from_toml_str("[workers]\nio = \"epoll\"\n")
            .unwrap()
            .workers
            .io,
        IoBackend::Epoll
    );
    let error = Config::from_toml_str("[workers]\nio = \"kqueue\"\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("workers.io"), "{error}");
    for backend in [IoBackend::Epoll, IoBackend::IoUring] {
        assert_eq!(IoBackend::from_name(backend.as_str()), Some(backend));
    }
}
