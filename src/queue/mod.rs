//! The work queue: the QueueManager actor, its redb store and the rules it enforces.

mod dependencies;
mod error;
mod manager;
#[cfg(test)]
mod model_test;
mod operations;
mod outbox;
mod reader;
mod store;
mod writes;

pub use error::QueueError;
pub use manager::*;
pub use operations::{
    token_day, unmet_criteria, Claimed, CompleteOutcome, Completion, QueuePolicy, TokenUsage,
    Verdict,
};
pub use outbox::{
    parse_delivery_id, AbandonDeliveries, AttemptResult, Delivery, DeliveryStatus, DueBatch,
    DueDeliveries, EventFacts, ListDeliveries, Outbox, OutboxRoute, PruneDeliveries, RecordAttempt,
    Redeliver, Render,
};
pub use reader::*;
pub use store::{EventPage, ItemPage, Reader, Store, EVENTS_RETAINED};
pub use writes::*;
