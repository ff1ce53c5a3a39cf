//! Reads of the queue, each a [`ReadOp`]: one message type with the code that answers it
//! from a snapshot. The API runs them on a [`ReadPool`] of reader threads (at a lower CPU
//! priority, so that on a busy machine writes go first), so
//! a read (a page of 5,000 items, a long history) never runs on the queue-manager thread and
//! never holds up a write batch; the Dispatcher, which lives beside the writer, sends them
//! to the QueueManager wrapped in [`Read`], answered from its own snapshot.

use super::item_json::ItemHead;
use super::manager::QueueManager;
use super::store::{EventPage, ItemJsonPage, Reader, Snapshot};
use super::QueueError;
use crate::model::{AgentSession, Priority, Status, StatusChange, WorkItem};
use actix::prelude::*;
use std::collections::BTreeMap;

/// A read of the queue: what it answers, from one consistent snapshot.
pub trait ReadOp: Send + 'static {
    type Output: Send + 'static;
    fn read(self, snap: &Snapshot) -> Result<Self::Output, QueueError>;
}

/// Threads that answer the API's reads: enough for the 2-4 cores flightdeck usually gets.
const READ_THREADS: usize = 2;
/// Reads waiting for a thread; more is an overload, refused with 503 instead of queued.
const READ_BACKLOG: usize = 1024;
/// The reader threads' niceness: under a full CPU the writer and the HTTP workers go first,
/// so reading never slows writing down.
const READ_NICENESS: i32 = 10;

type ReadJob = Box<dyn FnOnce(&Reader) + Send>;

/// The reader threads: a bounded queue of read jobs, answered at a lower CPU priority.
#[derive(Clone)]
pub struct ReadPool {
    jobs: std::sync::mpsc::SyncSender<ReadJob>,
}

