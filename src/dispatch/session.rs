//! The AgentSession actor: one run of an agent on one claimed item.
//!
//! It writes the scoped AGENTS.md, starts the agent (see `process`), turns each output line
//! into progress through the preset's parser, enforces the wall-clock and idle limits, and
//! when the agent exits collects its artifacts and acceptance report, runs the verify command,
//! and reports the outcome to the QueueManager (complete, or a failed attempt) and to the
//! Dispatcher. It never touches the store itself.
//!
//! The verify command is code the agent may have written, so it runs like the agent: through
//! the launcher, in the same sandbox and the session's process tracking, within the attempt's
//! wall clock (`pool.timeout_secs`), and a cancel or shutdown stops it as it stops the agent.
//! When the session ends, everything it started is killed.

use super::artifacts::{self, Declared};
use super::dispatcher::{Dispatcher, SessionEnded};
use super::launcher;
use super::parsers::{parser_for, AgentOutput, OutputParser, Problem};
use super::presets;
use super::process::{self, ProcessEvent, SessionProcesses, Tracking};
use super::workspace::Workspace;
use crate::config::Preset;
use crate::model::{
    render_agents_md, AcceptanceEntry, AgentSession as SessionRecord, AgentStatus, ArtifactInput,
    ArtifactKind, WorkItem,
};
use crate::queue::{
    Complete, Completion, FailAttempt, Progress, QueueManager, SessionChanged, SessionStarted,
};
use actix::prelude::*;
use chrono::Utc;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often buffered output is sent on as progress events.
const PROGRESS_FLUSH: Duration = Duration::from_millis(200);
/// After the agent exits, how long to wait for output still in its pipes (a grandchild may
/// hold them open).
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Most output kept in one session's log file, so a runaway agent cannot fill the disk.
const LOG_LIMIT: u64 = 32 << 20;
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
}

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

/// The verify command while it runs, and what the collection found before it.
struct Verifying {
    pid: u32,
    collected: Collected,
    exit: Option<std::io::Result<std::process::ExitStatus>>,
    open_streams: u8,
    last_line: String,
}

#[derive(Debug, Clone)]
enum Stop {
    Cancelled(String),
    TimedOut(String),
    Shutdown,
}

pub struct AgentSession {
    record: SessionRecord,
    item: WorkItem,
    ws: Workspace,
    settings: Arc<AgentSettings>,
    queue: Addr<QueueManager>,
    dispatcher: Addr<Dispatcher>,
    parser: Box<dyn OutputParser>,
    log: Option<File>,
    /// Bytes written to the log so far; past [`LOG_LIMIT`] lines are no longer kept.
    logged: u64,
    pending: Vec<String>,
    declared: Declared,
    acceptance: Option<Vec<AcceptanceEntry>>,
    verdict: Option<(bool, String)>,
    /// The last problem the agent reported, classified by its parser.
    problem: Option<Problem>,
    last_line: String,
    last_output: Instant,
    started: Instant,
    pid: Option<u32>,
    exit: Option<std::io::Result<std::process::ExitStatus>>,
    open_streams: u8,
    stop: Option<Stop>,
    finishing: bool,
    /// Everything this session started; taken when the session ends.
    processes: Option<SessionProcesses>,
    /// Artifacts and the acceptance report are being collected off the actor's thread.
    collecting: bool,
    verifying: Option<Verifying>,
}

