//! The AgentSession actor: one run of an agent on one claimed item.
//!
//! It writes the scoped AGENTS.md, starts the agent (see `process`), turns each output line
//! into progress through the preset's parser, enforces the wall-clock and idle limits, and
//! when the agent exits collects its artifacts and acceptance report, runs the verify command,
//! and reports the outcome to the QueueManager (complete, or a failed attempt with its
//! [`Verdict`]) and its end to whoever started it (a `Recipient<SessionEnded>`). It never
//! touches the store itself.
//!
//! Where a run stands is one [`Phase`]. A session stops early for a [`Stop`]: a person
//! cancelled, flightdeck shuts down, a limit ran out, or the agent reported a problem that
//! retrying cannot fix now (bad credentials: the item is blocked at once; a rate limit: the
//! item goes back to ready uncounted and dispatch pauses). The agent is stopped as soon as
//! such a problem is reported, without waiting for its own retry loop to give up.
//!
//! The verify command is code the agent may have written, so it runs like the agent: through
//! the launcher, in the same sandbox and the session's process tracking, within the attempt's
//! wall clock (`pool.timeout_secs`), and a cancel or shutdown stops it as it stops the agent.
//! When the session ends, everything it started is killed.

mod people;
mod resume;

use super::artifacts::Declared;
use super::deliverable;
use super::parsers::{parser_for, AgentOutput, OutputParser, Problem, ProblemKind};
use super::presets;
use super::process::{self, ProcessEvent, SessionProcesses, Tracking};
use super::reporter::SessionReporter;
use super::stderr::StderrGate;
use super::verdict::{self, RateLimit};
use super::workspace::Workspace;
use crate::config::Preset;
use crate::model::{
    render_agents_md, thousands, AcceptanceEntry, AgentSession as SessionRecord, AgentStatus,
    ArtifactInput, ArtifactKind, WorkItem,
};
use crate::queue::{Completion, FailAttempt, Verdict};
use actix::prelude::*;
use chrono::Utc;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often buffered output is sent on as progress events.
const PROGRESS_FLUSH: Duration = Duration::from_millis(200);
/// After the agent exits, how long to wait for output still in its pipes (a grandchild may
/// hold them open).
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Most output kept in one session's log file, so a runaway agent cannot fill the disk.
const LOG_LIMIT: u64 = 32 << 20;
/// Most progress messages one flush sends on: the latest lines. Any before them are summed up
/// in one more message ("(12,345 more lines, see the log)"), so an agent printing as fast as
/// it can makes at most `PROGRESS_KEPT + 1` events per flush; the log keeps every line.
const PROGRESS_KEPT: usize = 20;
/// Most output (bytes) read from the agent and not yet handled here. Past it the reader
/// threads wait, and so does the agent's next write: output never queues up without bound.
const OUTPUT_BACKLOG: usize = 1 << 20;
/// Between SIGTERM and SIGKILL when an agent is stopped.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// Everything a session needs to know about how agents run.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    pub preset: Preset,
    /// The argv with placeholders, already resolved from the preset.
    pub command: Vec<String>,
    pub verify: Vec<String>,
    pub timeout: Duration,
    pub idle_timeout: Duration,
    pub data_dir: PathBuf,
    pub git_repo: Option<PathBuf>,
    /// Landlock rules for agents, when the kernel enforces them.
    pub sandbox: Option<crate::sandbox::SandboxPlan>,
    /// This binary, which runs the sandbox wrapper.
    pub exe: PathBuf,
    /// How the processes of each session are tracked.
    pub tracking: Tracking,
    /// ACP presets: which permission requests need a person.
    pub approvals: super::acp::ApprovalsConfig,
    /// ACP presets: where people find the session's requests, and it their messages.
    pub desk: super::acp::Desk,
    /// ACP presets: how long a cancelled agent has to end its turn.
    pub cancel_grace: Duration,
}

// ---- Messages ------------------------------------------------------------------------------

/// Stop the agent (TERM, then KILL); the item is dealt with by whoever asked.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Cancel {
    pub reason: String,
}

/// Stop the agent because flightdeck is shutting down; its item stays in flight and is
/// recovered at the next start.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// The session has ended and its outcome is recorded (sent to whoever started it).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionEnded {
    pub session_id: String,
    pub item_id: String,
    /// The agent hit a rate limit: dispatch for its preset should pause.
    pub rate_limit: Option<RateLimit>,
}

