//! A cgroup per session: the kernel's own record of every process a session started.
//!
//! A process group or an environment variable can be left (`setsid`, `env -i`); a cgroup
//! cannot, short of writing to the cgroup file system, which the sandbox forbids. So where
//! the server can make cgroups in the unified (cgroup2) hierarchy, every session gets one
//! named after it, `flightdeck-<session id>`, next to the server's own cgroup: the launcher
//! joins it before it execs the agent (or the verify command), and stopping the session
//! kills the whole cgroup at once (`cgroup.kill`, or freeze, kill each, thaw on kernels
//! before 5.14). The cgroup outlives a crashed server, so the next start finds it by the
//! session's id and kills what is left in it. No controller is used: this is tracking only.
//!
//! An empty session cgroup tracks nothing, so any server may remove it: each start removes
//! the empty `flightdeck-*` cgroups beside its own (those of servers killed and never
//! started again), and the launcher makes its session's cgroup again if it is gone.
//!
//! Where no cgroup2 hierarchy is mounted or it is not writable (a user without delegation),
//! [`CgroupRoot::detect`] says so and sessions fall back to the subreaper launcher
//! (see `dispatch::reaper`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Prefix of every session's cgroup name.
const PREFIX: &str = "flightdeck-";
/// How long [`remove`] waits for the killed processes to be gone.
const EMPTY_WAIT: Duration = Duration::from_secs(5);
/// Bounds of the search for a dead server's cgroups.
const SEARCH_DEPTH: usize = 8;
const SEARCH_DIRS: usize = 20_000;

/// The folder in which session cgroups are made.
#[derive(Debug, Clone)]
pub struct CgroupRoot {
    /// The cgroup2 mount point.
    mount: PathBuf,
    /// The server's own cgroup, under `mount`.
    dir: PathBuf,
}

impl CgroupRoot {
    /// The server's own cgroup2 cgroup, if one is mounted and the server may make cgroups
    /// in it; `Err` says why not.
    pub fn detect() -> Result<CgroupRoot, String> {
        let (mount, dir) = own_cgroup()?;
        let root = CgroupRoot { mount, dir };
        let trial = root
            .dir
            .join(format!("{PREFIX}probe-{}", std::process::id()));
        std::fs::create_dir(&trial)
            .map_err(|e| format!("cannot make a cgroup in {}: {e}", root.dir.display()))?;
        let usable = trial.join("cgroup.procs").exists();
        let _ = std::fs::remove_dir(&trial);
        if !usable {
            return Err(format!("{} is not a cgroup2 folder", root.dir.display()));
        }
        Ok(root)
    }

    /// The server's own cgroup, in which sessions' cgroups are made.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes the cgroup of a session.
    pub fn create(&self, session_id: &str) -> std::io::Result<PathBuf> {
        let path = self.dir.join(format!("{PREFIX}{session_id}"));
        make(&path)?;
        Ok(path)
    }

    /// Removes the empty session cgroups beside the server's own; returns how many.
    pub fn remove_empty(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        entries
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(PREFIX))
            })
            .filter(|e| {
                std::fs::read_to_string(e.path().join("cgroup.events"))
                    .is_ok_and(|events| events.lines().any(|l| l == "populated 0"))
            })
            .filter(|e| std::fs::remove_dir(e.path()).is_ok())
            .count()
    }

    /// Kills and removes the cgroups of these sessions, wherever in the hierarchy a previous
    /// server made them; returns how many processes were still in them.
    pub fn kill_leftovers(&self, session_ids: &[String]) -> usize {
        let names: Vec<String> = session_ids
            .iter()
            .map(|id| format!("{PREFIX}{id}"))
            .collect();
        let mut found = Vec::new();
        let mut seen = 0;
        find_named(&self.mount, &names, 0, &mut seen, &mut found);
        let mut killed = 0;
        for cgroup in found {
            killed += members(&cgroup).len();
            kill(&cgroup);
            remove(&cgroup);
        }
        killed
    }
}

