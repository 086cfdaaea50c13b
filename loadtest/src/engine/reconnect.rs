//! Make-before-break reconnects on an E-RTMP `NetConnection.Connect.ReconnectRequest` (a
//! draining server asking its clients to go elsewhere, to the tcUrl it names or else to the
//! same URL):
//!
//! ```text
//!   player:    old plays ──request──► new connects, plays (old still counted)
//!              ──new's first coded video frame, held──► old delivers the frame before it
//!              ──► new takes the old one's track, its held frames counted; old closed
//!   publisher: old publishes ──request──► new connects, publishes, gets the headers
//!              ──next keyframe due──► new takes over the pacing and cursor; old closed
//! ```
//! A publisher switches at a keyframe, so the stream on the new server starts decodable and
//! no frame goes to both. Players count each frame once by the publisher's sequence
//! (`media::Ledger`): frames seen on both connections are duplicates, not counted twice, and
//! a frame neither delivered is lost. Each completed switch counts one `reconnects`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use slab::Slab;

use super::{media, Close, Conn, Engine, Role, Wire};
use crate::scenario::RtmpUrl;
use crate::source::{Cursor, MediaSource, VIDEO};
use crate::stats::{PlayerTrack, Stats};

/// A publisher whose source has no keyframe coming hands over after this long anyway.
const HANDOVER_WAIT: Duration = Duration::from_secs(5);

/// A successor player takes over after holding its first frame this long even when its
/// predecessor has not delivered everything before it.
const CATCH_UP_WAIT: Duration = Duration::from_secs(2);

/// The connection opened to replace one that was asked to reconnect.
#[derive(Clone, Copy, Debug)]
pub(super) struct Successor {
    pub key: usize,
    pub generation: u64,
    /// When a publisher's successor reached Publish.Start (it takes over at the next
    /// keyframe from then).
    pub ready_at: Option<Instant>,
}