/// What the agent's reader and waiter threads report.
#[derive(Message)]
#[rtype(result = "()")]
struct Output(ProcessEvent);

/// What the verify command's reader and waiter threads report.
#[derive(Message)]
#[rtype(result = "()")]
struct VerifyOutput(ProcessEvent);

/// Result of collecting artifacts and the acceptance report, done off the actor's thread.
#[derive(Message)]
#[rtype(result = "()")]
struct Collected {
    artifacts: Vec<ArtifactInput>,
    acceptance: Option<Vec<AcceptanceEntry>>,
    unmet: Vec<String>,
    /// What was dropped of what the agent handed back, for its log and progress.
    notes: Vec<String>,
}

// ---- State ---------------------------------------------------------------------------------

/// Why a session stops before its agent is done. The first reason wins. A new reason is a
/// variant here and an arm in [`AgentSession::stopped`].
#[derive(Debug, Clone)]
enum Stop {
    /// A person cancelled; whoever asked moves the item.
    Cancelled(String),
    /// flightdeck is shutting down: the item stays in flight, recovered at the next start.
    Shutdown,
    /// A limit ran out (wall clock, silence): an ordinary failed attempt.
    TimedOut(String),
    /// The agent could not log in: the item is blocked at once.
    LoggedOut(String),
    /// The agent hit a rate limit: back to ready, uncounted, and dispatch pauses.
    RateLimited(RateLimit),
}

impl Stop {
    /// The stop a reported problem calls for, if retrying now cannot help.
    fn for_problem(problem: &Problem) -> Option<Stop> {
        match &problem.kind {
            ProblemKind::Auth => Some(Stop::LoggedOut(problem.message.clone())),
            ProblemKind::RateLimit { until } => Some(Stop::RateLimited(RateLimit::new(
                &problem.message,
                *until,
                Utc::now(),
            ))),
            ProblemKind::Other => None,
        }
    }
}

/// A process of the session (the agent, or its verify command) until it is gone: exited and
/// its output read.
struct Child {
    pid: u32,
    exit: Option<std::io::Result<ExitStatus>>,
    open_streams: u8,
    /// Why it is being stopped, once it is.
    stop: Option<Stop>,
}

impl Child {
    fn new(pid: u32) -> Self {
        Child {
            pid,
            exit: None,
            open_streams: 2,
            stop: None,
        }
    }

    fn gone(&self) -> bool {
        self.exit.is_some() && self.open_streams == 0
    }

    fn stream_closed(&mut self) {
        self.open_streams = self.open_streams.saturating_sub(1);
    }
}

/// Where the run stands.
enum Phase {
    /// Writing AGENTS.md and starting the agent.
    Starting,
    /// The agent runs, or its last output is being read.
    Agent(Child),
    /// The agent exited 0: artifacts and the acceptance report are collected off this thread.
    Collecting,
    /// The verify command runs; the collection's findings wait for its outcome.
    Verifying {
        child: Child,
        collected: Collected,
        last_line: String,
    },
    /// The outcome is being reported; nothing else happens.
    Ending,
}

pub struct AgentSession {
    record: SessionRecord,
    item: WorkItem,
    ws: Workspace,
    settings: Arc<AgentSettings>,
    /// Where its reports go: this server's queue, or a runner's server (see `reporter.rs`).
    reports: Arc<dyn SessionReporter>,
    ended: Recipient<SessionEnded>,
    parser: Box<dyn OutputParser>,
    phase: Phase,
    log: Option<File>,
    /// Bytes written to the log so far; past [`LOG_LIMIT`] lines are no longer kept.
    logged: u64,
    pending: Vec<String>,
    /// Lines since the last flush that did not fit in `pending`.
    skipped: u64,
    /// Bytes of output lines read and not yet handled (see [`OUTPUT_BACKLOG`]).
    backlog: Arc<AtomicUsize>,
    /// `tokens_used` as last sent with progress.
    flushed_tokens: u64,
    stderr: StderrGate,
    declared: Declared,
    acceptance: Option<Vec<AcceptanceEntry>>,
    /// The agent's own verdict (success flag and summary), when it gave one.
    reported: Option<(bool, String)>,
    /// The last problem the agent reported, classified by its parser.
    problem: Option<Problem>,
    /// The last thing the agent said that reads as words (no JSON, no stack trace).
    last_words: Option<String>,
    /// The last lines the agent said, for the next attempt's recap (see `recap`).
    said: super::recap::LastWords,
    /// When the agent last showed life: its last line, or the end of a retry wait it announced.
    last_output: Instant,
    started: Instant,
    /// Everything this session started; taken when the session ends.
    processes: Option<SessionProcesses>,
    /// Set when the agent hit a rate limit, for [`SessionEnded`].
    rate_limit: Option<RateLimit>,
    /// ACP presets: the bridge's stdin and the state of its turns (see `people`).
    bridge: Option<people::Bridge>,
    /// The ACP session this attempt resumes (see `resume`).
    resume: Option<String>,
}

