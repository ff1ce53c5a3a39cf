//! What can go wrong when asking the Dispatcher for something. The API maps each variant to
//! one status code, in one place (`api::error`); nothing here knows about HTTP.

use crate::queue::QueueError;

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// flightdeck is shutting down: no new agent starts (503).
    #[error("flightdeck is shutting down: no new agents start")]
    ShuttingDown,
    /// The session is not running here: it ended, or never existed (409).
    #[error("agent session {0} is not running")]
    NotRunning(String),
    /// The queue refused or failed; mapped as the queue's own error.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The queue did not answer (it is stopping) (503).
    #[error("the queue is not answering: {0}")]
    QueueGone(#[from] actix::MailboxError),
}
