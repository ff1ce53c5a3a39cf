//! The queue's writes, each a [`WriteOp`]: its message, and beside it the code that runs it
//! inside a write batch. One generic handler queues them all on the QueueManager.
//!
//! To add a write: declare its message (`#[derive(Message)]`, `#[rtype(result =
//! "Result<Out, QueueError>")]`) here or in its concept's own file (runners.rs,
//! approvals.rs), `impl WriteOp` for it with `run` calling its operation
//! in `operations.rs`; return the id field from `item_id` if it names an item (a prefix is
//! resolved before it is queued), and an observer from `observer` if the metrics count it.

use super::manager::QueueManager;
use super::operations::{
    self, Claimed, CompleteOutcome, Completion, QueuePolicy, TokenUsage, Verdict,
};
use super::store::Tx;
use super::QueueError;
use crate::model::{
    AgentSession, AgentStatus, Artifact, ArtifactInput, EventData, ItemPatch, NewWorkItem, Status,
    WorkItem,
};
use actix::prelude::*;

/// What runs once a write's batch has committed, with its answer (for the metrics).
pub type Observer<T> = Box<dyn FnOnce(&T) + Send>;

/// A write to the queue. See the module doc for how to add one.
pub trait WriteOp:
    Message<Result = Result<<Self as WriteOp>::Output, QueueError>> + Send + 'static
{
    type Output: Send + 'static;

    /// The item the write addresses, if any: given as an id or a unique prefix of one, and
    /// replaced by the full id before the write is queued.
    fn item_id(&mut self) -> Option<&mut String> {
        None
    }

    /// Runs after the write's batch has committed (never for a refused or rolled-back one).
    fn observer(&self) -> Option<Observer<Self::Output>> {
        None
    }

    /// The write itself, inside the batch's transaction.
    fn run(self, tx: &mut Tx, policy: &QueuePolicy) -> Result<Self::Output, QueueError>;
}

impl<M: WriteOp> Handler<M> for QueueManager {
    type Result = ResponseFuture<Result<M::Output, QueueError>>;

    fn handle(&mut self, mut m: M, ctx: &mut Context<Self>) -> Self::Result {
        let observer = m.observer();
        // The id is resolved inside the batch's transaction: no read of its own on this thread.
        let answer = self.write(ctx, move |tx, policy| {
            if let Some(id) = m.item_id() {
                *id = tx.resolve(id)?;
            }
            m.run(tx, policy)
        });
        let Some(observe) = observer else {
            return answer;
        };
        Box::pin(async move {
            let result = answer.await;
            if let Ok(value) = &result {
                observe(value);
            }
            result
        })
    }
}

/// How long a session has run, by the wall clock.
fn session_age(session: &AgentSession) -> std::time::Duration {
    (chrono::Utc::now() - session.started_at)
        .to_std()
        .unwrap_or_default()
}

/// Add a new item.
#[derive(Message)]
#[rtype(result = "Result<WorkItem, QueueError>")]
pub struct CreateItem(pub NewWorkItem);

impl WriteOp for CreateItem {
    type Output = WorkItem;
    fn run(self, tx: &mut Tx, _: &QueuePolicy) -> Result<WorkItem, QueueError> {
        operations::create(tx, self.0)
    }
}

/// Change an item's fields (not its status).
#[derive(Message)]
#[rtype(result = "Result<WorkItem, QueueError>")]
pub struct UpdateItem {
    pub id: String,
    pub patch: ItemPatch,
}

impl WriteOp for UpdateItem {
    type Output = WorkItem;
    fn item_id(&mut self) -> Option<&mut String> {
        Some(&mut self.id)
    }
    fn run(self, tx: &mut Tx, _: &QueuePolicy) -> Result<WorkItem, QueueError> {
        operations::update(tx, &self.id, self.patch)
    }
}

/// Remove an item, and it from every `blockedBy`.
#[derive(Message)]
#[rtype(result = "Result<(), QueueError>")]
pub struct DeleteItem {
    pub id: String,
}

impl WriteOp for DeleteItem {
    type Output = ();
    fn item_id(&mut self) -> Option<&mut String> {
        Some(&mut self.id)
    }
    fn run(self, tx: &mut Tx, _: &QueuePolicy) -> Result<(), QueueError> {
        operations::delete(tx, &self.id)
    }
}

