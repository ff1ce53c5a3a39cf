//! Events: what happened, in order. The queue gives each a `seq` one higher than the last,
//! across restarts, and stores it in the same transaction as the change it reports; the
//! Monitor fans them out. The board and remote tools replay from any `seq` they saw last.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The kinds of event, spelled as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventKind {
    #[serde(rename = "work:added")]
    WorkAdded,
    #[serde(rename = "work:updated")]
    WorkUpdated,
    #[serde(rename = "work:status_changed")]
    WorkStatusChanged,
    #[serde(rename = "work:assigned")]
    WorkAssigned,
    #[serde(rename = "work:progress")]
    WorkProgress,
    #[serde(rename = "work:completed")]
    WorkCompleted,
    #[serde(rename = "work:deleted")]
    WorkDeleted,
    #[serde(rename = "agent:spawned")]
    AgentSpawned,
    #[serde(rename = "agent:status_changed")]
    AgentStatusChanged,
    #[serde(rename = "pool:resized")]
    PoolResized,
    #[serde(rename = "budget:exceeded")]
    BudgetExceeded,
    #[serde(rename = "runner:registered")]
    RunnerRegistered,
    #[serde(rename = "runner:online")]
    RunnerOnline,
    #[serde(rename = "runner:offline")]
    RunnerOffline,
    #[serde(rename = "runner:draining")]
    RunnerDraining,
    #[serde(rename = "approval:requested")]
    ApprovalRequested,
    #[serde(rename = "approval:resolved")]
    ApprovalResolved,
}

/// One event as stored and sent: `{"seq","type","at","data"}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    pub seq: u64,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub at: DateTime<Utc>,
    /// The payload, kept as JSON text: encoded once, never rebuilt as a value tree.
    #[schema(value_type = Object)]
    pub data: Box<serde_json::value::RawValue>,
}

/// An event with its JSON text, encoded once (when it is stored) and shared, without copying,
/// by every subscriber that sends it on.
#[derive(Debug, Clone)]
pub struct SharedEvent {
    pub event: std::sync::Arc<Event>,
    pub json: bytestring::ByteString,
}

impl SharedEvent {
    pub fn new(event: Event, json: String) -> Self {
        SharedEvent {
            event: std::sync::Arc::new(event),
            json: json.into(),
        }
    }
}
