//! The agents flightdeck knows by name, in one place: for each preset its built-in command,
//! the environment it runs with, and the state it keeps between its own runs.
//!
//! Real agent CLIs keep state in a folder of the user's home (`~/.claude`, `~/.codex`,
//! `~/.gemini`): the login, settings, transcripts, locks. Under the sandbox that folder is
//! readable but not writable, and letting agents write it would let one session trample
//! another's state, or plant settings (hooks, commands) that the user's own next run obeys.
//! So each session gets its own agent home inside its session folder (which only it can
//! reach), seeded from the user's: settings are copied, and the login is linked, so the
//! secret is never duplicated into the data dir and is read where the user keeps it. The
//! same goes for the tool caches that build and test commands write (cargo, npm, pip, go):
//! each session has its own, so no agent can poison what the user or another session runs.
//!
//! What each CLI needs to work unattended, decided here:
//! - Claude Code: `bypassPermissions`, because its permission layer refuses writes outside its
//!   working directory and Bash lines that expand variables; flightdeck's sandbox is what
//!   confines it. Claude Code refuses that mode as root unless told it runs in a deliberate
//!   sandbox (`IS_SANDBOX=1`), which flightdeck says only when Landlock confines it.
//! - Codex: its own sandbox (bwrap) cannot start inside flightdeck's (it needs user
//!   namespaces), so it runs with `--sandbox danger-full-access` and flightdeck's Landlock is
//!   its confinement; without Landlock it runs unconfined, and `GET /api/status` says
//!   `"sandbox": "none"`. `--skip-git-repo-check` lets it work in a plain folder.
//! - ACP presets: the adapter runs under `flightdeck acp-bridge` (see `dispatch::acp`), which
//!   asks flightdeck's `[approvals]` policy, and people, instead of approving everything; each
//!   adapter keeps the home of the CLI it wraps.
//! - Gemini CLI: `--yolo` approves its tool calls; `GEMINI_CLI_NO_RELAUNCH` keeps it from
//!   re-spawning itself (its relaunch waits on a child that the sandbox can leave silent).

use crate::config::{Config, Preset};
use std::io;
use std::path::{Path, PathBuf};

/// What every real agent is asked to do; the work itself is in AGENTS.md.
pub const PROMPT: &str = "Read AGENTS.md in the current directory and do the work it describes. Put deliverables in the artifacts folder it names.";

/// The folder of a session that holds its agent's home and tool caches.
const STATE_DIR: &str = "agent-state";

/// The argv of the configured agent: `agent.command`, or the preset's own. An ACP preset's
/// adapter runs under the bridge.
pub fn command(config: &Config, exe: &Path) -> Vec<String> {
    let agent = if config.agent.command.is_empty() {
        default_command(config.agent.preset, exe)
    } else {
        config.agent.command.clone()
    };
    if !config.agent.preset.is_acp() {
        return agent;
    }
    let mut bridged: Vec<String> = [
        &exe.display().to_string(),
        "acp-bridge",
        "--prompt-file",
        "{prompt_file}",
        "--workspace",
        "{workspace}",
        "--artifacts",
        "{artifacts}",
        "--",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    bridged.extend(agent);
    bridged
}

/// The preset's built-in argv (placeholders as in `agent.command`).
pub fn default_command(preset: Preset, exe: &Path) -> Vec<String> {
    let list: &[&str] = match preset {
        Preset::Demo | Preset::Lines => {
            return vec![
                exe.display().to_string(),
                "demo-agent".into(),
                "{prompt_file}".into(),
            ]
        }
        Preset::Claude => &[
            "claude",
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--permission-mode",
            "bypassPermissions",
            "--add-dir",
            "{artifacts}",
            "--",
            PROMPT,
        ],
        Preset::Codex => &[
            "codex",
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--sandbox",
            "danger-full-access",
            PROMPT,
        ],
        Preset::Gemini => &[
            "gemini",
            "--output-format",
            "stream-json",
            "--yolo",
            "--prompt",
            PROMPT,
        ],
        Preset::Acp => &[],
        Preset::AcpClaude => &["claude-agent-acp"],
        Preset::AcpCodex => &["codex-acp"],
        Preset::AcpGemini => &["gemini", "--acp"],
    };
    list.iter().map(|s| s.to_string()).collect()
}

/// Where a CLI keeps its state: the variable that moves it, and the user's folder.
struct AgentHome {
    /// The variable the CLI reads its home from.
    var: &'static str,
    /// The user's own value of `var` wins over `default` (a path under `$HOME`).
    default: &'static str,
    /// Whether `var` names the home that holds `default`'s last component (Gemini's
    /// `GEMINI_CLI_HOME` is a home holding `.gemini/`) rather than the folder itself.
    holds_folder: bool,
    /// Files copied into the session's home: settings the agent may change for itself.
    copied: &'static [&'static str],
    /// Files linked from the session's home: the login, read where the user keeps it.
    linked: &'static [&'static str],
}

fn agent_home(preset: Preset) -> Option<AgentHome> {
    match preset {
        Preset::Demo | Preset::Lines | Preset::Acp => None,
        Preset::Claude | Preset::AcpClaude => Some(AgentHome {
            var: "CLAUDE_CONFIG_DIR",
            default: ".claude",
            holds_folder: false,
            copied: &["settings.json", "CLAUDE.md", ".claude.json"],
            linked: &[".credentials.json"],
        }),
        Preset::Codex | Preset::AcpCodex => Some(AgentHome {
            var: "CODEX_HOME",
            default: ".codex",
            holds_folder: false,
            copied: &["config.toml", "AGENTS.md"],
            linked: &["auth.json"],
        }),
        Preset::Gemini | Preset::AcpGemini => Some(AgentHome {
            var: "GEMINI_CLI_HOME",
            default: ".gemini",
            holds_folder: true,
            copied: &["settings.json", "GEMINI.md", ".env"],
            linked: &["oauth_creds.json", "google_accounts.json"],
        }),
    }
}

