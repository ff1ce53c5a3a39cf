//! The queue's operations, each one write transaction: create, update, delete, move, claim,
//! complete, fail an attempt, and the bookkeeping of agent sessions. Every rule of the
//! lifecycle and of dependencies is enforced here, so it holds whoever calls.

use super::dependencies;
use super::store::Tx;
use super::QueueError;
use crate::model::{
    AcceptanceEntry, AcceptanceReport, AgentSession, AgentStatus, Artifact, ArtifactInput,
    BudgetExceeded, EventData, ItemPatch, Labels, NewWorkItem, Status, Transition, WorkItem,
    ARTIFACTS_MAX,
};
use chrono::Duration;

/// The parts of the config the queue's rules depend on.
#[derive(Debug, Clone, Copy)]
pub struct QueuePolicy {
    /// Completed items wait in review (true) or go straight to done.
    pub review: bool,
    /// Failed attempts before an item is blocked.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles per attempt, capped at [`MAX_BACKOFF_SECS`].
    pub retry_backoff_secs: f64,
    /// Token budget of an item without its own `maxTokens` (0 = none).
    pub item_tokens: u64,
    /// What a million tokens cost with the configured preset.
    pub price: crate::config::Price,
    /// How long a runner's lease lasts without a heartbeat (`runners.lease_secs`).
    pub lease_secs: u64,
}

pub const MAX_BACKOFF_SECS: f64 = 300.0;

/// What a completion came to.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompleteOutcome {
    pub item: WorkItem,
    pub accepted: bool,
    pub unmet: Vec<String>,
}

/// Writes `new` over `old`, and when the status changed records it in the history, emits
/// `work:status_changed`, and lets the items it blocks become claimable once it is done.
fn save(
    tx: &mut Tx,
    old: &WorkItem,
    mut new: WorkItem,
    reason: Option<&str>,
) -> Result<WorkItem, QueueError> {
    new.updated_at = tx.now;
    if old.status != new.status {
        new.status_since = Some(tx.now);
        // Whatever its agent waited for, it waits no more.
        new.waiting_on_person = false;
    }
    tx.put(Some(old), &new)?;
    if old.status != new.status {
        tx.record_change(&new.id, Some(old.status), new.status, reason)?;
        tx.emit(EventData::WorkStatusChanged {
            item_id: &new.id,
            from: old.status,
            to: new.status,
            reason,
            item: &tx.item_text(&new)?,
        })?;
        if new.status == Status::Done {
            tx.refresh_claimable(&new.blocks)?;
        }
    }
    Ok(new)
}

pub fn create(tx: &mut Tx, new: NewWorkItem) -> Result<WorkItem, QueueError> {
    let id = uuid::Uuid::new_v4().to_string();
    let blocked_by: Vec<String> = new.blocked_by.into();
    dependencies::check(tx, &id, &blocked_by)?;
    let status = new.status.map(Status::from).unwrap_or(Status::Inbox);
    let item = WorkItem {
        id: id.clone(),
        title: new.title.into(),
        description: new.description.into(),
        acceptance_criteria: new.acceptance_criteria.into(),
        status,
        priority: new.priority,
        complexity: new.complexity,
        assigned_agent_id: None,
        assigned_session_key: None,
        created_at: tx.now,
        updated_at: tx.now,
        created_by: new.created_by.map_or_else(|| "api".into(), String::from),
        artifacts: Vec::new(),
        blocked_by,
        blocks: Vec::new(),
        attempts: 0,
        status_reason: None,
        completed_at: None,
        retry_at: None,
        status_since: Some(tx.now),
        max_tokens: new.max_tokens,
        tokens_used: 0,
        cost_usd: 0.0,
        report: None,
        requires: new.requires.into(),
        waiting_on_person: false,
    };
    for blocker_id in &item.blocked_by {
        let blocker = tx.require(blocker_id)?;
        let mut updated = blocker.clone();
        updated.blocks.push(id.clone());
        tx.put(Some(&blocker), &updated)?;
    }
    tx.put(None, &item)?;
    tx.emit(EventData::WorkAdded {
        item: &tx.item_text(&item)?,
    })?;
    Ok(item)
}