impl AgentSession {
    pub fn new(
        record: SessionRecord,
        item: WorkItem,
        ws: Workspace,
        settings: Arc<AgentSettings>,
        reports: Arc<dyn SessionReporter>,
        ended: Recipient<SessionEnded>,
    ) -> Self {
        AgentSession {
            parser: parser_for(settings.preset),
            record,
            item,
            ws,
            settings,
            reports,
            ended,
            phase: Phase::Starting,
            log: None,
            logged: 0,
            pending: Vec::new(),
            skipped: 0,
            backlog: Arc::new(AtomicUsize::new(0)),
            flushed_tokens: 0,
            stderr: StderrGate::default(),
            declared: Declared::default(),
            acceptance: None,
            reported: None,
            problem: None,
            last_words: None,
            said: Default::default(),
            last_output: Instant::now(),
            started: Instant::now(),
            processes: None,
            rate_limit: None,
            bridge: None,
            resume: None,
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        let sandboxed = self.settings.sandbox.is_some();
        let preset = presets::session_env(self.settings.preset, sandboxed, &self.ws.root);
        preset
            .into_iter()
            .chain([
                ("FLIGHTDECK_ITEM_ID".into(), self.item.id.clone()),
                ("FLIGHTDECK_SESSION_ID".into(), self.record.id.clone()),
                (
                    "FLIGHTDECK_WORKSPACE".into(),
                    self.ws.workspace.display().to_string(),
                ),
                (
                    "FLIGHTDECK_ARTIFACTS".into(),
                    self.ws.artifacts.display().to_string(),
                ),
                (
                    "TMPDIR".into(),
                    self.ws.root.join("tmp").display().to_string(),
                ),
            ])
            .collect()
    }

    /// The argv with each placeholder replaced; placeholders are whole arguments, so item
    /// text (only ever in AGENTS.md) never reaches a shell.
    fn argv(&self) -> Vec<String> {
        let argv: Vec<String> = self
            .settings
            .command
            .iter()
            .map(|arg| match arg.as_str() {
                "{prompt_file}" => self.ws.agents_md.display().to_string(),
                "{workspace}" => self.ws.workspace.display().to_string(),
                "{artifacts}" => self.ws.artifacts.display().to_string(),
                "{item_id}" => self.item.id.clone(),
                _ => arg.clone(),
            })
            .collect();
        self.resuming(argv)
    }

    /// Starts `argv` through the launch server: own session, this session's tracking and
    /// sandbox.
    fn spawn(
        &self,
        argv: &[String],
        stdin: bool,
        report: impl Fn(ProcessEvent) + Send + Sync + Clone + 'static,
    ) -> std::io::Result<process::AgentProcess> {
        let Some(processes) = &self.processes else {
            return Err(std::io::Error::other("the session tracks no processes"));
        };
        let plan = self.settings.sandbox.as_ref().map(|plan| {
            let mut plan = plan.clone();
            plan.writable.push(self.ws.root.clone());
            plan
        });
        process::spawn(
            process::Launch {
                exe: &self.settings.exe,
                argv,
                cwd: &self.ws.workspace,
                env: self.env(),
                stdin,
                tracker: processes.tracker(),
                fresh_cgroup: processes.never_killed(),
                sandbox: plan.as_ref(),
            },
            report,
        )
    }

    fn start_agent(&mut self, ctx: &mut Context<Self>) -> std::io::Result<()> {
        std::fs::create_dir_all(self.ws.root.join("tmp"))?;
        presets::prepare_state(self.settings.preset, &self.ws.root)?;
        let agents_md = self.agents_md(render_agents_md(&self.item, self.ws.artifacts.to_str()));
        self.ws
            .write_agents_md(&self.settings.data_dir, &agents_md)?;
        self.log = Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.ws.log)?,
        );
        self.processes = Some(self.settings.tracking.for_session(&self.record.id));
        let argv = self.argv();
        let acp = self.settings.preset.is_acp();
        let child = self.spawn(
            &argv,
            acp,
            forward_output(ctx.address(), self.backlog.clone()),
        )?;
        if let (true, Some(stdin)) = (acp, child.stdin) {
            let mut bridge = people::Bridge::new(stdin, &self.record.id)?;
            if let Some(feedback) = self.feedback_prompt() {
                bridge.after_load(feedback);
            }
            self.bridge = Some(bridge);
            self.settings
                .desk
                .open_session(&self.item.id, ctx.address().recipient());
        }
        self.phase = Phase::Agent(Child::new(child.pid));
        self.record.pid = Some(child.pid);
        log::info!(
            "session {} started {:?} (pid {}) on item {}",
            self.record.id,
            argv.first(),
            child.pid,
            self.item.id
        );
        Ok(())
    }

    /// One line of the agent's output: into the log, through the parser, and (stdout, or
    /// stderr within its [`StderrGate`]) into progress. Once the agent is no longer the
    /// phase (late output of a grandchild), lines are only logged.
    fn on_line(&mut self, ctx: &mut Context<Self>, line: String, stderr: bool) {
        self.backlog.fetch_sub(line.len(), Ordering::AcqRel);
        self.last_output = Instant::now();
        self.keep_in_log(&line);
        if !matches!(self.phase, Phase::Agent(_)) {
            return;
        }
        let mut stop = None;
        for out in self.parser.parse_line(&line) {
            match out {
                AgentOutput::Progress(msg) => {
                    if let Some(words) = verdict::words(&msg) {
                        self.said.push(&words);
                        self.last_words = Some(words);
                    }
                    let shown = if stderr {
                        self.stderr.admit(msg)
                    } else {
                        Some(msg)
                    };
                    if let Some(msg) = shown {
                        if self.pending.len() == PROGRESS_KEPT {
                            self.pending.remove(0);
                            self.skipped += 1;
                        }
                        self.pending.push(msg);
                    }
                }
                AgentOutput::Tokens { input, output } => super::budget::count_tokens(
                    &mut self.record,
                    self.settings.preset,
                    input,
                    output,
                ),
                AgentOutput::Artifact(a) => {
                    if let Some(note) = self.declared.offer(a) {
                        self.note(&note);
                    }
                }
                AgentOutput::Acceptance(report) => self.acceptance = Some(report),
                AgentOutput::Finished { success, summary } => {
                    self.reported = Some((success, summary))
                }
                AgentOutput::Problem(problem) => {
                    self.pending.push(problem.message.clone());
                    stop = stop.or_else(|| Stop::for_problem(&problem));
                    self.problem = Some(problem);
                }
                AgentOutput::Retrying(wait) => {
                    self.last_output = self.last_output.max(Instant::now() + wait)
                }
                AgentOutput::Acp(report) => self.on_acp(ctx, report),
            }
        }
        if let Some(stop) = stop {
            self.flush_progress();
            self.terminate(ctx, stop);
        }
    }

    /// Appends a line to the session's log, up to [`LOG_LIMIT`].
    fn keep_in_log(&mut self, line: &str) {
        if let (Some(log), true) = (&mut self.log, self.logged < LOG_LIMIT) {
            let written = if self.logged + line.len() as u64 >= LOG_LIMIT {
                let marker = "[flightdeck: log limit reached; further output is not kept]";
                writeln!(log, "{marker}")
            } else {
                writeln!(log, "{line}")
            };
            self.logged += line.len() as u64 + 1;
            if let Err(e) = written {
                log::warn!("session {}: cannot write its log: {e}", self.record.id);
            }
        }
    }

    /// A line of flightdeck's own in the session's log, kept even past its limit.
    fn note(&mut self, text: &str) {
        if let Some(log) = &mut self.log {
            if let Err(e) = writeln!(log, "[flightdeck: {text}]") {
                log::warn!("session {}: cannot write its log: {e}", self.record.id);
            }
        }
    }

    fn flush_progress(&mut self) {
        if self.pending.is_empty()
            && self.skipped == 0
            && self.record.tokens_used == self.flushed_tokens
        {
            return;
        }
        self.flushed_tokens = self.record.tokens_used;
        let mut messages = Vec::with_capacity(self.pending.len() + 1);
        if self.skipped > 0 {
            messages.push(format!(
                "({} more lines, see the log)",
                thousands(std::mem::take(&mut self.skipped))
            ));
        }
        messages.append(&mut self.pending);
        self.reports.progress(
            &self.item.id,
            &self.record.id,
            messages,
            super::budget::usage(&self.record),
        );
    }

    /// Stops the session for `stop`: the running process is asked to stop (TERM, then KILL
    /// after [`KILL_GRACE`]), and the session ends once it is gone. The first stop wins.
    fn terminate(&mut self, ctx: &mut Context<Self>, stop: Stop) {
        let child = match &mut self.phase {
            Phase::Agent(child) | Phase::Verifying { child, .. } => child,
            Phase::Collecting => {
                // The collection thread's result is ignored once the session has ended.
                self.phase = Phase::Ending;
                return self.stopped(ctx, stop);
            }
            Phase::Starting | Phase::Ending => return,
        };
        if child.stop.is_some() {
            return;
        }
        child.stop = Some(stop);
        if child.exit.is_some() {
            return self.maybe_finish(ctx);
        }
        let pid = child.pid;
        if matches!(self.phase, Phase::Agent(_)) {
            let grace = self.cancel_turn();
            if !grace.is_zero() {
                ctx.run_later(grace, move |act, ctx| act.signal_stop(ctx, pid));
                return;
            }
        }
        self.signal_stop(ctx, pid);
    }

    /// Asks `pid` (still running) to stop, and kills it after [`KILL_GRACE`].
    fn signal_stop(&mut self, ctx: &mut Context<Self>, pid: u32) {
        if self.running() != Some(pid) {
            return;
        }
        if let Some(processes) = &self.processes {
            processes.terminate(pid);
        }
        ctx.run_later(KILL_GRACE, move |act, _| {
            if act.running() == Some(pid) {
                if let Some(processes) = &act.processes {
                    processes.kill(Some(pid));
                }
            }
        });
    }

    /// The process of this session that has not exited yet: the agent, or the verify command.
    fn running(&self) -> Option<u32> {
        match &self.phase {
            Phase::Agent(child) | Phase::Verifying { child, .. } => {
                child.exit.is_none().then_some(child.pid)
            }
            _ => None,
        }
    }

    /// Moves on once the running process is gone (exited, output read).
    fn maybe_finish(&mut self, ctx: &mut Context<Self>) {
        match &self.phase {
            Phase::Agent(child) if child.gone() => self.agent_gone(ctx),
            Phase::Verifying { child, .. } if child.gone() => self.verify_gone(ctx),
            _ => {}
        }
    }

    /// The agent is gone: decide what its run came to.
    fn agent_gone(&mut self, ctx: &mut Context<Self>) {
        let Phase::Agent(child) = std::mem::replace(&mut self.phase, Phase::Ending) else {
            return;
        };
        self.flush_progress();
        // Whatever happens next, nothing the agent started outlives it.
        if let Some(processes) = &self.processes {
            processes.kill(None);
        }
        if let Some(stop) = child.stop {
            return self.stopped(ctx, stop);
        }
        match child.exit {
            Some(Ok(status)) if status.success() => match self.reported.clone() {
                Some((false, summary)) => {
                    let said = verdict::words(&summary)
                        .map(|s| format!(": {s}"))
                        .unwrap_or_default();
                    self.fail(
                        ctx,
                        Verdict::Retry,
                        format!("the agent reported failure{said}"),
                    )
                }
                _ => self.collect(ctx),
            },
            Some(Ok(status)) => {
                let reason = self.exit_reason(status);
                self.fail(ctx, Verdict::Retry, reason)
            }
            Some(Err(e)) => self.fail(
                ctx,
                Verdict::Retry,
                format!("waiting for the agent failed: {e}"),
            ),
            None => self.fail(
                ctx,
                Verdict::Retry,
                "the agent ended without an exit status".into(),
            ),
        }
    }

    /// Why a failed exit failed, in words: the problem the agent reported, else its own
    /// summary, else the last thing it said that reads as words, else a pointer to the log.
    fn exit_reason(&self, status: ExitStatus) -> String {
        let how = match status.code() {
            Some(code) => format!("exited with code {code}"),
            None => format!("was killed ({status})"),
        };
        let told = self
            .problem
            .as_ref()
            .map(|p| p.message.as_str())
            .or(self.reported.as_ref().map(|(_, summary)| summary.as_str()))
            .and_then(verdict::words);
        match (told, &self.last_words) {
            (Some(told), _) => format!("the agent {how}: {told}"),
            (None, Some(words)) => format!("the agent {how}; last output: {words}"),
            (None, None) => format!("the agent {how}; its output is in the item's log"),
        }
    }

    /// Ends the session the way `stop` asks.
    fn stopped(&mut self, ctx: &mut Context<Self>, stop: Stop) {
        match stop {
            Stop::Cancelled(reason) => self.end(
                ctx,
                AgentStatus::Failed,
                format!("cancelled: {reason}"),
                false,
            ),
            Stop::Shutdown => self.end(
                ctx,
                AgentStatus::Failed,
                "interrupted: flightdeck is shutting down".into(),
                false,
            ),
            Stop::TimedOut(reason) => self.fail(ctx, Verdict::Retry, reason),
            Stop::LoggedOut(message) => {
                let reason = verdict::login_reason(self.settings.preset, &message);
                self.fail(ctx, Verdict::Block, reason)
            }
            Stop::RateLimited(limit) => {
                let reason = limit.item_reason();
                let not_before = Some(limit.until);
                self.rate_limit = Some(limit);
                self.fail(ctx, Verdict::Requeue { not_before }, reason)
            }
        }
    }

    /// Records the attempt's end with the queue, then ends the session.
    fn fail(&mut self, ctx: &mut Context<Self>, verdict: Verdict, reason: String) {
        self.phase = Phase::Ending;
        log::info!(
            "session {}: attempt ended ({verdict:?}): {reason}",
            self.record.id
        );
        self.reports
            .fail(FailAttempt {
                id: self.item.id.clone(),
                session_key: Some(self.record.session_key.clone()),
                reason: reason.clone(),
                verdict,
                session: Some(self.record.clone()),
            })
            .into_actor(self)
            .then(move |result, act, ctx| {
                let recorded = match result {
                    Ok(()) => true,
                    Err(e) => {
                        log::warn!("session {}: failure not recorded: {e}", act.record.id);
                        false
                    }
                };
                act.end(ctx, AgentStatus::Failed, reason, recorded);
                fut::ready(())
            })
            .wait(ctx);
    }

    /// Exit 0: gather artifacts and the acceptance report off this thread; then verify.
    fn collect(&mut self, ctx: &mut Context<Self>) {
        self.phase = Phase::Collecting;
        let addr = ctx.address();
        let settings = self.settings.clone();
        let ws = self.ws.clone();
        let declared = std::mem::take(&mut self.declared);
        let reported = self.acceptance.take();
        let has_link = self
            .item
            .artifacts
            .iter()
            .any(|a| a.kind == ArtifactKind::Link && Some(&a.path) == ws.branch.as_ref());
        let branch = match (&ws.branch, has_link) {
            (Some(branch), false) => Some(ArtifactInput {
                kind: ArtifactKind::Link,
                path: branch.clone(),
                description: "git branch with the agent's work".into(),
            }),
            _ => None,
        };
        let attempt = deliverable::Attempt::of(&self.item, self.record.attempt);
        let spawned = std::thread::Builder::new()
            .name("agent-collect".into())
            .spawn(move || {
                let handed =
                    deliverable::collect(&settings, &ws, &attempt, declared, reported, branch);
                addr.do_send(Collected {
                    artifacts: handed.artifacts,
                    acceptance: handed.acceptance,
                    unmet: handed.unmet,
                    notes: handed.notes,
                });
            });
        if let Err(e) = spawned {
            self.fail(
                ctx,
                Verdict::Retry,
                format!("cannot collect artifacts: {e}"),
            );
        }
    }

    /// Runs the verify command like the agent (launcher, sandbox, tracking); its outcome
    /// joins what the collection found.
    fn start_verify(&mut self, ctx: &mut Context<Self>, mut collected: Collected) {
        let argv = self.settings.verify.clone();
        let started = format!("--- verify command: {} ---", self.settings.verify.join(" "));
        self.keep_in_log(&started);
        let addr = ctx.address();
        let child = self.spawn(&argv, false, move |event| addr.do_send(VerifyOutput(event)));
        match child {
            Ok(child) => {
                self.phase = Phase::Verifying {
                    child: Child::new(child.pid),
                    collected,
                    last_line: String::new(),
                }
            }
            Err(e) => {
                collected
                    .unmet
                    .push(format!("the verify command could not start: {e}"));
                self.complete(ctx, collected);
            }
        }
    }

    /// The verify command is gone (and its output read): kill what it left, then complete
    /// the item, or end the way a stop asked.
    fn verify_gone(&mut self, ctx: &mut Context<Self>) {
        let Phase::Verifying {
            child,
            mut collected,
            last_line,
        } = std::mem::replace(&mut self.phase, Phase::Ending)
        else {
            return;
        };
        if let Some(processes) = &self.processes {
            processes.kill(None);
        }
        if let Some(stop) = child.stop {
            return self.stopped(ctx, stop);
        }
        match child.exit {
            Some(Ok(status)) if status.success() => {}
            Some(Ok(status)) => collected.unmet.push(format!(
                "verify command failed ({status}): {}",
                verdict::words(&last_line)
                    .unwrap_or_else(|| "its output is in the item's log".into())
            )),
            Some(Err(e)) => collected
                .unmet
                .push(format!("waiting for the verify command failed: {e}")),
            None => {}
        }
        self.complete(ctx, collected);
    }

    /// Records how the session ended (unless the queue already did, with the item's outcome)
    /// and tells whoever started it that its slot is free.
    fn end(
        &mut self,
        ctx: &mut Context<Self>,
        status: AgentStatus,
        outcome: String,
        recorded: bool,
    ) {
        self.phase = Phase::Ending;
        self.keep_recap(&outcome);
        self.close_desk();
        let now = Utc::now();
        self.record.status = status;
        self.record.outcome = Some(outcome.clone());
        self.record.finished_at = Some(now);
        self.record.last_activity_at = now;
        self.record.current_work_item_id = None;
        if let Some(processes) = self.processes.take() {
            processes.release();
        }
        if !recorded {
            self.reports.changed(self.record.clone(), Some(outcome));
        }
        self.ended.do_send(SessionEnded {
            session_id: self.record.id.clone(),
            item_id: self.item.id.clone(),
            rate_limit: self.rate_limit.take(),
        });
        log::info!(
            "session {} ended after {:.1}s: {:?}",
            self.record.id,
            self.started.elapsed().as_secs_f64(),
            self.record.outcome
        );
        ctx.stop();
    }

    /// Reports the finished work to the queue, then ends the session.
    fn complete(&mut self, ctx: &mut Context<Self>, m: Collected) {
        self.phase = Phase::Ending;
        let work = Completion {
            artifacts: m.artifacts,
            acceptance: m.acceptance,
            summary: self.reported.as_ref().map(|(_, summary)| summary.clone()),
            session_key: Some(self.record.session_key.clone()),
            unmet: m.unmet,
            session: Some(self.record.clone()),
        };
        self.reports
            .complete(&self.item.id, work)
            .into_actor(self)
            .then(|result, act, ctx| {
                match result {
                    Ok(outcome) if outcome.accepted => act.end(
                        ctx,
                        AgentStatus::Completed,
                        format!("completed: item moved to {}", outcome.item.status),
                        true,
                    ),
                    Ok(outcome) => act.end(
                        ctx,
                        AgentStatus::Failed,
                        format!("acceptance not met: {}", outcome.unmet.join("; ")),
                        true,
                    ),
                    Err(e) => act.end(
                        ctx,
                        AgentStatus::Failed,
                        format!("could not complete: {e}"),
                        false,
                    ),
                }
                fut::ready(())
            })
            .wait(ctx);
    }
}

