//! The worker's side of `[auth]`: the decision points (an RTMP publish or play request, an
//! HTTP-FLV/HLS/DASH request), holding a request while its webhook is asked, and answering
//! it when the hook's answer comes back over the bus (`BusMsg::Auth`).
//!
//! ```text
//!  request ──▶ Policy::check (IP rules, signature) ──denied──▶ answer + close (Denied)
//!                 │ allowed
//!                 ▼
//!             hook configured? ──no──▶ served (RTMP: the hub's publish/play)
//!                 │ yes
//!                 ▼
//!             Webhooks::ask ──cached──▶ served / denied
//!                 │ in flight
//!                 ▼
//!             held (RTMP session paused; HTTP phase Held) ──BusMsg::Auth──▶ served / denied
//! ```
//! A held connection that closes is forgotten; an answer for it (found by `ConnKey`, slot and
//! generation) is then dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::close::CloseReason;
use super::conn::{HttpPhase, Proto};
use super::worker::Worker;
use crate::auth::sign::without_sig;
use crate::auth::webhook::{HookAction, HookCall, Waiter, Webhooks};
use crate::auth::{unix_now, Denial, Policy, Role, Viewers};
use crate::config::Config;
use crate::fanout::{ConnKey, StreamKey};
use crate::http::{self, Route};

/// What every worker shares: the webhook pool and the HLS/DASH viewers' allowances.
pub struct AuthShared {
    pub hooks: Webhooks,
    pub viewers: Viewers,
}

/// One publish or play to decide.
#[derive(Debug, Clone)]
pub(super) struct Ask {
    role: Role,
    app: String,
    stream: String,
    /// In clear: for the signature check and (without `sig`) the hook; never logged.
    query: String,
    ip: IpAddr,
    conn: u64,
    protocol: &'static str,
}

/// A request held while its hook is asked.
enum Pending {
    Rtmp {
        ask: Ask,
        stream_id: u32,
    },
    Http {
        ask: Ask,
        request: http::Request,
        /// HLS/DASH: remember the viewer once allowed.
        session: bool,
    },
}

/// What the stages decided so far.
enum Verdict {
    Allowed,
    Denied(Denial),
    Waiting,
}

/// A worker's authorisation state.
pub(super) struct Gate {
    policy: Policy,
    shared: Option<Arc<AuthShared>>,
    pending: HashMap<ConnKey, Pending>,
    /// Allowed sessions `auth.on_done` is told about when they end.
    active: HashMap<ConnKey, Ask>,
    /// A held HTTP request its hook allowed, for `http_input` to serve next.
    allowed: Option<(ConnKey, http::Request)>,
}

impl Gate {
    /// The gate for `config` (validated: its `[auth]` compiles), before the server hands it
    /// the shared pool.
    pub(super) fn new(config: &Config) -> Self {
        Self {
            policy: Policy::new(&config.auth).unwrap_or_default(),
            shared: None,
            pending: HashMap::new(),
            active: HashMap::new(),
            allowed: None,
        }
    }

    /// The request of `key` its hook just allowed, if any: serve it before reading more.
    pub(super) fn take_allowed(&mut self, key: ConnKey) -> Option<http::Request> {
        match self.allowed.take() {
            Some((k, request)) if k == key => Some(request),
            other => {
                self.allowed = other;
                None
            }
        }
    }

    /// Hands the gate the pool and allowances every worker shares.
    pub(super) fn set_shared(&mut self, shared: Arc<AuthShared>) {
        self.shared = Some(shared);
    }

    /// Takes a reloaded `[auth]` (validated): new requests are decided by it.
    pub(super) fn reconfigure(&mut self, config: &Config) {
        match Policy::new(&config.auth) {
            Ok(policy) => self.policy = policy,
            Err((key, value, reason)) => {
                tracing::warn!(key, %value, %reason, "auth settings not reloaded");
            }
        }
    }
}

