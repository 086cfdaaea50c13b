//! HTTP connections on a worker: request heads, errors, and live HTTP-FLV viewers (which join
//! the stream hub as players whose media goes out as FLV tags).

use std::time::Instant;

use super::bus::BusMsg;
use super::close::{CloseReason, ClusterEnd};

/// The query parameter a busy edge's 302 adds: a request carrying it is never redirected
/// again.
const REDIRECTED: &str = "rtmp_edge_redirected=1";
use super::conn::{HttpPhase, Proto};
use super::hls::{Awaited, PackagingAction};
use super::worker::Worker;
use crate::fanout::FlvBody;
use crate::fanout::{ConnKey, StreamKey};
use crate::http::{self, Route};

impl Worker {
    /// Handles what an HTTP connection sent: one or more request heads (keep-alive), or
    /// nothing at all once it streams.
    pub(super) fn http_input(&mut self, key: ConnKey, now: Instant) {
        let max = self.config.http.max_request_bytes;
        let cors = self.config.http.cors_allow_origin.clone();
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if matches!(conn.proto, Proto::Http(HttpPhase::Held)) {
                // Pipelined requests wait until the held one is answered, in at most one
                // request head's worth of buffer: more is a peer streaming bytes at us.
                if conn.read_buf.len() > max {
                    let e = http::HttpError::HeadTooLarge { limit: max };
                    self.close(key, CloseReason::BadHttpRequest(e), now);
                }
                return;
            }
            if !matches!(conn.proto, Proto::Http(HttpPhase::Request)) || conn.closing.is_some() {
                // A viewer sends nothing we act on while its response streams.
                conn.read_buf.clear();
                return;
            }
            // A request held for its webhook and now allowed (shard/auth.rs) goes first.
            let (request, authorised) = match self.gate.take_allowed(key) {
                Some(request) => (request, true),
                None => match http::parse_request(&mut conn.read_buf, max) {
                    Ok(Some(request)) => (request, false),
                    Ok(None) => return,
                    Err(e) => {
                        let (status, reason) = e.status();
                        let response =
                            http::simple_response(status, reason, &format!("{e}\n"), false, &cors);
                        self.refuse(key, response, CloseReason::BadHttpRequest(e));
                        return;
                    }
                },
            };
            let keep_alive = request.keep_alive && !request.has_body;
            let head_only = request.method == "HEAD";
            let answer = |status: u16, reason: &str, body: &str| {
                http::simple_response(status, reason, body, keep_alive, &cors)
            };
            let response = if request.has_body {
                answer(
                    413,
                    "Content Too Large",
                    "request bodies are not accepted\n",
                )
            } else if request.method == "OPTIONS" {
                answer(204, "No Content", "")
            } else if request.method != "GET" && request.method != "HEAD" {
                answer(
                    405,
                    "Method Not Allowed",
                    "only GET, HEAD and OPTIONS are served\n",
                )
            } else {
                let route = match http::route(&request.path) {
                    Ok(route) => route,
                    Err(e) => {
                        let response = http::simple_response(
                            400,
                            "Bad Request",
                            &format!("{e}\n"),
                            false,
                            &cors,
                        );
                        let response = if head_only {
                            http::head_of(response)
                        } else {
                            response
                        };
                        let path = request.path.clone();
                        self.refuse(key, response, CloseReason::BadHttpPath { path, error: e });
                        return;
                    }
                };
                // `[auth]` (shard/auth.rs): refused, or held for a webhook, unless allowed.
                if !authorised && !self.http_authorised(key, &request, &route, now) {
                    return;
                }
                // A busy edge sends new players elsewhere: HTTP-FLV, and the first playlist or
                // manifest of a viewer (one already watching here, and every segment, stay).
                // A request that was redirected once is served (no ping-pong between two edges
                // that went busy together).
                // Segments, the bulk of HLS/DASH requests, never touch the shared state, and
                // an edge that never redirects looks at nothing.
                let redirect = if self.config.cluster.redirect_when_busy
                    && self.starts_viewing(key, &route)
                    && !request.query.split('&').any(|p| p == REDIRECTED)
                {
                    self.relay.busy_redirect().filter(|r| !r.http.is_empty())
                } else {
                    None
                };
                if let Some(to) = redirect {
                    let query = if request.query.is_empty() {
                        format!("?{REDIRECTED}")
                    } else {
                        format!("?{}&{REDIRECTED}", request.query)
                    };
                    let location = format!("{}{}{query}", to.http, request.path);
                    let response = http::redirect_response(&location, &cors);
                    let reason = CloseReason::Cluster(ClusterEnd::Redirected { to: location });
                    self.refuse(key, response, reason);
                    return;
                }
                match route {
                    Route::NotFound => answer(404, "Not Found", "no such resource\n"),
                    Route::Health if self.is_draining() => {
                        answer(503, "Service Unavailable", "draining\n")
                    }
                    Route::Health => answer(200, "OK", "ok\n"),
                    Route::Playlist { app, stream } => {
                        self.viewer_seen(key, &app, &stream, "hls", now);
                        match http::blocking_params(&request.query) {
                            Err(e) => answer(400, "Bad Request", &format!("{e}\n")),
                            Ok(block) => {
                                let skey = StreamKey::new(&app, &stream);
                                let what = Awaited::Playlist { stream, block };
                                let Some(response) =
                                    self.hls_serve(key, skey, what, keep_alive, head_only)
                                else {
                                    return;
                                };
                                response
                            }
                        }
                    }
                    Route::Manifest { app, stream } => {
                        self.viewer_seen(key, &app, &stream, "dash", now);
                        let skey = StreamKey::new(&app, &stream);
                        let what = Awaited::Manifest { stream };
                        let Some(response) = self.hls_serve(key, skey, what, keep_alive, head_only)
                        else {
                            return;
                        };
                        response
                    }
                    Route::Segment {
                        app,
                        stream,
                        rendition,
                        resource,
                    } => {
                        let skey = StreamKey::new(&app, &stream);
                        let what = Awaited::Resource {
                            rendition,
                            resource,
                        };
                        let Some(response) = self.hls_serve(key, skey, what, keep_alive, head_only)
                        else {
                            return;
                        };
                        response
                    }
                    Route::Flv { app, stream } => {
                        let skey = StreamKey::new(&app, &stream);
                        if request.method == "HEAD" {
                            answer(200, "OK", "")
                        } else if !self.hub.open(&skey) {
                            self.apply_hub(now);
                            answer(404, "Not Found", "stream is not published\n")
                        } else {
                            let Some(conn) = self.conns.get_mut(key) else {
                                return;
                            };
                            let body = if request.http10 {
                                FlvBody::UntilClose
                            } else {
                                FlvBody::Chunked
                            };
                            conn.out.push_control(http::flv_stream_head(&cors, body));
                            conn.proto = Proto::Http(HttpPhase::Streaming);
                            conn.read_buf.clear();
                            conn.schedule_write(&mut self.write_list);
                            let (hub, mut door) = self.door(now);
                            hub.attach(key, 0, skey, Some(body), &mut door);
                            self.apply_hub(now);
                            return;
                        }
                    }
                }
            };
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            conn.out.push_control(if head_only {
                http::head_of(response)
            } else {
                response
            });
            if !keep_alive {
                conn.closing = Some(CloseReason::HttpAnswered {
                    method: request.method.clone(),
                    path: request.path.clone(),
                });
                conn.read_buf.clear();
            }
            conn.schedule_write(&mut self.write_list);
        }
    }

    /// Whether `route` starts a new viewer of a stream on `key`'s peer: an HTTP-FLV stream, or
    /// a playlist or manifest its address has not fetched lately.
    fn starts_viewing(&self, key: ConnKey, route: &Route) -> bool {
        let Some(ip) = self.conns.get(key).map(|c| c.peer.ip()) else {
            return false;
        };
        let watching = |app: &str, stream: &str, proto| {
            self.http_viewers
                .is_watching(&StreamKey::new(app, stream), proto, ip)
        };
        match route {
            Route::Flv { .. } => true,
            Route::Playlist { app, stream } => !watching(app, stream, "hls"),
            Route::Manifest { app, stream } => !watching(app, stream, "dash"),
            _ => false,
        }
    }

    /// Counts `key`'s peer as a viewer of `app/stream` over `proto` (for the admin API).
    fn viewer_seen(
        &mut self,
        key: ConnKey,
        app: &str,
        stream: &str,
        proto: &'static str,
        now: Instant,
    ) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.http_served = Some(proto);
            let ip = conn.peer.ip();
            self.http_viewers
                .seen(&StreamKey::new(app, stream), proto, ip, now);
        }
    }

    /// Answers a request that cannot be served with `response`, then closes the connection
    /// for `reason` once that is written (what follows in its buffer is not read).
    fn refuse(&mut self, key: ConnKey, response: bytes::Bytes, reason: CloseReason) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.out.push_control(response);
        conn.closing = Some(reason);
        conn.read_buf.clear();
        conn.schedule_write(&mut self.write_list);
    }

    /// Runs an HLS/DASH request; queues all but the last piece of its answer and returns that
    /// one, or marks the connection held and returns `None`.
    fn hls_serve(
        &mut self,
        key: ConnKey,
        skey: StreamKey,
        what: Awaited,
        keep_alive: bool,
        head_only: bool,
    ) -> Option<bytes::Bytes> {
        let now = Instant::now();
        crate::admin::WorkerStats::add(&self.stats.hls_requests, 1);
        // A stream no worker has is pulled from an origin (when configured); the request
        // then waits for its first segment like any other first request.
        self.hub.want(&skey);
        self.apply_hub(now);
        let answer = self
            .packaging
            .request(key, skey, what, keep_alive, head_only, now);
        self.apply_packaging(now);
        let conn = self.conns.get_mut(key)?;
        let Some(mut parts) = answer else {
            conn.proto = Proto::Http(HttpPhase::Held);
            return None;
        };
        let last = parts.pop().unwrap_or_default();
        for part in parts {
            conn.out.push_control(part);
        }
        Some(last)
    }
}

