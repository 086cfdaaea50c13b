//! Scenarios: what to run, from command-line flags and/or a TOML file (flags win).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::source::parse_bitrate;

/// Who connects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Publishers and players.
    Full,
    /// Publishers only (ingest).
    PublishOnly,
    /// Players only, of streams someone else publishes.
    PlayOnly,
}

/// How players receive the streams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PlayerProto {
    /// RTMP play on the `--url` server.
    #[default]
    Rtmp,
    /// HTTP-FLV: `GET http://HOST:HTTP_PORT/APP/STREAM.flv` (host, app and stream from
    /// `--url`, port from `--http-port`).
    HttpFlv,
}

/// Every tunable, optional: the same struct is filled from flags and from the TOML file.
#[derive(Clone, Debug, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Knobs {
    /// Server URL with app and stream name: rtmp://127.0.0.1:1935/live/stream. With several
    /// streams, stream i is named NAME-i. rtmps://HOST:PORT/... speaks RTMP over TLS (rustls,
    /// the server's certificate NOT verified: for benchmarks on loopback).
    #[arg(long)]
    pub url: Option<String>,
    /// Publishers publish here instead of `--url` (same app and stream names), e.g. the
    /// origin an edge at `--url` pulls from; players stay on `--url`.
    #[arg(long)]
    pub publish_url: Option<String>,
    /// full, publish-only or play-only.
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Publishers, one stream each [default: 1].
    #[arg(long)]
    pub publishers: Option<u32>,
    /// Streams to play in play-only mode [default: 1].
    #[arg(long)]
    pub streams: Option<u32>,
    /// Players per stream [default: 10].
    #[arg(long)]
    pub players: Option<u32>,
    /// Connections opened per second while ramping up [default: 500].
    #[arg(long)]
    pub ramp: Option<f64>,
    /// Seconds to measure once every connection is opened [default: 10].
    #[arg(long)]
    pub duration: Option<f64>,
    /// Seconds between the last connection opened and the start of the measurement, so
    /// players have their first keyframe [default: 2].
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Players leaving (and as many joining) per second during the measurement [default: 0].
    #[arg(long)]
    pub churn: Option<f64>,
    /// FLV file to loop (make one with tools/media/make_flv.sh).
    #[arg(long)]
    pub flv: Option<PathBuf>,
    /// Synthetic H.264 video at this bitrate (e.g. 600k, 2.5M) plus 64 kbit/s AAC.
    #[arg(long)]
    pub synthetic: Option<String>,
    /// Synthetic frames per second [default: 25].
    #[arg(long)]
    pub fps: Option<u32>,
    /// Synthetic keyframe interval in frames [default: 2 × fps].
    #[arg(long)]
    pub gop: Option<u32>,
    /// A gap between video frames longer than this is a stall, in ms [default: 1000].
    #[arg(long)]
    pub stall_ms: Option<u64>,
    /// Run once per value with that many players per stream (CPU-vs-players sweep).
    #[arg(long, value_delimiter = ',')]
    pub sweep: Option<Vec<u32>>,
    /// Player protocol: rtmp, or http-flv (each player GETs
    /// http://HOST:HTTP_PORT/APP/STREAM.flv, host/app/stream taken from --url; publishers
    /// stay RTMP) [default: rtmp].
    #[arg(long, value_enum)]
    pub player_proto: Option<PlayerProto>,
    /// HTTP port of the server for --player-proto http-flv and --hls-pollers [default: 8080].
    #[arg(long)]
    pub http_port: Option<u16>,
    /// HLS pollers per stream, besides the players: each GETs
    /// http://HOST:HTTP_PORT/APP/STREAM.m3u8, then every new part once on LL-HLS playlists
    /// (after blocking _HLS_msn/_HLS_part reloads), every new segment once on plain HLS;
    /// parts and segments are timed from EXT-X-PROGRAM-DATE-TIME [default: 0].
    #[arg(long)]
    pub hls_pollers: Option<u32>,
}

impl Knobs {
    /// Values set here win over `other`'s.
    pub fn or(self, other: Knobs) -> Knobs {
        Knobs {
            url: self.url.or(other.url),
            publish_url: self.publish_url.or(other.publish_url),
            mode: self.mode.or(other.mode),
            publishers: self.publishers.or(other.publishers),
            streams: self.streams.or(other.streams),
            players: self.players.or(other.players),
            ramp: self.ramp.or(other.ramp),
            duration: self.duration.or(other.duration),
            warmup: self.warmup.or(other.warmup),
            churn: self.churn.or(other.churn),
            flv: self.flv.or(other.flv),
            synthetic: self.synthetic.or(other.synthetic),
            fps: self.fps.or(other.fps),
            gop: self.gop.or(other.gop),
            stall_ms: self.stall_ms.or(other.stall_ms),
            sweep: self.sweep.or(other.sweep),
            player_proto: self.player_proto.or(other.player_proto),
            http_port: self.http_port.or(other.http_port),
            hls_pollers: self.hls_pollers.or(other.hls_pollers),
        }
    }

