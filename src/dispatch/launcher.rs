//! The steps that turn a fresh process into an agent, run in the process itself: by the
//! child the launch server forks for every agent and verify command (see `launch_server`),
//! and by `flightdeck exec-agent` (the sandboxed git of deliverables, `doctor`, the Landlock
//! probe), which the server starts with `posix_spawn` so the standard library does not have
//! to fork the whole multi-threaded server. The steps:
//! 1. die with the server (a parent-death signal, then a check that the server is still its
//!    parent, closing the race with a server that died just before);
//! 2. leave the server's session (`setsid`): the agent has no controlling terminal, so it
//!    cannot push keystrokes into the operator's shell, and it leads its own process group;
//! 3. join the session's cgroup (`--cgroup`), or, where there is none, become the
//!    subreaper of everything the agent starts (`--reaper`, see `dispatch::reaper`);
//! 4. enter the Landlock sandbox when asked (`--sandbox`, see `sandbox`);
//! 5. `exec` the agent, which keeps all of it (or, as a reaper, fork it and stay).

use super::{cgroup, reaper};
use crate::sandbox::{self, SandboxPlan};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How the launcher keeps track of what the agent starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tracker {
    /// Join this cgroup, then exec the agent.
    Cgroup(PathBuf),
    /// Fork the agent and stay as the subreaper of everything it starts.
    Reaper,
}

/// The argv that runs `agent` through the launcher.
pub fn argv_for(
    exe: &Path,
    parent: u32,
    tracker: &Tracker,
    plan: Option<&SandboxPlan>,
    agent: &[String],
) -> Result<Vec<String>, String> {
    let mut out = vec![
        exe.display().to_string(),
        "exec-agent".into(),
        "--parent".into(),
        parent.to_string(),
    ];
    match tracker {
        Tracker::Cgroup(path) => {
            out.push("--cgroup".into());
            out.push(path.display().to_string());
        }
        Tracker::Reaper => out.push("--reaper".into()),
    }
    if let Some(plan) = plan {
        out.push("--sandbox".into());
        for w in &plan.writable {
            out.push("--rw".into());
            out.push(w.display().to_string());
        }
        for d in &plan.denied {
            out.push("--deny".into());
            out.push(d.display().to_string());
        }
        if let Some(fd) = plan.port_rules.fd()? {
            out.push("--port-rules-fd".into());
            out.push(fd.to_string());
        }
    }
    out.push("--".into());
    out.extend(agent.iter().cloned());
    Ok(out)
}

/// Ties this process to `parent`, tracks it, applies `plan`, and becomes the agent; as a
/// reaper, returns the agent's exit code once it and everything it started are gone.
pub fn run(
    parent: Option<u32>,
    tracker: Option<&Tracker>,
    plan: Option<&SandboxPlan>,
    agent: &[String],
) -> Result<i32, String> {
    let (program, args) = agent
        .split_first()
        .ok_or("no agent command given after --")?;
    if let Some(parent) = parent {
        let death_signal = match tracker {
            Some(Tracker::Reaper) => reaper::KILL_ALL,
            _ => libc::SIGKILL,
        };
        // SAFETY: prctl and getppid take no pointers.
        let (set, now) = unsafe {
            (
                libc::prctl(libc::PR_SET_PDEATHSIG, death_signal),
                libc::getppid(),
            )
        };
        if set != 0 {
            return Err(format!(
                "cannot set the parent-death signal: {}",
                std::io::Error::last_os_error()
            ));
        }
        if now as u32 != parent {
            return Err("flightdeck exited before the agent started".into());
        }
    }
    // SAFETY: setsid takes no arguments.
    if unsafe { libc::setsid() } < 0 {
        return Err(format!(
            "cannot give the agent its own session: {}",
            std::io::Error::last_os_error()
        ));
    }
    // The server turned transparent huge pages off for itself; the agent gets the default.
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 0, 0, 0, 0);
    }
    match tracker {
        Some(Tracker::Cgroup(path)) => cgroup::join(path)?,
        Some(Tracker::Reaper) => {
            reaper::become_reaper()?;
            let child = reaper::fork()?;
            if child != 0 {
                if let Some(Ok(Some(fd))) = plan.map(|p| p.port_rules.fd()) {
                    // SAFETY: the inherited fd is only the agent's to use.
                    unsafe {
                        libc::close(fd);
                    }
                }
                return Ok(reaper::supervise(child));
            }
            reaper::child_ready();
        }
        None => {}
    }
    if let Some(plan) = plan {
        if !sandbox::restrict_self(plan)? {
            return Err("the kernel does not enforce Landlock".into());
        }
    }
    let err = Command::new(program).args(args).exec();
    Err(format!("cannot run {program}: {err}"))
}
