//! The work item as stored, served and shown: the seed's fields plus `attempts`,
//! `statusReason`, `completedAt`, `statusSince` and the token budget and usage. JSON is camelCase, timestamps RFC 3339 UTC.

use super::{AcceptanceReport, Status};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How urgent an item is; claims take `urgent` first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    #[default]
    Medium,
    High,
    Urgent,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Medium,
        Priority::High,
        Priority::Urgent,
    ];

    /// 0 for the most urgent: the first byte of the claim index key, so the index sorts
    /// urgent before high before medium before low.
    pub fn claim_rank(self) -> u8 {
        match self {
            Priority::Urgent => 0,
            Priority::High => 1,
            Priority::Medium => 2,
            Priority::Low => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }

    pub fn parse(text: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.as_str() == text)
    }
}

/// T-shirt size of the work, for people planning the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Complexity {
    Xs,
    S,
    #[default]
    M,
    L,
    Xl,
}

/// What an artifact is: a file the agent wrote, a pull request, a document or a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactKind {
    File,
    Pr,
    Document,
    Link,
}

/// Something an agent produced for an item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: ArtifactKind,
    pub path: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
}

/// A unit of work on the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkItem {
    pub id: String,
    pub title: String,
    pub description: String,
    pub acceptance_criteria: Vec<String>,
    pub status: Status,
    pub priority: Priority,
    pub complexity: Complexity,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub assigned_agent_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub assigned_session_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub artifacts: Vec<Artifact>,
    pub blocked_by: Vec<String>,
    pub blocks: Vec<String>,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub completed_at: Option<DateTime<Utc>>,
    /// After a failed attempt: the item is not claimed again before this time (backoff).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub retry_at: Option<DateTime<Utc>>,
    /// When the item entered its current status (how long it has waited in review, say).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status_since: Option<DateTime<Utc>>,
    /// The item's token budget across its attempts; absent: `budgets.item_tokens`; 0: none.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schema(maximum = 1_000_000_000_000_u64)]
    pub max_tokens: Option<u64>,
    /// Tokens its agents reported, over all attempts.
    #[serde(default)]
    pub tokens_used: u64,
    /// Estimated cost of those tokens in US dollars, from `budgets.prices` of the preset
    /// that used them.
    #[serde(default)]
    pub cost_usd: f64,
    /// The acceptance report of the latest attempt that handed in its work; null before one
    /// did and while the next attempt runs.
    #[serde(default)]
    pub report: Option<AcceptanceReport>,
    /// Labels the runner that takes this item must have (none: any runner).
    #[serde(default)]
    pub requires: Vec<String>,
    /// Its agent waits for a person to answer a permission request (`GET /api/approvals`).
    #[serde(default)]
    pub waiting_on_person: bool,
}

/// One status change of an item, kept for the item's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    pub at: DateTime<Utc>,
    pub from: Option<Status>,
    pub to: Status,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
}
