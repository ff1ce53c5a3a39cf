//! Where an agent session's reports go. The session only says what happened (it started,
//! printed, changed, completed, failed); whoever starts the session picks the reporter: the
//! server's own pool reports straight to the QueueManager ([`LocalReporter`]), a
//! `flightdeck runner` reports to its server over HTTP under the item's lease (see
//! `runners/reporter.rs`). The session works the same either way.

use crate::model::AgentSession as SessionRecord;
use crate::queue::{
    Complete, CompleteOutcome, Completion, FailAttempt, PersonAnswered, PersonAsked, Progress,
    QueueManager, SessionChanged, SessionStarted, TokenUsage,
};
use actix::Addr;
use std::future::Future;
use std::pin::Pin;

/// The answer to a completion or a failure: the outcome, or why it was not recorded.
pub type Answer<T> = Pin<Box<dyn Future<Output = Result<T, String>>>>;

/// What a session tells the world. Started, progress and changes are sent and forgotten;
/// the end (complete or fail) is answered.
pub trait SessionReporter: Send + Sync + 'static {
    fn started(&self, session: SessionRecord);
    fn progress(&self, item_id: &str, session_id: &str, messages: Vec<String>, usage: TokenUsage);
    fn changed(&self, session: SessionRecord, reason: Option<String>);
    fn complete(&self, item_id: &str, work: Completion) -> Answer<CompleteOutcome>;
    fn fail(&self, failed: FailAttempt) -> Answer<()>;
    /// An ACP agent asks a person for permission (the item waits on a person).
    fn person_asked(&self, asked: PersonAsked);
    /// A permission request was answered, refused or timed out.
    fn person_answered(&self, answered: PersonAnswered);
}

/// Reports straight to this server's QueueManager.
pub struct LocalReporter(pub Addr<QueueManager>);

impl SessionReporter for LocalReporter {
    fn started(&self, session: SessionRecord) {
        self.0.do_send(SessionStarted(session));
    }

    fn progress(&self, item_id: &str, session_id: &str, messages: Vec<String>, usage: TokenUsage) {
        self.0.do_send(Progress {
            item_id: item_id.to_string(),
            session_id: session_id.to_string(),
            messages,
            usage,
        });
    }

    fn changed(&self, session: SessionRecord, reason: Option<String>) {
        self.0.do_send(SessionChanged { session, reason });
    }

    fn complete(&self, item_id: &str, work: Completion) -> Answer<CompleteOutcome> {
        let sent = self.0.send(Complete {
            id: item_id.to_string(),
            work,
        });
        Box::pin(async move {
            match sent.await {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn person_asked(&self, asked: PersonAsked) {
        self.0.do_send(asked);
    }

    fn person_answered(&self, answered: PersonAnswered) {
        self.0.do_send(answered);
    }

    fn fail(&self, failed: FailAttempt) -> Answer<()> {
        let sent = self.0.send(failed);
        Box::pin(async move {
            match sent.await {
                Ok(result) => result.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}