impl Engine<'_> {
    /// Opens the successor of `key`, which the server asked to reconnect (to `tc_url`, or
    /// where it is). Ignored for a connection already reconnecting, one that is itself a
    /// successor, and a publisher that is not publishing yet.
    pub(super) fn on_reconnect_request(
        &mut self,
        key: usize,
        tc_url: Option<String>,
        now: Instant,
    ) {
        let sc = self.sc;
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        if conn.successor.is_some() || conn.predecessor.is_some() || conn.retired {
            return;
        }
        let generation = conn.generation;
        let (role, stream) = match &conn.role {
            Role::Publisher {
                stream,
                started: Some(_),
                ..
            } => (
                Role::Publisher {
                    stream: *stream,
                    started: None,
                    cursor: Cursor::default(),
                },
                *stream,
            ),
            Role::Player { stream, .. } => (
                Role::Player {
                    stream: *stream,
                    track: PlayerTrack::new(now),
                    slot: usize::MAX,
                    nal_length_size: 4,
                },
                *stream,
            ),
            _ => return,
        };
        let url = match tc_url {
            None if matches!(role, Role::Publisher { .. }) => sc.publish_url.clone(),
            None => sc.url.clone(),
            Some(tc_url) => {
                let full = format!(
                    "{}/{}",
                    tc_url.trim_end_matches('/'),
                    sc.stream_name(stream)
                );
                match RtmpUrl::parse(&full) {
                    Ok(url) => url,
                    Err(e) => {
                        self.stats
                            .error(format!("reconnect request with tcUrl {tc_url:?}: {e:#}"));
                        return;
                    }
                }
            }
        };
        let addr = match url.socket_addr() {
            Ok(addr) => addr,
            Err(e) => {
                self.stats.error(format!("reconnect: {e:#}"));
                return;
            }
        };
        let Some((succ, succ_generation)) =
            self.open_to(role, addr, &url, Some((key, generation)), now)
        else {
            return;
        };
        if let Some(conn) = self.conns.get_mut(key) {
            conn.successor = Some(Successor {
                key: succ,
                generation: succ_generation,
                ready_at: None,
            });
        }
    }

    /// A successor closed before taking over: its predecessor carries on (and may be asked
    /// again); the failure is counted.
    pub(super) fn successor_failed(&mut self, (key, generation): (usize, u64), why: Close) {
        if let Some(conn) = self
            .conns
            .get_mut(key)
            .filter(|c| c.generation == generation)
        {
            conn.successor = None;
        }
        match why {
            Close::Error(e) => self.stats.error(format!("reconnect: {e}")),
            Close::Disconnect(e) => self.stats.disconnect(format!("reconnect: {e}")),
            Close::Leave => {}
        }
    }

    /// When publisher `key`'s successor is publishing and the frame due now is a keyframe
    /// (or the successor has waited [`HANDOVER_WAIT`]), moves the pacing and cursor to the
    /// successor, which sends from this frame on, and closes `key`. True when it did.
    pub(super) fn hand_over_due(&mut self, key: usize, now: Instant) -> bool {
        let Some(conn) = self.conns.get(key) else {
            return false;
        };
        let Some(Successor {
            key: succ,
            generation,
            ready_at: Some(ready_at),
        }) = conn.successor
        else {
            return false;
        };
        let Role::Publisher {
            cursor,
            started: Some(_),
            ..
        } = &conn.role
        else {
            return false;
        };
        let frame = self.src.frame(*cursor);
        let keyframe =
            frame.type_id == VIDEO && media::coded_frame_is_keyframe(&frame.data) == Some(true);
        if !keyframe && now - ready_at < HANDOVER_WAIT {
            return false;
        }
        let Some((old, new)) = self.conns.get2_mut(key, succ) else {
            return false;
        };
        if new.generation != generation {
            old.successor = None;
            return false;
        }
        if let (
            Role::Publisher {
                started: old_started,
                cursor: old_cursor,
                ..
            },
            Role::Publisher {
                started: new_started,
                cursor: new_cursor,
                ..
            },
        ) = (&mut old.role, &mut new.role)
        {
            *new_started = old_started.take();
            *new_cursor = *old_cursor;
        }
        new.predecessor = None;
        old.successor = None;
        old.retired = true;
        self.timers.push(Reverse((now, succ, generation)));
        self.stats.counters.reconnects += 1;
        self.close(key, Close::Leave);
        true
    }
}

/// Publisher `key`, a successor, reached Publish.Start: it sends the headers (stamped where
/// its predecessor's stream is) and is ready to take over at the next keyframe. With its
/// predecessor gone it starts publishing as a new publisher.
pub(super) fn successor_publishing(
    conns: &mut Slab<Conn>,
    key: usize,
    src: &MediaSource,
    stats: &mut Stats,
    timers: &mut BinaryHeap<Reverse<(Instant, usize, u64)>>,
    publishers_up: &mut u64,
    now: Instant,
) {
    let Some(pred) = conns.get(key).and_then(|c| c.predecessor) else {
        return;
    };
    let due = conns
        .get(pred.0)
        .filter(|c| c.generation == pred.1)
        .and_then(|c| match &c.role {
            Role::Publisher { cursor, .. } => Some(src.due_ms(*cursor) as u32),
            _ => None,
        });
    let Some(conn) = conns.get_mut(key) else {
        return;
    };
    let generation = conn.generation;
    let Wire::Rtmp(session) = &mut conn.wire else {
        return;
    };
    for h in &src.headers {
        session.send_media(h.type_id, due.unwrap_or(0), &h.data);
        stats.counters.publisher_messages += 1;
    }
    if due.is_none() {
        conn.predecessor = None;
        if let Role::Publisher { started, .. } = &mut conn.role {
            *started = Some(now);
        }
        *publishers_up += 1;
        timers.push(Reverse((now, key, generation)));
        return;
    }
    if let Some(successor) = conns.get_mut(pred.0).and_then(|c| c.successor.as_mut()) {
        successor.ready_at = Some(now);
    }
}

