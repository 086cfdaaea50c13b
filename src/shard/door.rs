//! The worker's side of the hub: the [`Door`] through which the sans-IO [`Hub`] reaches
//! connections (sessions and output queues), and the application of the hub's actions.
//!
//! [`Hub`]: crate::fanout::Hub

use std::time::Instant;

use super::bus::BusMsg;
use super::close::CloseReason;
use super::conn::{Conn, Role};
use super::conns::Conns;
use super::worker::Worker;
use crate::fanout::{Action, ConnKey, Door, FlvBody, Mail, Notice, OutputQueue};

/// The last chunk of a chunked HTTP body.
const CHUNKED_END: &[u8] = b"0\r\n\r\n";

/// The hub's view of one worker's connections during one input.
pub(super) struct WorkerDoor<'a> {
    pub conns: &'a mut Conns,
    /// Session answers are written this wake-up.
    pub write_list: &'a mut Vec<ConnKey>,
    /// Media waits here until released to the media queue (`workers.max_write_delay_ms`).
    pub media_list: &'a mut Vec<ConnKey>,
    pub now: Instant,
}

impl Door for WorkerDoor<'_> {
    fn write<R>(&mut self, key: ConnKey, write: impl FnOnce(&mut OutputQueue) -> R) -> Option<R> {
        let conn = self.conns.get_mut(key)?;
        let result = write(&mut conn.out);
        if conn.media_started {
            conn.schedule_media(self.media_list);
        } else {
            // A joining player's fast start leaves at once, whatever the write budget.
            conn.media_started = true;
            conn.schedule_write(self.write_list);
        }
        Some(result)
    }

    fn notify(&mut self, key: ConnKey, notice: Notice) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        tell(conn, notice);
        conn.pump_session();
        conn.schedule_write(self.write_list);
    }

    fn behind(&mut self, key: ConnKey) {
        if let Some(conn) = self.conns.get_mut(key) {
            tracing::debug!(parent: &conn.span, queued = conn.out.queued_bytes(),
                "player behind: dropping to the next keyframe");
            conn.stalled_since.get_or_insert(self.now);
        }
    }
}

/// Applies `notice` to `conn`'s session (or HTTP-FLV body) and its role.
fn tell(conn: &mut Conn, notice: Notice) {
    match notice {
        Notice::PublishAccepted { stream_id, key } => {
            if let Some(session) = conn.rtmp() {
                session.accept_publish(stream_id);
            }
            conn.set_role(Role::Publisher, key);
        }
        Notice::PublishRejected {
            stream_id,
            code,
            description,
        } => {
            if let Some(session) = conn.rtmp() {
                session.reject_publish(stream_id, code, description);
            }
        }
        Notice::Playing {
            stream_id,
            key,
            flv,
        } => {
            if let Some(session) = conn.rtmp() {
                session.accept_play(stream_id);
            }
            conn.set_role(Role::Player { flv }, key);
        }
        Notice::PlayRejected {
            stream_id,
            code,
            description,
        } => {
            if let Some(session) = conn.rtmp() {
                session.reject_play(stream_id, code, description);
            }
        }
        Notice::Republished { stream_id } => {
            if let Some(session) = conn.rtmp() {
                session.notify_republished(stream_id);
            }
        }
        Notice::Unpublished { stream_id } => {
            if let Some(session) = conn.rtmp() {
                session.notify_unpublished(stream_id);
            }
        }
        Notice::Stopped { stream_id } => {
            if conn.closing.is_some() {
                return; // told already: it is flushing its last bytes
            }
            if conn.role
                == (Role::Player {
                    flv: Some(FlvBody::Chunked),
                })
            {
                conn.out
                    .push_control(bytes::Bytes::from_static(CHUNKED_END));
            }
            if let Some(session) = conn.rtmp() {
                session.notify_stopped(stream_id);
            }
        }
    }
}

impl Worker {
    /// The door for one hub input.
    pub(super) fn door(&mut self, now: Instant) -> (&mut crate::fanout::Hub, WorkerDoor<'_>) {
        let door = WorkerDoor {
            conns: &mut self.conns,
            write_list: &mut self.write_list,
            media_list: &mut self.media_list,
            now,
        };
        (&mut self.hub, door)
    }

