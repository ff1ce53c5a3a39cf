//! An agent session: one run of an agent on one item, in its own folders. The seed's fields,
//! plus the item's attempt number and how the run ended.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Idle,
    Working,
    Blocked,
    Completed,
    Failed,
}

impl AgentStatus {
    pub fn is_finished(self) -> bool {
        matches!(self, AgentStatus::Completed | AgentStatus::Failed)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentSession {
    pub id: String,
    pub session_key: String,
    pub status: AgentStatus,
    pub workspace_dir: String,
    pub data_dir: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub current_work_item_id: Option<String>,
    pub started_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
    pub tokens_used: u64,
    /// The part of `tokensUsed` the agent sent to its model (prompts, context).
    #[serde(default)]
    pub input_tokens: u64,
    /// The part of `tokensUsed` the model wrote.
    #[serde(default)]
    pub output_tokens: u64,
    /// Which attempt of the item this session is (1 for the first).
    pub attempt: u32,
    /// The item this session worked on; kept after it finishes, unlike `currentWorkItemId`.
    pub work_item_id: String,
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "blank_is_unfinished"
    )]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub outcome: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pid: Option<u32>,
}

/// `finishedAt` as a runner may send it: a time, null, or an empty string for "not yet".
fn blank_is_unfinished<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(text) if text.is_empty() => Ok(None),
        Some(text) => DateTime::parse_from_rfc3339(&text)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| serde::de::Error::custom(format!("finishedAt {text:?}: {e}"))),
    }
}
