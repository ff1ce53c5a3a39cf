//! `flightdeck exec-agent`: the first program of every agent process.
//!
//! The server starts it with `posix_spawn` (no `pre_exec` hook, so the standard library does
//! not have to fork the whole multi-threaded server), and it prepares the process in the
//! few steps that must happen inside it: die with the server (a parent-death signal, then a
//! check that the server is still its parent, closing the race with a server that died just
//! before), enter the Landlock sandbox when asked, then `exec` the agent, which keeps both.

use crate::sandbox::{self, SandboxPlan};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// The argv that runs `agent` through the launcher.
pub fn argv_for(
    exe: &Path,
    parent: u32,
    plan: Option<&SandboxPlan>,
    agent: &[String],
) -> Vec<String> {
    let mut out = vec![
        exe.display().to_string(),
        "exec-agent".into(),
        "--parent".into(),
        parent.to_string(),
    ];
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
    }
    out.push("--".into());
    out.extend(agent.iter().cloned());
    out
}

/// Ties this process to `parent`, applies `plan`, and becomes the agent.
pub fn run(
    parent: Option<u32>,
    plan: Option<&SandboxPlan>,
    agent: &[String],
) -> Result<std::convert::Infallible, String> {
    if let Some(parent) = parent {
        // SAFETY: prctl and getppid take no pointers.
        let (set, now) = unsafe {
            (
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL),
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
    // The server turned transparent huge pages off for itself; the agent gets the default.
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 0, 0, 0, 0);
    }
    if let Some(plan) = plan {
        if !sandbox::restrict_self(plan)? {
            return Err("the kernel does not enforce Landlock".into());
        }
    }
    let (program, args) = agent
        .split_first()
        .ok_or("no agent command given after --")?;
    let err = Command::new(program).args(args).exec();
    Err(format!("cannot run {program}: {err}"))
}
