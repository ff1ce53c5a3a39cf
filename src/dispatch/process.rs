//! The agent as an operating-system process: started from an argv (never a shell) by the
//! launch server (which gives it its own session, makes it die with the server, tracks it and
//! sandboxes it, see `launch_server`), with the orchestrator's secrets removed from its
//! environment; its output read line by line on two threads, its exit reported by the
//! launch server.
//!
//! Everything a session starts (the agent, its verify command, and whatever they start, in
//! whatever session or environment) is tracked as one [`SessionProcesses`]: by a cgroup of
//! its own where the server can make cgroups (cgroup2, as root or with delegation), by a
//! subreaper launcher otherwise (see `cgroup` and `reaper`). Stopping a session asks its
//! process group to stop (SIGTERM), then kills everything it tracks.

use super::cgroup::{self, CgroupRoot};
use super::launch_client::LaunchServer;
use super::launch_wire::Request;
use super::launcher::Tracker;
use super::reaper;
use crate::sandbox::SandboxPlan;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::ExitStatus;

/// Environment variables an agent never inherits.
const SECRET_VARS: &[&str] = &["FLIGHTDECK_TOKEN"];
/// Longest output line kept whole; longer lines are cut (the rest is dropped).
pub const MAX_LINE: usize = 64 * 1024;

/// What the reader threads and the launch server report.
pub enum ProcessEvent {
    /// A line the process wrote to stdout.
    Line(String),
    /// A line the process wrote to stderr.
    ErrLine(String),
    StreamClosed,
    /// How it ended (a signal stays distinguishable from an exit code), or why that is
    /// unknown: the launch server died, and the process with it.
    Exited(std::io::Result<ExitStatus>),
}

/// A started agent process: its pid is also its process group id.
pub struct AgentProcess {
    pub pid: u32,
    /// Its stdin, when the launch asked for a pipe (ACP agents take instructions there).
    pub stdin: Option<std::process::ChildStdin>,
}

pub struct Launch<'a> {
    /// The flightdeck binary, which runs the launch server.
    pub exe: &'a Path,
    /// The agent's own argv.
    pub argv: &'a [String],
    pub cwd: &'a Path,
    pub env: Vec<(String, String)>,
    /// A pipe to the process's stdin; otherwise stdin is /dev/null.
    pub stdin: bool,
    pub tracker: &'a Tracker,
    /// The tracker's cgroup was never killed ([`SessionProcesses::never_killed`]).
    pub fresh_cgroup: bool,
    pub sandbox: Option<&'a SandboxPlan>,
}

/// Starts the process through the launch server (see `launch_server`); `report` receives
/// its output lines and the closing of each stream from background threads, and its exit
/// from the launch server's reader.
pub fn spawn(
    launch: Launch,
    report: impl Fn(ProcessEvent) + Send + Sync + Clone + 'static,
) -> std::io::Result<AgentProcess> {
    if launch.argv.is_empty() {
        return Err(std::io::Error::other("the agent command is empty"));
    }
    let (stdin_theirs, stdin_ours) = match launch.stdin {
        true => {
            let (read, write) = pipe()?;
            (read, Some(write))
        }
        false => (OwnedFd::from(std::fs::File::open("/dev/null")?), None),
    };
    let (out_ours, out_theirs) = pipe()?;
    let (err_ours, err_theirs) = pipe()?;
    let mut fds = vec![
        stdin_theirs.as_raw_fd(),
        out_theirs.as_raw_fd(),
        err_theirs.as_raw_fd(),
    ];
    let in_cgroup = matches!(launch.tracker, Tracker::Cgroup(_));
    let sandbox = launch.sandbox.map(|plan| plan.for_launch(in_cgroup));
    // The server's port ruleset, once built (a launch right after start-up waits for it).
    if let Some(plan) = &sandbox {
        fds.extend(plan.port_rules.fd().map_err(std::io::Error::other)?);
    }
    let request = Request {
        id: 0,
        argv: launch.argv.to_vec(),
        env: environment(&launch.env),
        cwd: launch.cwd.to_path_buf(),
        tracker: Some(launch.tracker.clone()),
        fresh_cgroup: launch.fresh_cgroup,
        sandbox,
    };
    let exited = report.clone();
    let pid = LaunchServer::get(launch.exe)?.launch(
        request,
        &fds,
        Box::new(move |status| exited(ProcessEvent::Exited(status))),
    )?;
    // Only the agent holds the other ends now, so the readers see it close them.
    drop((stdin_theirs, out_theirs, err_theirs));
    read_lines(
        std::fs::File::from(out_ours),
        ProcessEvent::Line,
        report.clone(),
    );
    read_lines(std::fs::File::from(err_ours), ProcessEvent::ErrLine, report);
    Ok(AgentProcess {
        pid,
        stdin: stdin_ours.map(std::process::ChildStdin::from),
    })
}

