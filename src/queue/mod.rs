//! The work queue: the QueueManager actor, its redb store and the rules it enforces.

mod dependencies;
mod error;
mod manager;
mod operations;
mod store;

pub use error::QueueError;
pub use manager::*;
pub use operations::{
    token_day, unmet_criteria, Claimed, CompleteOutcome, Completion, QueuePolicy, TokenUsage,
    Verdict,
};
pub use store::{EventPage, Store, EVENTS_RETAINED};
