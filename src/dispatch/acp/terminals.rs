//! `terminal/*`: commands an ACP agent asks its client to run, run by the bridge inside the
//! agent's sandbox and process tracking, in the session's folders only.
//!
//! Each terminal is a process group of its own whose output (stdout and stderr together) is
//! kept up to a byte limit, dropping the oldest bytes first, as ACP asks. At most
//! [`TERMINALS_MAX`] terminals are open at once; a released or killed terminal's processes
//! are killed.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};

/// Most terminals open at once.
pub const TERMINALS_MAX: usize = 16;
/// Most output kept per terminal, whatever the agent asks.
const OUTPUT_MAX: usize = 1 << 20;

/// How a terminal's command ended.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl Exit {
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "exitCode": self.code,
            "signal": self.signal.map(signal_name),
        })
    }
}

fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGINT => "SIGINT".into(),
        other => format!("signal {other}"),
    }
}

#[derive(Default)]
struct Output {
    bytes: Vec<u8>,
    truncated: bool,
    exit: Option<Exit>,
}

/// One terminal: its process group and what it printed.
pub struct Terminal {
    pgid: u32,
    state: Arc<(Mutex<Output>, Condvar)>,
}

impl Terminal {
    /// What it printed so far (the newest `limit` bytes), whether older bytes were dropped,
    /// and its exit once it has one.
    pub fn output(&self) -> (String, bool, Option<Exit>) {
        let (lock, _) = &*self.state;
        let out = lock.lock().unwrap_or_else(|e| e.into_inner());
        (
            String::from_utf8_lossy(&out.bytes).into_owned(),
            out.truncated,
            out.exit,
        )
    }

    /// Waits (on the caller's thread) until the command has exited.
    pub fn waiter(&self) -> impl FnOnce() -> Exit + Send + 'static {
        let state = self.state.clone();
        move || {
            let (lock, ready) = &*state;
            let mut out = lock.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(exit) = out.exit {
                    return exit;
                }
                out = ready.wait(out).unwrap_or_else(|e| e.into_inner());
            }
        }
    }

    pub fn kill(&self) {
        if self.pgid > 0 && self.pgid <= i32::MAX as u32 {
            // SAFETY: kill(2) on a process group; no memory is involved.
            unsafe {
                libc::kill(-(self.pgid as i32), libc::SIGKILL);
            }
        }
    }
}

/// The open terminals of one bridge.
pub struct Terminals {
    roots: Vec<PathBuf>,
    default_cwd: PathBuf,
    open: HashMap<String, Terminal>,
    next: u64,
}

/// What `terminal/create` asks for.
pub struct NewTerminal {
    pub command: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
    pub output_limit: Option<u64>,
}

impl Terminals {
    pub fn new(roots: &[PathBuf], default_cwd: &Path) -> Terminals {
        Terminals {
            roots: roots
                .iter()
                .filter_map(|r| std::fs::canonicalize(r).ok())
                .collect(),
            default_cwd: default_cwd.to_path_buf(),
            open: HashMap::new(),
            next: 1,
        }
    }

    /// Starts the command; a command without arguments is a shell command line.
    pub fn create(&mut self, new: NewTerminal) -> Result<String, String> {
        if self.open.len() >= TERMINALS_MAX {
            return Err(format!(
                "{TERMINALS_MAX} terminals are open; release one before creating another"
            ));
        }
        let cwd = match &new.cwd {
            None => self.default_cwd.clone(),
            Some(dir) => {
                let real =
                    std::fs::canonicalize(dir).map_err(|e| format!("cannot run in {dir}: {e}"))?;
                if !self.roots.iter().any(|r| real.starts_with(r)) {
                    return Err(format!(
                        "{dir} is outside the session's workspace and artifacts folders"
                    ));
                }
                real
            }
        };
        let mut cmd = if new.args.is_empty() {
            let mut cmd = Command::new("/bin/sh");
            cmd.arg("-c").arg(&new.command);
            cmd
        } else {
            let mut cmd = Command::new(&new.command);
            cmd.args(&new.args);
            cmd
        };
        cmd.current_dir(&cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        for (k, v) in &new.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", new.command))?;
        let pgid = child.id();
        let limit = new
            .output_limit
            .map_or(OUTPUT_MAX, |l| (l as usize).min(OUTPUT_MAX));
        let state = Arc::new((Mutex::new(Output::default()), Condvar::new()));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(collect(out, state.clone(), limit));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(collect(err, state.clone(), limit));
        }
        let waited = state.clone();
        std::thread::Builder::new()
            .name("acp-terminal-wait".into())
            .spawn(move || {
                let status = child.wait();
                for reader in readers.into_iter().flatten() {
                    let _ = reader.join();
                }
                let exit = match status {
                    Ok(s) => Exit {
                        code: s.code(),
                        signal: s.signal(),
                    },
                    Err(_) => Exit {
                        code: None,
                        signal: None,
                    },
                };
                let (lock, ready) = &*waited;
                lock.lock().unwrap_or_else(|e| e.into_inner()).exit = Some(exit);
                ready.notify_all();
            })
            .map_err(|e| format!("cannot watch the command: {e}"))?;
        let id = format!("term-{}", self.next);
        self.next += 1;
        self.open.insert(id.clone(), Terminal { pgid, state });
        Ok(id)
    }

    pub fn get(&self, id: &str) -> Result<&Terminal, String> {
        self.open
            .get(id)
            .ok_or_else(|| format!("there is no terminal {id}"))
    }

    /// Kills the terminal's processes and forgets it.
    pub fn release(&mut self, id: &str) -> Result<(), String> {
        let terminal = self
            .open
            .remove(id)
            .ok_or_else(|| format!("there is no terminal {id}"))?;
        terminal.kill();
        Ok(())
    }

    /// Kills every open terminal's processes.
    pub fn kill_all(&mut self) {
        for (_, terminal) in self.open.drain() {
            terminal.kill();
        }
    }
}

/// Reads `stream` into the terminal's output on a thread, keeping the newest `limit` bytes.
fn collect(
    mut stream: impl Read + Send + 'static,
    state: Arc<(Mutex<Output>, Condvar)>,
    limit: usize,
) -> Option<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("acp-terminal-output".into())
        .spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let (lock, _) = &*state;
                        let mut out = lock.lock().unwrap_or_else(|e| e.into_inner());
                        out.bytes.extend_from_slice(&buf[..n]);
                        if out.bytes.len() > limit {
                            let mut cut = out.bytes.len() - limit;
                            while cut < out.bytes.len() && (out.bytes[cut] & 0xC0) == 0x80 {
                                cut += 1;
                            }
                            out.bytes.drain(..cut);
                            out.truncated = true;
                        }
                    }
                }
            }
        })
        .ok()
}