/// After events on player `key`: when it, or its successor, is a successor player whose
/// switch is due ([`player_switch_due`]), that successor takes over (see
/// [`player_take_over`]) and its held frames are counted, in order, after its predecessor's.
/// Returns the predecessor to close.
pub(super) fn player_switch(
    conns: &mut Slab<Conn>,
    players: &mut Vec<usize>,
    stats: &mut Stats,
    ledgers: &[media::Ledger],
    key: usize,
    now: Instant,
    base: Instant,
) -> Option<usize> {
    let conn = conns.get(key)?;
    if !matches!(conn.role, Role::Player { .. }) {
        return None;
    }
    let succ = match (conn.predecessor, conn.successor) {
        (Some(_), _) => key,
        (None, Some(s))
            if conns
                .get(s.key)
                .is_some_and(|c| c.generation == s.generation) =>
        {
            s.key
        }
        _ => return None,
    };
    if !player_switch_due(conns, ledgers, succ, now) {
        return None;
    }
    let retired = player_take_over(conns, players, stats, succ, now);
    let conn = conns.get_mut(succ)?;
    let held = std::mem::take(&mut conn.held);
    if let Role::Player {
        stream,
        track,
        nal_length_size,
        ..
    } = &mut conn.role
    {
        let ledger = ledgers.get(*stream as usize);
        for (payload, at) in &held {
            media::on_player_video(stats, track, nal_length_size, payload, ledger, *at, base);
        }
    }
    retired
}

/// Whether successor player `succ` is to take over now: it has a coded frame held and its
/// predecessor has delivered the frame the publisher sent before it (frames on the two
/// servers travel separately; the new one's can arrive first), or the predecessor is gone,
/// or the frame is not stamped, or the predecessor has not caught up within
/// [`CATCH_UP_WAIT`] (what it did not deliver is then counted lost).
fn player_switch_due(
    conns: &Slab<Conn>,
    ledgers: &[media::Ledger],
    succ: usize,
    now: Instant,
) -> bool {
    let Some(conn) = conns.get(succ) else {
        return false;
    };
    let (Some(&(ref first, at)), Some((pred, generation))) = (conn.held.first(), conn.predecessor)
    else {
        return false;
    };
    let Some(old) = conns.get(pred).filter(|c| c.generation == generation) else {
        return true;
    };
    if now.saturating_duration_since(at) >= CATCH_UP_WAIT {
        return true;
    }
    let (
        Role::Player {
            stream,
            nal_length_size,
            ..
        },
        Role::Player { track, .. },
    ) = (&conn.role, &old.role)
    else {
        return true;
    };
    let Some(seq) = crate::sei::find_stamp_in_avc_frame(first, *nal_length_size)
        .and_then(|stamp| ledgers.get(*stream as usize)?.seq_of(stamp))
    else {
        return true;
    };
    track.last_seq.is_some_and(|last| last + 1 >= seq)
}

/// Successor player `key` takes over its predecessor's track (so frames are counted once
/// across both) and place among the players. Returns the predecessor to close; with the
/// predecessor gone, `key` becomes a player of its own.
fn player_take_over(
    conns: &mut Slab<Conn>,
    players: &mut Vec<usize>,
    stats: &mut Stats,
    key: usize,
    now: Instant,
) -> Option<usize> {
    let (pred, generation) = conns.get_mut(key)?.predecessor.take()?;
    let pair = conns
        .get2_mut(key, pred)
        .filter(|(_, old)| old.generation == generation);
    let Some((new, old)) = pair else {
        let conn = conns.get_mut(key)?;
        if let Role::Player { track, slot, .. } = &mut conn.role {
            track.playing = Some(now);
            *slot = players.len();
            players.push(key);
        }
        return None;
    };
    if let (
        Role::Player {
            track: old_track,
            slot: old_slot,
            ..
        },
        Role::Player { track, slot, .. },
    ) = (&mut old.role, &mut new.role)
    {
        std::mem::swap(track, old_track);
        *slot = *old_slot;
        players[*slot] = key;
    }
    old.retired = true;
    old.successor = None;
    stats.counters.reconnects += 1;
    Some(pred)
}
