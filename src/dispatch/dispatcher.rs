//! The Dispatcher actor: keeps at most `pool.size` agent sessions running, claims work for
//! free slots, and supervises the sessions it started.
//!
//! It is woken by events (anything that can make an item claimable or free a slot), by its
//! sessions ending, by the pool growing, and by a one-second tick that also catches retry
//! backoffs running out and edits of `pool.size` in the config file. Claims for several free
//! slots go out at once, so the QueueManager commits them in one batch. With
//! `queue.review_limit` set, nothing new starts while that many items wait in review; with
//! `budgets.daily_tokens` set, nothing new starts once the day's tokens are spent (see
//! `budget.rs`). When an agent hits a rate limit, dispatch pauses until the limit lifts (the
//! session says when); the pause ends by itself.

use super::budget::DailyBudget;
use super::error::DispatchError;
use super::session::{AgentSession, AgentSettings, Cancel, SessionEnded, Shutdown};
use super::verdict::RateLimit;
use super::{preparer, workspace};
use crate::config::Config;
use crate::model::{
    AgentSession as SessionRecord, AgentStatus, BudgetExceeded, EventData, EventKind, Status,
};
use crate::monitor::{Deliver, Monitor, Subscribe};
use crate::queue::{
    Announce, Claim, CountByStatus, FailAttempt, ListSessions, MoveItem, QueueManager, Read,
    TokensOn, Verdict,
};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const TICK: Duration = Duration::from_secs(1);

// ---- Messages ------------------------------------------------------------------------------

/// The pool as `GET /api/pool` shows it.
#[derive(Message)]
#[rtype(result = "PoolInfo")]
pub struct GetPool;

/// Change the pool size at run time.
#[derive(Message)]
#[rtype(result = "PoolInfo")]
pub struct Resize {
    pub size: usize,
}

/// Set the pool's daily token budget (0 = none) until the config says otherwise.
#[derive(Message)]
#[rtype(result = "PoolInfo")]
pub struct SetDailyBudget {
    pub tokens: u64,
}

/// Start one session now if a slot is free and an item claimable (`POST /api/dispatch`). A
/// person asking lifts a rate-limit pause early.
#[derive(Message)]
#[rtype(result = "Result<Vec<SessionRecord>, DispatchError>")]
pub struct DispatchNow;

/// Stop the agent working on this item, if any; the caller moves the item.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CancelItem {
    pub item_id: String,
    pub reason: String,
}

/// Stop a session and move its item to `status` (blocked, unless the caller names another
/// move the state machine allows from in_flight); the attempt is not spent.
#[derive(Message)]
#[rtype(result = "Result<(), DispatchError>")]
pub struct CancelSession {
    pub session_id: String,
    pub reason: String,
    pub status: Status,
}

/// Stop dispatching, give running agents `grace` to finish, then stop them.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ShutdownPool {
    pub grace: Duration,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolInfo {
    pub size: usize,
    pub running: usize,
    pub free: usize,
    pub auto_dispatch: bool,
    /// Why dispatch is held back, when it is.
    pub held: Option<String>,
    /// Tokens the pool may use per UTC day (0 = none).
    pub daily_tokens: u64,
    /// Tokens used so far this UTC day.
    pub tokens_today: u64,
    /// Dispatch is paused until an agent's rate limit lifts; it resumes by itself.
    pub pause: Option<PoolPause>,
}

/// A pause of dispatch, as `GET /api/pool` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolPause {
    /// Why: "rate limited".
    pub reason: String,
    /// What the agent said about it.
    pub message: String,
    /// When dispatch resumes.
    pub until: DateTime<Utc>,
}

// ---- State ---------------------------------------------------------------------------------

struct Running {
    addr: Addr<AgentSession>,
    item_id: String,
}

/// Where the config file stands, to notice edits of `pool.size`.
struct ConfigWatch {
    path: PathBuf,
    modified: Option<SystemTime>,
    size: usize,
    daily_tokens: u64,
}