/// A manual status change.
#[derive(Message)]
#[rtype(result = "Result<WorkItem, QueueError>")]
pub struct MoveItem {
    pub id: String,
    pub status: Status,
    pub reason: Option<String>,
}

impl WriteOp for MoveItem {
    type Output = WorkItem;
    fn item_id(&mut self) -> Option<&mut String> {
        Some(&mut self.id)
    }
    fn run(self, tx: &mut Tx, _: &QueuePolicy) -> Result<WorkItem, QueueError> {
        operations::move_item(tx, &self.id, self.status, self.reason)
    }
}

/// Take the next claimable item for an agent; `None` when nothing is claimable.
#[derive(Message)]
#[rtype(result = "Result<Option<Claimed>, QueueError>")]
pub struct Claim {
    pub agent_id: String,
    pub session_key: String,
    /// The claimer's labels: only items whose `requires` they cover.
    pub labels: crate::model::Labels,
}

impl WriteOp for Claim {
    type Output = Option<Claimed>;
    fn observer(&self) -> Option<Observer<Option<Claimed>>> {
        Some(Box::new(|claimed: &Option<Claimed>| {
            if let Some(claimed) = claimed {
                crate::metrics::claimed(claimed.waited);
            }
        }))
    }
    fn run(self, tx: &mut Tx, _: &QueuePolicy) -> Result<Option<Claimed>, QueueError> {
        operations::claim(tx, &self.agent_id, &self.session_key, &self.labels)
    }
}

/// Finish claimed work.
#[derive(Message)]
#[rtype(result = "Result<CompleteOutcome, QueueError>")]
pub struct Complete {
    pub id: String,
    pub work: Completion,
}

impl WriteOp for Complete {
    type Output = CompleteOutcome;
    fn item_id(&mut self) -> Option<&mut String> {
        Some(&mut self.id)
    }
    fn observer(&self) -> Option<Observer<CompleteOutcome>> {
        let took = self.work.session.as_ref().map(session_age);
        Some(Box::new(move |outcome: &CompleteOutcome| {
            if outcome.accepted {
                crate::metrics::completed();
            } else {
                crate::metrics::failed(outcome.item.status == Status::Ready);
            }
            if let Some(took) = took {
                crate::metrics::attempt_ended(took, outcome.accepted);
            }
        }))
    }
    fn run(self, tx: &mut Tx, policy: &QueuePolicy) -> Result<CompleteOutcome, QueueError> {
        operations::complete(tx, policy, &self.id, self.work)
    }
}

/// Finish claimed work and claim the next item for the same worker, in one write: a worker
/// that loops waits for one commit per item instead of two.
#[derive(Message)]
#[rtype(result = "Result<(CompleteOutcome, Option<Claimed>), QueueError>")]
pub struct CompleteThenClaim {
    pub complete: Complete,
    pub next: Claim,
}

impl WriteOp for CompleteThenClaim {
    type Output = (CompleteOutcome, Option<Claimed>);
    fn item_id(&mut self) -> Option<&mut String> {
        self.complete.item_id()
    }
    fn observer(&self) -> Option<Observer<Self::Output>> {
        let completed = self.complete.observer();
        let claimed = self.next.observer();
        Some(Box::new(move |(outcome, next): &Self::Output| {
            if let Some(observe) = completed {
                observe(outcome);
            }
            if let Some(observe) = claimed {
                observe(next);
            }
        }))
    }
    fn run(self, tx: &mut Tx, policy: &QueuePolicy) -> Result<Self::Output, QueueError> {
        let outcome = self.complete.run(tx, policy)?;
        let next = self.next.run(tx, policy)?;
        Ok((outcome, next))
    }
}

/// An attempt that did not complete: retried later, blocked, or requeued, as `verdict` says.
#[derive(Message)]
#[rtype(result = "Result<WorkItem, QueueError>")]
pub struct FailAttempt {
    pub id: String,
    pub session_key: Option<String>,
    pub reason: String,
    pub verdict: Verdict,
    /// The session whose attempt failed: its end is recorded in the same transaction.
    pub session: Option<AgentSession>,
}

