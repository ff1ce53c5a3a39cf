//! Runners in the queue: registering, claiming under a lease, heartbeats, the reports and the
//! end of a leased attempt, the sweeper's expiry, drain, and runner tokens. Each is one write
//! transaction of the QueueManager, so a lease and what it guards always change together.
//!
//! Every write a runner makes about an item is admitted by [`leases::admit`] against the item's
//! live lease, inside the same transaction that applies it: there is no moment at which a
//! lease has moved on but a late write from its old holder still lands. A lease counts as live
//! only while its item is still in flight with the lease's session, so an item a person moved,
//! or the budget blocked, drops out of its runner's hands at the next heartbeat.

use super::leases::{self, Lease};
use super::manager::QueueManager;
use super::operations::{self, CompleteOutcome, Completion, QueuePolicy, TokenUsage, Verdict};
use super::reader::ReadOp;
use super::runner_tables;
use super::store::{Snapshot, Tx};
use super::writes::WriteOp;
use super::QueueError;
use crate::model::{AgentSession, EventData, Labels, Status, WorkItem};
use crate::runners::{RunnerRecord, TokenRecord};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

// ---- Messages ------------------------------------------------------------------------------

/// A runner says who it is (again, after a restart: the same id).
#[derive(Message)]
#[rtype(result = "Result<RunnerRecord, QueueError>")]
pub struct RegisterRunner {
    pub id: String,
    pub name: String,
    pub labels: Labels,
    pub slots: u32,
    pub version: String,
    pub token_id: Option<String>,
}

/// A runner claims work for up to `free` of its slots.
#[derive(Message)]
#[rtype(result = "Result<Vec<LeasedItem>, QueueError>")]
pub struct RunnerClaim {
    pub runner_id: String,
    pub free: u32,
}

/// An item claimed under a lease.
#[derive(Debug, Clone)]
pub struct LeasedItem {
    pub item: WorkItem,
    pub lease: Lease,
    pub session_key: String,
}

/// A runner's heartbeat: renews every lease it holds.
#[derive(Message)]
#[rtype(result = "Result<Heartbeat, QueueError>")]
pub struct RunnerHeartbeat {
    pub runner_id: String,
    /// The items the runner is running: only their leases are renewed (a lease on an item it
    /// no longer runs runs out, and the item goes back to ready).
    pub running: Vec<String>,
}

/// What a heartbeat came to: the leases the runner still holds (any other it was running is
/// lost: its agent should stop) and whether it is draining.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    pub leases: Vec<Lease>,
    pub draining: bool,
}

/// One report of a leased attempt, numbered by the runner per session.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// 1, 2, 3, ... per session: a report at or below the last applied one is a resend and is
    /// not applied again.
    pub seq: u64,
    /// What is reported. (Nested, not flattened beside `seq`: a flattened tagged enum makes an
    /// `allOf` of a `oneOf` in the API document, which client generators cannot take.)
    pub body: ReportBody,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum ReportBody {
    /// The session started (its record).
    Started { session: AgentSession },
    /// Output lines and the tokens used so far.
    Progress {
        messages: Vec<String>,
        input_tokens: u64,
        output_tokens: u64,
    },
    /// The session's record changed.
    Changed {
        session: AgentSession,
        reason: Option<String>,
    },
    /// Lines of the session's log (appended to its session.log on the server).
    Log { text: String },
}

/// Reports of a leased attempt, in order.
#[derive(Message)]
#[rtype(result = "Result<Vec<u64>, QueueError>")]
pub struct RunnerReports {
    pub runner_id: String,
    pub item_id: String,
    pub fence: u64,
    pub reports: Vec<Report>,
    pub data_dir: PathBuf,
}

/// The end of a leased attempt: its completion.
#[derive(Message)]
#[rtype(result = "Result<CompleteOutcome, QueueError>")]
pub struct RunnerComplete {
    pub runner_id: String,
    pub item_id: String,
    pub fence: u64,
    pub work: Completion,
    pub data_dir: PathBuf,
}

/// The end of a leased attempt that did not complete.
#[derive(Message)]
#[rtype(result = "Result<WorkItem, QueueError>")]
pub struct RunnerFail {
    pub runner_id: String,
    pub item_id: String,
    pub fence: u64,
    pub reason: String,
    pub verdict: Verdict,
    pub session: Option<AgentSession>,
    pub data_dir: PathBuf,
}

/// The item's live lease, checked for this runner and fence (before a file upload is written).
#[derive(Message)]
#[rtype(result = "Result<Lease, QueueError>")]
pub struct CheckLease {
    pub runner_id: String,
    pub item_id: String,
    pub fence: u64,
}