pub struct Dispatcher {
    queue: Addr<QueueManager>,
    monitor: Addr<Monitor>,
    settings: Arc<AgentSettings>,
    size: usize,
    auto_dispatch: bool,
    review_limit: usize,
    daily: DailyBudget,
    running: HashMap<String, Running>,
    claiming: usize,
    held: Option<String>,
    /// Set while a rate limit holds every new dispatch back.
    pause: Option<RateLimit>,
    stopping: bool,
    /// The local runner's labels (`runners.local_labels`): it claims only items they cover.
    labels: crate::model::Labels,
    watch: Option<ConfigWatch>,
    waiting_for_empty: Vec<futures_channel::oneshot::Sender<()>>,
}

/// What one claim attempt of the Dispatcher came to (not to be confused with the queue's
/// `Claimed`, which is the item it hands out).
enum ClaimOutcome {
    Held(String),
    /// The day's tokens are spent.
    OverBudget {
        day: String,
        used: u64,
    },
    Nothing,
    Item {
        item: Box<crate::model::WorkItem>,
        /// Its workspace, prepared off the actix thread (see `preparer`).
        ws: std::io::Result<workspace::Workspace>,
        session_id: String,
        session_key: String,
    },
}

impl Dispatcher {
    pub fn new(
        config: &Config,
        settings: AgentSettings,
        queue: Addr<QueueManager>,
        monitor: Addr<Monitor>,
    ) -> Self {
        let watch = config.path.as_ref().map(|path| {
            let file = Config::from_file(path).ok();
            ConfigWatch {
                modified: std::fs::metadata(path).and_then(|m| m.modified()).ok(),
                path: path.clone(),
                size: file.as_ref().map_or(config.pool.size, |c| c.pool.size),
                daily_tokens: file
                    .as_ref()
                    .map_or(config.budgets.daily_tokens, |c| c.budgets.daily_tokens),
            }
        });
        Dispatcher {
            queue,
            monitor,
            settings: Arc::new(settings),
            size: config.pool.size,
            auto_dispatch: config.pool.auto_dispatch,
            review_limit: config.queue.review_limit,
            daily: DailyBudget::new(config.budgets.daily_tokens),
            running: HashMap::new(),
            claiming: 0,
            held: None,
            pause: None,
            stopping: false,
            labels: config.runners.local_labels(),
            watch,
            waiting_for_empty: Vec::new(),
        }
    }

    fn info(&self) -> PoolInfo {
        PoolInfo {
            size: self.size,
            running: self.running.len(),
            free: self.size.saturating_sub(self.running.len()),
            auto_dispatch: self.auto_dispatch,
            held: self.held.clone(),
            daily_tokens: self.daily.limit,
            tokens_today: self.daily.used,
            pause: self.pause.as_ref().map(|p| PoolPause {
                reason: "rate limited".into(),
                message: p.message.clone(),
                until: p.until,
            }),
        }
    }

    /// Whether a rate limit still holds dispatch back; a pause that has run out is cleared.
    fn paused(&mut self) -> bool {
        match &self.pause {
            Some(pause) if pause.until > Utc::now() => true,
            Some(_) => {
                log::info!("dispatch resumes: the rate limit has lifted");
                self.pause = None;
                crate::metrics::rate_limit_pause_ended(self.settings.preset_name());
                false
            }
            None => false,
        }
    }

    /// Pauses dispatch until `limit` lifts (a later pause already in force stays), and wakes
    /// the pool when it does.
    fn pause_for(&mut self, ctx: &mut Context<Self>, limit: RateLimit) {
        if self.pause.as_ref().is_some_and(|p| p.until >= limit.until) {
            return;
        }
        log::info!(
            "dispatch paused until {}: rate limited: {}",
            limit.until,
            limit.message
        );
        let wait = (limit.until - Utc::now()).to_std().unwrap_or_default();
        if self.pause.is_none() {
            crate::metrics::rate_limit_pause_started(self.settings.preset_name());
        }
        self.pause = Some(limit);
        ctx.run_later(wait, |act, ctx| act.fill(ctx));
    }