/// The environment an agent of `preset` (and its verify command) runs with in the session
/// folder `root`, on top of flightdeck's own variables.
pub fn session_env(preset: Preset, sandboxed: bool, root: &Path) -> Vec<(String, String)> {
    let state = root.join(STATE_DIR);
    let cache = state.join("cache");
    let path = |p: PathBuf| p.display().to_string();
    let mut env = vec![
        ("XDG_CACHE_HOME".to_string(), path(cache.clone())),
        ("CARGO_HOME".to_string(), path(cache.join("cargo"))),
        ("npm_config_cache".to_string(), path(cache.join("npm"))),
        ("PIP_CACHE_DIR".to_string(), path(cache.join("pip"))),
        ("GOCACHE".to_string(), path(cache.join("go-build"))),
        ("GOMODCACHE".to_string(), path(cache.join("go-mod"))),
    ];
    if let Some(home) = agent_home(preset) {
        env.push((home.var.to_string(), path(state.join(home.default))));
    }
    match preset {
        Preset::Claude | Preset::AcpClaude => {
            env.push((
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".into(),
                "1".into(),
            ));
            if sandboxed {
                env.push(("IS_SANDBOX".into(), "1".into()));
            }
        }
        Preset::Gemini | Preset::AcpGemini => {
            env.push(("GEMINI_CLI_NO_RELAUNCH".into(), "true".into()))
        }
        _ => {}
    }
    env
}

/// Creates the session's agent home and caches under `root`, seeded from the user's own
/// agent home (the server's `$HOME` or the CLI's variable): settings copied, login linked.
/// A file the user does not have is skipped.
pub fn prepare_state(preset: Preset, root: &Path) -> io::Result<()> {
    let state = root.join(STATE_DIR);
    std::fs::create_dir_all(state.join("cache"))?;
    let Some(home) = agent_home(preset) else {
        return Ok(());
    };
    let own = state.join(home.default);
    let folder = if home.holds_folder {
        own.join(home.default)
    } else {
        own
    };
    std::fs::create_dir_all(&folder)?;
    let Some(user) = user_folder(&home) else {
        return Ok(());
    };
    for name in home.copied {
        let from = user.join(name);
        if from.is_file() {
            std::fs::copy(&from, folder.join(name))?;
        }
    }
    // Claude Code keeps its global config beside its folder unless CLAUDE_CONFIG_DIR is set.
    let claude = matches!(preset, Preset::Claude | Preset::AcpClaude);
    if claude && std::env::var_os(home.var).is_none() {
        if let Some(global) = std::env::var_os("HOME").map(|h| Path::new(&h).join(".claude.json")) {
            if global.is_file() {
                std::fs::copy(&global, folder.join(".claude.json"))?;
            }
        }
    }
    for name in home.linked {
        let from = user.join(name);
        if from.is_file() {
            std::os::unix::fs::symlink(&from, folder.join(name))?;
        }
    }
    Ok(())
}

/// The user's own state folder of a CLI, as the server's environment names it.
fn user_folder(home: &AgentHome) -> Option<PathBuf> {
    if let Some(set) = std::env::var_os(home.var).filter(|v| !v.is_empty()) {
        let set = PathBuf::from(set);
        return Some(if home.holds_folder {
            set.join(home.default)
        } else {
            set
        });
    }
    std::env::var_os("HOME").map(|h| Path::new(&h).join(home.default))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_real_preset_gets_its_own_home_and_caches_inside_the_session_folder() {
        let root = Path::new("/data/agents/s1");
        for (preset, var) in [
            (Preset::Claude, "CLAUDE_CONFIG_DIR"),
            (Preset::Codex, "CODEX_HOME"),
            (Preset::Gemini, "GEMINI_CLI_HOME"),
        ] {
            let env = session_env(preset, true, root);
            let home = env.iter().find(|(k, _)| k == var).expect(var);
            assert!(
                home.1.starts_with("/data/agents/s1/"),
                "{preset:?}: {home:?}"
            );
            for cache in ["CARGO_HOME", "npm_config_cache", "PIP_CACHE_DIR", "GOCACHE"] {
                let (_, v) = env.iter().find(|(k, _)| k == cache).expect(cache);
                assert!(v.starts_with("/data/agents/s1/"), "{cache}={v}");
            }
        }
    }

    #[test]
    fn claude_is_told_it_is_sandboxed_only_when_it_is() {
        let root = Path::new("/r");
        let says = |sandboxed| {
            session_env(Preset::Claude, sandboxed, root)
                .iter()
                .any(|(k, v)| k == "IS_SANDBOX" && v == "1")
        };
        assert!(says(true));
        assert!(!says(false));
    }

    #[test]
    fn the_real_presets_run_unattended() {
        let exe = Path::new("/bin/flightdeck");
        let claude = default_command(Preset::Claude, exe);
        assert!(claude
            .windows(2)
            .any(|w| w == ["--permission-mode", "bypassPermissions"]));
        assert!(claude.windows(2).any(|w| w == ["--add-dir", "{artifacts}"]));
        let codex = default_command(Preset::Codex, exe);
        assert!(codex.contains(&"--skip-git-repo-check".to_string()));
        assert!(!codex.contains(&"--full-auto".to_string()));
        let gemini = default_command(Preset::Gemini, exe);
        assert!(gemini.contains(&"--yolo".to_string()));
    }
}