pub fn update(tx: &mut Tx, id: &str, patch: ItemPatch) -> Result<WorkItem, QueueError> {
    let old = tx.require(id)?;
    let mut item = old.clone();
    if let Some(t) = patch.title {
        item.title = t.into();
    }
    if let Some(d) = patch.description {
        item.description = d.into();
    }
    if let Some(c) = patch.acceptance_criteria {
        item.acceptance_criteria = c.into();
    }
    if let Some(p) = patch.priority {
        item.priority = p;
    }
    if let Some(c) = patch.complexity {
        item.complexity = c;
    }
    if let Some(n) = patch.max_tokens {
        item.max_tokens = Some(n);
    }
    if let Some(labels) = patch.requires {
        item.requires = labels.into();
    }
    if let Some(blocked_by) = patch.blocked_by {
        let blocked_by: Vec<String> = blocked_by.into();
        if item.status == Status::InFlight && blocked_by != old.blocked_by {
            return Err(QueueError::Conflict(
                "dependencies of an in_flight item cannot change; cancel its agent first".into(),
            ));
        }
        dependencies::check(tx, id, &blocked_by)?;
        for gone in old.blocked_by.iter().filter(|b| !blocked_by.contains(b)) {
            if tx.item(gone)?.is_some() {
                edit_item(tx, gone, |b| b.blocks.retain(|x| x != id))?;
            }
        }
        for added in blocked_by.iter().filter(|b| !old.blocked_by.contains(b)) {
            edit_item(tx, added, |b| b.blocks.push(id.to_string()))?;
        }
        item.blocked_by = blocked_by;
    }
    if item == old {
        return Ok(old);
    }
    let item = save(tx, &old, item, None)?;
    tx.emit(EventData::WorkUpdated {
        item: &tx.item_text(&item)?,
    })?;
    Ok(item)
}

/// Changes a neighbour's dependency lists and announces it.
fn edit_item(tx: &mut Tx, id: &str, f: impl FnOnce(&mut WorkItem)) -> Result<(), QueueError> {
    let old = tx.require(id)?;
    let mut item = old.clone();
    f(&mut item);
    let item = save(tx, &old, item, None)?;
    tx.emit(EventData::WorkUpdated {
        item: &tx.item_text(&item)?,
    })?;
    Ok(())
}

pub fn delete(tx: &mut Tx, id: &str) -> Result<(), QueueError> {
    let item = tx.require(id)?;
    if item.status == Status::InFlight {
        return Err(QueueError::Conflict(
            "an in_flight item cannot be deleted; cancel its agent or move it first".into(),
        ));
    }
    for blocker in &item.blocked_by {
        if tx.item(blocker)?.is_some() {
            edit_item(tx, blocker, |b| b.blocks.retain(|x| x != id))?;
        }
    }
    for dependent in &item.blocks {
        if tx.item(dependent)?.is_some() {
            edit_item(tx, dependent, |d| d.blocked_by.retain(|x| x != id))?;
        }
    }
    tx.delete(&item)?;
    tx.emit(EventData::WorkDeleted { item_id: id })?;
    Ok(())
}

/// A move asked for by a person or a tool. The caller has already stopped the item's agent if
/// it was in flight.
pub fn move_item(
    tx: &mut Tx,
    id: &str,
    to: Status,
    reason: Option<String>,
) -> Result<WorkItem, QueueError> {
    let old = tx.require(id)?;
    if !old.status.can_move_to(to, Transition::Manual) {
        return Err(QueueError::Conflict(format!(
            "cannot move {id} from {} to {to}: {}",
            old.status,
            old.status.describe_moves()
        )));
    }
    let mut item = old.clone();
    item.status = to;
    item.status_reason = reason.clone();
    item.retry_at = None;
    if old.status == Status::InFlight {
        // A person stopped the attempt: it is not spent.
        item.attempts = item.attempts.saturating_sub(1);
    }
    release(&mut item);
    if to == Status::Done {
        item.completed_at = Some(tx.now);
    }
    save(tx, &old, item, reason.as_deref())
}

fn release(item: &mut WorkItem) {
    item.assigned_agent_id = None;
    item.assigned_session_key = None;
}

/// A claimed item, and the workspace of its previous attempt (which the next one continues in).
#[derive(Debug, Clone)]
pub struct Claimed {
    pub item: WorkItem,
    pub previous_workspace: Option<String>,
    /// How long the item waited claimable (in ready, its backoff over) before this claim.
    pub waited: std::time::Duration,
}