/// The sweeper's tick: leases that ran out send their items back to ready; runners whose
/// heartbeats stopped go offline.
#[derive(Message)]
#[rtype(result = "Result<(), QueueError>")]
pub struct SweepLeases;

/// Let a runner's work finish and give it no more.
#[derive(Message)]
#[rtype(result = "Result<RunnerRecord, QueueError>")]
pub struct DrainRunner {
    pub id: String,
}

/// Every runner and every live lease (a read: [`ReadOp`]).
pub struct ListRunners;

/// Store a new runner token (hashed).
#[derive(Message)]
#[rtype(result = "Result<TokenRecord, QueueError>")]
pub struct CreateRunnerToken(pub TokenRecord);

/// Every runner token (hashed; a read: [`ReadOp`]).
pub struct ListRunnerTokens;

/// The ready items that require labels, in list order (a read: [`ReadOp`]): the ones a
/// runner's labels may fail to cover.
pub struct ReadyRequiringLabels;

#[derive(Message)]
#[rtype(result = "Result<TokenRecord, QueueError>")]
pub struct RevokeRunnerToken {
    pub id: String,
}

// ---- Operations ----------------------------------------------------------------------------

fn now_ms(tx: &Tx) -> i64 {
    tx.now.timestamp_millis()
}

fn lease_ms(policy: &QueuePolicy) -> i64 {
    (policy.lease_secs as i64).saturating_mul(1000)
}

fn require_runner(tx: &Tx, id: &str) -> Result<RunnerRecord, QueueError> {
    tx.runner_tables()
        .runner(id)?
        .ok_or_else(|| QueueError::not_found("runner", id))
}

/// The item's lease, if it is still live: the item is in flight with the lease's session.
fn live_lease(tx: &Tx, item_id: &str) -> Result<Option<(Lease, WorkItem)>, QueueError> {
    let Some(lease) = tx.runner_tables().lease(item_id)? else {
        return Ok(None);
    };
    match tx.item(item_id)? {
        Some(item)
            if item.status == Status::InFlight
                && item.assigned_agent_id.as_deref() == Some(lease.session_id.as_str()) =>
        {
            Ok(Some((lease, item)))
        }
        _ => Ok(None),
    }
}

/// Admits a runner's write about an item, or refuses it (409) in words.
fn admit(
    tx: &Tx,
    runner_id: &str,
    item_id: &str,
    fence: u64,
) -> Result<(Lease, WorkItem), QueueError> {
    let live = live_lease(tx, item_id)?;
    let lease = live.as_ref().map(|(l, _)| l);
    match leases::admit(lease, runner_id, fence, now_ms(tx)) {
        Ok(()) => Ok(live.ok_or_else(|| QueueError::Conflict("no lease".into()))?),
        Err(refusal) => {
            let title = match tx.item(item_id)? {
                Some(item) => item.title,
                None => return Err(QueueError::not_found("item", item_id)),
            };
            Err(QueueError::Conflict(refusal.sentence(&title, fence)))
        }
    }
}

/// A session record from a runner, made the server's own: its id, item and folders are the
/// lease's, whatever the runner sent (the folders are where the server keeps its log and files).
fn own_record(
    mut s: AgentSession,
    lease: &Lease,
    item: &WorkItem,
    data_dir: &std::path::Path,
) -> AgentSession {
    let root = crate::dispatch::workspace::session_dir(data_dir, &lease.session_id);
    s.id = lease.session_id.clone();
    s.work_item_id = item.id.clone();
    s.session_key = item.assigned_session_key.clone().unwrap_or_default();
    s.data_dir = root.display().to_string();
    s.workspace_dir = root.join("workspace").display().to_string();
    s.attempt = item.attempts;
    s.pid = None;
    if !s.status.is_finished() {
        s.current_work_item_id = Some(item.id.clone());
        s.finished_at = None;
    }
    s
}

pub fn register(tx: &mut Tx, m: RegisterRunner) -> Result<RunnerRecord, QueueError> {
    let old = tx.runner_tables().runner(&m.id)?;
    let record = RunnerRecord {
        id: m.id.clone(),
        name: m.name,
        labels: m.labels.into(),
        slots: m.slots,
        version: m.version,
        registered_at: old.as_ref().map_or(tx.now, |o| o.registered_at),
        last_heartbeat: tx.now,
        draining: old.as_ref().is_some_and(|o| o.draining),
        online: true,
        token_id: m.token_id,
    };
    tx.runner_tables_mut().put_runner(&record)?;
    match old {
        None => tx.emit(EventData::RunnerRegistered { runner: &record })?,
        Some(o) if !o.online => tx.emit(EventData::RunnerOnline { runner: &record })?,
        Some(_) => {}
    }
    Ok(record)
}