/// The viewer an HTTP route makes of its client, if any: (app, stream, protocol, session).
fn viewer(route: &Route) -> Option<(&str, &str, &'static str, bool)> {
    match route {
        Route::Flv { app, stream } => Some((app, stream, "http-flv", false)),
        Route::Playlist { app, stream } => Some((app, stream, "hls", true)),
        Route::Manifest { app, stream } => Some((app, stream, "dash", true)),
        Route::Segment {
            app,
            stream,
            rendition,
            ..
        } => {
            let protocol = if rendition.is_some() { "dash" } else { "hls" };
            Some((app, stream, protocol, true))
        }
        Route::Health | Route::NotFound => None,
    }
}

impl Worker {
    /// Runs the in-loop stages and asks the hook: allowed, denied, or waiting (the answer
    /// then comes as `BusMsg::Auth` for `key`).
    fn decide(&mut self, key: ConnKey, ask: &Ask, now: Instant) -> Verdict {
        let policy = &self.gate.policy;
        if let Err(denial) = policy.check(
            ask.role,
            &ask.app,
            &ask.stream,
            &ask.query,
            ask.ip,
            unix_now(),
        ) {
            return Verdict::Denied(denial);
        }
        let (Some(url), Some(shared)) = (policy.hook(ask.role), &self.gate.shared) else {
            return Verdict::Allowed;
        };
        let call = self.hook_call(ask, url.clone(), HookAction::Ask(ask.role));
        let waiter = Waiter {
            worker: self.index,
            conn: key,
        };
        match shared.hooks.ask(call, waiter, now) {
            Some(Ok(())) => Verdict::Allowed,
            Some(Err(denial)) => Verdict::Denied(denial),
            None => {
                tracing::debug!(role = %ask.role, "waiting for the webhook's answer");
                Verdict::Waiting
            }
        }
    }

    fn hook_call(
        &self,
        ask: &Ask,
        url: crate::auth::webhook::HookUrl,
        action: HookAction,
    ) -> HookCall {
        let auth = &self.config.auth;
        HookCall {
            url,
            action,
            app: ask.app.clone(),
            stream: ask.stream.clone(),
            query: without_sig(&ask.query),
            ip: ask.ip,
            worker: self.index,
            conn: ask.conn,
            protocol: ask.protocol,
            timeout: Duration::from_millis(auth.webhook_timeout_ms),
            fail_open: auth.webhook_fail_open,
        }
    }

    /// An RTMP `publish` or `play` of `name` (its query, else the connect's): decided now, or
    /// held with its session paused until the hook answers.
    pub(super) fn rtmp_request(
        &mut self,
        key: ConnKey,
        role: Role,
        stream_id: u32,
        name: &str,
        query: String,
        now: Instant,
    ) {
        let Some(conn) = self.conns.get_mut(key).filter(|c| c.closing.is_none()) else {
            return;
        };
        let (ip, id) = (conn.peer.ip(), conn.id);
        let Some(session) = conn.rtmp() else {
            return;
        };
        // The key's query and the server URL's (OBS puts a token on either): the key's
        // parameters come first, so they win when both name one.
        let query = match (query.is_empty(), session.app_query()) {
            (_, "") => query,
            (true, app_query) => app_query.to_owned(),
            (false, app_query) => format!("{query}&{app_query}"),
        };
        let ask = Ask {
            role,
            app: session.app().unwrap_or_default().to_owned(),
            stream: name.to_owned(),
            query,
            ip,
            conn: id,
            protocol: "rtmp",
        };
        match self.decide(key, &ask, now) {
            Verdict::Allowed => self.rtmp_allowed(key, ask, stream_id, now),
            Verdict::Denied(denial) => self.rtmp_denied(key, ask.role, stream_id, denial),
            Verdict::Waiting => {
                self.gate
                    .pending
                    .insert(key, Pending::Rtmp { ask, stream_id });
            }
        }
    }

