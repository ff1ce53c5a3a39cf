//! `flightdeck launch-server`: the one process per server that starts agents.
//!
//! Starting every agent through `flightdeck exec-agent` cost an `execve` of the 15 MB
//! position-independent server binary per agent (~1.5 ms of relocations). Instead the server
//! starts this process once (see `launch_client`) and asks it, over a socket, to start each
//! agent: it forks (straight into the session's cgroup where there is one, see
//! `cgroup::fork_into`), the child runs the launcher's steps (`launcher::run`: parent-death
//! signal, own session, cgroup or subreaper, Landlock) and execs the agent, and this process
//! answers with the child's pid, reaps it, and reports its wait status.
//!
//! It is single-threaded on purpose: a fork of a multi-threaded process may only call
//! async-signal-safe functions until it execs, but the child of a single-threaded one may do
//! anything (allocate, read `/proc`), which `launcher::run` does. Nothing here may start a
//! thread.
//!
//! It dies with the server (a parent-death signal, then a check that the server is still its
//! parent), and every agent dies with it the same way, so a crashed server or launch server
//! leaves no agent behind. The agent's pid is in the server's pid namespace, so the server
//! signals its process group and its cgroup as before.

use super::cgroup;
use super::launch_wire::{self, Reply, Request};
use super::launcher::{self, Tracker};
use std::ffi::OsString;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

/// Serves the server `parent`, whose socket is this process's stdin, until it goes away.
pub fn serve(parent: u32) -> Result<(), String> {
    let os = |what: &str| format!("{what}: {}", std::io::Error::last_os_error());
    // SAFETY: prctl and getppid take no pointers.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            return Err(os("cannot set the parent-death signal"));
        }
        if libc::getppid() as u32 != parent {
            return Err("flightdeck exited before its launch server started".into());
        }
    }
    // Move the socket off stdin, drop whatever else was inherited (the server's descriptors
    // not marked close-on-exec), and give stdin /dev/null.
    // SAFETY: descriptor calls on numbers this process owns; no memory is involved.
    let (sock, signals) = unsafe {
        let sock = libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3);
        if sock < 0 {
            return Err(os("cannot take the launch socket"));
        }
        libc::close_range(sock as u32 + 1, u32::MAX, 0);
        for fd in 3..sock {
            libc::close(fd);
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null > 0 {
            libc::dup2(null, 0);
            libc::close(null);
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let signals = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if signals < 0 {
            return Err(os("cannot watch for the agents' exits"));
        }
        (sock, signals)
    };
    // SAFETY: getpid takes no arguments.
    let me = unsafe { libc::getpid() } as u32;
    let mut buf = vec![0u8; launch_wire::MAX_MESSAGE];
    loop {
        let mut polled = [
            libc::pollfd {
                fd: sock,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: signals,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: poll on a live, correctly sized array.
        if unsafe { libc::poll(polled.as_mut_ptr(), 2, -1) } < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(os("cannot wait for launch requests"));
        }
        if polled[1].revents != 0 {
            drain(signals);
            reap(sock)?;
        }
        if polled[0].revents != 0 {
            let (n, fds) = launch_wire::recv(sock, &mut buf)
                .map_err(|e| format!("cannot read a launch request: {e}"))?;
            if n == 0 {
                // The server closed its end: it is stopping.
                return Ok(());
            }
            let reply = start(&buf[..n], fds, me, [sock, signals]);
            reply_to(sock, &reply)?;
        }
    }
}

/// Forks the agent of one request; the answer to send back.
fn start(data: &[u8], fds: Vec<OwnedFd>, me: u32, own: [RawFd; 2]) -> Reply {
    let (request, stdio) = match Request::decode(data, fds) {
        Ok(decoded) => decoded,
        Err(why) => {
            // The id comes first; a request too short to hold one gets id 0, which the
            // server never uses.
            let id = data
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_le_bytes);
            return Reply::Refused { id, why };
        }
    };
    // A child made straight in its session's cgroup has nothing left to join. Only in a
    // cgroup never killed: after `cgroup.kill`, Linux (6.18 here) kills a child made in the
    // cgroup by clone3 at once (it compares the cgroup's kill count with the parent's).
    let into = match &request.tracker {
        // SAFETY: this process is single-threaded (see the module doc).
        Some(Tracker::Cgroup(path)) if request.fresh_cgroup => {
            unsafe { cgroup::fork_into(path) }.ok()
        }
        _ => None,
    };
    // SAFETY: this process is single-threaded (see the module doc), so the child may run
    // any code before it execs.
    let pid = into.unwrap_or_else(|| unsafe { libc::fork() });
    if pid == 0 {
        child(request, stdio, me, own, into.is_some());
    }
    if let Some(Ok(Some(fd))) = request.sandbox.as_ref().map(|p| p.port_rules.fd()) {
        // SAFETY: the received ruleset is the child's now; this copy is closed.
        unsafe {
            libc::close(fd);
        }
    }
    match pid {
        -1 => Reply::Refused {
            id: request.id,
            why: format!(
                "cannot start the agent: {}",
                std::io::Error::last_os_error()
            ),
        },
        pid => Reply::Started {
            id: request.id,
            pid: pid as u32,
        },
    }
}