    /// Parses a scenario file's text.
    pub fn from_toml(text: &str) -> Result<Knobs> {
        toml::from_str(text).context("scenario file")
    }
}

/// Where the media comes from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum SourceSpec {
    Flv(PathBuf),
    Synthetic { video_bps: u64, fps: u32, gop: u32 },
}

/// An RTMP URL split into what the client needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RtmpUrl {
    pub host: String,
    pub port: u16,
    pub app: String,
    pub stream: String,
    /// `rtmp://host:port/app`, as sent in `connect`.
    pub tc_url: String,
    /// `rtmps://`: RTMP over TLS.
    pub tls: bool,
}

impl RtmpUrl {
    /// Parses `rtmp://host[:port]/app/stream` or `rtmps://…` (the stream may contain further
    /// slashes and a query string; IPv6 hosts in brackets).
    pub fn parse(url: &str) -> Result<Self> {
        let (scheme, tls, rest) = match url.strip_prefix("rtmps://") {
            Some(rest) => ("rtmps", true, rest),
            None => (
                "rtmp",
                false,
                url.strip_prefix("rtmp://")
                    .with_context(|| format!("{url:?} does not start with rtmp:// or rtmps://"))?,
            ),
        };
        let (authority, path) = rest
            .split_once('/')
            .context("URL has no /app/stream path")?;
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').context("unclosed [ in host")?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        let port = match port {
            Some(p) => p.parse().with_context(|| format!("bad port {p:?}"))?,
            None if tls => 443,
            None => 1935,
        };
        let (app, stream) = path
            .split_once('/')
            .context("URL has an app but no stream name")?;
        if host.is_empty() || app.is_empty() || stream.is_empty() {
            bail!("URL needs a host, an app and a stream name: {url:?}");
        }
        let host_in_url = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        Ok(Self {
            tc_url: format!("{scheme}://{host_in_url}:{port}/{app}"),
            host,
            port,
            app: app.to_string(),
            stream: stream.to_string(),
            tls,
        })
    }

    /// The first address the host resolves to.
    pub fn socket_addr(&self) -> Result<SocketAddr> {
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .with_context(|| format!("resolving {}", self.host))?
            .next()
            .with_context(|| format!("{} resolves to nothing", self.host))
    }
}

