//! The cross-worker bus: one bounded mailbox per worker, woken with a mio::Waker.
//! A stream's owner sends each packet once per subscribed worker, never once per player.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use mio::Waker;

use crate::config::Config;
use crate::fanout::{ConnKey, Mail, StreamKey};

/// Most messages waiting in one mailbox; past it media is dropped (never headers).
const MAILBOX_CAPACITY: usize = 65_536;

/// What workers tell each other.
#[derive(Debug)]
pub enum BusMsg {
    /// Between the workers' stream hubs.
    Hub(Mail),
    /// From an owner to every worker: `key`'s HLS packager completed a part or segment.
    HlsProgress { key: StreamKey },
    /// To an owner: a viewer asked for `key` over HLS or DASH; start packaging it.
    HlsStart { key: StreamKey },
    /// From the webhook pool to the worker owning `conn`: the hook's answer (a connection
    /// closed since, or whose slot was reused, is not found by its key and the answer is
    /// dropped).
    Auth {
        conn: ConnKey,
        answer: Result<(), crate::auth::Denial>,
    },
    /// To every worker: a reloaded, validated configuration (SIGHUP) to apply, with the
    /// RTMPS certificate read again (None: RTMPS off; an error: the files did not load).
    Reconfigure(
        Arc<Config>,
        Option<Result<Arc<rustls::ServerConfig>, String>>,
    ),
    /// From the admin thread: a snapshot or a kick.
    Admin(super::admin::AdminQuery),
    /// From the cluster directory thread: a lookup's answer, or a lease refused or lost.
    Cluster(crate::cluster::Note),
}

struct Mailbox {
    queue: Mutex<VecDeque<BusMsg>>,
    waker: Waker,
}

/// All mailboxes, plus the drain and shutdown flags.
pub struct Bus {
    mailboxes: Vec<Mailbox>,
    drain: AtomicBool,
    shutdown: AtomicBool,
}

impl Bus {
    /// One mailbox per worker, each woken through its worker's waker.
    pub fn new(wakers: Vec<Waker>) -> Self {
        let mailboxes = wakers
            .into_iter()
            .map(|waker| Mailbox {
                queue: Mutex::new(VecDeque::new()),
                waker,
            })
            .collect();
        Self {
            mailboxes,
            drain: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
        }
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.mailboxes.len()
    }

    /// Sends `msg` to worker `to`, waking it if its mailbox was empty. Returns false if the
    /// message was dropped because the mailbox is full (media only).
    pub fn send(&self, to: usize, msg: BusMsg) -> bool {
        let Some(mailbox) = self.mailboxes.get(to) else {
            return false;
        };
        let was_empty = {
            let mut queue = mailbox.queue.lock().unwrap_or_else(|p| p.into_inner());
            if queue.len() >= MAILBOX_CAPACITY {
                if let BusMsg::Hub(Mail::Media { packet, .. }) = &msg {
                    if !packet.header {
                        return false;
                    }
                }
            }
            let was_empty = queue.is_empty();
            queue.push_back(msg);
            was_empty
        };
        if was_empty {
            if let Err(e) = mailbox.waker.wake() {
                tracing::error!(worker = to, error = %e, "cannot wake worker");
            }
        }
        true
    }

    /// Moves everything waiting for worker `me` into `out`.
    pub fn drain(&self, me: usize, out: &mut VecDeque<BusMsg>) {
        let mut queue = self.mailboxes[me]
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        std::mem::swap(&mut *queue, out);
    }

    /// Sends `msg` to every worker (built once per worker by `msg`).
    pub fn broadcast(&self, msg: impl Fn() -> BusMsg) {
        for to in 0..self.mailboxes.len() {
            self.send(to, msg());
        }
    }

    /// Asks every worker to drain (stop accepting, send clients away, then shut down).
    pub fn begin_drain(&self) {
        self.drain.store(true, Ordering::Release);
        for mailbox in &self.mailboxes {
            let _ = mailbox.waker.wake();
        }
    }

    /// True once a drain was asked for.
    pub fn is_draining(&self) -> bool {
        self.drain.load(Ordering::Acquire)
    }

    /// Asks every worker to shut down.
    pub fn shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
        for mailbox in &self.mailboxes {
            let _ = mailbox.waker.wake();
        }
    }

    /// True once shutdown was asked for.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }
}