/// In the forked child: becomes the agent, or writes why not on its stderr and exits 1, as
/// `flightdeck exec-agent` does.
fn child(request: Request, stdio: [OwnedFd; 3], me: u32, own: [RawFd; 2], in_cgroup: bool) -> ! {
    // SAFETY: descriptor and signal-mask calls on this process's own state.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        for fd in own {
            libc::close(fd);
        }
        for (target, fd) in stdio.iter().enumerate() {
            libc::dup2(fd.as_raw_fd(), target as RawFd);
        }
    }
    drop(stdio);
    let outcome = std::env::set_current_dir(&request.cwd)
        .map_err(|e| {
            format!(
                "cannot enter the agent's folder {}: {e}",
                request.cwd.display()
            )
        })
        .and_then(|()| {
            replace_env(&request.env);
            launcher::run(
                Some(me),
                request.tracker.as_ref().filter(|_| !in_cgroup),
                request.sandbox.as_ref(),
                &request.argv,
            )
        });
    let code = match outcome {
        Ok(code) => code,
        Err(why) => {
            let _ = writeln!(std::io::stderr(), "flightdeck: {why}");
            1
        }
    };
    // SAFETY: _exit ends the child without running the launch server's exit handlers.
    unsafe { libc::_exit(code) }
}

/// Gives this (single-threaded) process exactly `env`, each `KEY=VALUE`.
fn replace_env(env: &[OsString]) {
    for (key, _) in std::env::vars_os() {
        std::env::remove_var(key);
    }
    for var in env {
        let bytes = var.as_bytes();
        if let Some(eq) = bytes.iter().position(|b| *b == b'=').filter(|i| *i > 0) {
            let key = std::ffi::OsStr::from_bytes(&bytes[..eq]);
            let value = std::ffi::OsStr::from_bytes(&bytes[eq + 1..]);
            std::env::set_var(key, value);
        }
    }
}

/// Empties the signalfd (the exits themselves are found by `waitpid`).
fn drain(signals: RawFd) {
    let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>() * 8];
    // SAFETY: read into a local buffer of the given length.
    while unsafe { libc::read(signals, info.as_mut_ptr().cast(), info.len()) } > 0 {}
}

/// Reaps every child that has exited and reports its status.
fn reap(sock: RawFd) -> Result<(), String> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into a local.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return Ok(());
        }
        reply_to(
            sock,
            &Reply::Exited {
                pid: pid as u32,
                status,
            },
        )?;
    }
}

fn reply_to(sock: RawFd, reply: &Reply) -> Result<(), String> {
    launch_wire::send(sock, &reply.encode(), &[])
        .map_err(|e| format!("cannot answer the server: {e}"))
}