/// Takes the first claimable item in claim order (priority, then age), skipping items still
/// waiting out a retry backoff and items that require labels the claimer lacks, and hands it
/// to the agent.
pub fn claim(
    tx: &mut Tx,
    agent_id: &str,
    session_key: &str,
    labels: &Labels,
) -> Result<Option<Claimed>, QueueError> {
    let Some(old) = tx.first_claimable(|item| labels.satisfy(&item.requires))? else {
        return Ok(None);
    };
    let claimable_since = [old.status_since, old.retry_at]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(old.updated_at);
    let waited = (tx.now - claimable_since).to_std().unwrap_or_default();
    let mut item = old.clone();
    item.status = Status::InFlight;
    item.assigned_agent_id = Some(agent_id.to_string());
    item.assigned_session_key = Some(session_key.to_string());
    item.attempts += 1;
    item.retry_at = None;
    item.report = None;
    let reason = format!("claimed by {agent_id} (attempt {})", item.attempts);
    let item = save(tx, &old, item, Some(&reason))?;
    tx.emit(EventData::WorkAssigned {
        item_id: &item.id,
        agent_id,
        session_key,
    })?;
    // Any earlier session (a failed, cancelled or rate-limited attempt) left work to go on with.
    let previous_workspace = tx.latest_workspace(&item.id)?;
    Ok(Some(Claimed {
        item,
        previous_workspace,
        waited,
    }))
}

fn require_in_flight(item: &WorkItem, session_key: Option<&str>) -> Result<(), QueueError> {
    if item.status != Status::InFlight {
        return Err(QueueError::Conflict(format!(
            "item {} is {}, not in_flight: only claimed work can be completed or failed",
            item.id, item.status
        )));
    }
    if let Some(key) = session_key {
        if item.assigned_session_key.as_deref() != Some(key) {
            return Err(QueueError::Conflict(format!(
                "item {} is no longer assigned to session {key}",
                item.id
            )));
        }
    }
    Ok(())
}

fn new_artifacts(tx: &Tx, inputs: Vec<ArtifactInput>) -> Vec<Artifact> {
    inputs
        .into_iter()
        .map(|a| Artifact {
            id: uuid::Uuid::new_v4().to_string(),
            kind: a.kind,
            path: a.path,
            description: a.description,
            created_at: tx.now,
        })
        .collect()
}

/// An item holds at most [`ARTIFACTS_MAX`] artifacts, each within the API's limits: those
/// that break them go (only a store written before the limits holds any), then the oldest, so
/// an item keeps what its latest attempts handed back. Returns how many went.
fn bound_artifacts(item: &mut WorkItem) -> usize {
    let before = item.artifacts.len();
    item.artifacts.retain(|a| {
        let input = ArtifactInput {
            kind: a.kind,
            path: a.path.clone(),
            description: a.description.clone(),
        };
        input.validate("artifact").is_ok()
    });
    let excess = item.artifacts.len().saturating_sub(ARTIFACTS_MAX);
    item.artifacts.drain(..excess);
    before - item.artifacts.len()
}

pub fn add_artifacts(
    tx: &mut Tx,
    id: &str,
    inputs: Vec<ArtifactInput>,
) -> Result<Vec<Artifact>, QueueError> {
    let old = tx.require(id)?;
    let added = new_artifacts(tx, inputs);
    let mut item = old.clone();
    item.artifacts.extend(added.iter().cloned());
    bound_artifacts(&mut item);
    let item = save(tx, &old, item, None)?;
    tx.emit(EventData::WorkUpdated {
        item: &tx.item_text(&item)?,
    })?;
    Ok(added)
}

/// The acceptance rules of ARCHITECTURE.md: criteria need an artifact; a report must cover
/// and meet every criterion. Returns the unmet rules.
pub fn unmet_criteria(item: &WorkItem, report: Option<&[AcceptanceEntry]>) -> Vec<String> {
    let mut unmet = Vec::new();
    if !item.acceptance_criteria.is_empty() && item.artifacts.is_empty() {
        unmet.push("no artifact was produced, and the item has acceptance criteria".to_string());
    }
    if let Some(report) = report {
        for criterion in &item.acceptance_criteria {
            match report
                .iter()
                .find(|e| e.criterion.trim() == criterion.trim())
            {
                Some(e) if e.met => {}
                Some(e) if e.evidence.is_empty() => unmet.push(format!("not met: {criterion}")),
                Some(e) => unmet.push(format!("not met: {criterion} ({})", e.evidence)),
                None => unmet.push(format!("not in the acceptance report: {criterion}")),
            }
        }
    }
    unmet
}

