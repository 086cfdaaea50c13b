//! RTMP URLs the relay connects to: origins (`rtmp://host[:port][/path]`), push targets
//! (`rtmp://host[:port]/app[?query]`) and the stream URL built from either.
//!
//! Parsed once, when the configuration is read (an error names the rule broken), so the
//! worker never meets a malformed URL at connect time.

use std::fmt;

/// Transport of an RTMP URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `rtmp://`, plain TCP, default port 1935.
    Rtmp,
    /// `rtmps://`, RTMP over TLS, default port 443.
    Rtmps,
}

impl Scheme {
    /// The port used when the URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Rtmp => 1935,
            Scheme::Rtmps => 443,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Scheme::Rtmp => "rtmp",
            Scheme::Rtmps => "rtmps",
        }
    }
}

/// Why a relay URL was refused; each variant names the rule broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("scheme must be rtmp:// or rtmps://, found {found:?}")]
    UnsupportedScheme { found: String },
    #[error("no host after the scheme")]
    MissingHost,
    #[error("user info (`user@`) is not allowed in a relay URL")]
    UserInfoNotAllowed,
    #[error("port must be a number from 1 to 65535, found {found:?}")]
    BadPort { found: String },
    #[error("an IPv6 host must be written in brackets, e.g. [::1]:1935")]
    BadIpv6Host,
    #[error("spaces and control characters are not allowed")]
    ForbiddenCharacter,
    #[error("an origin URL takes no query or fragment: the stream's own query is appended")]
    QueryNotAllowed,
    #[error("a fragment (`#`) is not allowed")]
    FragmentNotAllowed,
    #[error("empty path segment (`//`)")]
    EmptyPathSegment,
    #[error("a push URL must name the app, e.g. rtmp://host/live")]
    MissingApp,
}

/// Scheme, host and port: where a connection goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Transport.
    pub scheme: Scheme,
    /// Host name or address; an IPv6 address is kept in brackets, as written.
    pub host: String,
    /// Port, the scheme's default when the URL names none.
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme.as_str(), self.host, self.port)
    }
}

/// Splits `scheme://authority` from the rest (which starts with `/`, `?`, `#` or is empty).
fn parse_endpoint(text: &str) -> Result<(Endpoint, &str), UrlError> {
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UrlError::ForbiddenCharacter);
    }
    let (scheme, rest) = match text.split_once("://") {
        Some((s, rest)) if s.eq_ignore_ascii_case("rtmp") => (Scheme::Rtmp, rest),
        Some((s, rest)) if s.eq_ignore_ascii_case("rtmps") => (Scheme::Rtmps, rest),
        Some((s, _)) => return Err(UrlError::UnsupportedScheme { found: s.into() }),
        None => return Err(UrlError::UnsupportedScheme { found: text.into() }),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err(UrlError::UserInfoNotAllowed);
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or(UrlError::BadIpv6Host)?;
        if addr.is_empty() || !addr.contains(':') {
            return Err(UrlError::BadIpv6Host);
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(UrlError::BadIpv6Host)?),
        };
        (&authority[..addr.len() + 2], port)
    } else {
        match authority.split_once(':') {
            Some((_, p)) if p.contains(':') => return Err(UrlError::BadIpv6Host),
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError::MissingHost);
    }
    let port = match port {
        None => scheme.default_port(),
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(UrlError::BadPort { found: p.into() }),
        },
    };
    let host = host.to_ascii_lowercase();
    Ok((Endpoint { scheme, host, port }, tail))
}

/// The path of `tail` without its leading and trailing `/`, refusing empty segments.
fn parse_path(tail: &str) -> Result<&str, UrlError> {
    let path = tail.trim_start_matches('/').trim_end_matches('/');
    if tail.starts_with("//") || (!path.is_empty() && path.split('/').any(str::is_empty)) {
        return Err(UrlError::EmptyPathSegment);
    }
    Ok(path)
}

/// An origin to pull from: `rtmp[s]://host[:port][/path]`. The path, if any, is put before
/// the app of every stream pulled from it. Written back canonically (host in lower case,
/// port always shown), which is also its identity for rendezvous hashing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OriginUrl {
    endpoint: Endpoint,
    path: String,
}