/// Where the cgroup2 hierarchy is mounted, and this process's own cgroup folder under it.
pub fn own_cgroup() -> Result<(PathBuf, PathBuf), String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let mount = mountinfo
        .lines()
        .find_map(|line| {
            let (fields, fs) = line.split_once(" - ")?;
            fs.starts_with("cgroup2 ")
                .then(|| fields.split(' ').nth(4).map(PathBuf::from))?
        })
        .ok_or("no cgroup2 hierarchy is mounted")?;
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let own = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("this process is in no cgroup2 cgroup")?;
    let dir = mount.join(own.trim_start_matches('/'));
    Ok((mount, dir))
}

/// The session whose cgroup is named `name`, if it is one's.
pub fn session_of(name: &str) -> Option<&str> {
    name.strip_prefix(PREFIX).filter(|id| !id.is_empty())
}

fn find_named(
    dir: &Path,
    names: &[String],
    depth: usize,
    seen: &mut usize,
    found: &mut Vec<PathBuf>,
) {
    if depth > SEARCH_DEPTH || *seen > SEARCH_DIRS {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        *seen += 1;
        let path = entry.path();
        if names.iter().any(|n| entry.file_name().to_str() == Some(n)) {
            found.push(path);
        } else {
            find_named(&path, names, depth + 1, seen, found);
        }
    }
}

fn make(cgroup: &Path) -> std::io::Result<()> {
    match std::fs::create_dir(cgroup) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// Moves this process into `cgroup` (the launcher, before it execs the agent), making it
/// again if another server removed it while it was empty.
pub fn join(cgroup: &Path) -> Result<(), String> {
    let mut tries = 0;
    loop {
        let joined = make(cgroup).and_then(|()| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(cgroup.join("cgroup.procs"))
                .and_then(|mut f| f.write_all(b"0"))
        });
        match joined {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 3 => tries += 1,
            Err(e) => {
                return Err(format!(
                    "cannot join the session's cgroup {}: {e}",
                    cgroup.display()
                ))
            }
            Ok(()) => return Ok(()),
        }
    }
}

/// `clone3`'s arguments (`struct clone_args` up to its `cgroup` field, Linux 5.7).
#[repr(C)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Forks this process with the child started in `cgroup` (made again if it is gone), as
/// `fork` returns: 0 in the child, its pid in the parent. Joining a cgroup later, by writing
/// `cgroup.procs`, waits for an RCU grace period (~4-20 ms measured here) on every start
/// that finds the kernel's cgroup lock idle; a child made in place does not move at all.
/// `Err` where the kernel cannot (before 5.7): then fork and [`join`].
///
/// # Safety
/// Like `fork` without its C library bookkeeping: only for a single-threaded caller (the
/// launch server), whose child may then run any code.
pub unsafe fn fork_into(cgroup: &Path) -> std::io::Result<libc::pid_t> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    make(cgroup)?;
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(cgroup)?;
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: dir.as_raw_fd() as u64,
    };
    // SAFETY: clone3 reads `args` of the given size; with no stack given the child goes on
    // on a copy of this one, as after fork (the caller vouches it is single-threaded).
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match pid {
        -1 => Err(std::io::Error::last_os_error()),
        pid => Ok(pid as libc::pid_t),
    }
}

/// The pids in `cgroup`.
fn members(cgroup: &Path) -> Vec<i32> {
    std::fs::read_to_string(cgroup.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Kills every process in `cgroup` (SIGKILL), including those it is forking right now.
pub fn kill(cgroup: &Path) {
    if std::fs::write(cgroup.join("cgroup.kill"), b"1").is_ok() {
        return;
    }
    // Before cgroup.kill (Linux 5.14): freeze, so nothing forks, kill each, thaw.
    let freeze = cgroup.join("cgroup.freeze");
    let frozen = std::fs::write(&freeze, b"1").is_ok();
    for pid in members(cgroup) {
        // SAFETY: kill(2) on a pid; no memory is involved.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    if frozen {
        let _ = std::fs::write(&freeze, b"0");
    }
}

/// Kills what is left in `cgroup` and removes it once it is empty (waiting a little for the
/// killed processes to exit). Blocks: call it off the actors' threads.
pub fn remove(cgroup: &Path) {
    let start = Instant::now();
    loop {
        kill(cgroup);
        match std::fs::remove_dir(cgroup) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if start.elapsed() > EMPTY_WAIT => {
                log::warn!("cannot remove cgroup {}: {e}", cgroup.display());
                return;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
