//! The subreaper launcher: how a session's processes are tracked where cgroups are not
//! available (see `dispatch::cgroup`).
//!
//! The launcher makes itself a child subreaper (`PR_SET_CHILD_SUBREAPER`), forks the agent and
//! stays. Whatever the agent starts, double forks and `setsid` included, is re-parented to
//! the launcher when its own parent exits, so the launcher can always find it: its
//! descendants in `/proc`. It forwards SIGTERM to all of them; on SIGUSR1 (sent by the
//! server to stop a session for good, and as the launcher's parent-death signal, so a
//! crashed server counts too) it kills them all; and when the agent itself exits it kills
//! whatever the agent left and exits with the agent's status.
//!
//! The launcher stays outside the agent's Landlock sandbox, so where the kernel scopes
//! signals (Landlock ABI 6) the agent cannot kill it. Without that, an agent can kill its
//! launcher with SIGKILL and leave its children to init: the cgroup is the stronger
//! tracker.

use std::collections::HashMap;

/// The signal that makes the launcher kill everything (also its parent-death signal).
pub const KILL_ALL: libc::c_int = libc::SIGUSR1;
/// How often the launcher looks for exits and signals.
const TICK_NS: libc::c_long = 50_000_000;

/// Signals the launcher handles itself, blocked before the fork so none is lost.
fn handled() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset fill a local sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, KILL_ALL] {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Makes this process a subreaper and blocks the signals it will handle. Call before
/// [`fork`]; the child gets its signals back in [`child_ready`].
pub fn become_reaper() -> Result<(), String> {
    let set = handled();
    // SAFETY: prctl with integer arguments; sigprocmask with a valid set.
    let ok = unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
            && libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) == 0
    };
    if !ok {
        return Err(format!(
            "cannot become the agent's subreaper: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// In the forked agent: unblock the signals again and drop the parent-death signal (the
/// agent's parent is the launcher now).
pub fn child_ready() {
    let set = handled();
    // SAFETY: sigprocmask with a valid set; prctl with integer arguments.
    unsafe {
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
}

/// Forks; returns the child's pid in the parent and 0 in the child.
pub fn fork() -> Result<libc::pid_t, String> {
    // SAFETY: the launcher is single-threaded, so the child may run any code.
    match unsafe { libc::fork() } {
        -1 => Err(format!(
            "cannot start the agent: {}",
            std::io::Error::last_os_error()
        )),
        pid => Ok(pid),
    }
}

/// Supervises `agent` and everything it starts until all are gone; returns the exit code
/// the launcher should exit with (the agent's own, or 128 + the signal that killed it).
pub fn supervise(agent: libc::pid_t) -> i32 {
    let set = handled();
    let mut agent_status: Option<i32> = None;
    loop {
        // Reap whatever has exited.
        loop {
            let mut status = 0;
            // SAFETY: waitpid writes the status into a local.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid == agent {
                agent_status = Some(status);
            } else if pid <= 0 {
                match (pid, agent_status) {
                    // No children left at all.
                    (-1, Some(status)) => return exit_code(status),
                    _ => break,
                }
            }
        }
        if agent_status.is_some() {
            signal_descendants(libc::SIGKILL);
        }
        let timeout = libc::timespec {
            tv_sec: 0,
            tv_nsec: TICK_NS,
        };
        // SAFETY: sigtimedwait with a valid set and timeout; the info pointer may be null.
        let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &timeout) };
        match sig {
            s if s == KILL_ALL => signal_descendants(libc::SIGKILL),
            s if s > 0 => signal_descendants(libc::SIGTERM),
            _ => {}
        }
    }
}

fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    }
}

/// Sends `signal` to every descendant of this process, found through `/proc`.
fn signal_descendants(signal: libc::c_int) {
    let me = std::process::id() as i32;
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(ppid) = parent_of(pid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut stack = vec![me];
    while let Some(pid) = stack.pop() {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or(&[]) {
            // SAFETY: kill(2) on a pid; no memory is involved.
            unsafe {
                libc::kill(child, signal);
            }
            stack.push(child);
        }
    }
}

/// The parent pid of `pid`, from `/proc/<pid>/stat` (the field after the command name,
/// which may itself hold spaces and parentheses).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split(' ').nth(1)?.parse().ok()
}
