//! The Monitor actor. Writers never wait on it: the QueueManager sends `Publish` and moves on.
//! Each subscriber gets events in `seq` order, none skipped or doubled: on `Subscribe` it is
//! first sent the retained events after its `since`, then every live batch. A browser whose
//! mailbox is full is not read from fast enough; it is kicked (and resyncs when it reconnects)
//! rather than buffered without bound or slowing anyone else.

use crate::model::SharedEvent;
use actix::prelude::*;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// How many recent events the Monitor keeps for replay.
pub const REPLAY_WINDOW: usize = 5_000;

/// Committed events, in `seq` order.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish(pub Vec<SharedEvent>);

/// Events for one subscriber. `gap` is set when the subscriber asked to start from a `seq`
/// older than the replay window: it must reload the state it shows.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Deliver {
    pub events: Arc<Vec<SharedEvent>>,
    pub gap: bool,
}

/// The subscriber fell too far behind and was dropped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Kick;

/// Start receiving events after `since` (None: only new ones). `kick` is given for untrusted
/// subscribers (browsers); they are dropped when their mailbox is full. Returns the
/// subscription id.
#[derive(Message)]
#[rtype(result = "u64")]
pub struct Subscribe {
    pub since: Option<u64>,
    pub deliver: Recipient<Deliver>,
    pub kick: Option<Recipient<Kick>>,
}

/// Stop receiving events.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe(pub u64);

struct Subscriber {
    deliver: Recipient<Deliver>,
    kick: Option<Recipient<Kick>>,
}

pub struct Monitor {
    recent: VecDeque<SharedEvent>,
    last_seq: u64,
    subscribers: HashMap<u64, Subscriber>,
    next_id: u64,
}

impl Monitor {
    /// A Monitor that continues after `last_seq`, with `recent` (oldest first) for replay.
    pub fn new(last_seq: u64, recent: Vec<SharedEvent>) -> Self {
        Monitor {
            recent: recent.into(),
            last_seq,
            subscribers: HashMap::new(),
            next_id: 1,
        }
    }

    /// Sends to one subscriber; false if it has to go.
    fn send(sub: &Subscriber, msg: Deliver) -> bool {
        match &sub.kick {
            None => {
                sub.deliver.do_send(msg);
                true
            }
            Some(kick) => match sub.deliver.try_send(msg) {
                Ok(()) => true,
                Err(SendError::Full(_)) => {
                    log::warn!("a WebSocket client is not reading its events; dropping it");
                    kick.do_send(Kick);
                    false
                }
                Err(SendError::Closed(_)) => false,
            },
        }
    }
}

impl Actor for Monitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(crate::MAILBOX);
    }
}

/// What the metrics read from the Monitor: the last event's seq and the WebSocket clients.
#[derive(Message)]
#[rtype(result = "MonitorStats")]
pub struct GetMonitorStats;

#[derive(Debug, Clone, Copy)]
pub struct MonitorStats {
    pub last_seq: u64,
    /// Subscribers that are WebSocket clients (they can be kicked; the Dispatcher cannot).
    pub websocket_clients: usize,
}

impl Handler<GetMonitorStats> for Monitor {
    type Result = MessageResult<GetMonitorStats>;

    fn handle(&mut self, _: GetMonitorStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(MonitorStats {
            last_seq: self.last_seq,
            websocket_clients: self
                .subscribers
                .values()
                .filter(|s| s.kick.is_some())
                .count(),
        })
    }
}

impl Handler<Publish> for Monitor {
    type Result = ();

    fn handle(&mut self, Publish(events): Publish, _: &mut Context<Self>) {
        let Some(last) = events.last() else { return };
        self.last_seq = last.event.seq;
        self.recent.extend(events.iter().cloned());
        while self.recent.len() > REPLAY_WINDOW {
            self.recent.pop_front();
        }
        let batch = Deliver {
            events: Arc::new(events),
            gap: false,
        };
        self.subscribers
            .retain(|_, sub| Monitor::send(sub, batch.clone()));
    }
}

impl Handler<Subscribe> for Monitor {
    type Result = u64;

    fn handle(&mut self, m: Subscribe, _: &mut Context<Self>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let sub = Subscriber {
            deliver: m.deliver,
            kick: m.kick,
        };
        if let Some(since) = m.since {
            let since = since.min(self.last_seq);
            let oldest = self
                .recent
                .front()
                .map(|e| e.event.seq)
                .unwrap_or(self.last_seq + 1);
            let gap = since + 1 < oldest;
            let replay: Vec<SharedEvent> = self
                .recent
                .iter()
                .filter(|e| e.event.seq > since)
                .cloned()
                .collect();
            if (gap || !replay.is_empty())
                && !Monitor::send(
                    &sub,
                    Deliver {
                        events: Arc::new(replay),
                        gap,
                    },
                )
            {
                return id;
            }
        }
        self.subscribers.insert(id, sub);
        id
    }
}

impl Handler<Unsubscribe> for Monitor {
    type Result = ();

    fn handle(&mut self, m: Unsubscribe, _: &mut Context<Self>) {
        self.subscribers.remove(&m.0);
    }
}
