//! Kernel-enforced isolation of agents with Landlock.
//!
//! An agent runs through `flightdeck exec-agent --sandbox --rw DIR... --deny PATH... -- ARGV...`
//! (see `dispatch::launcher`): that small, single-threaded process restricts itself and then
//! execs the agent, so the restriction holds for the agent and everything it starts. The rules:
//! - read (and execute) everywhere except the denied paths (the data dir, the config file
//!   that holds the token) and `/dev`; write only in the `--rw` folders (the session's own
//!   folder). Landlock does not govern walking through directories, so the agent can still
//!   reach its own folder inside the data dir while nothing else there can be opened.
//! - of `/dev`, only [`DEVICES`] (read and write). No terminal (`/dev/tty`, `/dev/pts`,
//!   `/dev/ptmx`: an agent that could open one could push keystrokes into it), no
//!   `/dev/shm` (shared with every other process on the machine), nothing else.
//! - ABI 6: the agent cannot signal processes outside its own sandbox (the server, other
//!   agents) nor connect to abstract unix sockets made outside it.
//! - ABI 4: the agent cannot open TCP connections to the server's own port, on any host.
//!   Landlock's network rules are an allow-list once connecting is handled, so that takes
//!   a rule for each of the other 65,534 ports. Building them costs about 0.1 s of CPU, so
//!   the server builds them once ([`PortRules`]), on a thread of its own once it listens
//!   (start-up does not wait for them; a launch does, [`PortRulesFd`]), and every launcher
//!   applies the same ruleset; what remains per agent is the kernel copying them into the agent's own
//!   sandbox (about 25 ms, and about 4.5 MB of kernel memory while the agent runs). That
//!   layer grants moving files between folders everywhere, so only the files layer rules it.
//!   Where the server tracks the agent by a cgroup of its session and can see which cgroup
//!   made a connection, it refuses the agent's connections itself and the port layer is left
//!   out (see `dispatch::api_fence`, [`SandboxPlan::api_fenced_by_cgroup`]).
//! - the agent stays in the cgroup it was started in: writing to the cgroup files is
//!   forbidden by the files layer, and `clone3` (whose `CLONE_INTO_CGROUP` starts a child in
//!   another cgroup with no file opened for writing) fails with ENOSYS by a seccomp filter
//!   ([`keep_in_cgroup`]); the C library then falls back to `clone`, which cannot.
//!
//! Each part is applied where the kernel has it (best effort); the files part is required:
//! the launcher refuses to start an agent the kernel does not confine. Whether the kernel
//! has Landlock is found by running `flightdeck exec-agent --probe` once at start-up: a child
//! that restricts itself and says whether it worked.

use landlock::{
    path_beneath_rules, Access, AccessFs, AccessNet, NetPort, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};
use std::os::fd::{IntoRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

const ABI_USED: ABI = ABI::V6;

/// The device files an agent may open, read and write.
pub const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
];

/// What a sandboxed agent may touch.
#[derive(Debug, Clone, Default)]
pub struct SandboxPlan {
    pub writable: Vec<PathBuf>,
    pub denied: Vec<PathBuf>,
    /// The [`PortRules`] ruleset agents inherit, when the kernel has network rules.
    pub port_rules: PortRulesFd,
    /// Whether the server refuses connections made from a session's cgroup (see
    /// `dispatch::api_fence`): an agent tracked by such a cgroup needs no port rules.
    pub api_fenced_by_cgroup: bool,
}

/// The fd of the [`PortRules`] ruleset: known at once (a launcher is handed it), or being
/// built on a thread of the server's (a launch waits for it, about 0.1 s after start-up at
/// most).
#[derive(Debug, Clone, Default)]
pub struct PortRulesFd(Option<Arc<OnceLock<PortRulesBuilt>>>);

/// What building the ruleset came to: its fd (none without network rules) or why not.
type PortRulesBuilt = Result<Option<RawFd>, String>;

impl PortRulesFd {
    /// An fd known now (or none: no network layer).
    pub fn ready(fd: Option<RawFd>) -> PortRulesFd {
        PortRulesFd(Some(Arc::new(OnceLock::from(Ok(fd)))))
    }

    /// Starts building the ruleset that forbids `port`, on a thread of its own.
    pub fn build_in_background(port: u16) -> std::io::Result<PortRulesFd> {
        let cell = Arc::new(OnceLock::new());
        let filled = cell.clone();
        std::thread::Builder::new()
            .name("port-rules".into())
            .spawn(move || {
                let built = PortRules::build(port);
                if let Err(why) = &built {
                    log::error!("agents cannot start: {why}");
                }
                let _ = filled.set(built);
            })?;
        Ok(PortRulesFd(Some(cell)))
    }

    /// The fd, once built; an error when it could not be (no agent may start without it).
    pub fn fd(&self) -> Result<Option<RawFd>, String> {
        match &self.0 {
            None => Ok(None),
            Some(cell) => cell.wait().clone(),
        }
    }
}

impl SandboxPlan {
    /// The plan of one launch: without the port rules when the process joins a session's
    /// cgroup and the server refuses connections from those (the ruleset is then neither
    /// waited for nor passed on).
    pub fn for_launch(&self, in_session_cgroup: bool) -> SandboxPlan {
        let mut plan = self.clone();
        if plan.api_fenced_by_cgroup && in_session_cgroup {
            plan.port_rules = PortRulesFd::default();
        }
        plan
    }
}