/// The server's environment without its secrets, with `extra` set on top, as `KEY=VALUE`.
fn environment(extra: &[(String, String)]) -> Vec<OsString> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| {
            !SECRET_VARS.iter().any(|s| k == s) && !extra.iter().any(|(e, _)| k == e.as_str())
        })
        .collect();
    env.extend(extra.iter().map(|(k, v)| (k.into(), v.into())));
    env.into_iter()
        .map(|(k, v)| {
            let mut var = k;
            var.push("=");
            var.push(v);
            var
        })
        .collect()
}

/// A pipe, both ends close-on-exec: (read, write).
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut ends = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just made and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) })
}

fn read_lines(
    stream: impl Read + Send + 'static,
    line: fn(String) -> ProcessEvent,
    report: impl Fn(ProcessEvent) + Send + 'static,
) {
    let spawned = std::thread::Builder::new()
        .name("agent-output".into())
        .spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader
                    .by_ref()
                    .take(MAX_LINE as u64)
                    .read_until(b'\n', &mut buf)
                {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if buf.len() >= MAX_LINE && buf.last() != Some(&b'\n') {
                            skip_line(&mut reader);
                        }
                        let text = String::from_utf8_lossy(&buf);
                        report(line(text.trim_end_matches(['\n', '\r']).to_string()));
                    }
                }
            }
            report(ProcessEvent::StreamClosed);
        });
    if let Err(e) = spawned {
        log::error!("cannot start an output reader thread: {e}");
    }
}

/// Reads past the rest of the current line without keeping it (it may be any length).
fn skip_line(reader: &mut impl BufRead) {
    loop {
        let (used, found) = match reader.fill_buf() {
            Ok([]) | Err(_) => return,
            Ok(chunk) => match chunk.iter().position(|b| *b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            },
        };
        reader.consume(used);
        if found {
            return;
        }
    }
}

/// Sends `signal` to the whole process group `pgid`.
fn signal_group(pgid: u32, signal: libc::c_int) {
    if pgid == 0 || pgid > i32::MAX as u32 {
        return;
    }
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    unsafe {
        libc::kill(-(pgid as i32), signal);
    }
}

/// How the server tracks the processes of its sessions, chosen once at start-up.
#[derive(Debug, Clone)]
pub enum Tracking {
    /// A cgroup per session, made under the server's own cgroup.
    Cgroups(CgroupRoot),
    /// A subreaper launcher per process started.
    Reapers,
}

