//! The desk where people reach running ACP sessions: the permission requests waiting for a
//! person (`GET /api/approvals`) and the sessions that take follow-up messages.
//!
//! Each session is the authority over its own requests: the desk only finds the session and
//! checks what a person sent (the approval exists, the option is one it offers) before
//! handing the decision over; the session answers whether it still waited (a request that
//! timed out a moment before is 409). Pending approvals live in memory with their session: a
//! restart ends every session, so its requests go with it (the item goes back to ready, and
//! the next attempt asks again).

use super::report::{PermissionOption, ToolCall};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// A permission request waiting for a person.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    pub id: String,
    pub item_id: String,
    pub item_title: String,
    pub session_id: String,
    pub tool: ToolCall,
    pub options: Vec<PermissionOption>,
    pub requested_at: DateTime<Utc>,
    /// When it is refused if nobody answers (`approvals.timeout_secs`).
    pub expires_at: DateTime<Utc>,
}

/// Why the desk or a session could not take what a person sent.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeskError {
    #[error("there is no pending approval {0}; list them with GET /api/approvals")]
    NoApproval(String),
    #[error("\"{given}\" is not an option of this request; choose one of: {offered}")]
    UnknownOption { given: String, offered: String },
    #[error("this request was already answered: {0}")]
    Resolved(String),
    #[error("{0}")]
    NotRunning(String),
    #[error("{0}")]
    Full(String),
}

/// A person's decision on one approval, for its session.
#[derive(Message)]
#[rtype(result = "Result<String, DeskError>")]
pub struct Decide {
    pub approval_id: String,
    pub option_id: String,
}

/// A person's message for the next prompt turn.
#[derive(Message)]
#[rtype(result = "Result<Delivery, DeskError>")]
pub struct Say {
    pub text: String,
}

/// What happened to a message.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Sent as the next prompt turn now.
    Sent,
    /// Queued: the agent's turn is in progress; it is the next one.
    Queued,
}

struct Pending {
    approval: Approval,
    session: Recipient<Decide>,
}

#[derive(Default)]
struct Inner {
    approvals: BTreeMap<String, Pending>,
    /// Item id -> its running ACP session.
    sessions: HashMap<String, Recipient<Say>>,
}

#[derive(Clone, Default)]
pub struct Desk {
    inner: Arc<Mutex<Inner>>,
}

impl Desk {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn list(&self) -> Vec<Approval> {
        let mut list: Vec<Approval> = self
            .lock()
            .approvals
            .values()
            .map(|p| p.approval.clone())
            .collect();
        list.sort_by_key(|a| a.requested_at);
        list
    }

    /// How many items wait on a person (they count toward `queue.review_limit`).
    pub fn items_waiting(&self) -> usize {
        let inner = self.lock();
        let items: HashSet<&str> = inner
            .approvals
            .values()
            .map(|p| p.approval.item_id.as_str())
            .collect();
        items.len()
    }

    pub fn get(&self, approval_id: &str) -> Option<Approval> {
        self.lock()
            .approvals
            .get(approval_id)
            .map(|p| p.approval.clone())
    }

    pub fn add(&self, approval: Approval, session: Recipient<Decide>) {
        self.lock()
            .approvals
            .insert(approval.id.clone(), Pending { approval, session });
    }

    pub fn remove(&self, approval_id: &str) {
        self.lock().approvals.remove(approval_id);
    }

    /// The session an approval belongs to, once `option` (an option's id, or its kind like
    /// `allow_once`) is checked against what it offers; returns the option's id.
    pub fn route(
        &self,
        approval_id: &str,
        option: &str,
    ) -> Result<(Recipient<Decide>, String), DeskError> {
        let inner = self.lock();
        let pending = inner
            .approvals
            .get(approval_id)
            .ok_or_else(|| DeskError::NoApproval(approval_id.to_string()))?;
        let chosen = pending
            .approval
            .options
            .iter()
            .find(|o| o.option_id == option)
            .or_else(|| pending.approval.options.iter().find(|o| o.kind == option))
            .ok_or_else(|| DeskError::UnknownOption {
                given: option.chars().take(100).collect(),
                offered: pending
                    .approval
                    .options
                    .iter()
                    .map(|o| format!("{} ({})", o.option_id, o.name))
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        Ok((pending.session.clone(), chosen.option_id.clone()))
    }

    pub fn open_session(&self, item_id: &str, session: Recipient<Say>) {
        self.lock().sessions.insert(item_id.to_string(), session);
    }

    /// The running ACP session of an item.
    pub fn session_of(&self, item_id: &str) -> Option<Recipient<Say>> {
        self.lock().sessions.get(item_id).cloned()
    }

    /// A session ended: its requests and its inbox go.
    pub fn close_session(&self, item_id: &str, session_id: &str) {
        let mut inner = self.lock();
        inner
            .approvals
            .retain(|_, p| p.approval.session_id != session_id);
        inner.sessions.remove(item_id);
    }
}

impl std::fmt::Debug for Desk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Desk({} waiting)", self.lock().approvals.len())
    }
}