/// Restricts this process under `plan`. Returns whether the kernel enforced it.
pub fn restrict_self(plan: &SandboxPlan) -> Result<bool, String> {
    let mut denied: Vec<PathBuf> = plan
        .denied
        .iter()
        .filter_map(|d| d.canonicalize().ok())
        .collect();
    denied.push(PathBuf::from("/dev"));
    let mut readable = Vec::new();
    readable_outside(Path::new("/"), &denied, &mut readable);
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(ABI_USED))
        .and_then(|r| r.scope(Scope::from_all(ABI_USED)))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(&readable, AccessFs::from_read(ABI_USED))))
        .and_then(|r| r.add_rules(path_beneath_rules(DEVICES, AccessFs::from_file(ABI_USED))))
        .and_then(|r| {
            r.add_rules(path_beneath_rules(
                &plan.writable,
                AccessFs::from_all(ABI_USED),
            ))
        })
        .and_then(|r| r.restrict_self())
        .map_err(|e| format!("landlock: {e}"))?;
    if status.ruleset == RulesetStatus::NotEnforced {
        return Ok(false);
    }
    keep_in_cgroup()?;
    if let Some(fd) = plan.port_rules.fd()? {
        PortRules::apply(fd)?;
    }
    Ok(true)
}

/// The system call number of `clone3` on every architecture (x86-64's x32 calls set bit 30).
const CLONE3: u32 = 435;
const X32_BIT: u32 = 0x4000_0000;

/// Makes `clone3` fail with ENOSYS for this process and everything it starts (a seccomp
/// filter), so nothing in the sandbox can start a child in another cgroup: with the files
/// layer forbidding writes to the cgroup files, the cgroup a process was started in is the
/// one it stays in. Runs after the files layer, which set no_new_privs.
fn keep_in_cgroup() -> Result<(), String> {
    const LOAD_NR: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const AND: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
    const JUMP_EQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RETURN: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let step = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let mut filter = [
        // seccomp_data.nr is the first field.
        step(LOAD_NR, 0, 0, 0),
        step(AND, 0, 0, !X32_BIT),
        step(JUMP_EQ, 0, 1, CLONE3),
        step(RETURN, 0, 0, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        step(RETURN, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_mut_ptr(),
    };
    // SAFETY: the kernel copies the program, which lives until the call returns.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &program as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(format!(
            "cannot forbid clone3 (seccomp): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Collects the paths under `dir` that may be read: every entry, except the denied ones, and
/// for an ancestor of a denied path its entries instead (recursively).
fn readable_outside(dir: &Path, denied: &[PathBuf], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if denied.iter().any(|d| d == &path) {
            continue;
        }
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir && denied.iter().any(|d| d.starts_with(&path)) {
            readable_outside(&path, denied, out);
        } else {
            out.push(path);
        }
    }
}

/// The Landlock ruleset that lets an agent connect to every TCP port but one (the server's),
/// built once by the server and inherited, as an open fd, by every launcher it starts.
pub struct PortRules;

impl PortRules {
    /// Builds the ruleset forbidding `port`; `None` when the kernel has no network rules
    /// (Landlock ABI < 4). The fd stays open, and is inherited by the server's children, for
    /// the life of the server; launchers close it before they exec the agent.
    pub fn build(port: u16) -> Result<Option<RawFd>, String> {
        if kernel_abi() < 4 {
            return Ok(None);
        }
        // Every layer denies moving files between folders (Landlock's "refer" right) unless
        // it grants it, even a layer about the network only: without this rule every rename
        // across folders fails with EXDEV (rustc's `.rmeta`, git, npm), however writable both
        // folders are. The files layer still decides where it is allowed.
        let mut ruleset = Ruleset::default()
            .handle_access(AccessNet::ConnectTcp)
            .and_then(|r| r.handle_access(AccessFs::Refer))
            .and_then(|r| r.scope(Scope::from_all(ABI_USED)))
            .and_then(|r| r.create())
            .and_then(|r| r.add_rules(path_beneath_rules(["/"], AccessFs::Refer)))
            .map_err(|e| format!("landlock network rules: {e}"))?;
        for other in (0..=u16::MAX).filter(|p| *p != port) {
            ruleset = ruleset
                .add_rule(NetPort::new(other, AccessNet::ConnectTcp))
                .map_err(|e| format!("landlock network rule for port {other}: {e}"))?;
        }
        let fd = Option::<std::os::fd::OwnedFd>::from(ruleset)
            .ok_or("the kernel made no network ruleset")?
            .into_raw_fd();
        // SAFETY: fcntl on an fd we own; clearing FD_CLOEXEC lets launchers inherit it.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
            return Err(format!(
                "cannot pass the network rules on: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(Some(fd))
    }

    /// Adds the inherited ruleset `fd` as a further layer on this process, then closes it so
    /// the agent never holds it (it could add rules to it).
    fn apply(fd: RawFd) -> Result<(), String> {
        // SAFETY: landlock_restrict_self takes an fd and flags, no memory; no_new_privs is
        // already set by the files layer.
        let rc = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) };
        let err = std::io::Error::last_os_error();
        // SAFETY: the fd was inherited for this one use.
        unsafe {
            libc::close(fd);
        }
        if rc != 0 {
            return Err(format!("landlock network rules (fd {fd}): {err}"));
        }
        Ok(())
    }
}

/// The Landlock ABI version of the running kernel (0 without Landlock).
pub fn kernel_abi() -> i64 {
    const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
    // SAFETY: with a null attribute and size 0 this only returns the ABI version.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    v.max(0)
}

/// Whether agents can be sandboxed here: runs a probe child that restricts itself.
pub fn probe(exe: &Path) -> bool {
    Command::new(exe)
        .args(["exec-agent", "--probe"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}
