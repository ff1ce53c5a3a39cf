//! The agent as an operating-system process: started from an argv (never a shell) in its own
//! process group, through the launcher (which makes it die with the server and sandboxes it),
//! with the orchestrator's secrets removed from its environment; its output read line by line
//! on two threads and its exit waited for on a third. Stopping it signals the whole group, so
//! nothing it started is left.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

/// Environment variables an agent never inherits.
const SECRET_VARS: &[&str] = &["FLIGHTDECK_TOKEN"];
/// Longest output line kept whole; longer lines are cut (the rest is dropped).
pub const MAX_LINE: usize = 64 * 1024;

/// What the reader and waiter threads report.
pub enum ProcessEvent {
    Line(String),
    StreamClosed,
    Exited(std::io::Result<ExitStatus>),
}

/// A started agent process: its pid is also its process group id.
pub struct AgentProcess {
    pub pid: u32,
}

pub struct Launch<'a> {
    pub argv: &'a [String],
    pub cwd: &'a Path,
    pub env: Vec<(String, String)>,
}

/// Starts the process; `report` receives its output lines, the closing of each stream, and
/// its exit, from background threads.
pub fn spawn(
    launch: Launch,
    report: impl Fn(ProcessEvent) + Send + Sync + Clone + 'static,
) -> std::io::Result<AgentProcess> {
    let (program, args) = launch
        .argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("the agent command is empty"))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(launch.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for var in SECRET_VARS {
        cmd.env_remove(var);
    }
    for (k, v) in &launch.env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn()?;
    let pid = child.id();
    if let Some(out) = child.stdout.take() {
        read_lines(out, report.clone());
    }
    if let Some(err) = child.stderr.take() {
        read_lines(err, report.clone());
    }
    std::thread::Builder::new()
        .name(format!("agent-wait-{pid}"))
        .spawn(move || report(ProcessEvent::Exited(child.wait())))?;
    Ok(AgentProcess { pid })
}

fn read_lines(stream: impl Read + Send + 'static, report: impl Fn(ProcessEvent) + Send + 'static) {
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
                        let line = String::from_utf8_lossy(&buf);
                        report(ProcessEvent::Line(
                            line.trim_end_matches(['\n', '\r']).to_string(),
                        ));
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
pub fn signal_group(pgid: u32, signal: libc::c_int) {
    if pgid == 0 || pgid > i32::MAX as u32 {
        return;
    }
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    unsafe {
        libc::kill(-(pgid as i32), signal);
    }
}

/// Kills every process still carrying one of these session ids in its environment: the
/// agents (and anything they started) of a run that died without stopping them.
pub fn kill_leftovers(session_ids: &[String]) -> usize {
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

/// Runs a short command to completion (the verify step), with output captured.
pub fn run_to_end(argv: &[String], cwd: &Path, env: &[(String, String)]) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("the verify command is empty")?;
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(cwd).stdin(Stdio::null());
    for var in SECRET_VARS {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("verify command {program:?} could not start: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    Err(format!(
        "verify command failed ({}): {}",
        out.status,
        last.trim()
    ))
}
