//! The work queue: the QueueManager actor, its redb store and the rules it enforces.

mod dependencies;
mod error;
mod manager;
mod operations;
mod store;

pub use error::QueueError;
pub use manager::*;
pub use operations::{unmet_criteria, Claimed, CompleteOutcome, Completion, QueuePolicy, Verdict};
pub use store::{Store, EVENTS_RETAINED};