    /// Applies the hub's actions, in order, until it has none.
    pub(super) fn apply_hub(&mut self, now: Instant) {
        while let Some(action) = self.hub.poll_action() {
            match action {
                Action::Send { to, mail } => {
                    let media = match &mail {
                        Mail::Media { key, .. } => Some(key.clone()),
                        _ => None,
                    };
                    crate::admin::WorkerStats::add(&self.stats.bus_sent, 1);
                    if !self.bus.send(to, BusMsg::Hub(mail)) {
                        crate::admin::WorkerStats::add(&self.stats.bus_dropped, 1);
                        if let Some(key) = media {
                            self.hub.mailbox_full(to, &key);
                        }
                    }
                }
                Action::Close {
                    conn,
                    reason,
                    after_flush,
                } => {
                    let reason = CloseReason::Hub(reason);
                    let flushed = self.conns.get_mut(conn).is_some_and(|c| {
                        c.closing = Some(reason.clone());
                        c.out.is_empty()
                    });
                    if !after_flush || flushed {
                        self.close(conn, reason, now);
                    }
                }
                Action::Published { key } => {
                    self.recording.published(&key, super::hls::wall_clock_ms());
                    self.packaging.publish(&key, now);
                    self.apply_packaging(now);
                    self.start_pushes(&key, now);
                    if let Some(publisher) = self.hub.publisher(&key) {
                        self.relay.lease(|| crate::cluster::Request::Publish {
                            worker: self.index,
                            publisher,
                            key: key.clone(),
                        });
                    }
                }
                Action::Unpublished { key } => {
                    self.stop_pushes(&key, now);
                    self.relay.lease(|| crate::cluster::Request::Unpublish {
                        worker: self.index,
                        key: key.clone(),
                    });
                    self.recording.unpublished(&key);
                    self.packaging.unpublish(&key, now);
                    self.apply_packaging(now);
                }
                Action::Pull { key, for_packaging } => self.start_pull(key, for_packaging, now),
                Action::StopPull { key } => self.stop_pull(&key, now),
            }
        }
    }
}

impl Worker {
    /// One message from another worker.
    pub(super) fn on_bus(&mut self, msg: BusMsg, now: Instant) {
        match msg {
            BusMsg::Hub(mail) => {
                let (hub, mut door) = self.door(now);
                hub.on_mail(mail, &mut door);
            }
            BusMsg::HlsProgress { key } => {
                self.packaging.progress(&key, now);
                self.apply_packaging(now);
            }
            BusMsg::HlsStart { key } => self.start_packaging(&key, now),
            BusMsg::Auth { conn, answer } => self.auth_answer(conn, answer, now),
            BusMsg::Reconfigure(config, tls) => self.apply_config(config, tls),
            BusMsg::Admin(query) => self.admin_query(query, now),
            BusMsg::Cluster(note) => self.cluster_note(note, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::shard::conns::tests::conn;

    #[test]
    fn a_connections_first_media_leaves_at_once_and_later_media_waits_for_the_budget() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut conns = Conns::with_capacity(2);
        let key = conns.insert(conn(&listener, conns.next_index(), 1));
        let (mut write_list, mut media_list) = (Vec::new(), Vec::new());
        let mut door = WorkerDoor {
            conns: &mut conns,
            write_list: &mut write_list,
            media_list: &mut media_list,
            now: Instant::now(),
        };
        // A joining player's fast start (on a worker that wrote its HTTP head or sent its
        // publish a moment ago): on the write list, whatever the budget.
        door.write(key, |q| q.push_control(Bytes::from_static(b"fast start")));
        // The write pass took it.
        door.conns.get_mut(key).unwrap().write_listed = false;
        door.write(key, |q| q.push_control(Bytes::from_static(b"live")));
        assert_eq!(write_list, [key]);
        assert_eq!(media_list, [key], "later media waits on the media list");
    }
}