impl ReadPool {
    /// Starts the reader threads over `reader`.
    pub fn start(reader: Reader) -> std::io::Result<ReadPool> {
        let (jobs, queue) = std::sync::mpsc::sync_channel::<ReadJob>(READ_BACKLOG);
        let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
        for i in 0..READ_THREADS {
            let (queue, reader) = (queue.clone(), reader.clone());
            std::thread::Builder::new()
                .name(format!("queue-reader-{i}"))
                .spawn(move || {
                    // SAFETY: setpriority only changes this thread's scheduling priority.
                    unsafe {
                        let tid = libc::gettid() as libc::id_t;
                        libc::setpriority(libc::PRIO_PROCESS, tid, READ_NICENESS);
                    }
                    loop {
                        let job = match queue.lock() {
                            Ok(q) => q.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        match job {
                            Ok(job) => job(&reader),
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(ReadPool { jobs })
    }

    /// Answers `op` on a reader thread.
    pub async fn ask<M: ReadOp>(&self, op: M) -> Result<M::Output, QueueError> {
        let (answer, answered) = futures_channel::oneshot::channel();
        let job: ReadJob = Box::new(move |reader| {
            let _ = answer.send(reader.read(|snap| op.read(snap)));
        });
        self.jobs.try_send(job).map_err(|e| match e {
            std::sync::mpsc::TrySendError::Full(_) => QueueError::Storage(format!(
                "{READ_BACKLOG} reads are already waiting; try again in a moment"
            )),
            std::sync::mpsc::TrySendError::Disconnected(_) => {
                QueueError::Storage("the queue's readers stopped".into())
            }
        })?;
        answered
            .await
            .unwrap_or_else(|_| Err(QueueError::Storage("the read did not run".into())))
    }
}

/// A read asked of the QueueManager itself (by the Dispatcher, which lives beside it):
/// answered on its thread from its own snapshot.
pub struct Read<M>(pub M);

impl<M: ReadOp> Message for Read<M> {
    type Result = Result<M::Output, QueueError>;
}

impl<M: ReadOp> Handler<Read<M>> for QueueManager {
    type Result = Result<M::Output, QueueError>;

    fn handle(&mut self, m: Read<M>, _: &mut Context<Self>) -> Self::Result {
        self.answer(m.0)
    }
}

/// One item, by id or unique id prefix.
pub struct GetItem {
    pub id: String,
}

impl ReadOp for GetItem {
    type Output = WorkItem;
    fn read(self, snap: &Snapshot) -> Result<WorkItem, QueueError> {
        let id = snap.resolve(&self.id)?;
        snap.item(&id)?
            .ok_or_else(|| QueueError::not_found("item", &id))
    }
}

/// A page of the items matching a filter, sorted by priority then age.
pub struct ListItems {
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    pub query: Option<String>,
    /// Where the page starts: the `next` of the page before; None for the first page.
    pub after: Option<Vec<u8>>,
    pub limit: usize,
}

impl ReadOp for ListItems {
    type Output = ItemJsonPage;
    fn read(self, snap: &Snapshot) -> Result<ItemJsonPage, QueueError> {
        let query = self.query.map(|q| q.to_lowercase());
        let keep = |i: &ItemHead| {
            self.status.is_none_or(|s| i.status == s)
                && self.priority.is_none_or(|p| i.priority == p)
                && query
                    .as_deref()
                    .is_none_or(|q| i.title.to_lowercase().contains(q))
        };
        let filtered = self.status.is_some() || self.priority.is_some() || query.is_some();
        let keep: Option<&dyn Fn(&ItemHead) -> bool> = filtered.then_some(&keep);
        snap.items_json_page(self.after.as_deref(), self.limit, keep)
    }
}

/// An item's status changes, oldest first.
pub struct GetHistory {
    pub id: String,
}

impl ReadOp for GetHistory {
    type Output = Vec<StatusChange>;
    fn read(self, snap: &Snapshot) -> Result<Vec<StatusChange>, QueueError> {
        snap.history(&snap.resolve(&self.id)?)
    }
}

/// Item counts per status.
pub struct CountByStatus;

impl ReadOp for CountByStatus {
    type Output = BTreeMap<Status, u64>;
    fn read(self, snap: &Snapshot) -> Result<BTreeMap<Status, u64>, QueueError> {
        let mut counts = BTreeMap::new();
        for s in Status::ALL {
            counts.insert(s, snap.count(s)?);
        }
        Ok(counts)
    }
}

/// Tokens used on a UTC day (`2026-11-24`), across all sessions.
pub struct TokensOn {
    pub day: String,
}

impl ReadOp for TokensOn {
    type Output = u64;
    fn read(self, snap: &Snapshot) -> Result<u64, QueueError> {
        snap.tokens_on(&self.day)
    }
}

/// The item that has waited longest on a person in `status` (review or blocked).
pub struct LongestWaiting {
    pub status: Status,
}

impl ReadOp for LongestWaiting {
    type Output = Option<WorkItem>;
    fn read(self, snap: &Snapshot) -> Result<Option<WorkItem>, QueueError> {
        snap.longest_waiting(self.status)
    }
}

/// Retained events after `since`, oldest first: at most `limit` of them and `max_bytes` of
/// JSON (but at least one).
pub struct EventsSince {
    pub since: u64,
    pub limit: usize,
    pub max_bytes: usize,
}

impl ReadOp for EventsSince {
    type Output = EventPage;
    fn read(self, snap: &Snapshot) -> Result<EventPage, QueueError> {
        snap.events_after(self.since, self.limit, self.max_bytes)
    }
}

/// Sessions, newest first (all, or one item's).
pub struct ListSessions {
    pub item_id: Option<String>,
}

impl ReadOp for ListSessions {
    type Output = Vec<AgentSession>;
    fn read(self, snap: &Snapshot) -> Result<Vec<AgentSession>, QueueError> {
        let mut sessions = match self.item_id {
            Some(id) => snap.sessions_of(&snap.resolve(&id)?)?,
            None => snap.all_sessions()?,
        };
        sessions.sort_by_key(|s| std::cmp::Reverse(s.started_at));
        Ok(sessions)
    }
}

/// One session.
pub struct GetSession {
    pub id: String,
}

impl ReadOp for GetSession {
    type Output = AgentSession;
    fn read(self, snap: &Snapshot) -> Result<AgentSession, QueueError> {
        snap.session(&self.id)?
            .ok_or_else(|| QueueError::not_found("agent session", &self.id))
    }
}
