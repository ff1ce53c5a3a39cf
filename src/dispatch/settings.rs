//! How agents run on this host, built from its config: the one place that decides whether
//! the sandbox is used and what it allows, shared by the server's own pool and by
//! `flightdeck runner` on other machines, so the two never drift apart.

use super::{acp::Desk, presets, process::Tracking, AgentSettings};
use crate::config::{Config, SandboxMode};
use crate::sandbox::{PortRulesFd, SandboxPlan};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `agent.sandbox = "required"` on a kernel that does not enforce Landlock.
#[derive(Debug, thiserror::Error)]
#[error("agent.sandbox = \"required\", but this kernel does not enforce Landlock")]
pub struct SandboxRequired;

/// Whether agents here run sandboxed: asked for in the config and enforced by the kernel.
/// Refuses to go on without a sandbox when the config requires one.
pub fn sandbox_enforced(config: &Config, exe: &Path) -> Result<bool, SandboxRequired> {
    let sandboxed = config.agent.sandbox != SandboxMode::Off && crate::sandbox::probe(exe);
    match (config.agent.sandbox, sandboxed) {
        (SandboxMode::Required, false) => Err(SandboxRequired),
        _ => Ok(sandboxed),
    }
}

/// What a sandboxed agent may write and may not read: its workspace and the configured
/// `agent.writable` paths (and the repository's .git, where a worktree's commits land),
/// never the data dir or the config file. `port_rules` is the server's
/// [`crate::sandbox::PortRules`] fd (a runner has no port of its own to keep agents off).
pub fn sandbox_plan(config: &Config, data_dir: &Path, port_rules: PortRulesFd) -> SandboxPlan {
    let mut denied = vec![data_dir.to_path_buf()];
    if let Some(path) = config.path.as_ref().and_then(|p| p.canonicalize().ok()) {
        denied.push(path);
    }
    let mut writable = config.agent.writable.clone();
    if !config.workspace.git_repo.is_empty() {
        // A worktree's commits land in the repository's own .git folder.
        writable.push(PathBuf::from(&config.workspace.git_repo).join(".git"));
    }
    SandboxPlan {
        writable,
        denied,
        port_rules,
        api_fenced_by_cgroup: false,
    }
}

/// The settings every session of this host runs with.
pub fn agent_settings(
    config: &Config,
    data_dir: &Path,
    exe: &Path,
    sandbox: Option<SandboxPlan>,
    tracking: Tracking,
    desk: Desk,
) -> AgentSettings {
    AgentSettings {
        preset: config.agent.preset,
        command: presets::command(config, exe),
        verify: config.agent.verify.clone(),
        timeout: Duration::from_secs(config.pool.timeout_secs),
        idle_timeout: Duration::from_secs(config.pool.idle_timeout_secs),
        data_dir: data_dir.to_path_buf(),
        git_repo: (!config.workspace.git_repo.is_empty())
            .then(|| PathBuf::from(&config.workspace.git_repo)),
        sandbox,
        exe: exe.to_path_buf(),
        tracking,
        approvals: config.approvals.clone(),
        desk,
        cancel_grace: Duration::from_secs(config.agent.cancel_grace_secs),
    }
}
