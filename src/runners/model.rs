//! What the server keeps about runners and their tokens, and how the API shows them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A runner as stored: what it said when it registered, and its last heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunnerRecord {
    /// Stable: kept in the runner's own state dir, so a restarted runner is the same runner.
    pub id: String,
    pub name: String,
    pub labels: Vec<String>,
    /// How many items it runs at once.
    pub slots: u32,
    /// The flightdeck version it runs.
    pub version: String,
    pub registered_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
    /// Its work finishes; it takes no more.
    pub draining: bool,
    /// Whether it was online when last looked at (a heartbeat within the lease period).
    pub online: bool,
    /// The runner token it registered with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
}

/// A runner as `GET /api/runners` and `flightdeck status` show it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunnerView {
    pub id: String,
    pub name: String,
    pub labels: Vec<String>,
    pub slots: u32,
    pub slots_used: u32,
    pub slots_free: u32,
    pub version: String,
    pub last_heartbeat: DateTime<Utc>,
    /// A heartbeat within the lease period (`runners.lease_secs`).
    pub online: bool,
    pub draining: bool,
    /// The items it holds leases on.
    pub items: Vec<String>,
}

/// An item that no online runner can take, and why, so the board can say so.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Unroutable {
    pub item_id: String,
    pub title: String,
    pub requires: Vec<String>,
    /// In words: which labels no online runner offers.
    pub reason: String,
}

/// `GET /api/runners`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunnersOverview {
    pub runners: Vec<RunnerView>,
    /// The server's own pool (`pool.size`), the local runner, and its labels.
    pub local_slots: usize,
    pub local_labels: Vec<String>,
    /// Ready items no online runner (nor the local pool) has the labels for.
    pub unroutable: Vec<Unroutable>,
    pub lease_secs: u64,
}

/// A runner token as stored: only its SHA-256, never the token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    /// Hex SHA-256 of the token.
    pub hash: String,
    pub created_at: DateTime<Utc>,
}

/// A runner token as listed (no secret, no hash).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl From<&TokenRecord> for TokenView {
    fn from(t: &TokenRecord) -> TokenView {
        TokenView {
            id: t.id.clone(),
            name: t.name.clone(),
            created_at: t.created_at,
        }
    }
}

/// A new runner token: the only time the token itself is shown.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewToken {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// Shown once; the server keeps only its hash.
    pub token: String,
}

/// The hex SHA-256 of a token: what the server stores and looks tokens up by.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
