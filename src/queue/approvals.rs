//! A person in the loop of a running agent, as the queue records it: a permission request
//! waiting for a person sets the item's `waitingOnPerson` and emits `approval:requested`; its
//! answer (a person's, or the timeout's) emits `approval:resolved` and clears the flag once
//! nothing else of the item waits. A request the `[approvals]` policy decided without asking
//! emits `approval:resolved` too (`decidedBy: "policy"`), so a person sees what was allowed
//! on their behalf and by which rule. Any status change clears the flag too (`operations::save`),
//! so an item that leaves its session never stays marked.

use super::operations::QueuePolicy;
use super::store::Tx;
use super::writes::WriteOp;
use super::QueueError;
use crate::dispatch::acp::Approval;
use crate::model::{EventData, Status};
use actix::prelude::*;

/// A permission request now waits for a person.
#[derive(Message)]
#[rtype(result = "Result<(), QueueError>")]
pub struct PersonAsked {
    pub approval: Approval,
}

/// A permission request was answered.
#[derive(Message)]
#[rtype(result = "Result<(), QueueError>")]
pub struct PersonAnswered {
    pub item_id: String,
    pub approval_id: String,
    /// The option chosen; None: the request was cancelled.
    pub option_id: Option<String>,
    /// What happened, as a sentence.
    pub message: String,
    /// Another request of the item still waits.
    pub still_waiting: bool,
    /// Who chose: `"person"` (or nobody, at the timeout) or `"policy"` (`[approvals]`, with
    /// no person asked).
    pub decided_by: &'static str,
}

pub(super) fn person_asked(tx: &mut Tx, m: &PersonAsked) -> Result<(), QueueError> {
    let a = &m.approval;
    let message = format!(
        "The agent on \"{}\" asks to {}: {}",
        a.item_title, a.tool.kind, a.tool.title
    );
    tx.emit(EventData::ApprovalRequested {
        approval: a,
        item_id: &a.item_id,
        message: &message,
    })?;
    set_waiting(tx, &a.item_id, true)
}

pub(super) fn person_answered(tx: &mut Tx, m: &PersonAnswered) -> Result<(), QueueError> {
    tx.emit(EventData::ApprovalResolved {
        approval_id: &m.approval_id,
        decided_by: m.decided_by,
        item_id: &m.item_id,
        message: &m.message,
        option_id: m.option_id.as_deref(),
    })?;
    set_waiting(tx, &m.item_id, m.still_waiting)
}

/// Marks an item in flight as waiting on a person (or not), with `work:updated`.
fn set_waiting(tx: &mut Tx, item_id: &str, waiting: bool) -> Result<(), QueueError> {
    let Some(old) = tx.item(item_id)? else {
        return Ok(());
    };
    if old.waiting_on_person == waiting || (waiting && old.status != Status::InFlight) {
        return Ok(());
    }
    let mut item = old.clone();
    item.waiting_on_person = waiting;
    item.updated_at = tx.now;
    tx.put(Some(&old), &item)?;
    // This event has always carried the item with its keys in alphabetical order (it was
    // built through a `serde_json::Value`), unlike every other `work:updated`, which carries
    // the stored text; kept so that its wire text does not change.
    let text = serde_json::value::to_raw_value(&serde_json::to_value(&item)?)?;
    tx.emit(EventData::WorkUpdated { item: &text })?;
    Ok(())
}

impl WriteOp for PersonAsked {
    type Output = ();
    fn run(self, tx: &mut Tx, _: &QueuePolicy) -> Result<(), QueueError> {
        person_asked(tx, &self)
    }
}

impl WriteOp for PersonAnswered {
    type Output = ();
    fn run(self, tx: &mut Tx, _: &QueuePolicy) -> Result<(), QueueError> {
        person_answered(tx, &self)
    }
}