fn heartbeat_leases(
    tx: &mut Tx,
    policy: &QueuePolicy,
    runner_id: &str,
    running: &[String],
) -> Result<Vec<Lease>, QueueError> {
    let now = now_ms(tx);
    let mut held = Vec::new();
    for mut lease in tx.runner_tables().all_leases()? {
        if lease.runner_id != runner_id || !running.contains(&lease.item_id) {
            continue;
        }
        if live_lease(tx, &lease.item_id)?.is_none() {
            // The item moved on without the runner (a person, the budget): its lease goes.
            tx.runner_tables_mut().remove_lease(&lease.item_id)?;
            continue;
        }
        if leases::renew(&mut lease, now, lease_ms(policy)) {
            tx.runner_tables_mut().put_lease(&lease)?;
            held.push(lease);
        }
    }
    Ok(held)
}

pub fn heartbeat(
    tx: &mut Tx,
    policy: &QueuePolicy,
    runner_id: &str,
    running: &[String],
) -> Result<Heartbeat, QueueError> {
    let mut runner = require_runner(tx, runner_id)?;
    let was_online = runner.online;
    runner.last_heartbeat = tx.now;
    runner.online = true;
    tx.runner_tables_mut().put_runner(&runner)?;
    if !was_online {
        tx.emit(EventData::RunnerOnline { runner: &runner })?;
    }
    let leases = heartbeat_leases(tx, policy, runner_id, running)?;
    Ok(Heartbeat {
        leases,
        draining: runner.draining,
    })
}

pub fn claim(
    tx: &mut Tx,
    policy: &QueuePolicy,
    m: RunnerClaim,
) -> Result<Vec<LeasedItem>, QueueError> {
    let runner = require_runner(tx, &m.runner_id)?;
    if runner.draining {
        return Ok(Vec::new());
    }
    let held = tx
        .runner_tables()
        .all_leases()?
        .iter()
        .filter(|l| l.runner_id == runner.id)
        .count() as u32;
    let free = m.free.min(runner.slots.saturating_sub(held));
    let labels = Labels::parse(&runner.labels).unwrap_or_default();
    let mut out = Vec::new();
    for _ in 0..free {
        let session_id = uuid::Uuid::new_v4().to_string();
        let session_key = format!("{}-{}", runner.name, &session_id[..8]);
        let Some(claimed) = operations::claim(tx, &session_id, &session_key, &labels)? else {
            break;
        };
        crate::metrics::claimed(claimed.waited);
        let last = tx.runner_tables().last_fence(&claimed.item.id)?;
        let lease = leases::grant(
            uuid::Uuid::new_v4().to_string(),
            &claimed.item.id,
            &runner.id,
            &session_id,
            last,
            now_ms(tx),
            lease_ms(policy),
        );
        tx.runner_tables_mut().put_lease(&lease)?;
        out.push(LeasedItem {
            item: claimed.item,
            lease,
            session_key,
        });
    }
    Ok(out)
}

pub fn reports(
    tx: &mut Tx,
    policy: &QueuePolicy,
    m: RunnerReports,
) -> Result<Vec<u64>, QueueError> {
    let (mut lease, item) = admit(tx, &m.runner_id, &m.item_id, m.fence)?;
    let mut applied = Vec::new();
    for report in m.reports {
        if report.seq <= lease.seq {
            continue;
        }
        lease.seq = report.seq;
        match report.body {
            ReportBody::Started { session } => {
                let record = own_record(session, &lease, &item, &m.data_dir);
                operations::session_started(tx, &record)?;
            }
            ReportBody::Progress {
                messages,
                input_tokens,
                output_tokens,
            } => operations::progress(
                tx,
                policy,
                &item.id,
                &lease.session_id,
                &messages,
                TokenUsage {
                    input: input_tokens,
                    output: output_tokens,
                },
            )?,
            ReportBody::Changed { session, reason } => {
                let record = own_record(session, &lease, &item, &m.data_dir);
                operations::session_changed(tx, policy, &record, reason.as_deref())?;
            }
            ReportBody::Log { .. } => {}
        }
        applied.push(report.seq);
    }
    // The budget may have blocked the item: its lease then goes at the next heartbeat.
    tx.runner_tables_mut().put_lease(&lease)?;
    Ok(applied)
}