/// A complete, validated scenario.
#[derive(Clone, Debug, Serialize)]
pub struct Scenario {
    pub url: RtmpUrl,
    /// Where publishers publish (`--publish-url`; else `url`).
    pub publish_url: RtmpUrl,
    pub mode: Mode,
    pub publishers: u32,
    /// Streams played: `publishers` unless play-only.
    pub streams: u32,
    pub players_per_stream: u32,
    pub ramp_per_s: f64,
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    #[serde(serialize_with = "secs")]
    pub warmup: Duration,
    pub churn_per_s: f64,
    pub source: SourceSpec,
    #[serde(serialize_with = "secs")]
    pub stall_threshold: Duration,
    /// Player counts to sweep (empty: one run with `players_per_stream`).
    pub sweep: Vec<u32>,
    /// How players receive.
    pub player_proto: PlayerProto,
    /// The server's HTTP port (HTTP-FLV players, HLS pollers).
    pub http_port: u16,
    /// HLS pollers per stream.
    pub hls_pollers: u32,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Scenario {
    /// Fills defaults and validates.
    pub fn from_knobs(k: Knobs) -> Result<Self> {
        let url = RtmpUrl::parse(
            k.url
                .as_deref()
                .unwrap_or("rtmp://127.0.0.1:1935/live/stream"),
        )?;
        let publish_url = match k.publish_url.as_deref() {
            Some(text) => RtmpUrl::parse(text)?,
            None => url.clone(),
        };
        if (publish_url.app.as_str(), publish_url.stream.as_str())
            != (url.app.as_str(), url.stream.as_str())
        {
            bail!("--publish-url must name the same app and stream as --url");
        }
        let mode = k.mode.unwrap_or(Mode::Full);
        let publishers = match mode {
            Mode::PlayOnly => 0,
            _ => k.publishers.unwrap_or(1),
        };
        let streams = match mode {
            Mode::PlayOnly => k.streams.unwrap_or(1),
            _ => publishers,
        };
        let players_per_stream = match mode {
            Mode::PublishOnly => 0,
            _ => k.players.unwrap_or(10),
        };
        let ramp_per_s = k.ramp.unwrap_or(500.0);
        let duration = k.duration.unwrap_or(10.0);
        let churn_per_s = k.churn.unwrap_or(0.0);
        let warmup = k.warmup.unwrap_or(2.0);
        if !(0.0..=3600.0).contains(&warmup) {
            bail!("warmup must be in [0, 3600] seconds");
        }
        if ramp_per_s.is_nan() || ramp_per_s <= 0.0 {
            bail!("ramp must be > 0 connections/s");
        }
        if !(0.0..=86_400.0).contains(&duration) || duration == 0.0 {
            bail!("duration must be in (0, 86400] seconds");
        }
        if churn_per_s.is_nan() || churn_per_s < 0.0 {
            bail!("churn must be >= 0");
        }
        if streams == 0 {
            bail!("nothing to do: no streams");
        }
        if mode == Mode::Full
            && players_per_stream == 0
            && k.hls_pollers.unwrap_or(0) == 0
            && k.sweep.is_none()
        {
            bail!("full mode needs players (use --mode publish-only for ingest only)");
        }
        let fps = k.fps.unwrap_or(25);
        let source = match (k.flv, k.synthetic) {
            (Some(_), Some(_)) => bail!("choose --flv or --synthetic, not both"),
            (Some(path), None) => SourceSpec::Flv(path),
            (None, s) => SourceSpec::Synthetic {
                video_bps: parse_bitrate(s.as_deref().unwrap_or("600k"))?,
                fps,
                gop: k.gop.unwrap_or(fps * 2),
            },
        };
        let sweep = k.sweep.unwrap_or_default();
        if sweep.contains(&0) {
            bail!("sweep values must be > 0");
        }
        Ok(Self {
            url,
            publish_url,
            mode,
            publishers,
            streams,
            players_per_stream,
            ramp_per_s,
            duration: Duration::from_secs_f64(duration),
            warmup: Duration::from_secs_f64(warmup),
            churn_per_s,
            source,
            stall_threshold: Duration::from_millis(k.stall_ms.unwrap_or(1000)),
            sweep,
            player_proto: k.player_proto.unwrap_or_default(),
            http_port: k.http_port.unwrap_or(8080),
            hls_pollers: match mode {
                Mode::PublishOnly => 0,
                _ => k.hls_pollers.unwrap_or(0),
            },
        })
    }

    /// Where players connect: the RTMP address, or the HTTP one for HTTP-FLV players.
    pub fn player_addr(&self) -> Result<SocketAddr> {
        let mut addr = self.url.socket_addr()?;
        if self.player_proto == PlayerProto::HttpFlv {
            addr.set_port(self.http_port);
        }
        Ok(addr)
    }

    /// The server's HTTP address.
    pub fn http_addr(&self) -> Result<SocketAddr> {
        let mut addr = self.url.socket_addr()?;
        addr.set_port(self.http_port);
        Ok(addr)
    }

    /// The HLS media playlist path of stream `i`: `/APP/NAME.m3u8`.
    pub fn hls_path(&self, i: u32) -> String {
        format!("/{}/{}.m3u8", self.url.app, self.stream_name(i))
    }

    /// The HTTP-FLV path of stream `i`: `/APP/NAME.flv`.
    pub fn flv_path(&self, i: u32) -> String {
        format!("/{}/{}.flv", self.url.app, self.stream_name(i))
    }

    /// Name of stream `i` (0-based): the URL's name with one stream, `NAME-i` with several.
    pub fn stream_name(&self, i: u32) -> String {
        if self.streams == 1 {
            self.url.stream.clone()
        } else {
            format!("{}-{i}", self.url.stream)
        }
    }

    /// The same scenario with `m` players per stream (one step of a sweep).
    pub fn with_players(&self, m: u32) -> Self {
        let mut s = self.clone();
        s.players_per_stream = m;
        s.sweep.clear();
        s
    }

    /// Total connections opened at ramp-up.
    pub fn total_connections(&self) -> u64 {
        u64::from(self.publishers)
            + u64::from(self.streams)
                * (u64::from(self.players_per_stream) + u64::from(self.hls_pollers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_splits_into_host_port_app_and_stream() {
        let u = RtmpUrl::parse("rtmp://127.0.0.1:19350/live/cam1").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 19350));
        assert_eq!((u.app.as_str(), u.stream.as_str()), ("live", "cam1"));
        assert_eq!(u.tc_url, "rtmp://127.0.0.1:19350/live");
    }

    #[test]
    fn url_defaults_port_1935_and_accepts_ipv6() {
        assert_eq!(RtmpUrl::parse("rtmp://localhost/app/s").unwrap().port, 1935);
        let u = RtmpUrl::parse("rtmp://[::1]:2000/app/s?key=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.stream.as_str()),
            ("::1", 2000, "s?key=1")
        );
        assert_eq!(u.tc_url, "rtmp://[::1]:2000/app");
    }

    #[test]
    fn url_without_stream_or_scheme_is_rejected() {
        assert!(RtmpUrl::parse("rtmp://127.0.0.1/live").is_err());
        assert!(RtmpUrl::parse("http://127.0.0.1/live/x").is_err());
        let u = RtmpUrl::parse("rtmps://localhost/live/x").unwrap();
        assert_eq!(
            (u.port, u.tls, u.tc_url.as_str()),
            (443, true, "rtmps://localhost:443/live")
        );
        assert!(RtmpUrl::parse("rtmp://127.0.0.1:port/live/x").is_err());
    }

    #[test]
    fn toml_file_is_parsed_and_flags_win() {
        let file = Knobs::from_toml(
            r#"
            url = "rtmp://127.0.0.1:1940/live/s"
            publishers = 50
            players = 10
            ramp = 200.0
            duration = 30
            synthetic = "2.5M"
            sweep = [100, 500]
            "#,
        )
        .unwrap();
        let flags = Knobs {
            players: Some(3),
            ..Knobs::default()
        };
        let sc = Scenario::from_knobs(flags.or(file)).unwrap();
        assert_eq!(sc.players_per_stream, 3);
        assert_eq!(sc.publishers, 50);
        assert_eq!(sc.streams, 50);
        assert_eq!(sc.duration, Duration::from_secs(30));
        assert_eq!(sc.sweep, vec![100, 500]);
        assert_eq!(
            sc.source,
            SourceSpec::Synthetic {
                video_bps: 2_500_000,
                fps: 25,
                gop: 50
            }
        );
        assert_eq!(sc.stream_name(7), "s-7");
        assert_eq!(sc.total_connections(), 50 + 50 * 3);
    }

    #[test]
    fn non_positive_or_nan_rates_are_rejected() {
        for k in [
            Knobs {
                ramp: Some(0.0),
                ..Knobs::default()
            },
            Knobs {
                ramp: Some(f64::NAN),
                ..Knobs::default()
            },
            Knobs {
                duration: Some(0.0),
                ..Knobs::default()
            },
            Knobs {
                duration: Some(f64::NAN),
                ..Knobs::default()
            },
            Knobs {
                churn: Some(-1.0),
                ..Knobs::default()
            },
            Knobs {
                sweep: Some(vec![10, 0]),
                ..Knobs::default()
            },
        ] {
            assert!(Scenario::from_knobs(k.clone()).is_err(), "{k:?}");
        }
    }

    #[test]
    fn unknown_toml_keys_are_rejected() {
        assert!(Knobs::from_toml("playerz = 3").is_err());
    }

    #[test]
    fn play_only_has_no_publishers_and_publish_only_no_players() {
        let k = Knobs {
            mode: Some(Mode::PlayOnly),
            streams: Some(2),
            ..Knobs::default()
        };
        let sc = Scenario::from_knobs(k).unwrap();
        assert_eq!(
            (sc.publishers, sc.streams, sc.players_per_stream),
            (0, 2, 10)
        );
        let k = Knobs {
            mode: Some(Mode::PublishOnly),
            publishers: Some(500),
            ..Knobs::default()
        };
        let sc = Scenario::from_knobs(k).unwrap();
        assert_eq!((sc.publishers, sc.players_per_stream), (500, 0));
        assert_eq!(sc.stream_name(0), "stream-0");
    }

    #[test]
    fn flv_and_synthetic_together_are_rejected() {
        let k = Knobs {
            flv: Some("a.flv".into()),
            synthetic: Some("1M".into()),
            ..Knobs::default()
        };
        assert!(Scenario::from_knobs(k).is_err());
    }

    #[test]
    fn http_flv_players_use_the_http_port_and_an_flv_path() {
        let k = Knobs::from_toml(
            r#"
            url = "rtmp://127.0.0.1:1940/live/s"
            publishers = 2
            player_proto = "http-flv"
            http_port = 8081
            "#,
        )
        .unwrap();
        let sc = Scenario::from_knobs(k).unwrap();
        assert_eq!(sc.player_proto, PlayerProto::HttpFlv);
        assert_eq!(sc.player_addr().unwrap().port(), 8081);
        assert_eq!(sc.url.socket_addr().unwrap().port(), 1940);
        assert_eq!(sc.flv_path(1), "/live/s-1.flv");
        let rtmp = Scenario::from_knobs(Knobs::default()).unwrap();
        assert_eq!(rtmp.player_proto, PlayerProto::Rtmp);
        assert_eq!(rtmp.player_addr().unwrap().port(), 1935);
    }

    #[test]
    fn one_stream_keeps_the_url_name() {
        let sc = Scenario::from_knobs(Knobs::default()).unwrap();
        assert_eq!(sc.stream_name(0), "stream");
    }
}
