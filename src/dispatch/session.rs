//! The AgentSession actor: one run of an agent on one claimed item.
//!
//! It writes the scoped AGENTS.md, starts the agent (see `process`), turns each output line
//! into progress through the preset's parser, enforces the wall-clock and idle limits, and
//! when the agent exits collects its artifacts and acceptance report, runs the verify command,
//! and reports the outcome to the QueueManager (complete, or a failed attempt) and to the
//! Dispatcher. It never touches the store itself.

use super::dispatcher::{Dispatcher, SessionEnded};
use super::launcher;
use super::parsers::{parser_for, AgentOutput, OutputParser};
use super::process::{self, ProcessEvent};
use super::workspace::{self, Workspace};
use crate::config::Preset;
use crate::model::{
    render_agents_md, thousands, AcceptanceEntry, AgentSession as SessionRecord, AgentStatus,
    ArtifactInput, ArtifactKind, WorkItem,
};
use crate::queue::{
    Complete, Completion, FailAttempt, Progress, QueueManager, SessionChanged, SessionStarted,
};
use actix::prelude::*;
use chrono::Utc;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often buffered output is sent on as progress events.
const PROGRESS_FLUSH: Duration = Duration::from_millis(200);
/// Most progress messages one flush sends on: the latest lines. Any before them are summed up
/// in one more message ("(12,345 more lines, see the log)"), so an agent printing as fast as
/// it can makes at most `PROGRESS_KEPT + 1` events per flush; the log keeps every line.
const PROGRESS_KEPT: usize = 20;
/// Most output (bytes) read from the agent and not yet handled here. Past it the reader
/// threads wait, and so does the agent's next write: output never queues up without bound.
const OUTPUT_BACKLOG: usize = 1 << 20;
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