impl Actor for AgentSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(crate::MAILBOX);
        if let Err(e) = self.start_agent(ctx) {
            self.record.status = AgentStatus::Failed;
            self.reports.started(self.record.clone());
            self.fail(
                ctx,
                Verdict::Retry,
                format!("the agent could not start: {e}"),
            );
            return;
        }
        self.reports.started(self.record.clone());
        ctx.run_interval(PROGRESS_FLUSH, |act, _| act.flush_progress());
        let timeout = self.settings.timeout;
        ctx.run_later(timeout, move |act, ctx| {
            let reason = format!("timed out after {}s (pool.timeout_secs)", timeout.as_secs());
            act.terminate(ctx, Stop::TimedOut(reason));
        });
        let idle = self.settings.idle_timeout;
        ctx.run_interval(Duration::from_millis(500), move |act, ctx| {
            let silent_agent = matches!(
                &act.phase,
                Phase::Agent(child) if child.stop.is_none() && child.exit.is_none()
            );
            // An agent waiting for a person's answer is not stalled: approvals.timeout_secs
            // bounds that wait, and the idle clock starts again once it is answered.
            if silent_agent && !act.waits_on_person() && act.last_output.elapsed() > idle {
                let after = act
                    .problem
                    .as_ref()
                    .and_then(|p| verdict::words(&p.message))
                    .map(|p| format!(", after this problem: {p}"))
                    .unwrap_or_default();
                let reason = format!(
                    "stalled: no output for {}s (pool.idle_timeout_secs){after}",
                    idle.as_secs()
                );
                act.terminate(ctx, Stop::TimedOut(reason));
            }
        });
    }
}