/// The runner's record of the session, the server's own version of it, or the stored one.
fn ended_session(
    tx: &Tx,
    sent: Option<AgentSession>,
    lease: &Lease,
    item: &WorkItem,
    data_dir: &std::path::Path,
) -> Result<Option<AgentSession>, QueueError> {
    Ok(match sent {
        Some(s) => Some(own_record(s, lease, item, data_dir)),
        None => tx.session(&lease.session_id)?,
    })
}

pub fn complete(
    tx: &mut Tx,
    policy: &QueuePolicy,
    m: RunnerComplete,
) -> Result<CompleteOutcome, QueueError> {
    let (lease, item) = admit(tx, &m.runner_id, &m.item_id, m.fence)?;
    let mut work = m.work;
    work.session = ended_session(tx, work.session.take(), &lease, &item, &m.data_dir)?;
    work.session_key = item.assigned_session_key.clone();
    tx.runner_tables_mut().remove_lease(&item.id)?;
    operations::complete(tx, policy, &item.id, work)
}

pub fn fail(tx: &mut Tx, policy: &QueuePolicy, m: RunnerFail) -> Result<WorkItem, QueueError> {
    let (lease, item) = admit(tx, &m.runner_id, &m.item_id, m.fence)?;
    let session = ended_session(tx, m.session, &lease, &item, &m.data_dir)?;
    tx.runner_tables_mut().remove_lease(&item.id)?;
    operations::fail_attempt(
        tx,
        policy,
        &item.id,
        item.assigned_session_key.as_deref(),
        &m.reason,
        m.verdict,
        session,
    )
}

pub fn sweep(tx: &mut Tx, policy: &QueuePolicy) -> Result<(), QueueError> {
    let now = now_ms(tx);
    let expired = tx.runner_tables().expired_items(now)?;
    for item_id in expired {
        let Some(lease) = tx.runner_tables().lease(&item_id)? else {
            continue;
        };
        let live = live_lease(tx, &item_id)?.is_some();
        tx.runner_tables_mut().remove_lease(&item_id)?;
        if !live {
            continue;
        }
        let name = tx
            .runner_tables()
            .runner(&lease.runner_id)?
            .map_or_else(|| lease.runner_id.clone(), |r| r.name);
        let reason = format!(
            "lost runner: {name} sent no heartbeat for {}s (runners.lease_secs), so its claim (fence {}) ran out",
            policy.lease_secs, lease.fence
        );
        log::warn!("item {item_id}: {reason}");
        let session = tx.session(&lease.session_id)?;
        let item = tx.require(&item_id)?;
        operations::fail_attempt(
            tx,
            policy,
            &item_id,
            item.assigned_session_key.as_deref(),
            &reason,
            Verdict::Retry,
            session.filter(|s| !s.status.is_finished()),
        )?;
    }
    let lease_period = chrono::Duration::seconds(policy.lease_secs as i64);
    for mut runner in tx.runner_tables().all_runners()? {
        let online = tx.now - runner.last_heartbeat < lease_period;
        if online != runner.online {
            runner.online = online;
            tx.runner_tables_mut().put_runner(&runner)?;
            tx.emit(if online {
                EventData::RunnerOnline { runner: &runner }
            } else {
                EventData::RunnerOffline { runner: &runner }
            })?;
        }
    }
    Ok(())
}

/// At start-up: every lease gets a whole period for its runner to heartbeat again (the runner
/// could not while the server was down). Returns the leases, whose work goes on.
pub fn after_restart(tx: &mut Tx, policy: &QueuePolicy) -> Result<Vec<Lease>, QueueError> {
    let now = now_ms(tx);
    let mut kept = Vec::new();
    for mut lease in tx.runner_tables().all_leases()? {
        leases::after_restart(&mut lease, now, lease_ms(policy));
        tx.runner_tables_mut().put_lease(&lease)?;
        kept.push(lease);
    }
    // Runners count as online again until their grace runs out without a heartbeat.
    for mut runner in tx.runner_tables().all_runners()? {
        if runner.last_heartbeat < tx.now {
            runner.last_heartbeat = tx.now;
            tx.runner_tables_mut().put_runner(&runner)?;
        }
    }
    Ok(kept)
}

pub fn drain(tx: &mut Tx, id: &str) -> Result<RunnerRecord, QueueError> {
    let mut runner = require_runner(tx, id)?;
    if !runner.draining {
        runner.draining = true;
        tx.runner_tables_mut().put_runner(&runner)?;
        tx.emit(EventData::RunnerDraining { runner: &runner })?;
    }
    Ok(runner)
}