/// Result of collecting artifacts and running verify, done off the actor's thread.
#[derive(Message)]
#[rtype(result = "()")]
struct Collected {
    artifacts: Vec<ArtifactInput>,
    acceptance: Option<Vec<AcceptanceEntry>>,
    unmet: Vec<String>,
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
    /// Lines since the last flush that did not fit in `pending`.
    skipped: u64,
    /// Bytes of output lines read and not yet handled (see [`OUTPUT_BACKLOG`]).
    backlog: Arc<AtomicUsize>,
    declared: Vec<ArtifactInput>,
    acceptance: Option<Vec<AcceptanceEntry>>,
    verdict: Option<(bool, String)>,
    last_line: String,
    last_output: Instant,
    started: Instant,
    pid: Option<u32>,
    exit: Option<std::io::Result<std::process::ExitStatus>>,
    open_streams: u8,
    stop: Option<Stop>,
    finishing: bool,
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
            skipped: 0,
            backlog: Arc::new(AtomicUsize::new(0)),
            declared: Vec::new(),
            acceptance: None,
            verdict: None,
            last_line: String::new(),
            last_output: Instant::now(),
            started: Instant::now(),
            pid: None,
            exit: None,
            open_streams: 2,
            stop: None,
            finishing: false,
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
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
        ]
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
        let plan = self.settings.sandbox.as_ref().map(|plan| {
            let mut plan = plan.clone();
            plan.writable.push(self.ws.root.clone());
            plan
        });
        launcher::argv_for(&self.settings.exe, std::process::id(), plan.as_ref(), &argv)
    }

    fn start_agent(&mut self, ctx: &mut Context<Self>) -> std::io::Result<()> {
        std::fs::create_dir_all(self.ws.root.join("tmp"))?;
        std::fs::write(
            &self.ws.agents_md,
            render_agents_md(&self.item, self.ws.artifacts.to_str()),
        )?;
        self.log = Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.ws.log)?,
        );
        let argv = self.argv();
        let child = process::spawn(
            process::Launch {
                argv: &argv,
                cwd: &self.ws.workspace,
                env: self.env(),
            },
            forward_output(ctx.address(), self.backlog.clone()),
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
        self.backlog.fetch_sub(line.len(), Ordering::AcqRel);
        self.last_output = Instant::now();
        if let Some(log) = &mut self.log {
            let written = if self.logged + line.len() as u64 >= LOG_LIMIT {
                let marker = "[flightdeck: log limit reached; further output is not kept]";
                let result = writeln!(log, "{marker}");
                self.log = None;
                result
            } else {
                writeln!(log, "{line}")
            };
            self.logged += line.len() as u64 + 1;
            if let Err(e) = written {
                log::warn!("session {}: cannot write its log: {e}", self.record.id);
            }
        }
        for out in self.parser.parse_line(&line) {
            match out {
                AgentOutput::Progress(msg) => {
                    if self.pending.len() == PROGRESS_KEPT {
                        self.pending.remove(0);
                        self.skipped += 1;
                    }
                    self.pending.push(msg);
                }
                AgentOutput::Tokens { input, output } => {
                    self.record.tokens_used = self
                        .record
                        .tokens_used
                        .saturating_add(input)
                        .saturating_add(output);
                }
                AgentOutput::Artifact(a) => self.declared.push(a),
                AgentOutput::Acceptance(report) => self.acceptance = Some(report),
                AgentOutput::Finished { success, summary } => {
                    self.verdict = Some((success, summary))
                }
            }
        }
        if !line.trim().is_empty() {
            self.last_line = line.chars().take(300).collect();
        }
    }

    fn flush_progress(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut messages = Vec::with_capacity(self.pending.len() + 1);
        if self.skipped > 0 {
            messages.push(format!(
                "({} more lines, see the log)",
                thousands(std::mem::take(&mut self.skipped))
            ));
        }
        messages.append(&mut self.pending);
        self.queue.do_send(Progress {
            item_id: self.item.id.clone(),
            session_id: self.record.id.clone(),
            messages,
            tokens_used: self.record.tokens_used,
        });
    }

    fn terminate(&mut self, ctx: &mut Context<Self>, stop: Stop) {
        if self.stop.is_none() {
            self.stop = Some(stop);
        }
        match self.pid {
            Some(pid) if self.exit.is_none() => {
                process::signal_group(pid, libc::SIGTERM);
                ctx.run_later(KILL_GRACE, move |act, _| {
                    if act.exit.is_none() {
                        process::signal_group(pid, libc::SIGKILL);
                    }
                });
            }
            _ => self.maybe_finish(ctx),
        }
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
        // Whatever happens next, the group goes: nothing the agent started outlives it.
        if let Some(pid) = self.pid {
            process::signal_group(pid, libc::SIGKILL);
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
            Some(Stop::Cancelled(reason)) => self.end(
                ctx,
                AgentStatus::Failed,
                format!("cancelled: {reason}"),
                false,
            ),
            Some(Stop::Shutdown) => self.end(
                ctx,
                AgentStatus::Failed,
                "interrupted: flightdeck is shutting down".into(),
                false,
            ),
            Some(Stop::TimedOut(reason)) => self.fail(ctx, reason),
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
                    let last = if self.last_line.is_empty() {
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

    /// Exit 0: gather artifacts and the acceptance report, run verify, all off this thread.
    fn collect(&mut self, ctx: &mut Context<Self>) {
        let addr = ctx.address();
        let settings = self.settings.clone();
        let ws = self.ws.clone();
        let declared = std::mem::take(&mut self.declared);
        let reported = self.acceptance.take();
        let env = self.env();
        let has_link = self
            .item
            .artifacts
            .iter()
            .any(|a| a.kind == ArtifactKind::Link && Some(&a.path) == ws.branch.as_ref());
        let spawned = std::thread::Builder::new()
            .name("agent-collect".into())
            .spawn(move || {
                let mut unmet = Vec::new();
                let mut artifacts: Vec<ArtifactInput> = Vec::new();
                match workspace::collect_files(&settings.data_dir, &ws.artifacts) {
                    Ok(files) => artifacts.extend(files.into_iter().map(|path| ArtifactInput {
                        description: format!(
                            "file written by the agent: {}",
                            path.rsplit('/').next().unwrap_or(&path)
                        ),
                        kind: ArtifactKind::File,
                        path,
                    })),
                    Err(e) => unmet.push(format!("artifacts folder unreadable: {e}")),
                }
                for mut a in declared {
                    if a.kind == ArtifactKind::File {
                        match workspace::declared_artifact(
                            &settings.data_dir,
                            &ws.artifacts,
                            &a.path,
                        ) {
                            Ok(path) => {
                                // Every declared file is in the artifacts folder, so it was
                                // collected above: keep the agent's own description.
                                if let Some(found) = artifacts.iter_mut().find(|x| x.path == path) {
                                    if !a.description.trim().is_empty() {
                                        found.description = a.description;
                                    }
                                    continue;
                                }
                                a.path = path;
                            }
                            Err(e) => {
                                unmet.push(e);
                                continue;
                            }
                        }
                    }
                    artifacts.push(a);
                }
                if let (Some(branch), false) = (&ws.branch, has_link) {
                    artifacts.push(ArtifactInput {
                        kind: ArtifactKind::Link,
                        path: branch.clone(),
                        description: "git branch with the agent's work".into(),
                    });
                }
                let mut acceptance = reported;
                let report_file = ws.artifacts.join(workspace::ACCEPTANCE_FILE);
                if let Ok(text) = std::fs::read(&report_file) {
                    match serde_json::from_slice::<Vec<AcceptanceEntry>>(&text) {
                        Ok(report) => acceptance = Some(report),
                        Err(e) => unmet.push(format!(
                            "{} is not a valid acceptance report: {e}",
                            workspace::ACCEPTANCE_FILE
                        )),
                    }
                }
                if !settings.verify.is_empty() {
                    if let Err(e) = process::run_to_end(&settings.verify, &ws.workspace, &env) {
                        unmet.push(e);
                    }
                }
                addr.do_send(Collected {
                    artifacts,
                    acceptance,
                    unmet,
                });
            });
        if let Err(e) = spawned {
            self.fail(ctx, format!("cannot collect artifacts: {e}"));
        }
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

/// Hands the agent's output to its session, one line at a time, waiting while more than
/// [`OUTPUT_BACKLOG`] bytes of it are not yet handled, so a flood of output slows the agent down
/// instead of filling the session's mailbox.
fn forward_output(
    addr: Addr<AgentSession>,
    backlog: Arc<AtomicUsize>,
) -> impl Fn(ProcessEvent) + Send + Sync + Clone + 'static {
    move |event| {
        if let ProcessEvent::Line(line) = &event {
            while backlog.load(Ordering::Acquire) > OUTPUT_BACKLOG && addr.connected() {
                std::thread::sleep(Duration::from_millis(2));
            }
            backlog.fetch_add(line.len(), Ordering::AcqRel);
        }
        addr.do_send(Output(event));
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
            if act.stop.is_none() && act.exit.is_none() && act.last_output.elapsed() > idle {
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