impl Worker {
    /// Starts packaging `key` if it is published (or pulled) here, from its fast-start cache dated by the
    /// publisher's media clock.
    pub(super) fn start_packaging(&mut self, key: &StreamKey, now: Instant) {
        // The local publisher, or the upstream connection of a pull.
        let Some(publisher) = self.hub.publisher(key).or_else(|| self.relay.feeder(key)) else {
            return;
        };
        let seed = self.hub.snapshot(key);
        let offset = self.conns.get(publisher).and_then(|c| c.media_offset);
        let wall = super::hls::wall_clock_ms();
        self.packaging
            .start(key, seed, offset.map(|o| o.ms), wall, now);
        self.apply_packaging(now);
    }

    /// Applies what packaging asks, in order, until it asks nothing more.
    pub(super) fn apply_packaging(&mut self, now: Instant) {
        while let Some(action) = self.packaging.poll_action() {
            match action {
                PackagingAction::Answer {
                    conn,
                    pieces,
                    keep_alive,
                } => {
                    let Some(c) = self.conns.get_mut(conn) else {
                        continue;
                    };
                    for bytes in pieces {
                        c.out.push_control(bytes);
                    }
                    c.proto = Proto::Http(HttpPhase::Request);
                    if !keep_alive {
                        c.closing = Some(CloseReason::HttpResponseSent);
                    }
                    c.schedule_write(&mut self.write_list);
                    // Requests pipelined behind the held one.
                    self.http_input(conn, now);
                }
                PackagingAction::Progress { key } => {
                    crate::admin::WorkerStats::add(&self.stats.hls_parts, 1);
                    for worker in (0..self.bus.workers()).filter(|&w| w != self.index) {
                        self.bus
                            .send(worker, BusMsg::HlsProgress { key: key.clone() });
                    }
                }
                PackagingAction::AskOwner { owner, key } => {
                    self.bus.send(owner, BusMsg::HlsStart { key });
                }
                PackagingAction::Start { key } => self.start_packaging(&key, now),
            }
        }
    }
}