impl WriteOp for FailAttempt {
    type Output = WorkItem;
    fn observer(&self) -> Option<Observer<WorkItem>> {
        let took = self.session.as_ref().map(session_age);
        Some(Box::new(move |item: &WorkItem| {
            crate::metrics::failed(item.status == Status::Ready);
            if let Some(took) = took {
                crate::metrics::attempt_ended(took, false);
            }
        }))
    }
    fn run(self, tx: &mut Tx, policy: &QueuePolicy) -> Result<WorkItem, QueueError> {
        let FailAttempt {
            id,
            session_key,
            reason,
            verdict,
            session,
        } = self;
        operations::fail_attempt(
            tx,
            policy,
            &id,
            session_key.as_deref(),
            &reason,
            verdict,
            session,
        )
    }
}

/// Attach artifacts to an item.
#[derive(Message)]
#[rtype(result = "Result<Vec<Artifact>, QueueError>")]
pub struct AddArtifacts {
    pub id: String,
    pub artifacts: Vec<ArtifactInput>,
}

impl WriteOp for AddArtifacts {
    type Output = Vec<Artifact>;
    fn item_id(&mut self) -> Option<&mut String> {
        Some(&mut self.id)
    }
    fn run(self, tx: &mut Tx, _: &QueuePolicy) -> Result<Vec<Artifact>, QueueError> {
        operations::add_artifacts(tx, &self.id, self.artifacts)
    }
}

/// Record a newly started agent session.
#[derive(Message)]
#[rtype(result = "Result<(), QueueError>")]
pub struct SessionStarted(pub AgentSession);

impl WriteOp for SessionStarted {
    type Output = ();
    fn run(self, tx: &mut Tx, _: &QueuePolicy) -> Result<(), QueueError> {
        operations::session_started(tx, &self.0)
    }
}

/// Record a session's new state.
#[derive(Message)]
#[rtype(result = "Result<(), QueueError>")]
pub struct SessionChanged {
    pub session: AgentSession,
    pub reason: Option<String>,
}

impl WriteOp for SessionChanged {
    type Output = ();
    fn observer(&self) -> Option<Observer<()>> {
        let ended = self.session.status.is_finished().then(|| {
            (
                session_age(&self.session),
                self.session.status == AgentStatus::Completed,
            )
        });
        Some(Box::new(move |_: &()| {
            if let Some((took, completed)) = ended {
                crate::metrics::attempt_ended(took, completed);
            }
        }))
    }
    fn run(self, tx: &mut Tx, policy: &QueuePolicy) -> Result<(), QueueError> {
        operations::session_changed(tx, policy, &self.session, self.reason.as_deref())
    }
}

/// Output of a running agent.
#[derive(Message)]
#[rtype(result = "Result<(), QueueError>")]
pub struct Progress {
    pub item_id: String,
    pub session_id: String,
    pub messages: Vec<String>,
    /// What the session's agent has used so far (input and output).
    pub usage: TokenUsage,
}

impl WriteOp for Progress {
    type Output = ();
    fn run(self, tx: &mut Tx, policy: &QueuePolicy) -> Result<(), QueueError> {
        operations::progress(
            tx,
            policy,
            &self.item_id,
            &self.session_id,
            &self.messages,
            self.usage,
        )
    }
}

/// Fail what a dead previous run left in flight; returns its unfinished sessions.
#[derive(Message)]
#[rtype(result = "Result<Vec<AgentSession>, QueueError>")]
pub struct Recover;

impl WriteOp for Recover {
    type Output = Vec<AgentSession>;
    fn run(self, tx: &mut Tx, policy: &QueuePolicy) -> Result<Vec<AgentSession>, QueueError> {
        operations::recover(tx, policy)
    }
}

/// Publish an event that changes no item (the Dispatcher's: the pool was resized, the day's
/// tokens ran out).
#[derive(Message)]
#[rtype(result = "Result<(), QueueError>")]
pub struct Announce {
    pub data: EventData<'static>,
}

impl WriteOp for Announce {
    type Output = ();
    fn run(self, tx: &mut Tx, _: &QueuePolicy) -> Result<(), QueueError> {
        tx.emit(self.data)
    }
}