impl OriginUrl {
    /// Parses an origin URL (when the configuration is read).
    pub fn parse(text: &str) -> Result<Self, UrlError> {
        let (endpoint, tail) = parse_endpoint(text)?;
        if tail.contains('#') {
            return Err(UrlError::FragmentNotAllowed);
        }
        if tail.contains('?') {
            return Err(UrlError::QueryNotAllowed);
        }
        let path = parse_path(tail)?.to_owned();
        Ok(Self { endpoint, path })
    }

    /// Where to connect.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The path prefix, without slashes (empty when none).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The URL to pull `app/stream` from this origin: `{origin}/{app}/{stream}`. `app` and
    /// `stream` are kept exactly as the player gave them, queries (tokens) included.
    pub fn pull_url(&self, app: &str, stream: &str) -> StreamUrl {
        let app = if self.path.is_empty() {
            app.to_owned()
        } else {
            format!("{}/{app}", self.path)
        };
        StreamUrl {
            endpoint: self.endpoint.clone(),
            app,
            stream: stream.to_owned(),
        }
    }
}

impl std::str::FromStr for OriginUrl {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, UrlError> {
        Self::parse(s)
    }
}

impl fmt::Display for OriginUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.endpoint)?;
        if !self.path.is_empty() {
            write!(f, "/{}", self.path)?;
        }
        Ok(())
    }
}

/// A push target: `rtmp[s]://host[:port]/app[?query]`; each published stream's name (and
/// its query) is appended as the stream to publish.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PushUrl {
    endpoint: Endpoint,
    /// The app with its query, as written.
    app: String,
}

impl PushUrl {
    /// Parses a push URL (when the configuration is read).
    pub fn parse(text: &str) -> Result<Self, UrlError> {
        let (endpoint, tail) = parse_endpoint(text)?;
        if tail.contains('#') {
            return Err(UrlError::FragmentNotAllowed);
        }
        let (path, query) = match tail.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (tail, None),
        };
        let path = parse_path(path)?;
        if path.is_empty() {
            return Err(UrlError::MissingApp);
        }
        let app = match query {
            Some(q) => format!("{path}?{q}"),
            None => path.to_owned(),
        };
        Ok(Self { endpoint, app })
    }

    /// Where to connect.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The URL to publish `stream` (its query kept) to this target.
    pub fn stream_url(&self, stream: &str) -> StreamUrl {
        StreamUrl {
            endpoint: self.endpoint.clone(),
            app: self.app.clone(),
            stream: stream.to_owned(),
        }
    }
}

impl fmt::Display for PushUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.endpoint, self.app)
    }
}

/// What a client session needs to pull or push one stream: where to connect, the `app` and
/// `tcUrl` for `connect`, and the name for `play`/`publish`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamUrl {
    endpoint: Endpoint,
    app: String,
    stream: String,
}

impl StreamUrl {
    /// Where to connect.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The `app` of `connect` (with its query, if it had one).
    pub fn app(&self) -> &str {
        &self.app
    }

    /// The `tcUrl` of `connect`: `{scheme}://{host}:{port}/{app}`.
    pub fn tc_url(&self) -> String {
        format!("{}/{}", self.endpoint, self.app)
    }

    /// The name for `play` or `publish` (with its query, if it had one).
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// This URL sent to the host of an RTMP redirect (`ex.redirect` of a rejected
    /// `connect`): scheme, host and port are taken from `target`; app and stream are kept,
    /// since servers differ on whether the redirect names them (the redirect's path is
    /// ignored).
    pub fn redirected(&self, target: &str) -> Result<StreamUrl, UrlError> {
        let (endpoint, _) = parse_endpoint(target)?;
        Ok(StreamUrl {
            endpoint,
            app: self.app.clone(),
            stream: self.stream.clone(),
        })
    }
}