    /// Reads the day's tokens into the pool's view (for `GET /api/pool` and the metrics).
    fn refresh_tokens_today(&mut self, ctx: &mut Context<Self>) {
        let read = self.queue.send(Read(TokensOn {
            day: DailyBudget::today(),
        }));
        ctx.spawn(fut::wrap_future::<_, Self>(read).map(|result, act, _| {
            if let Ok(Ok(used)) = result {
                act.daily.used = used;
            }
        }));
    }

    /// A new daily budget: dispatch resumes at once if it is no longer spent.
    fn set_daily_budget(&mut self, ctx: &mut Context<Self>, tokens: u64) {
        if tokens == self.daily.limit {
            return;
        }
        log::info!("daily token budget {} -> {tokens}", self.daily.limit);
        self.daily.limit = tokens;
        self.fill(ctx);
    }

    /// Claims for every free slot (auto-dispatch only).
    fn fill(&mut self, ctx: &mut Context<Self>) {
        if !self.auto_dispatch || self.stopping || self.paused() {
            return;
        }
        let busy = self.running.len() + self.claiming;
        for _ in busy..self.size {
            let claim = self.claim_one().map(|started, act, ctx| {
                if started.is_some() {
                    act.fill(ctx);
                }
            });
            ctx.spawn(claim);
        }
    }

    /// Claims one item and starts its session; resolves to the session, or None when nothing
    /// was claimable (or dispatch is held back).
    fn claim_one(&mut self) -> impl ActorFuture<Self, Output = Option<SessionRecord>> {
        self.claiming += 1;
        let queue = self.queue.clone();
        let limit = self.review_limit;
        let desk = self.settings.desk.clone();
        let daily_limit = self.daily.limit;
        let labels = self.labels.clone();
        let session_id = uuid::Uuid::new_v4().to_string();
        let session_key = format!("{}-{}", self.settings.preset_name(), &session_id[..8]);
        let data_dir = self.settings.data_dir.clone();
        let git_repo = self.settings.git_repo.clone();
        let work = async move {
            if limit > 0 {
                let counts = queue.send(Read(CountByStatus)).await??;
                // Items whose agent waits on a person count as waiting for review.
                let waiting =
                    counts.get(&Status::Review).copied().unwrap_or(0) + desk.items_waiting() as u64;
                if waiting >= limit as u64 {
                    return Ok(ClaimOutcome::Held(format!(
                        "{waiting} items wait in review or on a person (queue.review_limit = {limit}): answer or approve some to resume"
                    )));
                }
            }
            if daily_limit > 0 {
                let day = DailyBudget::today();
                let used = queue.send(Read(TokensOn { day: day.clone() })).await??;
                if used >= daily_limit {
                    return Ok(ClaimOutcome::OverBudget { day, used });
                }
            }
            let claimed = queue
                .send(Claim {
                    agent_id: session_id.clone(),
                    session_key: session_key.clone(),
                    labels,
                })
                .await??;
            let Some(claimed) = claimed else {
                return Ok(ClaimOutcome::Nothing);
            };
            let ws = preparer::prepare(preparer::Preparation {
                data_dir,
                session_id: session_id.clone(),
                item_id: claimed.item.id.clone(),
                previous: claimed.previous_workspace.map(PathBuf::from),
                git_repo,
            })
            .await;
            Ok::<_, DispatchError>(ClaimOutcome::Item {
                ws,
                item: Box::new(claimed.item),
                session_id,
                session_key,
            })
        };
        fut::wrap_future::<_, Self>(work).map(|result, act, ctx| {
            act.claiming -= 1;
            match result {
                Ok(ClaimOutcome::Item {
                    item,
                    ws,
                    session_id,
                    session_key,
                }) => {
                    act.held = None;
                    act.launch(ctx, *item, ws, session_id, session_key)
                }
                Ok(ClaimOutcome::Held(why)) => {
                    if act.held.as_ref() != Some(&why) {
                        log::info!("dispatch held: {why}");
                    }
                    act.held = Some(why);
                    None
                }
                Ok(ClaimOutcome::OverBudget { day, used }) => {
                    act.daily.used = used;
                    // The limit may have been raised while the check was on its way.
                    if !act.daily.spent_by(used) {
                        return None;
                    }
                    let why = act.daily.held_reason();
                    if act.daily.first_exhaustion(&day) {
                        log::warn!("dispatch held: {why}");
                        crate::metrics::budget_exceeded();
                        let data = EventData::BudgetExceeded(BudgetExceeded::Daily {
                            day,
                            used,
                            limit: act.daily.limit,
                        });
                        act.queue.do_send(Announce { data });
                    }
                    act.held = Some(why);
                    None
                }
                Ok(ClaimOutcome::Nothing) => {
                    act.held = None;
                    None
                }
                Err(e) => {
                    log::error!("claim failed: {e}");
                    None
                }
            }
        })
    }

