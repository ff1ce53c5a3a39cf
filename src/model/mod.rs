//! The domain: work items, their lifecycle, what may be asked of them, events and agent
//! sessions. Nothing here does I/O; the queue, the dispatcher and the API build on these types.

mod agent;
mod context;
mod event;
mod input;
mod item;
pub mod schema;
mod status;

pub use agent::{AgentSession, AgentStatus};
pub use context::render_agents_md;
pub use event::{Event, EventKind, SharedEvent};
pub use input::{
    clean_reason, is_blank_char, AcceptanceEntry, ArtifactInput, CompleteRequest, InitialStatus,
    ItemPatch, MoveRequest, NewWorkItem, ValidationError, ARTIFACTS_MAX, MAX_TOKENS_MAX,
    NOT_BLANK_PATTERN, REASON_MAX,
};
pub use item::{Artifact, ArtifactKind, Complexity, Priority, StatusChange, WorkItem};
pub use status::{Status, Transition};
