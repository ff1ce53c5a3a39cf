//! The Monitor actor. Writers never wait on it: the QueueManager sends `Publish` and moves on.
//!
//! Every committed event goes into the [`Journal`], then out to the in-process subscribers
//! (the Dispatcher) as one shared batch, and every WebSocket session that was waiting for
//! more is woken to read it from the journal itself, at its client's pace.
//!
//! What the sessions have written and their clients have not yet read is memory the server
//! holds for them: at most `WINDOW` bytes each (see `ws_session.rs`), and at most
//! [`SEND_BUDGET`] for all of them together. Past the budget the sessions with the most unread
//! (written and not acknowledged, plus what they have yet to read from the journal) are
//! dropped first, each told why in its close reason; a dropped board reconnects with `?since=`
//! and catches up.

use super::journal::Journal;
use crate::model::SharedEvent;
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Most bytes written to all WebSocket clients and not yet read by them.
pub const SEND_BUDGET: u64 = 64 << 20;
/// How often the budget is checked besides after each publish (sessions write in between).
const BUDGET_CHECK: Duration = Duration::from_secs(1);

/// Why a session is dropped when the budget is spent (a WebSocket close reason: short).
const DROPPED_FOR_BUDGET: &str =
    "too slow: the server's send budget is spent and you had the most unread; reconnect with ?since=";

/// The journal, shared with the sessions that read it.
pub type SharedJournal = Arc<RwLock<Journal>>;

/// Committed events, in `seq` order.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish(pub Vec<SharedEvent>);

/// New events for an in-process subscriber, shared by all of them.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Deliver {
    pub events: Arc<Vec<SharedEvent>>,
}

/// An in-process subscriber (trusted to keep up): every event from now on, as it comes.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<Deliver>);

/// A WebSocket session wants events after `since` (None: only new ones).
#[derive(Message)]
#[rtype(result = "Watching")]
pub struct Watch {
    pub since: Option<u64>,
    pub tap: Arc<Tap>,
    pub wake: Recipient<Wake>,
    pub drop: Recipient<Dropped>,
}

/// Where a WebSocket session starts reading the journal.
pub struct Watching {
    pub id: u64,
    pub journal: SharedJournal,
    /// Read the events after this `seq`.
    pub after: u64,
    /// `since` was older than the journal: events were missed and the client must reload.
    pub gap: bool,
}

/// The session stops reading.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unwatch(pub u64);

/// To a waiting session: the journal has new events.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

/// To a session: it is dropped, and why (for its close reason).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Dropped(pub &'static str);

/// What the Monitor can see of a WebSocket session without asking it.
#[derive(Default)]
pub struct Tap {
    /// Bytes written to the client and not yet acknowledged.
    pub unacknowledged: AtomicU64,
    /// The `seq` of the last event written to the client.
    pub position: AtomicU64,
    /// The session has read all there is and waits for a [`Wake`].
    pub waiting: AtomicBool,
}

struct Socket {
    tap: Arc<Tap>,
    wake: Recipient<Wake>,
    drop: Recipient<Dropped>,
}

pub struct Monitor {
    journal: SharedJournal,
    subscribers: Vec<Recipient<Deliver>>,
    sockets: HashMap<u64, Socket>,
    next_id: u64,
}

impl Monitor {
    /// A Monitor that continues after `last_seq`, with `recent` (oldest first) for replay.
    pub fn new(last_seq: u64, recent: Vec<SharedEvent>) -> Self {
        Monitor {
            journal: Arc::new(RwLock::new(Journal::new(last_seq, recent))),
            subscribers: Vec::new(),
            sockets: HashMap::new(),
            next_id: 1,
        }
    }