    /// Starts the session actor for a claimed item in its prepared workspace.
    fn launch(
        &mut self,
        ctx: &mut Context<Self>,
        item: crate::model::WorkItem,
        ws: std::io::Result<workspace::Workspace>,
        session_id: String,
        session_key: String,
    ) -> Option<SessionRecord> {
        let settings = self.settings.clone();
        let ws = match ws {
            Ok(ws) => ws,
            Err(e) => {
                log::error!("cannot prepare a workspace for {}: {e}", item.id);
                self.queue.do_send(FailAttempt {
                    id: item.id.clone(),
                    session_key: Some(session_key),
                    reason: format!("workspace could not be prepared: {e}"),
                    verdict: Verdict::Retry,
                    session: None,
                });
                return None;
            }
        };
        let now = Utc::now();
        let record = SessionRecord {
            id: session_id.clone(),
            session_key,
            status: AgentStatus::Working,
            workspace_dir: ws.workspace.display().to_string(),
            data_dir: ws.root.display().to_string(),
            current_work_item_id: Some(item.id.clone()),
            started_at: now,
            last_activity_at: now,
            tokens_used: 0,
            input_tokens: 0,
            output_tokens: 0,
            attempt: item.attempts,
            work_item_id: item.id.clone(),
            finished_at: None,
            outcome: None,
            pid: None,
        };
        let item_id = item.id.clone();
        let session = AgentSession::new(
            record.clone(),
            item,
            ws,
            settings,
            Arc::new(super::reporter::LocalReporter(self.queue.clone())),
            ctx.address().recipient(),
        );
        let addr = session.start();
        crate::metrics::session_started(self.settings.preset_name());
        self.running.insert(session_id, Running { addr, item_id });
        Some(record)
    }

    fn resize(&mut self, ctx: &mut Context<Self>, size: usize) {
        if size == self.size {
            return;
        }
        log::info!("pool size {} -> {size}", self.size);
        self.size = size;
        self.queue.do_send(Announce {
            data: EventData::PoolResized { size },
        });
        self.fill(ctx);
    }

    /// A finished item's worktree goes; its branch stays for people to review and merge.
    fn remove_worktree(&self, ctx: &mut Context<Self>, repo: PathBuf, item_id: String) {
        let sessions = self.queue.send(Read(ListSessions {
            item_id: Some(item_id.clone()),
        }));
        ctx.spawn(fut::wrap_future::<_, Self>(async move {
            let Ok(Ok(sessions)) = sessions.await else {
                return;
            };
            if let Some(latest) = sessions.first() {
                let ws = PathBuf::from(&latest.workspace_dir);
                if ws.exists() {
                    if let Err(e) = workspace::remove_worktree(&repo, &ws) {
                        log::warn!("could not remove the worktree of {item_id}: {e}");
                    }
                }
            }
        }));
    }

