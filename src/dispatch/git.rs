//! Running `git` for flightdeck's own bookkeeping of an agent's work (worktrees, the commit
//! after the agent exits, snapshots, diffs, merges), always from an argv, never a shell.
//!
//! A repository an agent worked in is attacker-controlled: with `workspace.git_repo` the agent
//! may write the repository's `.git` (hooks, config, attributes), and it writes every file of
//! its tree. So every run turns hooks and the file-system monitor off, never uses a pager,
//! an external diff or a textconv driver, never asks for a password, and is bounded in time
//! and in the output kept. Steps that read the agent's tree through its own repository's
//! config (staging its files runs the clean filters that config names) run [`Git::sandboxed`]:
//! through the launcher, under the same Landlock rules as the agent, so whatever the agent
//! planted runs with no more rights than the agent had.

use super::launcher::{self, Tracker};
use crate::sandbox::SandboxPlan;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one git command may run before it is killed.
const TIMEOUT: Duration = Duration::from_secs(120);
/// Most stderr kept for an error message.
const STDERR_MAX: usize = 8 * 1024;
/// Settings that make a run independent of what the repository's config asks for.
const HARDENED: &[&str] = &[
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.pager=cat",
    "-c",
    "commit.gpgSign=false",
    "-c",
    "core.quotePath=false",
];

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git could not start: {0}")]
    Start(std::io::Error),
    #[error("git {command} did not finish within {}s and was stopped", TIMEOUT.as_secs())]
    TimedOut { command: String },
    #[error("git {command} failed: {message}")]
    Failed { command: String, message: String },
}

/// What a successful run printed on stdout, up to the limit asked for.
#[derive(Debug)]
pub struct GitOutput {
    pub stdout: Vec<u8>,
    /// stdout went past the limit and was cut.
    pub truncated: bool,
}

impl GitOutput {
    /// stdout as one trimmed line of text (an object id, a branch name).
    pub fn line(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim().to_string()
    }
}

/// One git invocation being built.
#[derive(Clone)]
pub struct Git {
    args: Vec<OsString>,
    env: Vec<(&'static str, OsString)>,
    cwd: Option<PathBuf>,
    limit: usize,
    sandbox: Option<(PathBuf, SandboxPlan)>,
}

impl Git {
    /// Git on the repository (or worktree) at `dir`.
    pub fn at(dir: &Path) -> Git {
        let mut git = Git::bare();
        git.cwd = Some(dir.to_path_buf());
        git
    }

    /// Git on the repository `git_dir` with `work_tree` as its working tree (a private
    /// snapshot repository of a plain folder).
    pub fn split(git_dir: &Path, work_tree: &Path) -> Git {
        let mut git = Git::bare();
        git.cwd = Some(work_tree.to_path_buf());
        git.env.push(("GIT_DIR", git_dir.into()));
        git.env.push(("GIT_WORK_TREE", work_tree.into()));
        git
    }

    fn bare() -> Git {
        Git {
            args: HARDENED.iter().map(OsString::from).collect(),
            env: vec![
                ("GIT_TERMINAL_PROMPT", "0".into()),
                ("GIT_CONFIG_NOSYSTEM", "1".into()),
                ("GIT_OPTIONAL_LOCKS", "0".into()),
                ("GIT_AUTHOR_NAME", "flightdeck".into()),
                ("GIT_AUTHOR_EMAIL", "flightdeck@localhost".into()),
                ("GIT_COMMITTER_NAME", "flightdeck".into()),
                ("GIT_COMMITTER_EMAIL", "flightdeck@localhost".into()),
            ],
            cwd: None,
            limit: 1 << 20,
            sandbox: None,
        }
    }

    /// Runs under the agent's sandbox (`plan`, through the launcher `exe`), when there is one.
    pub fn sandboxed(mut self, exe: &Path, plan: Option<SandboxPlan>) -> Git {
        self.sandbox = plan.map(|plan| (exe.to_path_buf(), plan));
        self
    }

    /// Keeps at most `bytes` of stdout (the rest is read and dropped).
    pub fn limit(mut self, bytes: usize) -> Git {
        self.limit = bytes;
        self
    }

    pub fn env(mut self, key: &'static str, value: impl Into<OsString>) -> Git {
        self.env.push((key, value.into()));
        self
    }

    /// Runs `git <args>`; a non-zero exit is an error carrying git's own message.
    pub fn run<S: AsRef<std::ffi::OsStr>>(self, args: &[S]) -> Result<GitOutput, GitError> {
        let (out, ok, stderr, command) = self.exec(args)?;
        if ok == Some(0) {
            Ok(out)
        } else {
            Err(GitError::Failed {
                command,
                message: stderr,
            })
        }
    }

    /// Runs `git <args>` and returns its exit code with what it printed, for commands whose
    /// non-zero exit is an answer (`merge-base --is-ancestor`, `merge-tree`).
    pub fn answer<S: AsRef<std::ffi::OsStr>>(
        self,
        args: &[S],
    ) -> Result<(i32, GitOutput), GitError> {
        let (out, code, stderr, command) = self.exec(args)?;
        match code {
            Some(code) => Ok((code, out)),
            None => Err(GitError::Failed {
                command,
                message: stderr,
            }),
        }
    }

    fn exec<S: AsRef<std::ffi::OsStr>>(
        self,
        args: &[S],
    ) -> Result<(GitOutput, Option<i32>, String, String), GitError> {
        let command: String = args
            .iter()
            .take(2)
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let mut argv: Vec<OsString> = vec!["git".into()];
        argv.extend(self.args);
        argv.extend(args.iter().map(|a| a.as_ref().to_os_string()));
        let argv = match &self.sandbox {
            Some((exe, plan)) => {
                let text: Vec<String> = argv
                    .iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect();
                launcher::argv_for(exe, std::process::id(), &Tracker::Reaper, Some(plan), &text)
                    .map_err(|why| GitError::Start(std::io::Error::other(why)))?
                    .into_iter()
                    .map(OsString::from)
                    .collect()
            }
            None => argv,
        };
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("FLIGHTDECK_TOKEN")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE");
        if let Some(cwd) = &self.cwd {
            cmd.current_dir(cwd);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(GitError::Start)?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let limit = self.limit;
        let out_reader = std::thread::spawn(move || read_capped(stdout, limit));
        let err_reader = std::thread::spawn(move || read_capped(stderr, STDERR_MAX));
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => {
                    // The launcher leads its own process group (or git is a plain child).
                    if let Ok(pid) = i32::try_from(child.id()) {
                        // SAFETY: kill takes no pointers.
                        unsafe {
                            libc::kill(-pid, libc::SIGKILL);
                        }
                    }
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Err(e) => return Err(GitError::Start(e)),
            }
        };
        let (stdout, truncated) = out_reader.join().unwrap_or_default();
        let (stderr, _) = err_reader.join().unwrap_or_default();
        let Some(status) = status else {
            return Err(GitError::TimedOut { command });
        };
        let stderr = String::from_utf8_lossy(&stderr).trim().to_string();
        Ok((
            GitOutput { stdout, truncated },
            status.code(),
            stderr,
            command,
        ))
    }
}

/// Reads a stream to its end, keeping at most `limit` bytes.
fn read_capped(stream: Option<impl Read>, limit: usize) -> (Vec<u8>, bool) {
    let Some(mut stream) = stream else {
        return (Vec::new(), false);
    };
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = limit.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                truncated |= n > room;
            }
        }
    }
    (kept, truncated)
}
