//! The server's side of the launch server (see `launch_server`): starts it on the first
//! launch, sends it launch requests, and hands each agent's exit status to whoever started
//! the agent.
//!
//! One thread, `launch-server`, starts the launch server and reads everything it says. It is
//! the launch server's parent thread for as long as the server runs (a parent-death signal
//! fires when the thread that started a process exits, not the process). When the launch
//! server dies, its agents die with it: every launch in flight fails, every running agent's
//! exit is reported as an error that says so, and the next launch starts a new one.

use super::launch_wire::{self, Reply, Request};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

/// Called once with the exit status of an agent that started.
pub type OnExit = Box<dyn FnOnce(io::Result<ExitStatus>) + Send>;

/// The launch server of this process, started on first use.
pub struct LaunchServer {
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    link: Link,
    next_id: u64,
    pending: HashMap<u64, Pending>,
    running: HashMap<u32, OnExit>,
}

enum Link {
    /// Not running; the next launch asks for one.
    Down,
    /// A launch asked for one; the thread is starting it.
    Wanted,
    Up(Arc<OwnedFd>),
    /// Starting it failed, for this reason (the next launch tries again).
    Failed(String),
}

struct Pending {
    answer: SyncSender<Result<u32, String>>,
    on_exit: OnExit,
}

static SERVER: OnceLock<Result<Arc<LaunchServer>, String>> = OnceLock::new();

impl LaunchServer {
    /// The launch server, running the binary `exe`, of this process.
    pub fn get(exe: &Path) -> io::Result<Arc<LaunchServer>> {
        SERVER
            .get_or_init(|| {
                let server = Arc::new(LaunchServer {
                    state: Mutex::new(State {
                        link: Link::Down,
                        next_id: 1,
                        pending: HashMap::new(),
                        running: HashMap::new(),
                    }),
                    changed: Condvar::new(),
                });
                let supervised = server.clone();
                let exe = exe.to_path_buf();
                std::thread::Builder::new()
                    .name("launch-server".into())
                    .spawn(move || supervised.supervise(&exe))
                    .map_err(|e| format!("cannot start the launch server's thread: {e}"))?;
                Ok(server)
            })
            .clone()
            .map_err(io::Error::other)
    }