    /// Applies an edit of `pool.size` in the config file; a broken edit is logged and ignored.
    fn check_config_file(&mut self, ctx: &mut Context<Self>) {
        let Some(watch) = &mut self.watch else { return };
        let modified = std::fs::metadata(&watch.path)
            .and_then(|m| m.modified())
            .ok();
        if modified == watch.modified {
            return;
        }
        watch.modified = modified;
        let config = match Config::from_file(&watch.path).and_then(|c| c.validate().map(|_| c)) {
            Ok(c) => c,
            Err(e) => {
                log::error!("config edit ignored, keeping pool size {}: {e}", self.size);
                return;
            }
        };
        let daily_changed = config.budgets.daily_tokens != watch.daily_tokens;
        watch.daily_tokens = config.budgets.daily_tokens;
        if config.pool.size != watch.size {
            watch.size = config.pool.size;
            self.resize(ctx, config.pool.size);
        }
        if daily_changed {
            self.set_daily_budget(ctx, config.budgets.daily_tokens);
        }
    }
}

impl AgentSettings {
    fn preset_name(&self) -> &'static str {
        self.preset.as_str()
    }
}

impl Actor for Dispatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(crate::MAILBOX);
        self.monitor.do_send(Subscribe(ctx.address().recipient()));
        ctx.run_interval(TICK, |act, ctx| {
            act.check_config_file(ctx);
            act.refresh_tokens_today(ctx);
            act.fill(ctx);
        });
        self.fill(ctx);
    }
}

impl Handler<Deliver> for Dispatcher {
    type Result = ();

    fn handle(&mut self, m: Deliver, ctx: &mut Context<Self>) {
        let wakes = m.events.iter().any(|e| {
            matches!(
                e.event.kind,
                EventKind::WorkAdded
                    | EventKind::WorkStatusChanged
                    | EventKind::WorkUpdated
                    | EventKind::WorkDeleted
            )
        });
        if wakes && self.claiming == 0 {
            self.fill(ctx);
        }
        self.stop_agents_over_budget(&m);
        if let Some(repo) = self.settings.git_repo.clone() {
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Change {
                item_id: String,
                to: Status,
            }
            let finished: Vec<Change> = m
                .events
                .iter()
                .filter(|e| e.event.kind == EventKind::WorkStatusChanged)
                .filter_map(|e| serde_json::from_str::<Change>(e.event.data.get()).ok())
                .filter(|c| c.to == Status::Done)
                .collect();
            for change in finished {
                self.remove_worktree(ctx, repo.clone(), change.item_id);
            }
        }
    }
}

impl Dispatcher {
    /// An item that reached its token budget is already blocked by the queue: stop its agent.
    fn stop_agents_over_budget(&self, m: &Deliver) {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct ItemOverBudget {
            item_id: String,
            used: u64,
            limit: u64,
        }
        let over = m
            .events
            .iter()
            .filter(|e| e.event.kind == EventKind::BudgetExceeded)
            .filter_map(|e| serde_json::from_str::<ItemOverBudget>(e.event.data.get()).ok());
        for item in over {
            crate::metrics::budget_exceeded();
            for run in self.running.values().filter(|r| r.item_id == item.item_id) {
                run.addr.do_send(Cancel {
                    reason: format!(
                        "token budget reached ({} of {} tokens)",
                        item.used, item.limit
                    ),
                });
            }
        }
    }
}

impl Handler<SetDailyBudget> for Dispatcher {
    type Result = MessageResult<SetDailyBudget>;

    fn handle(&mut self, m: SetDailyBudget, ctx: &mut Context<Self>) -> Self::Result {
        self.set_daily_budget(ctx, m.tokens);
        MessageResult(self.info())
    }
}

impl Handler<GetPool> for Dispatcher {
    type Result = MessageResult<GetPool>;

    fn handle(&mut self, _: GetPool, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.info())
    }
}

impl Handler<Resize> for Dispatcher {
    type Result = MessageResult<Resize>;

