//! The work queue: the QueueManager actor, its redb store and the rules it enforces.

mod approvals;
mod dependencies;
mod error;
#[cfg(test)]
mod event_payloads_test;
mod item_json;
pub mod leases;
mod manager;
#[cfg(test)]
mod model_test;
mod operations;
mod outbox;
mod reader;
mod runner_tables;
mod runners;
mod store;
mod writes;

pub use approvals::{PersonAnswered, PersonAsked};
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
pub use runners::*;
pub use store::{EventPage, ItemJsonPage, ItemPage, Reader, Store, EVENTS_RETAINED};
pub use writes::*;
