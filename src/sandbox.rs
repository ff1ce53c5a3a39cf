//! Kernel-enforced isolation of agents with Landlock.
//!
//! An agent runs through `flightdeck exec-agent --sandbox --rw DIR... --deny PATH... -- ARGV...`
//! (see `dispatch::launcher`): that small, single-threaded process restricts itself and then
//! execs the agent, so the restriction holds for the agent and everything it starts. The rules: read (and execute)
//! everywhere except the denied paths (the data dir, the config file that holds the token),
//! write only in the `--rw` folders (the session's own folder, `/dev`). Landlock does not
//! govern walking through directories, so the agent can still reach its own folder inside the
//! data dir while nothing else there can be opened.
//!
//! Whether the kernel has Landlock is found by running `flightdeck exec-agent --probe` once
//! at start-up: a child that restricts itself and says whether it worked.

use landlock::{
    path_beneath_rules, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
    ABI,
};
use std::path::{Path, PathBuf};
use std::process::Command;

const ABI_USED: ABI = ABI::V5;

/// What a sandboxed agent may touch.
#[derive(Debug, Clone, Default)]
pub struct SandboxPlan {
    pub writable: Vec<PathBuf>,
    pub denied: Vec<PathBuf>,
}

/// Restricts this process under `plan`. Returns whether the kernel enforced it.
pub fn restrict_self(plan: &SandboxPlan) -> Result<bool, String> {
    let denied: Vec<PathBuf> = plan
        .denied
        .iter()
        .filter_map(|d| d.canonicalize().ok())
        .collect();
    let mut readable = Vec::new();
    readable_outside(Path::new("/"), &denied, &mut readable);
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(ABI_USED))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(&readable, AccessFs::from_read(ABI_USED))))
        .and_then(|r| {
            r.add_rules(path_beneath_rules(
                &plan.writable,
                AccessFs::from_all(ABI_USED),
            ))
        })
        .and_then(|r| r.restrict_self())
        .map_err(|e| format!("landlock: {e}"))?;
    Ok(status.ruleset != RulesetStatus::NotEnforced)
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