impl Handler<Output> for AgentSession {
    type Result = ();

    fn handle(&mut self, Output(event): Output, ctx: &mut Context<Self>) {
        match event {
            ProcessEvent::Line(line) => self.on_line(ctx, line, false),
            ProcessEvent::ErrLine(line) => self.on_line(ctx, line, true),
            ProcessEvent::StreamClosed => {
                if let Phase::Agent(child) = &mut self.phase {
                    child.stream_closed();
                }
                self.maybe_finish(ctx);
            }
            ProcessEvent::Exited(status) => {
                if let Phase::Agent(child) = &mut self.phase {
                    child.exit = Some(status);
                }
                self.maybe_finish(ctx);
                ctx.run_later(DRAIN_GRACE, |act, ctx| {
                    if let Phase::Agent(child) = &mut act.phase {
                        child.open_streams = 0;
                    }
                    act.maybe_finish(ctx);
                });
            }
        }
    }
}

impl Handler<Collected> for AgentSession {
    type Result = ();

    fn handle(&mut self, m: Collected, ctx: &mut Context<Self>) {
        if !matches!(self.phase, Phase::Collecting) {
            // Stopped while collecting: the session has already ended.
            return;
        }
        for note in &m.notes {
            self.note(note);
            self.pending.push(format!("flightdeck: {note}"));
        }
        self.flush_progress();
        if self.settings.verify.is_empty() {
            self.complete(ctx, m);
        } else {
            self.start_verify(ctx, m);
        }
    }
}