    /// Drops the sessions with the most unread until what all have unread fits the budget.
    fn keep_to_budget(&mut self) {
        let mut total: u64 = self
            .sockets
            .values()
            .map(|s| s.tap.unacknowledged.load(Ordering::Acquire))
            .sum();
        if total <= SEND_BUDGET {
            return;
        }
        let mut laggards: Vec<(u64, u64, u64)> = {
            let journal = self.journal.read().unwrap_or_else(|e| e.into_inner());
            self.sockets
                .iter()
                .map(|(id, s)| {
                    let written = s.tap.unacknowledged.load(Ordering::Acquire);
                    let behind = journal.bytes_after(s.tap.position.load(Ordering::Acquire));
                    (written + behind, written, *id)
                })
                .collect()
        };
        laggards.sort_unstable_by(|a, b| b.cmp(a));
        let mut dropped = 0;
        for (_, written, id) in laggards {
            if total <= SEND_BUDGET {
                break;
            }
            if let Some(socket) = self.sockets.remove(&id) {
                socket.drop.do_send(Dropped(DROPPED_FOR_BUDGET));
                total -= written;
                dropped += 1;
            }
        }
        log::warn!(
            "dropped {dropped} WebSocket clients that read the slowest: together the clients left more than {} MiB unread",
            SEND_BUDGET >> 20
        );
    }
}

impl Actor for Monitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(crate::MAILBOX);
        ctx.run_interval(BUDGET_CHECK, |act, _| act.keep_to_budget());
    }
}

/// What the metrics read from the Monitor: the last event's seq and the WebSocket clients.
#[derive(Message)]
#[rtype(result = "MonitorStats")]
pub struct GetMonitorStats;

#[derive(Debug, Clone, Copy)]
pub struct MonitorStats {
    pub last_seq: u64,
    /// WebSocket clients connected now.
    pub websocket_clients: usize,
}

impl Handler<GetMonitorStats> for Monitor {
    type Result = MessageResult<GetMonitorStats>;

    fn handle(&mut self, _: GetMonitorStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(MonitorStats {
            last_seq: self
                .journal
                .read()
                .map(|journal| journal.last_seq())
                .unwrap_or_else(|poisoned| poisoned.into_inner().last_seq()),
            websocket_clients: self.sockets.len(),
        })
    }
}

impl Handler<Publish> for Monitor {
    type Result = ();

    fn handle(&mut self, Publish(events): Publish, _: &mut Context<Self>) {
        if events.is_empty() {
            return;
        }
        self.journal
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .append(events.iter().cloned());
        let batch = Deliver {
            events: Arc::new(events),
        };
        self.subscribers.retain(|s| {
            s.do_send(batch.clone());
            s.connected()
        });
        for socket in self.sockets.values() {
            if socket.tap.waiting.swap(false, Ordering::AcqRel) {
                socket.wake.do_send(Wake);
            }
        }
        self.keep_to_budget();
    }
}

impl Handler<Subscribe> for Monitor {
    type Result = ();

    fn handle(&mut self, Subscribe(deliver): Subscribe, _: &mut Context<Self>) {
        self.subscribers.push(deliver);
    }
}

impl Handler<Watch> for Monitor {
    type Result = MessageResult<Watch>;

    fn handle(&mut self, m: Watch, _: &mut Context<Self>) -> Self::Result {
        let id = self.next_id;
        self.next_id += 1;
        let (after, gap) = {
            let journal = self.journal.read().unwrap_or_else(|e| e.into_inner());
            let last = journal.last_seq();
            match m.since.map(|s| s.min(last)) {
                None => (last, false),
                Some(since) if since + 1 < journal.first_seq() => (journal.first_seq() - 1, true),
                Some(since) => (since, false),
            }
        };
        m.tap.position.store(after, Ordering::Release);
        self.sockets.insert(
            id,
            Socket {
                tap: m.tap,
                wake: m.wake,
                drop: m.drop,
            },
        );
        MessageResult(Watching {
            id,
            journal: self.journal.clone(),
            after,
            gap,
        })
    }
}

impl Handler<Unwatch> for Monitor {
    type Result = ();

    fn handle(&mut self, Unwatch(id): Unwatch, _: &mut Context<Self>) {
        self.sockets.remove(&id);
    }
}