/// What a completion hands in.
#[derive(Debug, Clone, Default)]
pub struct Completion {
    pub artifacts: Vec<ArtifactInput>,
    /// The acceptance report, if any.
    pub acceptance: Option<Vec<AcceptanceEntry>>,
    /// The agent's own closing summary, kept with the report.
    pub summary: Option<String>,
    /// From the Dispatcher: a stale session cannot complete an item that has moved on.
    pub session_key: Option<String>,
    /// Rules the caller already found broken (a failed verify command).
    pub unmet: Vec<String>,
    /// The session that did the work: its end is recorded in the same transaction.
    pub session: Option<AgentSession>,
}

/// Completes claimed work: records the artifacts, checks acceptance (plus any rules the caller
/// already found broken, such as a failed verify command), then moves the item to review (or
/// done), or fails the attempt with the unmet rules as the reason.
pub fn complete(
    tx: &mut Tx,
    policy: &QueuePolicy,
    id: &str,
    work: Completion,
) -> Result<CompleteOutcome, QueueError> {
    let Completion {
        artifacts,
        acceptance: report,
        summary,
        session_key,
        mut unmet,
        session,
    } = work;
    let old = tx.require(id)?;
    require_in_flight(&old, session_key.as_deref())?;
    let mut item = old.clone();
    item.artifacts.extend(new_artifacts(tx, artifacts));
    bound_artifacts(&mut item);
    unmet.extend(unmet_criteria(&item, report.as_deref()));
    item.report = (report.is_some() || summary.is_some()).then(|| AcceptanceReport {
        criteria: report.unwrap_or_default(),
        summary,
    });
    let accepted = unmet.is_empty();
    let item = if accepted {
        release(&mut item);
        item.status_reason = None;
        item.status = if policy.review {
            Status::Review
        } else {
            item.completed_at = Some(tx.now);
            Status::Done
        };
        save(tx, &old, item, Some("completed"))?
    } else {
        let reason = format!("acceptance not met: {}", unmet.join("; "));
        retry_or_block(tx, policy, &old, item, &reason)?
    };
    tx.emit(EventData::WorkCompleted {
        item: &tx.item_text(&item)?,
        accepted,
        unmet: &unmet,
    })?;
    if let Some(session) = session {
        let (status, outcome) = if accepted {
            (
                AgentStatus::Completed,
                format!("completed: item moved to {}", item.status),
            )
        } else {
            (
                AgentStatus::Failed,
                format!("acceptance not met: {}", unmet.join("; ")),
            )
        };
        session_ended(tx, policy, session, status, outcome)?;
    }
    Ok(CompleteOutcome {
        item,
        accepted,
        unmet,
    })
}

/// What an attempt that did not complete comes to, as the session judged it from what the
/// agent reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// An ordinary failure: the attempt counts; retried after a backoff while attempts
    /// remain, else blocked.
    Retry,
    /// Nothing will change until a person acts (bad credentials): blocked at once, the
    /// attempt counted, no retries.
    Block,
    /// Not the work's fault (a rate limit): back to ready at once with the attempt not
    /// counted, and not claimed before `not_before` (when the limit lifts).
    Requeue {
        not_before: Option<chrono::DateTime<chrono::Utc>>,
    },
}

/// Ends an attempt that did not complete, the way `verdict` says.
pub fn fail_attempt(
    tx: &mut Tx,
    policy: &QueuePolicy,
    id: &str,
    session_key: Option<&str>,
    reason: &str,
    verdict: Verdict,
    session: Option<AgentSession>,
) -> Result<WorkItem, QueueError> {
    let old = tx.require(id)?;
    require_in_flight(&old, session_key)?;
    let mut item = old.clone();
    let item = match verdict {
        Verdict::Retry => retry_or_block(tx, policy, &old, item, reason)?,
        Verdict::Block => {
            release(&mut item);
            item.status = Status::Blocked;
            item.retry_at = None;
            item.status_reason = Some(reason.to_string());
            save(tx, &old, item, Some(reason))?
        }
        Verdict::Requeue { not_before } => {
            release(&mut item);
            item.status = Status::Ready;
            item.retry_at = not_before;
            item.attempts = item.attempts.saturating_sub(1);
            item.status_reason = Some(reason.to_string());
            save(tx, &old, item, Some(reason))?
        }
    };
    if let Some(session) = session {
        session_ended(tx, policy, session, AgentStatus::Failed, reason.to_string())?;
    }
    Ok(item)
}