    fn handle(&mut self, m: Resize, ctx: &mut Context<Self>) -> Self::Result {
        self.resize(ctx, m.size);
        MessageResult(self.info())
    }
}

impl Handler<DispatchNow> for Dispatcher {
    type Result = ResponseActFuture<Self, Result<Vec<SessionRecord>, DispatchError>>;

    fn handle(&mut self, _: DispatchNow, _: &mut Context<Self>) -> Self::Result {
        if self.stopping {
            return Box::pin(fut::ready(Err(DispatchError::ShuttingDown)));
        }
        if self.pause.take().is_some() {
            crate::metrics::rate_limit_pause_ended(self.settings.preset_name());
            log::info!("dispatch resumes: a person lifted the rate-limit pause");
        }
        if self.running.len() + self.claiming >= self.size {
            return Box::pin(fut::ready(Ok(Vec::new())));
        }
        Box::pin(
            self.claim_one()
                .map(|started, _, _| Ok(started.into_iter().collect())),
        )
    }
}

impl Handler<CancelItem> for Dispatcher {
    type Result = ();

    fn handle(&mut self, m: CancelItem, _: &mut Context<Self>) {
        for run in self.running.values().filter(|r| r.item_id == m.item_id) {
            run.addr.do_send(Cancel {
                reason: m.reason.clone(),
            });
        }
    }
}

impl Handler<CancelSession> for Dispatcher {
    type Result = ResponseFuture<Result<(), DispatchError>>;

    fn handle(&mut self, m: CancelSession, _: &mut Context<Self>) -> Self::Result {
        let Some(run) = self.running.get(&m.session_id) else {
            return Box::pin(async { Err(DispatchError::NotRunning(m.session_id)) });
        };
        run.addr.do_send(Cancel {
            reason: m.reason.clone(),
        });
        let queue = self.queue.clone();
        let item_id = run.item_id.clone();
        Box::pin(async move {
            queue
                .send(MoveItem {
                    id: item_id,
                    status: m.status,
                    reason: Some(m.reason),
                })
                .await??;
            Ok(())
        })
    }
}

impl Handler<SessionEnded> for Dispatcher {
    type Result = ();

    fn handle(&mut self, m: SessionEnded, ctx: &mut Context<Self>) {
        self.running.remove(&m.session_id);
        if let Some(limit) = m.rate_limit {
            self.pause_for(ctx, limit);
        }
        log::debug!("session {} for {} ended", m.session_id, m.item_id);
        if self.running.is_empty() {
            for waiter in self.waiting_for_empty.drain(..) {
                let _ = waiter.send(());
            }
        }
        self.fill(ctx);
    }
}

impl Handler<ShutdownPool> for Dispatcher {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, m: ShutdownPool, _: &mut Context<Self>) -> Self::Result {
        self.stopping = true;
        if self.running.is_empty() {
            return Box::pin(fut::ready(()));
        }
        log::info!(
            "waiting up to {}s for {} running agents to finish",
            m.grace.as_secs(),
            self.running.len()
        );
        let (tx, rx) = futures_channel::oneshot::channel();
        self.waiting_for_empty.push(tx);
        let grace = m.grace;
        let wait = async move {
            let timer = actix_rt::time::sleep(grace);
            futures_util::future::select(rx, Box::pin(timer)).await;
        };
        Box::pin(fut::wrap_future::<_, Self>(wait).then(|_, act, _| {
            let (tx, rx) = futures_channel::oneshot::channel();
            if !act.running.is_empty() {
                log::info!(
                    "stopping {} agents; their items are recovered at the next start",
                    act.running.len()
                );
                for run in act.running.values() {
                    run.addr.do_send(Shutdown);
                }
                act.waiting_for_empty.push(tx);
            } else {
                let _ = tx.send(());
            }
            let deadline = super::session::KILL_GRACE + Duration::from_secs(1);
            fut::wrap_future(async move {
                futures_util::future::select(rx, Box::pin(actix_rt::time::sleep(deadline))).await;
            })
        }))
    }
}
