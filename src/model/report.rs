//! The acceptance report of an item's latest attempt, kept on the item: a reviewer sees each
//! criterion met or not, with the agent's evidence, beside the verdict, without digging the
//! report out of the session folder. Set when an attempt hands in its work (met or not), cleared
//! when the next attempt starts, so it always speaks for the latest attempt.

use super::AcceptanceEntry;
use serde::{Deserialize, Serialize};

/// What the latest attempt said about each acceptance criterion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcceptanceReport {
    /// One entry per criterion the agent reported on, as it reported it.
    pub criteria: Vec<AcceptanceEntry>,
    /// The agent's own closing summary of the attempt, when it gave one.
    pub summary: Option<String>,
}
