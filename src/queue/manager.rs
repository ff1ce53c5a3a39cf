//! The QueueManager actor: the one owner of the redb store.
//!
//! The API's reads do not come here but go through a [`super::Reader`] (`reader.rs`); the
//! writes (`writes.rs`) are queued: when the mailbox has been drained the whole queue of
//! writes runs in one durable transaction (group commit), and only
//! then is each caller answered and are the events passed to the Monitor. Under load this turns
//! one fsync per request into one fsync per batch. A write that breaks a rule fails before it
//! writes anything (`Tx::attempt` checks), so it is answered with its error without disturbing the rest of its batch;
//! a storage failure fails the whole batch and nothing of it is kept. After an I/O error (a full
//! disk) each batch first lets the store reopen itself; while it cannot, every write in the
//! batch is refused with the reason, and `Readiness` reports it.
//!
//! The actor runs on its own arbiter (thread), so blocking redb calls never stall the HTTP
//! workers.

use super::operations::QueuePolicy;
use super::reader::ReadOp;
use super::store::{Snapshot, Store, Tx};
use super::QueueError;
use crate::monitor::{Monitor, Publish};
use actix::prelude::*;
use futures_channel::oneshot;

// ---- Messages ------------------------------------------------------------------------------

/// Whether the store takes writes: None when it does, else why not, in words. A store that
/// failed on I/O is reopened first, so this also recovers it once the disk is back.
#[derive(Message)]
#[rtype(result = "Option<String>")]
pub struct Readiness;

/// The policy changed (config reload).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPolicy(pub QueuePolicy);

/// Run the queued writes (sent to itself once the mailbox is drained).
#[derive(Message)]
#[rtype(result = "()")]
struct Flush;

// ---- State ---------------------------------------------------------------------------------

/// Answers one queued write once its batch has committed (None) or failed (Some).
type Reply = Box<dyn FnOnce(Option<&QueueError>) + Send>;
/// A queued write: runs inside the batch transaction and says whether it hit a storage error
/// (which aborts the batch). Given None it does not run: the store cannot write.
type PendingWrite = Box<dyn FnOnce(Option<(&mut Tx, &QueuePolicy)>) -> (Reply, bool) + Send>;

pub struct QueueManager {
    store: Store,
    policy: QueuePolicy,
    monitor: Addr<Monitor>,
    pending: Vec<PendingWrite>,
}

impl QueueManager {
    pub fn new(store: Store, policy: QueuePolicy, monitor: Addr<Monitor>) -> Self {
        QueueManager {
            store,
            policy,
            monitor,
            pending: Vec::new(),
        }
    }

    /// Queues a write and returns the future of its answer.
    pub(super) fn write<T: Send + 'static>(
        &mut self,
        ctx: &mut Context<Self>,
        op: impl FnOnce(&mut Tx, &QueuePolicy) -> Result<T, QueueError> + Send + 'static,
    ) -> ResponseFuture<Result<T, QueueError>> {
        let (answer, answered) = oneshot::channel();
        if self.pending.is_empty() {
            ctx.notify(Flush);
        }
        self.pending.push(Box::new(move |slot| {
            let result = slot.map(|(tx, policy)| tx.attempt(|tx| op(tx, policy)));
            let fatal = matches!(result, Some(Err(QueueError::Storage(_))));
            let reply: Reply = Box::new(move |batch_error| {
                let out = match (result, batch_error) {
                    (Some(Err(e)), _) => Err(e),
                    (_, Some(QueueError::Storage(why))) => Err(QueueError::Storage(why.clone())),
                    (_, Some(e)) => Err(QueueError::Storage(e.to_string())),
                    (Some(Ok(v)), None) => Ok(v),
                    (None, None) => Err(QueueError::Storage("the write did not run".into())),
                };
                let _ = answer.send(out);
            });
            (reply, fatal)
        }));
        Box::pin(async move {
            answered
                .await
                .unwrap_or_else(|_| Err(QueueError::Storage("the queue stopped".into())))
        })
    }

    /// Answers a read on this thread (for the Dispatcher; the API reads through a
    /// [`super::Reader`] on its own threads).
    pub(super) fn answer<M: ReadOp>(&self, m: M) -> Result<M::Output, QueueError> {
        self.store.read(|snap| m.read(snap))
    }

    pub(super) fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Snapshot) -> Result<T, QueueError>,
    ) -> ResponseFuture<Result<T, QueueError>> {
        let result = self.store.read(f);
        Box::pin(async move { result })
    }
}