impl Tracking {
    /// Cgroups where the server can make them, subreapers otherwise.
    pub fn detect() -> Tracking {
        match CgroupRoot::detect() {
            Ok(root) => {
                let removed = root.remove_empty();
                if removed > 0 {
                    log::info!("removed {removed} empty cgroups of sessions of stopped servers");
                }
                Tracking::Cgroups(root)
            }
            Err(why) => {
                log::warn!(
                    "agents' processes are tracked by a subreaper launcher, not a cgroup ({why}): an agent outside a Landlock sandbox that scopes signals can escape it"
                );
                Tracking::Reapers
            }
        }
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Tracking::Cgroups(_) => "a cgroup per session",
            Tracking::Reapers => "a subreaper launcher",
        }
    }

    /// The tracker of a new session (a subreaper if its cgroup cannot be made).
    pub fn for_session(&self, session_id: &str) -> SessionProcesses {
        let tracker = match self {
            Tracking::Cgroups(root) => match root.create(session_id) {
                Ok(path) => Tracker::Cgroup(path),
                Err(e) => {
                    log::warn!(
                        "session {session_id}: cannot make its cgroup ({e}); a subreaper tracks it instead"
                    );
                    Tracker::Reaper
                }
            },
            Tracking::Reapers => Tracker::Reaper,
        };
        SessionProcesses {
            tracker,
            killed: Default::default(),
        }
    }

    /// Kills whatever the sessions of a run that died without stopping them left: their
    /// cgroups, and any process still carrying one of their ids in its environment.
    pub fn kill_leftovers(&self, session_ids: &[String]) -> usize {
        let in_cgroups = match self {
            Tracking::Cgroups(root) => root.kill_leftovers(session_ids),
            Tracking::Reapers => 0,
        };
        in_cgroups + kill_marked(session_ids)
    }
}

/// Everything one session started, stoppable as one.
#[derive(Debug)]
pub struct SessionProcesses {
    tracker: Tracker,
    /// Whether [`SessionProcesses::kill`] ran: its cgroup, if any, was killed.
    killed: std::sync::atomic::AtomicBool,
}

impl SessionProcesses {
    /// What the launcher is told to do to keep track of the process it starts.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// Whether nothing of this session was killed yet (a child may then be started in its
    /// cgroup directly, see `cgroup::fork_into`).
    pub fn never_killed(&self) -> bool {
        !self.killed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Asks `pid` (a process this session started, still running) and its process group
    /// to stop.
    pub fn terminate(&self, pid: u32) {
        signal_group(pid, libc::SIGTERM);
    }

    /// Kills everything the session started. `running` is the launcher or agent this
    /// session started that has not exited yet, if any (a subreaper launcher kills what it
    /// tracks when told, and by itself when its agent exits).
    pub fn kill(&self, running: Option<u32>) {
        self.killed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        match &self.tracker {
            Tracker::Cgroup(path) => {
                if let Some(pid) = running {
                    signal_group(pid, libc::SIGKILL);
                }
                cgroup::kill(path);
            }
            Tracker::Reaper => {
                if let Some(pid) = running.filter(|p| *p > 0 && *p <= i32::MAX as u32) {
                    // SAFETY: kill(2) on a pid; no memory is involved.
                    unsafe {
                        libc::kill(pid as i32, reaper::KILL_ALL);
                    }
                }
            }
        }
    }

    /// The session is over: kills what is left and removes its cgroup (on a thread of its
    /// own when the killed processes have yet to exit).
    pub fn release(self) {
        if let Tracker::Cgroup(path) = self.tracker {
            cgroup::kill(&path);
            if std::fs::remove_dir(&path).is_ok() {
                return;
            }
            let spawned = std::thread::Builder::new()
                .name("cgroup-remove".into())
                .spawn(move || cgroup::remove(&path));
            if let Err(e) = spawned {
                log::warn!("cannot start a thread to remove a session's cgroup: {e}");
            }
        }
    }
}

/// Kills every process still carrying one of these session ids in its environment: the
/// agents (and anything they started without clearing their environment) of a run that died
/// without stopping them.
fn kill_marked(session_ids: &[String]) -> usize {
    if session_ids.is_empty() {
        return 0;
    }
    let markers: Vec<Vec<u8>> = session_ids
        .iter()
        .map(|id| format!("FLIGHTDECK_SESSION_ID={id}").into_bytes())
        .collect();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|b| *b == 0)
            .any(|var| markers.iter().any(|m| var == m.as_slice()))
        {
            // SAFETY: kill(2) on a pid; no memory is involved.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            killed += 1;
        }
    }
    killed
}