// ---- Writes and reads ----------------------------------------------------------------------

impl WriteOp for RegisterRunner {
    type Output = RunnerRecord;
    fn run(self, tx: &mut Tx, _: &QueuePolicy) -> Result<RunnerRecord, QueueError> {
        register(tx, self)
    }
}

impl WriteOp for RunnerClaim {
    type Output = Vec<LeasedItem>;
    fn run(self, tx: &mut Tx, policy: &QueuePolicy) -> Result<Vec<LeasedItem>, QueueError> {
        claim(tx, policy, self)
    }
}

impl WriteOp for RunnerHeartbeat {
    type Output = Heartbeat;
    fn run(self, tx: &mut Tx, policy: &QueuePolicy) -> Result<Heartbeat, QueueError> {
        heartbeat(tx, policy, &self.runner_id, &self.running)
    }
}

impl WriteOp for RunnerReports {
    type Output = Vec<u64>;
    fn run(self, tx: &mut Tx, policy: &QueuePolicy) -> Result<Vec<u64>, QueueError> {
        reports(tx, policy, self)
    }
}

impl WriteOp for RunnerComplete {
    type Output = CompleteOutcome;
    fn run(self, tx: &mut Tx, policy: &QueuePolicy) -> Result<CompleteOutcome, QueueError> {
        complete(tx, policy, self)
    }
}

impl WriteOp for RunnerFail {
    type Output = WorkItem;
    fn run(self, tx: &mut Tx, policy: &QueuePolicy) -> Result<WorkItem, QueueError> {
        fail(tx, policy, self)
    }
}

impl WriteOp for SweepLeases {
    type Output = ();
    fn run(self, tx: &mut Tx, policy: &QueuePolicy) -> Result<(), QueueError> {
        sweep(tx, policy)
    }
}

impl WriteOp for DrainRunner {
    type Output = RunnerRecord;
    fn run(self, tx: &mut Tx, _: &QueuePolicy) -> Result<RunnerRecord, QueueError> {
        drain(tx, &self.id)
    }
}

/// Queued as a write so it is checked in order with the runner's other writes.
impl WriteOp for CheckLease {
    type Output = Lease;
    fn run(self, tx: &mut Tx, _: &QueuePolicy) -> Result<Lease, QueueError> {
        admit(tx, &self.runner_id, &self.item_id, self.fence).map(|(lease, _)| lease)
    }
}

impl WriteOp for CreateRunnerToken {
    type Output = TokenRecord;
    fn run(self, tx: &mut Tx, _: &QueuePolicy) -> Result<TokenRecord, QueueError> {
        tx.runner_tables_mut().put_token(&self.0)?;
        Ok(self.0)
    }
}

impl WriteOp for RevokeRunnerToken {
    type Output = TokenRecord;
    fn run(self, tx: &mut Tx, _: &QueuePolicy) -> Result<TokenRecord, QueueError> {
        tx.runner_tables_mut()
            .remove_token(&self.id)?
            .ok_or_else(|| QueueError::not_found("runner token", &self.id))
    }
}

impl ReadOp for ListRunners {
    type Output = (Vec<RunnerRecord>, Vec<Lease>);
    fn read(self, snap: &Snapshot) -> Result<(Vec<RunnerRecord>, Vec<Lease>), QueueError> {
        Ok((
            runner_tables::read_runners(&snap.txn)?,
            runner_tables::read_leases(&snap.txn)?,
        ))
    }
}

impl ReadOp for ReadyRequiringLabels {
    type Output = Vec<WorkItem>;
    fn read(self, snap: &Snapshot) -> Result<Vec<WorkItem>, QueueError> {
        let page = snap.items_page(None, usize::MAX, |i| {
            i.status == Status::Ready && !i.requires.is_empty()
        })?;
        Ok(page.items)
    }
}

impl ReadOp for ListRunnerTokens {
    type Output = Vec<TokenRecord>;
    fn read(self, snap: &Snapshot) -> Result<Vec<TokenRecord>, QueueError> {
        runner_tables::read_tokens(&snap.txn)
    }
}

/// Sends [`SweepLeases`] every second: the small actor that expires leases.
pub struct LeaseSweeper {
    pub queue: Addr<QueueManager>,
}

impl Actor for LeaseSweeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(std::time::Duration::from_secs(1), |act, _| {
            act.queue.do_send(SweepLeases);
        });
    }
}

/// When a lease runs out, as the API shows it.
pub fn expires_at(lease: &Lease) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(lease.expires_at_ms).unwrap_or_else(Utc::now)
}
