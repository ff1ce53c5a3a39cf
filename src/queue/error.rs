//! What can go wrong in the queue. The API maps each variant to one status code, in one place
//! (`api::error`); nothing here knows about HTTP.

use crate::model::ValidationError;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Bad input caught by the domain's validation (400).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// No such item, session or artifact (404).
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    /// An id prefix that matches more than one item (400).
    #[error("id prefix {0} matches more than one item; give more characters")]
    Ambiguous(String),
    /// A reference to an item that does not exist (422).
    #[error("{field} names unknown item {id}")]
    UnknownReference { field: String, id: String },
    /// A dependency change that would make a cycle (422).
    #[error("blockedBy would make a dependency cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    /// The item is not in a state that allows this (409).
    #[error("{0}")]
    Conflict(String),
    /// The store failed (disk full, read-only, I/O): nothing was changed (503).
    #[error("store unavailable: {0}")]
    Storage(String),
}

macro_rules! storage_error {
    ($($t:ty),*) => {$(
        impl From<$t> for QueueError {
            fn from(e: $t) -> Self {
                log::error!("store error: {e}");
                QueueError::Storage(e.to_string())
            }
        }
    )*};
}

storage_error!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
    serde_json::Error
);

impl QueueError {
    pub fn not_found(kind: &'static str, id: &str) -> Self {
        QueueError::NotFound {
            kind,
            id: id.to_string(),
        }
    }
}