impl Actor for QueueManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Writers wait for their answers, so a bounded mailbox would only add latency.
        ctx.set_mailbox_capacity(crate::MAILBOX);
    }
}

impl Handler<Flush> for QueueManager {
    type Result = ();

    fn handle(&mut self, _: Flush, _: &mut Context<Self>) {
        let ops = std::mem::take(&mut self.pending);
        if ops.is_empty() {
            return;
        }
        if let Err(e) = self.store.recover() {
            log::error!("write batch of {} refused: {e}", ops.len());
            for op in ops {
                let (reply, _) = op(None);
                reply(Some(&e));
            }
            return;
        }
        let policy = self.policy;
        let writes = ops.len();
        let started = std::time::Instant::now();
        let mut replies = Vec::with_capacity(ops.len());
        let result = self.store.write(|tx| {
            for op in ops {
                let (reply, fatal) = op(Some((tx, &policy)));
                replies.push(reply);
                if fatal {
                    return Err(QueueError::Storage(
                        "a write in this batch failed; nothing was kept".into(),
                    ));
                }
            }
            Ok(())
        });
        match result {
            Ok(((), events)) => {
                crate::metrics::batch_committed(writes, started.elapsed());
                if !events.is_empty() {
                    self.monitor.do_send(Publish(events));
                }
                for reply in replies {
                    reply(None);
                }
            }
            Err(e) => {
                log::error!("write batch of {} failed: {e}", replies.len());
                for reply in replies {
                    reply(Some(&e));
                }
            }
        }
    }
}

impl Handler<Readiness> for QueueManager {
    type Result = Option<String>;

    fn handle(&mut self, _: Readiness, _: &mut Context<Self>) -> Option<String> {
        let _ = self.store.recover();
        self.store.fault().map(str::to_string)
    }
}

impl Handler<SetPolicy> for QueueManager {
    type Result = ();

    fn handle(&mut self, m: SetPolicy, _: &mut Context<Self>) {
        self.policy = m.0;
    }
}

/// The QueueManager's thread, to stop at shutdown.
pub struct QueueThread {
    system: System,
    thread: std::thread::JoinHandle<()>,
}

impl QueueThread {
    /// Stops the QueueManager and waits until its store is closed, so that the next start
    /// finds a cleanly closed file (one left open is repaired first, which takes time).
    pub fn stop(self) {
        self.system.stop();
        if self.thread.join().is_err() {
            log::error!("the queue manager thread panicked while stopping");
        }
    }
}

/// Starts the QueueManager on its own thread, in an actix system of its own, so that neither
/// its blocking redb calls nor the HTTP server's shutdown (which stops the arbiters it knows)
/// touch it. It runs until the returned [`QueueThread`] is stopped.
pub fn start(
    store: Store,
    policy: QueuePolicy,
    monitor: Addr<Monitor>,
) -> std::io::Result<(Addr<QueueManager>, QueueThread)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("queue-manager".into())
        .spawn(move || {
            let system = System::new();
            system.block_on(async {
                let addr = QueueManager::new(store, policy, monitor).start();
                let _ = tx.send((addr, System::current()));
            });
            if let Err(e) = system.run() {
                log::error!("queue manager thread ended: {e}");
            }
        })?;
    let (addr, system) = rx
        .recv()
        .map_err(|_| std::io::Error::other("the queue manager thread did not start"))?;
    Ok((addr, QueueThread { system, thread }))
}
