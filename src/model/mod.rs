//! The domain: work items, their lifecycle, what may be asked of them, events and agent
//! sessions. Nothing here does I/O; the queue, the dispatcher and the API build on these types.

mod agent;
mod context;
mod event;
mod event_data;
mod fields;
mod input;
mod item;
mod labels;
mod report;
mod status;
mod text;

pub use agent::{AgentSession, AgentStatus};
pub use context::render_agents_md;
pub use event::{Event, EventKind, SharedEvent};
pub use event_data::{BudgetExceeded, EventData};
pub use fields::{
    optional_reason, ArtifactDescription, ArtifactPath, BlockedBy, Criteria, Criterion,
    Description, Evidence, ItemRef, Name, Reason, ReportCriterion, Title, ITEM_TEXT_MAX_BYTES,
};
pub use input::{
    token_budget, AcceptanceEntry, ArtifactInput, ClaimRequest, CompleteRequest, InitialStatus,
    ItemPatch, MoveRequest, NewWorkItem, ARTIFACTS_MAX, MAX_TOKENS_MAX,
};
pub use item::{Artifact, ArtifactKind, Complexity, Priority, StatusChange, WorkItem};
pub use labels::Labels;
pub use report::AcceptanceReport;
pub use status::{Status, Transition};
pub use text::{json_len, thousands, Text, ValidationError};