    fn rtmp_allowed(&mut self, key: ConnKey, ask: Ask, stream_id: u32, now: Instant) {
        crate::admin::WorkerStats::add(&self.stats.auth_allowed, 1);
        let stream = StreamKey::new(&ask.app, &ask.stream);
        let role = ask.role;
        self.remember_active(key, ask);
        let (hub, mut door) = self.door(now);
        match role {
            Role::Publish => hub.publish(key, stream_id, stream, &mut door),
            Role::Play => hub.play(key, stream_id, stream, &mut door),
        }
        self.apply_hub(now);
    }

    /// Refuses as RTMP clients expect (`NetStream.Publish.BadName`, `NetStream.Play.Failed`),
    /// then closes once that is written.
    fn rtmp_denied(&mut self, key: ConnKey, role: Role, stream_id: u32, denial: Denial) {
        crate::admin::WorkerStats::add(&self.stats.auth_denied, 1);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        tracing::info!(parent: &conn.span, %role, stage = %denial.stage(), reason = %denial,
            "denied");
        let description = format!("{role} denied by {}", denial.stage());
        if let Some(session) = conn.rtmp() {
            match role {
                Role::Publish => {
                    session.reject_publish(stream_id, "NetStream.Publish.BadName", &description)
                }
                Role::Play => session.reject_play(stream_id, "NetStream.Play.Failed", &description),
            }
        }
        conn.pump_session();
        conn.closing = Some(CloseReason::Denied {
            role,
            reason: denial,
        });
        conn.read_buf.clear();
        conn.schedule_write(&mut self.write_list);
    }

