//! Every event's payload (`data`), typed: one variant per [`EventKind`], holding exactly the
//! fields that event carries, declared in the order they are sent. This is the one place where
//! the shape of an event is written down, and the kind comes from the variant
//! ([`EventData::kind`]), so an event's kind and its payload cannot disagree. The queue emits
//! these (`Tx::emit`), and so does the Dispatcher, through the queue's `Announce`.
//!
//! A payload is serialised straight to JSON text, once, when it is emitted. An item it carries
//! is the JSON text the store has just written (a [`RawValue`], written out verbatim), not
//! encoded again.
//!
//! The text is a contract: the board, webhooks, the CLI and runners read it, and
//! `queue/event_payloads_test.rs` pins it byte for byte. Some payloads were first built through
//! a `serde_json::Value`, which writes keys in alphabetical order: their variants declare
//! their fields in that order, and an approval is still written through a `Value`
//! (`alphabetical`), so that what clients receive stays exactly as it was.

use super::{AgentSession, AgentStatus, EventKind, Status};
use crate::dispatch::acp::Approval;
use crate::runners::RunnerRecord;
use serde::ser::{Error as _, SerializeStruct};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

/// An event's payload. Borrowed, as the queue builds it inside a write; a payload without
/// borrowed fields (the Dispatcher's) is `EventData<'static>`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged, rename_all_fields = "camelCase")]
pub enum EventData<'a> {
    /// `work:added`: the new item.
    WorkAdded { item: &'a RawValue },
    /// `work:updated`: the item, changed in something other than its status.
    WorkUpdated { item: &'a RawValue },
    /// `work:status_changed`, with the item after the change.
    WorkStatusChanged {
        item_id: &'a str,
        from: Status,
        to: Status,
        reason: Option<&'a str>,
        item: &'a RawValue,
    },
    /// `work:assigned`: an agent claimed the item.
    WorkAssigned {
        item_id: &'a str,
        agent_id: &'a str,
        session_key: &'a str,
    },
    /// `work:progress`: one output line of a running agent; `costUsd` is the item's estimate
    /// so far (null when the session is not known).
    WorkProgress {
        item_id: &'a str,
        session_id: &'a str,
        message: &'a str,
        tokens_used: u64,
        cost_usd: Option<f64>,
    },
    /// `work:completed`: what a completion came to.
    WorkCompleted {
        item: &'a RawValue,
        accepted: bool,
        unmet: &'a [String],
    },
    /// `work:deleted`.
    WorkDeleted { item_id: &'a str },
    /// `agent:spawned`: the new session.
    AgentSpawned { agent: &'a AgentSession },
    /// `agent:status_changed`.
    AgentStatusChanged {
        agent_id: &'a str,
        from: AgentStatus,
        to: AgentStatus,
        reason: Option<&'a str>,
    },
    /// `pool:resized` (the Dispatcher's).
    PoolResized { size: usize },
    /// `budget:exceeded`: an item's budget or the day's.
    BudgetExceeded(BudgetExceeded<'a>),
    /// `runner:registered`: a runner new to this server.
    RunnerRegistered { runner: &'a RunnerRecord },
    /// `runner:online`: a runner heard from again.
    RunnerOnline { runner: &'a RunnerRecord },
    /// `runner:offline`: a runner whose heartbeats stopped.
    RunnerOffline { runner: &'a RunnerRecord },
    /// `runner:draining`: a runner that takes no more work.
    RunnerDraining { runner: &'a RunnerRecord },
    /// `approval:requested`: a permission request waits for a person. The approval's keys are
    /// in alphabetical order.
    ApprovalRequested {
        #[serde(serialize_with = "alphabetical")]
        approval: &'a Approval,
        item_id: &'a str,
        message: &'a str,
    },
    /// `approval:resolved`: a person, the timeout or the policy answered (keys in
    /// alphabetical order); `optionId` is null when the request was cancelled.
    ApprovalResolved {
        approval_id: &'a str,
        decided_by: &'a str,
        item_id: &'a str,
        message: &'a str,
        option_id: Option<&'a str>,
    },
}

/// Whose token budget ran out: `{"scope":"item",...}` or `{"scope":"daily",...}`.
#[derive(Debug, Clone)]
pub enum BudgetExceeded<'a> {
    /// An item reached its budget (its agent is stopped): `{"scope":"item","itemId","title",
    /// "sessionId","used","limit"}`.
    Item {
        item_id: &'a str,
        title: &'a str,
        session_id: &'a str,
        used: u64,
        limit: u64,
    },
    /// The pool's tokens for the UTC day ran out (the Dispatcher's): `{"day","limit",
    /// "scope":"daily","used"}`, keys in alphabetical order.
    Daily { day: String, used: u64, limit: u64 },
}

impl Serialize for BudgetExceeded<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            BudgetExceeded::Item {
                item_id,
                title,
                session_id,
                used,
                limit,
            } => {
                let mut s = serializer.serialize_struct("BudgetExceeded", 6)?;
                s.serialize_field("scope", "item")?;
                s.serialize_field("itemId", item_id)?;
                s.serialize_field("title", title)?;
                s.serialize_field("sessionId", session_id)?;
                s.serialize_field("used", used)?;
                s.serialize_field("limit", limit)?;
                s.end()
            }
            BudgetExceeded::Daily { day, used, limit } => {
                let mut s = serializer.serialize_struct("BudgetExceeded", 4)?;
                s.serialize_field("day", day)?;
                s.serialize_field("limit", limit)?;
                s.serialize_field("scope", "daily")?;
                s.serialize_field("used", used)?;
                s.end()
            }
        }
    }
}

impl EventData<'_> {
    /// The kind of event this payload belongs to.
    pub fn kind(&self) -> EventKind {
        match self {
            EventData::WorkAdded { .. } => EventKind::WorkAdded,
            EventData::WorkUpdated { .. } => EventKind::WorkUpdated,
            EventData::WorkStatusChanged { .. } => EventKind::WorkStatusChanged,
            EventData::WorkAssigned { .. } => EventKind::WorkAssigned,
            EventData::WorkProgress { .. } => EventKind::WorkProgress,
            EventData::WorkCompleted { .. } => EventKind::WorkCompleted,
            EventData::WorkDeleted { .. } => EventKind::WorkDeleted,
            EventData::AgentSpawned { .. } => EventKind::AgentSpawned,
            EventData::AgentStatusChanged { .. } => EventKind::AgentStatusChanged,
            EventData::PoolResized { .. } => EventKind::PoolResized,
            EventData::BudgetExceeded(_) => EventKind::BudgetExceeded,
            EventData::RunnerRegistered { .. } => EventKind::RunnerRegistered,
            EventData::RunnerOnline { .. } => EventKind::RunnerOnline,
            EventData::RunnerOffline { .. } => EventKind::RunnerOffline,
            EventData::RunnerDraining { .. } => EventKind::RunnerDraining,
            EventData::ApprovalRequested { .. } => EventKind::ApprovalRequested,
            EventData::ApprovalResolved { .. } => EventKind::ApprovalResolved,
        }
    }

    /// The payload as JSON text, encoded once (no value tree, no second parse).
    pub fn encode(&self) -> Result<Box<RawValue>, serde_json::Error> {
        serde_json::value::to_raw_value(self)
    }
}

/// `value` with the keys of every object in alphabetical order, as a `serde_json::Value`
/// writes them: the shape some payloads have always had.
fn alphabetical<T: Serialize, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    serde_json::to_value(value)
        .map_err(S::Error::custom)?
        .serialize(serializer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_comes_from_the_variant_and_budgets_keep_their_two_shapes() {
        let item = BudgetExceeded::Item {
            item_id: "i1",
            title: "T",
            session_id: "s1",
            used: 12,
            limit: 10,
        };
        let data = EventData::BudgetExceeded(item);
        assert_eq!(data.kind(), EventKind::BudgetExceeded);
        assert_eq!(
            data.encode().unwrap().get(),
            r#"{"scope":"item","itemId":"i1","title":"T","sessionId":"s1","used":12,"limit":10}"#
        );
        let daily = EventData::BudgetExceeded(BudgetExceeded::Daily {
            day: "2026-01-01".into(),
            used: 5,
            limit: 4,
        });
        assert_eq!(
            daily.encode().unwrap().get(),
            r#"{"day":"2026-01-01","limit":4,"scope":"daily","used":5}"#
        );
        let item = RawValue::from_string(r#"{"id":"i1","b":1,"a":2}"#.into()).unwrap();
        let added = EventData::WorkAdded { item: &item };
        assert_eq!(added.kind(), EventKind::WorkAdded);
        assert_eq!(
            added.encode().unwrap().get(),
            r#"{"item":{"id":"i1","b":1,"a":2}}"#,
            "an item's stored text goes out verbatim"
        );
    }
}