    /// Starts the agent of `request`, giving it `fds` (stdin, stdout, stderr, then the
    /// sandbox's port ruleset if any); returns its pid. `on_exit` gets its exit status.
    pub fn launch(&self, mut request: Request, fds: &[RawFd], on_exit: OnExit) -> io::Result<u32> {
        let (answer, answered) = sync_channel(1);
        let sock = {
            let mut state = self.lock();
            let sock = loop {
                match &state.link {
                    Link::Up(sock) => break sock.clone(),
                    Link::Down => {
                        state.link = Link::Wanted;
                        self.changed.notify_all();
                    }
                    Link::Wanted => {}
                    Link::Failed(why) => {
                        let why = why.clone();
                        state.link = Link::Down;
                        return Err(io::Error::other(format!(
                            "cannot start flightdeck's launch server: {why}"
                        )));
                    }
                }
                state = self
                    .changed
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            };
            request.id = state.next_id;
            state.next_id += 1;
            state
                .pending
                .insert(request.id, Pending { answer, on_exit });
            sock
        };
        if let Err(e) = launch_wire::send(sock.as_raw_fd(), &request.encode(), fds) {
            self.lock().pending.remove(&request.id);
            let why = match e.raw_os_error() {
                Some(libc::EMSGSIZE) => {
                    "the agent's command and environment are too long to send to the launch server"
                        .to_string()
                }
                _ => format!("cannot reach flightdeck's launch server: {e}"),
            };
            return Err(io::Error::other(why));
        }
        match answered.recv() {
            Ok(Ok(pid)) => Ok(pid),
            Ok(Err(why)) => Err(io::Error::other(why)),
            Err(_) => Err(io::Error::other(
                "flightdeck's launch server went away before answering",
            )),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The thread's life: start the launch server when asked, serve it until it dies, and
    /// fail what it took with it.
    fn supervise(&self, exe: &Path) {
        loop {
            {
                let mut state = self.lock();
                while !matches!(state.link, Link::Wanted) {
                    state = self
                        .changed
                        .wait(state)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                }
            }
            let (mut child, sock) = match start(exe) {
                Ok(started) => started,
                Err(why) => {
                    log::error!("cannot start flightdeck's launch server: {why}");
                    self.lock().link = Link::Failed(why);
                    self.changed.notify_all();
                    continue;
                }
            };
            let pid = child.id();
            log::debug!("launch server started (pid {pid})");
            self.lock().link = Link::Up(sock.clone());
            self.changed.notify_all();
            let read_error = self.read_replies(sock.as_raw_fd());
            // Closing our end tells a launch server that is still alive to stop.
            self.lock().link = Link::Down;
            drop(sock);
            let ended = match child.wait() {
                Ok(status) => describe(pid, status),
                Err(e) => format!("flightdeck's launch server (pid {pid}) is gone ({e})"),
            };
            match read_error {
                Some(e) => log::error!("{ended} after a broken message: {e}"),
                None => log::error!("{ended}; agents it started were killed with it"),
            }
            self.fail_all(&ended);
        }
    }

    /// Hands each reply to whoever waits for it, until the launch server closes its end.
    fn read_replies(&self, sock: RawFd) -> Option<String> {
        let mut buf = vec![0u8; 4096];
        loop {
            let n = match launch_wire::recv(sock, &mut buf) {
                Ok((0, _)) => return None,
                Ok((n, _)) => n,
                Err(e) => return Some(e.to_string()),
            };
            let Some(reply) = Reply::decode(&buf[..n]) else {
                return Some("the launch server sent a message this server cannot read".into());
            };
            let mut state = self.lock();
            match reply {
                Reply::Started { id, pid } => {
                    if let Some(pending) = state.pending.remove(&id) {
                        state.running.insert(pid, pending.on_exit);
                        let _ = pending.answer.send(Ok(pid));
                    }
                }
                Reply::Refused { id, why } => {
                    if let Some(pending) = state.pending.remove(&id) {
                        let _ = pending.answer.send(Err(why));
                    }
                }
                Reply::Exited { pid, status } => {
                    let on_exit = state.running.remove(&pid);
                    drop(state);
                    if let Some(on_exit) = on_exit {
                        on_exit(Ok(ExitStatus::from_raw(status)));
                    }
                }
            }
        }
    }

    /// The launch server is gone (`ended` says how): fails the launches it had not answered
    /// and reports its agents as lost.
    fn fail_all(&self, ended: &str) {
        let (pending, running) = {
            let mut state = self.lock();
            (
                std::mem::take(&mut state.pending),
                std::mem::take(&mut state.running),
            )
        };
        for (_, pending) in pending {
            let _ = pending
                .answer
                .send(Err(format!("{ended} before the agent started")));
        }
        for (_, on_exit) in running {
            on_exit(Err(io::Error::other(format!(
                "{ended}, and the agent with it"
            ))));
        }
    }
}

/// Starts `exe launch-server`, its socket as its stdin.
fn start(exe: &Path) -> Result<(Child, Arc<OwnedFd>), String> {
    let mut pair = [0; 2];
    // SAFETY: socketpair writes two descriptors into the array.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            pair.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "cannot make its socket: {}",
            io::Error::last_os_error()
        ));
    }
    // SAFETY: both descriptors were just made and are owned by nobody else.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
    let child = Command::new(exe)
        .args(["launch-server", "--parent", &std::process::id().to_string()])
        .stdin(Stdio::from(theirs))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", PathBuf::from(exe).display()))?;
    Ok((child, Arc::new(ours)))
}

/// How the launch server `pid` ended, in words.
fn describe(pid: u32, status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => {
            format!("flightdeck's launch server (pid {pid}) exited with code {code}")
        }
        (None, Some(signal)) => {
            format!("flightdeck's launch server (pid {pid}) was killed by signal {signal}")
        }
        (None, None) => format!("flightdeck's launch server (pid {pid}) ended ({status})"),
    }
}