impl AgentSession {
    pub fn new(
        record: SessionRecord,
        item: WorkItem,
        ws: Workspace,
        settings: Arc<AgentSettings>,
        queue: Addr<QueueManager>,
        dispatcher: Addr<Dispatcher>,
    ) -> Self {
        AgentSession {
            parser: parser_for(settings.preset),
            record,
            item,
            ws,
            settings,
            queue,
            dispatcher,
            log: None,
            logged: 0,
            pending: Vec::new(),
            declared: Declared::default(),
            acceptance: None,
            verdict: None,
            problem: None,
            last_line: String::new(),
            last_output: Instant::now(),
            started: Instant::now(),
            pid: None,
            exit: None,
            open_streams: 2,
            stop: None,
            finishing: false,
            processes: None,
            collecting: false,
            verifying: None,
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
    fn argv(&self, processes: &SessionProcesses) -> Vec<String> {
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
        self.launched(processes, &argv)
    }

    /// `argv` run through the launcher: own session, this session's tracking and sandbox.
    fn launched(&self, processes: &SessionProcesses, argv: &[String]) -> Vec<String> {
        let plan = self.settings.sandbox.as_ref().map(|plan| {
            let mut plan = plan.clone();
            plan.writable.push(self.ws.root.clone());
            plan
        });
        launcher::argv_for(
            &self.settings.exe,
            std::process::id(),
            processes.tracker(),
            plan.as_ref(),
            argv,
        )
    }

    fn start_agent(&mut self, ctx: &mut Context<Self>) -> std::io::Result<()> {
        std::fs::create_dir_all(self.ws.root.join("tmp"))?;
        presets::prepare_state(self.settings.preset, &self.ws.root)?;
        self.ws.write_agents_md(
            &self.settings.data_dir,
            &render_agents_md(&self.item, self.ws.artifacts.to_str()),
        )?;
        self.log = Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.ws.log)?,
        );
        let addr = ctx.address();
        let processes = self.settings.tracking.for_session(&self.record.id);
        let argv = self.argv(&processes);
        self.processes = Some(processes);
        let child = process::spawn(
            process::Launch {
                argv: &argv,
                cwd: &self.ws.workspace,
                env: self.env(),
            },
            move |event| addr.do_send(Output(event)),
        )?;
        self.pid = Some(child.pid);
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

    fn on_line(&mut self, line: String) {
        self.last_output = Instant::now();
        self.keep_in_log(&line);
        for out in self.parser.parse_line(&line) {
            match out {
                AgentOutput::Progress(msg) => self.pending.push(msg),
                AgentOutput::Tokens { input, output } => {
                    self.record.tokens_used = self
                        .record
                        .tokens_used
                        .saturating_add(input)
                        .saturating_add(output);
                }
                AgentOutput::Artifact(a) => {
                    if let Some(note) = self.declared.offer(a) {
                        self.note(&note);
                    }
                }
                AgentOutput::Acceptance(report) => self.acceptance = Some(report),
                AgentOutput::Finished { success, summary } => {
                    self.verdict = Some((success, summary))
                }
                AgentOutput::Problem(problem) => {
                    self.pending.push(problem.message.clone());
                    self.problem = Some(problem);
                }
            }
        }
        if !line.trim().is_empty() {
            self.last_line = line.chars().take(300).collect();
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
        if self.pending.is_empty() {
            return;
        }
        self.queue.do_send(Progress {
            item_id: self.item.id.clone(),
            session_id: self.record.id.clone(),
            messages: std::mem::take(&mut self.pending),
            tokens_used: self.record.tokens_used,
        });
    }

    fn terminate(&mut self, ctx: &mut Context<Self>, stop: Stop) {
        if self.stop.is_none() {
            self.stop = Some(stop);
        }
        if self.collecting {
            // The collection thread's result is ignored once the session has ended.
            self.collecting = false;
            if let Some(stop) = self.stop.clone() {
                self.stopped(ctx, stop);
            }
            return;
        }
        match (self.running(), &self.processes) {
            (Some(pid), Some(processes)) => {
                processes.terminate(pid);
                ctx.run_later(KILL_GRACE, |act, _| {
                    if let (Some(pid), Some(processes)) = (act.running(), &act.processes) {
                        processes.kill(Some(pid));
                    }
                });
            }
            _ => self.maybe_finish(ctx),
        }
    }

    /// The process of this session that has not exited yet: the verify command while it
    /// runs, otherwise the agent.
    fn running(&self) -> Option<u32> {
        match &self.verifying {
            Some(verify) => verify.exit.is_none().then_some(verify.pid),
            None => self.pid.filter(|_| self.running_agent()),
        }
    }

    /// The agent has not exited yet (silence counts against it only then).
    fn running_agent(&self) -> bool {
        !self.finishing && self.exit.is_none()
    }

    fn maybe_finish(&mut self, ctx: &mut Context<Self>) {
        if self.finishing || self.exit.is_none() || self.open_streams > 0 {
            return;
        }
        self.finish(ctx);
    }

    /// The agent is gone: decide what its run came to.
    fn finish(&mut self, ctx: &mut Context<Self>) {
        if self.finishing {
            return;
        }
        self.finishing = true;
        self.flush_progress();
        // Whatever happens next, nothing the agent started outlives it.
        if let Some(processes) = &self.processes {
            processes.kill(None);
        }
        let exit = match self.exit.take() {
            Some(Ok(status)) => Some(status),
            Some(Err(e)) => {
                self.last_line = format!("waiting for the agent failed: {e}");
                None
            }
            None => None,
        };
        match self.stop.clone() {
            Some(stop) => self.stopped(ctx, stop),
            None => match exit {
                Some(status) if status.success() => match self.verdict.clone() {
                    Some((false, summary)) => {
                        self.fail(ctx, format!("the agent reported failure: {summary}"))
                    }
                    _ => self.collect(ctx),
                },
                Some(status) => {
                    let how = match status.code() {
                        Some(code) => format!("exited with code {code}"),
                        None => format!("was killed ({status})"),
                    };
                    let last = if let Some(problem) = &self.problem {
                        format!(": {}", problem.message)
                    } else if self.last_line.is_empty() {
                        String::new()
                    } else {
                        format!("; last output: {}", self.last_line)
                    };
                    self.fail(ctx, format!("the agent {how}{last}"));
                }
                None => {
                    let reason = self.last_line.clone();
                    self.fail(ctx, reason)
                }
            },
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
            Stop::TimedOut(reason) => self.fail(ctx, reason),
        }
    }

    fn fail(&mut self, ctx: &mut Context<Self>, reason: String) {
        log::info!("session {}: attempt failed: {reason}", self.record.id);
        self.queue
            .send(FailAttempt {
                id: self.item.id.clone(),
                session_key: Some(self.record.session_key.clone()),
                reason: reason.clone(),
                session: Some(self.record.clone()),
            })
            .into_actor(self)
            .then(move |result, act, ctx| {
                let recorded = match result {
                    Ok(Ok(_)) => true,
                    Ok(Err(e)) => {
                        log::warn!("session {}: failure not recorded: {e}", act.record.id);
                        false
                    }
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
        self.collecting = true;
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
        let spawned = std::thread::Builder::new()
            .name("agent-collect".into())
            .spawn(move || {
                let handed = artifacts::collect(
                    &settings.data_dir,
                    &ws.session_id,
                    &ws.artifacts,
                    declared,
                    reported,
                    branch,
                );
                addr.do_send(Collected {
                    artifacts: handed.artifacts,
                    acceptance: handed.acceptance,
                    unmet: handed.unmet,
                    notes: handed.notes,
                });
            });
        if let Err(e) = spawned {
            self.collecting = false;
            self.fail(ctx, format!("cannot collect artifacts: {e}"));
        }
    }

    /// Runs the verify command like the agent (launcher, sandbox, tracking); its outcome
    /// joins what the collection found.
    fn start_verify(&mut self, ctx: &mut Context<Self>, mut collected: Collected) {
        let Some(processes) = &self.processes else {
            collected
                .unmet
                .push("the verify command could not start: the session tracks no processes".into());
            return self.complete(ctx, collected);
        };
        let argv = self.launched(processes, &self.settings.verify);
        let started = format!("--- verify command: {} ---", self.settings.verify.join(" "));
        self.keep_in_log(&started);
        let addr = ctx.address();
        let child = process::spawn(
            process::Launch {
                argv: &argv,
                cwd: &self.ws.workspace,
                env: self.env(),
            },
            move |event| addr.do_send(VerifyOutput(event)),
        );
        match child {
            Ok(child) => {
                self.verifying = Some(Verifying {
                    pid: child.pid,
                    collected,
                    exit: None,
                    open_streams: 2,
                    last_line: String::new(),
                })
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
    fn maybe_finish_verify(&mut self, ctx: &mut Context<Self>) {
        if !self
            .verifying
            .as_ref()
            .is_some_and(|v| v.exit.is_some() && v.open_streams == 0)
        {
            return;
        }
        let Some(verify) = self.verifying.take() else {
            return;
        };
        if let Some(processes) = &self.processes {
            processes.kill(None);
        }
        if let Some(stop) = self.stop.clone() {
            return self.stopped(ctx, stop);
        }
        let mut collected = verify.collected;
        match verify.exit {
            Some(Ok(status)) if status.success() => {}
            Some(Ok(status)) => collected.unmet.push(format!(
                "verify command failed ({status}): {}",
                verify.last_line.trim()
            )),
            Some(Err(e)) => collected
                .unmet
                .push(format!("waiting for the verify command failed: {e}")),
            None => {}
        }
        self.complete(ctx, collected);
    }

    /// Records how the session ended (unless the queue already did, with the item's outcome)
    /// and tells the Dispatcher its slot is free.
    fn end(
        &mut self,
        ctx: &mut Context<Self>,
        status: AgentStatus,
        outcome: String,
        recorded: bool,
    ) {
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
            self.queue.do_send(SessionChanged {
                session: self.record.clone(),
                reason: Some(outcome),
            });
        }
        self.dispatcher.do_send(SessionEnded {
            session_id: self.record.id.clone(),
            item_id: self.item.id.clone(),
        });
        log::info!(
            "session {} ended after {:.1}s: {:?}",
            self.record.id,
            self.started.elapsed().as_secs_f64(),
            self.record.outcome
        );
        ctx.stop();
    }
}

impl Actor for AgentSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(crate::MAILBOX);
        if let Err(e) = self.start_agent(ctx) {
            self.record.status = AgentStatus::Failed;
            self.queue.do_send(SessionStarted(self.record.clone()));
            self.exit = None;
            self.finishing = true;
            self.fail(ctx, format!("the agent could not start: {e}"));
            return;
        }
        self.queue.do_send(SessionStarted(self.record.clone()));
        ctx.run_interval(PROGRESS_FLUSH, |act, _| act.flush_progress());
        let timeout = self.settings.timeout;
        ctx.run_later(timeout, move |act, ctx| {
            let reason = format!("timed out after {}s (pool.timeout_secs)", timeout.as_secs());
            act.terminate(ctx, Stop::TimedOut(reason));
        });
        let idle = self.settings.idle_timeout;
        ctx.run_interval(Duration::from_millis(500), move |act, ctx| {
            if act.stop.is_none() && act.running_agent() && act.last_output.elapsed() > idle {
                let reason = format!(
                    "stalled: no output for {}s (pool.idle_timeout_secs)",
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
            ProcessEvent::Line(line) => self.on_line(line),
            ProcessEvent::StreamClosed => {
                self.open_streams = self.open_streams.saturating_sub(1);
                self.maybe_finish(ctx);
            }
            ProcessEvent::Exited(status) => {
                self.exit = Some(status);
                self.maybe_finish(ctx);
                ctx.run_later(DRAIN_GRACE, |act, ctx| {
                    if !act.finishing {
                        act.open_streams = 0;
                        act.maybe_finish(ctx);
                    }
                });
            }
        }
    }
}

impl Handler<Collected> for AgentSession {
    type Result = ();

    fn handle(&mut self, m: Collected, ctx: &mut Context<Self>) {
        if !self.collecting {
            // Stopped while collecting: the session has already ended.
            return;
        }
        self.collecting = false;
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
        let Some(verify) = &mut self.verifying else {
            return;
        };
        match event {
            ProcessEvent::Line(line) => {
                if !line.trim().is_empty() {
                    verify.last_line = line.chars().take(300).collect();
                }
                self.keep_in_log(&line);
            }
            ProcessEvent::StreamClosed => {
                verify.open_streams = verify.open_streams.saturating_sub(1);
                self.maybe_finish_verify(ctx);
            }
            ProcessEvent::Exited(status) => {
                verify.exit = Some(status);
                self.maybe_finish_verify(ctx);
                ctx.run_later(DRAIN_GRACE, |act, ctx| {
                    if let Some(verify) = &mut act.verifying {
                        verify.open_streams = 0;
                    }
                    act.maybe_finish_verify(ctx);
                });
            }
        }
    }
}

impl AgentSession {
    /// Reports the finished work to the queue, then ends the session.
    fn complete(&mut self, ctx: &mut Context<Self>, m: Collected) {
        self.queue
            .send(Complete {
                id: self.item.id.clone(),
                work: Completion {
                    artifacts: m.artifacts,
                    acceptance: m.acceptance,
                    session_key: Some(self.record.session_key.clone()),
                    unmet: m.unmet,
                    session: Some(self.record.clone()),
                },
            })
            .into_actor(self)
            .then(|result, act, ctx| {
                match result {
                    Ok(Ok(outcome)) if outcome.accepted => act.end(
                        ctx,
                        AgentStatus::Completed,
                        format!("completed: item moved to {}", outcome.item.status),
                        true,
                    ),
                    Ok(Ok(outcome)) => act.end(
                        ctx,
                        AgentStatus::Failed,
                        format!("acceptance not met: {}", outcome.unmet.join("; ")),
                        true,
                    ),
                    Ok(Err(e)) => act.end(
                        ctx,
                        AgentStatus::Failed,
                        format!("could not complete: {e}"),
                        false,
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