/// Records how a session ended, in the same transaction as what it did to its item, so the
/// session and the item never disagree.
fn session_ended(
    tx: &mut Tx,
    policy: &QueuePolicy,
    mut session: AgentSession,
    status: AgentStatus,
    outcome: String,
) -> Result<(), QueueError> {
    session.status = status;
    session.finished_at = Some(tx.now);
    session.last_activity_at = tx.now;
    session.current_work_item_id = None;
    session.outcome = Some(outcome.clone());
    session_changed(tx, policy, &session, Some(&outcome))
}

fn retry_or_block(
    tx: &mut Tx,
    policy: &QueuePolicy,
    old: &WorkItem,
    mut item: WorkItem,
    reason: &str,
) -> Result<WorkItem, QueueError> {
    release(&mut item);
    if item.attempts >= policy.max_attempts {
        item.status = Status::Blocked;
        item.retry_at = None;
        item.status_reason = Some(format!(
            "{reason} (attempt {} of {}: giving up)",
            item.attempts, policy.max_attempts
        ));
    } else {
        item.status = Status::Ready;
        let exp = 2f64.powi(item.attempts.saturating_sub(1).min(16) as i32);
        let secs = (policy.retry_backoff_secs * exp).min(MAX_BACKOFF_SECS);
        item.retry_at =
            (secs > 0.0).then(|| tx.now + Duration::milliseconds((secs * 1000.0) as i64));
        item.status_reason = Some(format!(
            "{reason} (attempt {} of {})",
            item.attempts, policy.max_attempts
        ));
    }
    let why = item.status_reason.clone();
    save(tx, old, item, why.as_deref())
}

/// Records a new session and announces it.
pub fn session_started(tx: &mut Tx, session: &AgentSession) -> Result<(), QueueError> {
    tx.put_session(session)?;
    tx.emit(EventData::AgentSpawned { agent: session })?;
    Ok(())
}

/// Stores a session's new state; announces a status change.
pub fn session_changed(
    tx: &mut Tx,
    policy: &QueuePolicy,
    session: &AgentSession,
    reason: Option<&str>,
) -> Result<(), QueueError> {
    let old = tx.session(&session.id)?;
    account_tokens(tx, policy, old.as_ref(), session)?;
    tx.put_session(session)?;
    if let Some(old) = old.filter(|o| o.status != session.status) {
        tx.emit(EventData::AgentStatusChanged {
            agent_id: &session.id,
            from: old.status,
            to: session.status,
            reason,
        })?;
    }
    Ok(())
}

/// What a session's agent has used so far, as its session reports it.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenUsage {
    pub input: u64,
    pub output: u64,
}

impl TokenUsage {
    pub fn total(&self) -> u64 {
        self.input.saturating_add(self.output)
    }
}

/// Output lines of a running agent, each a `work:progress` event, and the tokens it has used
/// (which count against its item's budget and the day's).
pub fn progress(
    tx: &mut Tx,
    policy: &QueuePolicy,
    item_id: &str,
    session_id: &str,
    messages: &[String],
    usage: TokenUsage,
) -> Result<(), QueueError> {
    let tokens_used = usage.total();
    let mut cost = None;
    if let Some(old) = tx.session(session_id)? {
        let mut session = old.clone();
        session.last_activity_at = tx.now;
        session.tokens_used = tokens_used;
        session.input_tokens = usage.input;
        session.output_tokens = usage.output;
        cost = account_tokens(tx, policy, Some(&old), &session)?;
        tx.put_session(&session)?;
    }
    for message in messages {
        tx.emit(EventData::WorkProgress {
            item_id,
            session_id,
            message,
            tokens_used,
            cost_usd: cost,
        })?;
    }
    Ok(())
}