impl Handler<VerifyOutput> for AgentSession {
    type Result = ();

    fn handle(&mut self, VerifyOutput(event): VerifyOutput, ctx: &mut Context<Self>) {
        let Phase::Verifying {
            child, last_line, ..
        } = &mut self.phase
        else {
            return;
        };
        match event {
            ProcessEvent::Line(line) | ProcessEvent::ErrLine(line) => {
                if !line.trim().is_empty() {
                    *last_line = line.chars().take(300).collect();
                }
                self.keep_in_log(&line);
            }
            ProcessEvent::StreamClosed => {
                child.stream_closed();
                self.maybe_finish(ctx);
            }
            ProcessEvent::Exited(status) => {
                child.exit = Some(status);
                self.maybe_finish(ctx);
                ctx.run_later(DRAIN_GRACE, |act, ctx| {
                    if let Phase::Verifying { child, .. } = &mut act.phase {
                        child.open_streams = 0;
                    }
                    act.maybe_finish(ctx);
                });
            }
        }
    }
}

impl Handler<Cancel> for AgentSession {
    type Result = ();

    fn handle(&mut self, m: Cancel, ctx: &mut Context<Self>) {
        self.terminate(ctx, Stop::Cancelled(m.reason));
    }
}

impl Handler<Shutdown> for AgentSession {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        self.terminate(ctx, Stop::Shutdown);
    }
}

/// Hands the agent's output to its session, one line at a time, waiting while more than
/// [`OUTPUT_BACKLOG`] bytes of it are not yet handled, so a flood of output slows the agent down
/// instead of filling the session's mailbox.
fn forward_output(
    addr: Addr<AgentSession>,
    backlog: Arc<AtomicUsize>,
) -> impl Fn(ProcessEvent) + Send + Sync + Clone + 'static {
    move |event| {
        if let ProcessEvent::Line(line) | ProcessEvent::ErrLine(line) = &event {
            while backlog.load(Ordering::Acquire) > OUTPUT_BACKLOG && addr.connected() {
                std::thread::sleep(Duration::from_millis(2));
            }
            backlog.fetch_add(line.len(), Ordering::AcqRel);
        }
        addr.do_send(Output(event));
    }
}