    /// An HTTP request for a stream (HTTP-FLV, HLS, DASH): true when it may be served now;
    /// otherwise it was refused (401/403) or is held for its hook.
    pub(super) fn http_authorised(
        &mut self,
        key: ConnKey,
        request: &http::Request,
        route: &Route,
        now: Instant,
    ) -> bool {
        let Some((app, stream, protocol, session)) = viewer(route) else {
            return true;
        };
        if self.gate.policy.open(Role::Play, app) {
            return true;
        }
        let Some(conn) = self.conns.get(key) else {
            return false;
        };
        let ask = Ask {
            role: Role::Play,
            app: app.to_owned(),
            stream: stream.to_owned(),
            query: request.query.clone(),
            ip: conn.peer.ip(),
            conn: conn.id,
            protocol,
        };
        let policy = &self.gate.policy;
        if session && policy.guarded(Role::Play, app) {
            // A viewer allowed once fetches playlists and segments on its allowance; the IP
            // rules (cheap, and reloadable) still apply to each request.
            let ttl = Duration::from_millis(self.config.auth.http_session_ms);
            let known = self
                .gate
                .shared
                .as_ref()
                .is_some_and(|s| s.viewers.allowed(app, stream, ask.ip, now, ttl));
            if known {
                return match policy.check_ip(Role::Play, app, ask.ip) {
                    Ok(()) => true,
                    Err(denial) => {
                        self.http_denied(key, request, denial);
                        false
                    }
                };
            }
        }
        match self.decide(key, &ask, now) {
            Verdict::Allowed => {
                self.http_allowed(key, ask, session, now);
                true
            }
            Verdict::Denied(denial) => {
                self.http_denied(key, request, denial);
                false
            }
            Verdict::Waiting => {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.proto = Proto::Http(HttpPhase::Held);
                }
                let request = request.clone();
                self.gate.pending.insert(
                    key,
                    Pending::Http {
                        ask,
                        request,
                        session,
                    },
                );
                false
            }
        }
    }

    /// An HTTP-FLV viewer is remembered for `on_done`; an HLS/DASH viewer gets its allowance.
    fn http_allowed(&mut self, key: ConnKey, ask: Ask, session: bool, now: Instant) {
        crate::admin::WorkerStats::add(&self.stats.auth_allowed, 1);
        if !session {
            self.remember_active(key, ask);
            return;
        }
        if !self.gate.policy.guarded(Role::Play, &ask.app) {
            return;
        }
        if let Some(shared) = &self.gate.shared {
            let ttl = Duration::from_millis(self.config.auth.http_session_ms);
            shared
                .viewers
                .allow(&ask.app, &ask.stream, ask.ip, now, ttl);
        }
    }

    /// Answers 401 (a signature would do) or 403 (refused), then closes.
    fn http_denied(&mut self, key: ConnKey, request: &http::Request, denial: Denial) {
        crate::admin::WorkerStats::add(&self.stats.auth_denied, 1);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        tracing::info!(parent: &conn.span, role = "play", path = %request.path,
            stage = %denial.stage(), reason = %denial, "denied");
        let (status, reason) = denial.http_status();
        let cors = &self.config.http.cors_allow_origin;
        let body = format!("play denied by {}\n", denial.stage());
        let response = http::simple_response(status, reason, &body, false, cors);
        let response = if request.method == "HEAD" {
            http::head_of(response)
        } else {
            response
        };
        conn.out.push_control(response);
        conn.proto = Proto::Http(HttpPhase::Request);
        conn.closing = Some(CloseReason::Denied {
            role: Role::Play,
            reason: denial,
        });
        conn.read_buf.clear();
        conn.schedule_write(&mut self.write_list);
    }

    /// A webhook's answer for `key` (over the bus): serves or refuses what was held.
    pub(super) fn auth_answer(&mut self, key: ConnKey, answer: Result<(), Denial>, now: Instant) {
        let Some(pending) = self.gate.pending.remove(&key) else {
            // Closed since (its slot may hold another connection, of another generation).
            tracing::debug!(
                worker = self.index,
                ?key,
                "webhook answer for a closed connection: dropped"
            );
            return;
        };
        let Some(span) = self.conns.get(key).map(|c| c.span.clone()) else {
            return;
        };
        let _envelope = span.enter();
        match (pending, answer) {
            (Pending::Rtmp { ask, stream_id }, Ok(())) => {
                self.rtmp_allowed(key, ask, stream_id, now);
                // What the session held behind the request (media, later commands), as a
                // read would have handled it.
                self.pump(key);
                while let Some(event) = self.conns.get_mut(key).and_then(|c| c.rtmp()?.poll_event())
                {
                    self.on_event(key, event, now);
                }
                self.pump(key);
            }
            (Pending::Rtmp { ask, stream_id }, Err(denial)) => {
                self.rtmp_denied(key, ask.role, stream_id, denial)
            }
            (
                Pending::Http {
                    ask,
                    request,
                    session,
                },
                Ok(()),
            ) => {
                self.http_allowed(key, ask, session, now);
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.proto = Proto::Http(HttpPhase::Request);
                }
                // Served first by `http_input`, then the requests pipelined behind it.
                self.gate.allowed = Some((key, request));
                self.http_input(key, now);
                self.gate.allowed = None;
            }
            (Pending::Http { request, .. }, Err(denial)) => self.http_denied(key, &request, denial),
        }
    }

    fn remember_active(&mut self, key: ConnKey, ask: Ask) {
        if self.gate.policy.done_hook().is_some() {
            self.gate.active.insert(key, ask);
        }
    }

    /// An allowed publisher or player stopped or left: `auth.on_done` is told. Forgets a
    /// request held for its hook.
    pub(super) fn auth_done(&mut self, key: ConnKey) {
        self.gate.pending.remove(&key);
        let Some(ask) = self.gate.active.remove(&key) else {
            return;
        };
        let (Some(url), Some(shared)) = (self.gate.policy.done_hook(), &self.gate.shared) else {
            return;
        };
        let call = self.hook_call(&ask, url.clone(), HookAction::Done(ask.role));
        shared.hooks.tell(call);
    }
}