/// The UTC day `budgets.daily_tokens` counts against, as the store keys it.
pub fn token_day(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

/// Adds what `new` used since `old` (the session as stored) to its item's tokens and cost
/// and to the day's total. An item still in flight with this session that reaches its
/// budget is blocked, with `budget:exceeded` (the Dispatcher then stops the agent). Returns
/// the item's cost so far, when it still exists.
fn account_tokens(
    tx: &mut Tx,
    policy: &QueuePolicy,
    old: Option<&AgentSession>,
    new: &AgentSession,
) -> Result<Option<f64>, QueueError> {
    let input = new
        .input_tokens
        .saturating_sub(old.map_or(0, |o| o.input_tokens));
    let output = new
        .output_tokens
        .saturating_sub(old.map_or(0, |o| o.output_tokens));
    let Some(before) = tx.item(&new.work_item_id)? else {
        return Ok(None);
    };
    let added = input.saturating_add(output);
    if added == 0 {
        return Ok(Some(before.cost_usd));
    }
    tx.add_tokens_on(&token_day(tx.now), added)?;
    let mut item = before.clone();
    item.tokens_used = item.tokens_used.saturating_add(added);
    item.cost_usd += policy.price.cost(input, output);
    let limit = item.max_tokens.unwrap_or(policy.item_tokens);
    let reached = limit > 0
        && item.tokens_used >= limit
        && item.status == Status::InFlight
        && item.assigned_agent_id.as_deref() == Some(new.id.as_str());
    if !reached {
        tx.put(Some(&before), &item)?;
        return Ok(Some(item.cost_usd));
    }
    let reason = format!(
        "token budget reached ({} of {limit} tokens)",
        item.tokens_used
    );
    release(&mut item);
    item.status = Status::Blocked;
    item.retry_at = None;
    item.status_reason = Some(reason.clone());
    let item = save(tx, &before, item, Some(&reason))?;
    tx.emit(EventData::BudgetExceeded(BudgetExceeded::Item {
        item_id: &item.id,
        title: &item.title,
        session_id: &new.id,
        used: item.tokens_used,
        limit,
    }))?;
    Ok(Some(item.cost_usd))
}

/// After a restart: every session the last run left unfinished failed with it, and every item
/// left in flight is a failed attempt ("interrupted"), except the work runners hold leases on,
/// which goes on (each lease gets a whole period for its runner to heartbeat again). Once per store, an item holding more
/// artifacts than allowed (written before the limit) is brought within it, so listing items
/// stays small.
/// Returns the sessions, so the caller can make sure their processes are gone.
pub fn recover(tx: &mut Tx, policy: &QueuePolicy) -> Result<Vec<AgentSession>, QueueError> {
    // Work leased to runners goes on: they did not stop with this server.
    let leased = super::runners::after_restart(tx, policy)?;
    let sessions: Vec<AgentSession> = tx
        .unfinished_sessions()?
        .into_iter()
        .filter(|s| !leased.iter().any(|l| l.session_id == s.id))
        .collect();
    for s in &sessions {
        let mut s = s.clone();
        s.status = AgentStatus::Failed;
        s.outcome = Some("interrupted: flightdeck stopped while it ran".into());
        s.finished_at = Some(tx.now);
        s.current_work_item_id = None;
        session_changed(tx, policy, &s, Some("interrupted"))?;
    }
    for item in tx.items_in(Status::InFlight)? {
        if leased.iter().any(|l| l.item_id == item.id) {
            continue;
        }
        let old = item.clone();
        retry_or_block(
            tx,
            policy,
            &old,
            item,
            "interrupted: flightdeck stopped while it ran",
        )?;
    }
    let reshaped = tx.reshape_items()?;
    if reshaped > 0 {
        log::info!("{reshaped} stored items were rewritten in this release's shape");
    }
    if tx.repair_pending("index:item_order")? {
        tx.index_item_order()?;
    }
    if tx.repair_pending("index:waiting")? {
        for status in [Status::Review, Status::Blocked] {
            for item in tx.items_in(status)? {
                tx.put(Some(&item), &item)?;
            }
        }
    }
    let ids = if tx.repair_pending("repair:artifact_limits")? {
        tx.item_ids()?
    } else {
        Vec::new()
    };
    for id in ids {
        let mut item = tx.require(&id)?;
        let dropped = bound_artifacts(&mut item);
        if dropped > 0 {
            log::warn!(
                "item {id} held {dropped} artifacts over the limits (a store written before them): dropped"
            );
            tx.put(Some(&item), &item)?;
        }
    }
    Ok(sessions)
}

/// The policy tests restart a store under: review on, three attempts, no backoff.
#[cfg(test)]
pub(super) const RESTART_POLICY: QueuePolicy = QueuePolicy {
    review: true,
    max_attempts: 3,
    retry_backoff_secs: 0.0,
    item_tokens: 0,
    price: crate::config::Price {
        input_per_mtok: 0.0,
        output_per_mtok: 0.0,
    },
    lease_secs: 30,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::store::Store;

    #[test]
    fn an_item_keeps_its_newest_artifacts_within_the_limits_even_from_an_old_store() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("q.redb")).unwrap();
        let artifacts: Vec<serde_json::Value> = (0..ARTIFACTS_MAX + 60)
            .map(|i| {
                let description = if i % 10 == 0 { "x".repeat(60_000) } else { format!("n{i}") };
                serde_json::json!({"id": format!("a{i}"), "type": "link", "path": "https://example.invalid",
                    "description": description, "createdAt": "2026-01-01T00:00:00Z"})
            })
            .collect();
        let item: WorkItem = serde_json::from_value(serde_json::json!({
            "id": "big", "title": "big", "description": "", "acceptanceCriteria": [],
            "status": "review", "priority": "medium", "complexity": "m",
            "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z",
            "createdBy": "an old version", "artifacts": artifacts, "blockedBy": [], "blocks": [],
            "attempts": 1,
        }))
        .unwrap();
        store.write(|tx| tx.put(None, &item)).unwrap();
        store.write(|tx| recover(tx, &RESTART_POLICY)).unwrap();
        let healed = store.read(|snap| snap.item("big")).unwrap().unwrap();
        assert_eq!(healed.artifacts.len(), ARTIFACTS_MAX);
        // 26 broke the limits; of the 234 left, the 34 oldest went.
        assert_eq!(healed.artifacts[0].id, "a38", "the oldest went first");
        assert!(healed.artifacts.iter().all(|a| a.description.len() < 10));
        let (added, _) = store
            .write(|tx| {
                let one = ArtifactInput {
                    kind: crate::model::ArtifactKind::Link,
                    path: "https://example.invalid/new".into(),
                    description: "new".into(),
                };
                add_artifacts(tx, "big", vec![one])
            })
            .unwrap();
        let after = store.read(|snap| snap.item("big")).unwrap().unwrap();
        assert_eq!(after.artifacts.len(), ARTIFACTS_MAX);
        assert_eq!(after.artifacts.last().unwrap().id, added[0].id);
    }

    fn new_item(title: &str, priority: &str) -> NewWorkItem {
        serde_json::from_value(serde_json::json!({
            "title": title, "priority": priority, "status": "ready"
        }))
        .unwrap()
    }

    #[test]
    fn a_ready_item_is_claimed_at_once_behind_300_higher_ranked_items_waiting_out_a_backoff() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("q.redb")).unwrap();
        let policy = QueuePolicy {
            review: false,
            max_attempts: 5,
            retry_backoff_secs: 300.0,
            item_tokens: 0,
            price: Default::default(),
            lease_secs: 30,
        };
        store
            .write(|tx| {
                (0..300).try_for_each(|i| {
                    create(tx, new_item(&format!("urgent {i}"), "urgent")).map(drop)
                })
            })
            .unwrap();
        for _ in 0..300 {
            let (claimed, _) = store
                .write(|tx| claim(tx, "agent", "key", &Labels::default()))
                .unwrap();
            let id = claimed.expect("an urgent item is claimable").item.id;
            let (failed, _) = store
                .write(|tx| {
                    fail_attempt(tx, &policy, &id, None, "rate limited", Verdict::Retry, None)
                })
                .unwrap();
            assert_eq!(failed.status, Status::Ready);
            assert!(failed.retry_at.is_some());
        }
        let (behind, _) = store
            .write(|tx| create(tx, new_item("the low one behind them", "low")))
            .unwrap();
        let (claimed, _) = store
            .write(|tx| claim(tx, "agent", "key", &Labels::default()))
            .unwrap();
        assert_eq!(
            claimed.map(|c| c.item.title),
            Some(behind.title),
            "the ready item behind 300 items in their backoff is claimed at once"
        );
        let (nothing, _) = store
            .write(|tx| claim(tx, "agent", "key", &Labels::default()))
            .unwrap();
        assert!(
            nothing.is_none(),
            "the waiting items stay out until their backoff ends"
        );
    }
}