impl fmt::Display for StreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.endpoint, self.app, self.stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(s: &str) -> OriginUrl {
        OriginUrl::parse(s).unwrap()
    }

    #[test]
    fn origin_without_port_gets_the_scheme_default() {
        assert_eq!(
            origin("rtmp://a.example").to_string(),
            "rtmp://a.example:1935"
        );
        assert_eq!(
            origin("rtmps://a.example").to_string(),
            "rtmps://a.example:443"
        );
        assert_eq!(
            origin("RTMP://A.Example:1936/").to_string(),
            "rtmp://a.example:1936"
        );
    }

    #[test]
    fn origin_path_prefixes_the_app() {
        let o = origin("rtmp://[::1]:19350/edge/in");
        assert_eq!(o.endpoint().host, "[::1]");
        assert_eq!(o.endpoint().port, 19350);
        let url = o.pull_url("live", "demo");
        assert_eq!(url.app(), "edge/in/live");
        assert_eq!(url.to_string(), "rtmp://[::1]:19350/edge/in/live/demo");
    }

    #[test]
    fn pull_url_keeps_the_queries_of_app_and_stream() {
        let url = origin("rtmp://o:1935").pull_url("live?token=abc", "demo?sig=x%2Fy");
        assert_eq!(
            url.to_string(),
            "rtmp://o:1935/live?token=abc/demo?sig=x%2Fy"
        );
        assert_eq!(url.app(), "live?token=abc");
        assert_eq!(url.tc_url(), "rtmp://o:1935/live?token=abc");
        assert_eq!(url.stream(), "demo?sig=x%2Fy");
    }

    #[test]
    fn rejects_urls_that_break_a_rule() {
        use UrlError::*;
        let cases: &[(&str, UrlError)] = &[
            (
                "http://o",
                UnsupportedScheme {
                    found: "http".into(),
                },
            ),
            (
                "o:1935",
                UnsupportedScheme {
                    found: "o:1935".into(),
                },
            ),
            ("rtmp://", MissingHost),
            ("rtmp://:1935/live", MissingHost),
            ("rtmp://u:p@o", UserInfoNotAllowed),
            ("rtmp://o:0", BadPort { found: "0".into() }),
            (
                "rtmp://o:65536",
                BadPort {
                    found: "65536".into(),
                },
            ),
            ("rtmp://o:+1", BadPort { found: "+1".into() }),
            ("rtmp://o:", BadPort { found: "".into() }),
            ("rtmp://::1", BadIpv6Host),
            ("rtmp://[::1", BadIpv6Host),
            ("rtmp://[]:1935", BadIpv6Host),
            ("rtmp://o /live", ForbiddenCharacter),
            ("rtmp://o/li\nve", ForbiddenCharacter),
            ("rtmp://o/live?token=1", QueryNotAllowed),
            ("rtmp://o/live#x", FragmentNotAllowed),
            ("rtmp://o//live", EmptyPathSegment),
            ("rtmp://o/a//b", EmptyPathSegment),
        ];
        for (text, want) in cases {
            assert_eq!(OriginUrl::parse(text).as_ref(), Err(want), "{text}");
        }
    }

    #[test]
    fn push_url_needs_an_app_and_keeps_its_query() {
        assert_eq!(PushUrl::parse("rtmp://o:1935"), Err(UrlError::MissingApp));
        assert_eq!(PushUrl::parse("rtmp://o/?k=1"), Err(UrlError::MissingApp));
        let push = PushUrl::parse("rtmps://live.example/app2?key=s3cret").unwrap();
        let url = push.stream_url("demo?x=1");
        assert_eq!(url.endpoint().port, 443);
        assert_eq!(url.tc_url(), "rtmps://live.example:443/app2?key=s3cret");
        assert_eq!(url.stream(), "demo?x=1");
    }

    #[test]
    fn redirect_moves_to_the_new_host_and_keeps_app_and_stream() {
        let url = origin("rtmp://a").pull_url("live?t=1", "demo");
        let moved = url
            .redirected("rtmp://b.example:1940/live/demo?vhost=x")
            .unwrap();
        assert_eq!(moved.to_string(), "rtmp://b.example:1940/live?t=1/demo");
        assert!(url.redirected("http://b").is_err());
    }
}
