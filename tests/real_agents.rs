//! The real agent CLIs (Claude Code, Codex, Gemini CLI, installed from npm by
//! tests/agent-clis/) run by flightdeck with their presets' own commands under the default
//! sandbox, against our scripted model server on loopback: an item reaches Review with the
//! agent's files, artifacts, acceptance report and tokens; and each failure the model API can
//! answer (bad key, rate limit, server error, silence) ends the way a person expects.

mod common;
#[path = "common/model_server.rs"]
mod model_server;

use common::*;
use model_server::{Fault, ModelServer};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

const INSTALL: &str = "cd tests/agent-clis && npm ci --no-audit --no-fund";

/// The shell steps every scripted agent takes: a file in the workspace, a report and the
/// acceptance report in the artifacts folder.
const SCRIPT: &[&str] = &[
    "printf 'hello from the agent\\n' > hello.txt",
    "printf '# Report\\nWrote hello.txt.\\n' > \"$FLIGHTDECK_ARTIFACTS/report.md\" && printf '[{\"criterion\":\"hello.txt exists\",\"met\":true,\"evidence\":\"wrote it\"}]' > \"$FLIGHTDECK_ARTIFACTS/acceptance.json\"",
];
const FINAL: &str = "Done: wrote hello.txt and the report.";

#[derive(Clone, Copy, Debug)]
enum Cli {
    Claude,
    Codex,
    Gemini,
}

impl Cli {
    fn preset(self) -> &'static str {
        match self {
            Cli::Claude => "claude",
            Cli::Codex => "codex",
            Cli::Gemini => "gemini",
        }
    }
}

/// The folder holding the installed CLIs' binaries; fails with the install command if absent.
fn clis_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/agent-clis/node_modules/.bin");
    for cli in ["claude", "codex", "gemini"] {
        assert!(
            bin.join(cli).exists(),
            "the real agent CLIs are not installed: run `{INSTALL}`"
        );
    }
    bin
}

/// A user's home with this CLI set up to use `model` (the way a person configures it), and
/// a flightdeck server running the preset's own command under the default sandbox.
fn start(cli: Cli, model: &ModelServer, extra: &str) -> (TestServer, tempfile::TempDir) {
    start_with_idle(cli, model, 20, extra)
}

/// [`start`] with `pool.idle_timeout_secs = idle_secs`.
fn start_with_idle(
    cli: Cli,
    model: &ModelServer,
    idle_secs: u64,
    extra: &str,
) -> (TestServer, tempfile::TempDir) {
    let home = tempfile::tempdir().expect("home");
    match cli {
        Cli::Claude => {}
        Cli::Codex => {
            model_server::configure_codex_home(home.path(), model);
        }
        Cli::Gemini => {
            model_server::configure_gemini_home(home.path());
        }
    }
    let path = format!(
        "{}:{}",
        clis_bin().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let url = model.url.clone();
    let home_path = home.path().to_path_buf();
    let config = format!(
        "[agent]\npreset = \"{}\"\n[pool]\nsize = 1\nretry_backoff_secs = 0.1\nmax_attempts = 1\nidle_timeout_secs = {idle_secs}\n{extra}",
        cli.preset()
    );
    let server = TestServer::start_prepared(&config, move |cmd| {
        cmd.env("PATH", &path)
            .env("HOME", &home_path)
            .env_remove("CLAUDE_CONFIG_DIR")
            .env_remove("CODEX_HOME")
            .env_remove("GEMINI_CLI_HOME")
            .env("ANTHROPIC_BASE_URL", &url)
            .env("ANTHROPIC_API_KEY", "sk-ant-scripted")
            .env("SCRIPTED_API_KEY", "sk-scripted")
            .env("GOOGLE_GEMINI_BASE_URL", &url)
            .env("GEMINI_API_KEY", "scripted-gemini-key");
    });
    let (_, status) = server.get("/api/status");
    assert_eq!(
        status["sandbox"], "landlock",
        "this kernel enforces Landlock"
    );
    (server, home)
}

fn create(server: &TestServer) -> String {
    let item = server.create(json!({
        "title": "Say hello",
        "description": "Write hello.txt and a report.",
        "acceptanceCriteria": ["hello.txt exists"],
        "status": "ready",
    }));
    item["id"].as_str().unwrap().to_string()
}

fn session_of(server: &TestServer, item_id: &str) -> Value {
    let (_, sessions) = server.get("/api/agents");
    sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["workItemId"] == item_id)
        .cloned()
        .expect("a session for the item")
}

/// Waits until the item settles in `status`; on any other end, or none, fails with the item
/// and what its agents printed.
fn wait_settled(server: &TestServer, id: &str, status: &str, timeout: Duration) -> Value {
    let start = std::time::Instant::now();
    loop {
        let item = server.item(id);
        let now = item["status"].as_str().unwrap_or("").to_string();
        if now == status {
            return item;
        }
        if start.elapsed() > timeout || (now == "blocked" || now == "done" || now == "review") {
            panic!(
                "item ended {now} (wanted {status}):\n{item:#}\nagent logs:\n{}",
                server.agent_logs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn succeeds_end_to_end(cli: Cli) {
    let model = ModelServer::start(SCRIPT, FINAL, Fault::None);
    let (server, _home) = start(cli, &model, "");
    let id = create(&server);
    let item = wait_settled(&server, &id, "review", Duration::from_secs(240));
    let session = session_of(&server, &id);
    let ws = PathBuf::from(session["workspaceDir"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(ws.join("hello.txt")).unwrap(),
        "hello from the agent\n"
    );
    let artifacts: Vec<&str> = item["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["path"].as_str())
        .collect();
    assert!(
        artifacts.iter().any(|p| p.ends_with("report.md")),
        "{artifacts:?}"
    );
    // The acceptance report covers the item's criterion (an uncovered one would have failed
    // the attempt) and was written where flightdeck reads it.
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(ws.parent().unwrap().join("artifacts/acceptance.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report[0]["criterion"], "hello.txt exists");
    assert!(session["tokensUsed"].as_u64().unwrap_or(0) > 0, "{session}");
    assert!(
        model.model_requests().len() >= 3,
        "the CLI asked the scripted model"
    );
}

#[test]
fn claude_gets_an_item_to_review() {
    succeeds_end_to_end(Cli::Claude);
}

#[test]
fn codex_gets_an_item_to_review() {
    succeeds_end_to_end(Cli::Codex);
}

#[test]
fn gemini_gets_an_item_to_review() {
    succeeds_end_to_end(Cli::Gemini);
}

/// A bad API key: the item is blocked within a minute, the reason a sentence naming the fix.
fn bad_key_blocks(cli: Cli, fix: &str) {
    let model = ModelServer::start(SCRIPT, FINAL, Fault::Always(401));
    let (server, _home) = start(cli, &model, "");
    let id = create(&server);
    let item = wait_settled(&server, &id, "blocked", Duration::from_secs(60));
    let reason = item["statusReason"].as_str().unwrap_or("");
    assert!(reason.contains(fix), "{reason}\n{}", server.agent_logs());
    assert!(!reason.contains("{\""), "protocol JSON in {reason}");
}

#[test]
fn claude_with_a_bad_key_is_blocked_with_the_fix() {
    bad_key_blocks(Cli::Claude, "ANTHROPIC_API_KEY");
}

#[test]
fn codex_with_a_bad_key_is_blocked_with_the_fix() {
    bad_key_blocks(Cli::Codex, "codex login");
}

#[test]
fn gemini_with_a_bad_key_is_blocked_with_the_fix() {
    bad_key_blocks(Cli::Gemini, "GEMINI_API_KEY");
}

/// A rate limit that lifts after a few seconds: with a single attempt allowed, the item still
/// reaches Review.
fn lifting_rate_limit_reaches_review(cli: Cli) {
    let model = ModelServer::start(
        SCRIPT,
        FINAL,
        Fault::RateLimited {
            times: 1,
            retry_after: 2,
        },
    );
    let (server, _home) = start(cli, &model, "");
    let id = create(&server);
    wait_settled(&server, &id, "review", Duration::from_secs(180));
}

#[test]
fn claude_waits_out_a_rate_limit() {
    lifting_rate_limit_reaches_review(Cli::Claude);
}

#[test]
fn codex_waits_out_a_rate_limit() {
    lifting_rate_limit_reaches_review(Cli::Codex);
}

#[test]
fn gemini_waits_out_a_rate_limit() {
    lifting_rate_limit_reaches_review(Cli::Gemini);
}

/// Adds `extra` to the user's own settings file of the CLI (`~/.claude/settings.json`,
/// `~/.gemini/settings.json`), as a person tunes their CLI; sessions copy it when they start.
fn user_settings(cli: Cli, home: &Path, extra: Value) {
    let file = match cli {
        Cli::Claude => home.join(".claude/settings.json"),
        Cli::Gemini => home.join(".gemini/settings.json"),
        Cli::Codex => unreachable!("codex is tuned in its config.toml"),
    };
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let mut settings: Value = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| json!({}));
    for (key, value) in extra.as_object().unwrap() {
        match (settings.get_mut(key), value) {
            (Some(Value::Object(own)), Value::Object(more)) => {
                own.extend(more.clone());
            }
            _ => settings[key] = value.clone(),
        }
    }
    std::fs::write(&file, settings.to_string()).unwrap();
}

/// A model API that keeps failing with 500: the CLI's own retry lines keep the attempt alive
/// and show as progress, then the attempt fails with a reason in words. The retries are
/// capped the way a person caps them in the CLI's settings, so the test takes about a minute
/// rather than the CLIs' full three-minute loops.
/// - Claude Code announces each wait (`api_retry`, `retry_delay_ms`); its 7th waits about
///   33 s, past the 20 s idle limit, which the announced wait must cover.
/// - Gemini CLI prints its first retries of a request on stderr without the wait, and retries
///   later requests silently: that case gets an idle limit of 90 s, longer than its capped
///   backoff, since a CLI that prints nothing cannot be told from a stalled one.
/// - Codex retries once (its config.toml, written for every test) and says "Reconnecting".
fn server_errors_fail_the_attempt(cli: Cli) {
    let model = ModelServer::start(SCRIPT, FINAL, Fault::Always(500));
    let idle = match cli {
        Cli::Gemini => 90,
        _ => 20,
    };
    let (server, home) = start_with_idle(cli, &model, idle, "");
    match cli {
        Cli::Claude => user_settings(
            cli,
            home.path(),
            json!({"env": {"CLAUDE_CODE_MAX_RETRIES": "7"}}),
        ),
        Cli::Gemini => user_settings(cli, home.path(), json!({"general": {"maxAttempts": 3}})),
        Cli::Codex => {}
    }
    let id = create(&server);
    let item = wait_settled(&server, &id, "blocked", Duration::from_secs(400));
    let reason = item["statusReason"].as_str().unwrap_or("");
    let log = server.agent_logs();
    assert!(
        !reason.contains("stalled"),
        "the agent was retrying, not stalled: {reason}\n{log}"
    );
    assert!(reason.contains("model API"), "{reason}\n{log}");
    assert!(!reason.contains("{\""), "protocol JSON in {reason}");
    // The agent's retries were shown as they happened, in words.
    let events = server.get("/api/events?since=0&limit=10000").1.to_string();
    let (retry, times) = match cli {
        Cli::Claude => ("Claude Code got an error from its model API (HTTP 500)", 7),
        Cli::Gemini => ("Gemini CLI got an error from its model API (HTTP 500)", 2),
        Cli::Codex => ("Reconnecting... 1/1", 1),
    };
    assert!(
        events.matches(retry).count() >= times,
        "{times} retries shown as progress: {events}"
    );
}

#[test]
fn claude_server_errors_fail_the_attempt() {
    server_errors_fail_the_attempt(Cli::Claude);
}

#[test]
fn codex_server_errors_fail_the_attempt() {
    server_errors_fail_the_attempt(Cli::Codex);
}

#[test]
fn gemini_server_errors_fail_the_attempt() {
    server_errors_fail_the_attempt(Cli::Gemini);
}

/// A model that never answers: the idle timeout stops the agent and says so.
fn a_silent_model_times_out(cli: Cli) {
    let model = ModelServer::start(SCRIPT, FINAL, Fault::Hang);
    let (server, _home) = start(cli, &model, "");
    let id = create(&server);
    let item = wait_settled(&server, &id, "blocked", Duration::from_secs(180));
    let reason = item["statusReason"].as_str().unwrap_or("");
    assert!(
        reason.contains("no output") || reason.contains("idle") || reason.contains("stalled"),
        "{reason}"
    );
}

#[test]
fn claude_with_a_silent_model_times_out() {
    a_silent_model_times_out(Cli::Claude);
}

#[test]
fn codex_with_a_silent_model_times_out() {
    a_silent_model_times_out(Cli::Codex);
}

#[test]
fn gemini_with_a_silent_model_times_out() {
    a_silent_model_times_out(Cli::Gemini);
}

fn git(repo: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .expect("git runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "git {args:?}: {text}");
    text
}

/// Git worktree mode with the real Claude Code: it writes a file and commits nothing;
/// flightdeck commits what it left to the item's branch (without AGENTS.md), the item reaches
/// Review, and approving merges the branch into the repository's checked-out branch.
#[test]
fn claude_in_git_mode_gets_its_work_committed_and_merged_on_approve() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("project");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["config", "user.name", "test"]);
    git(&repo, &["config", "user.email", "test@example.invalid"]);
    std::fs::write(repo.join("README"), "the project\n").unwrap();
    git(&repo, &["add", "README"]);
    git(&repo, &["commit", "-q", "-m", "start"]);

    let model = ModelServer::start(SCRIPT, FINAL, Fault::None);
    let workspace = format!(
        "[workspace]\ngit_repo = \"{}\"\non_approve = \"merge\"\n",
        repo.display()
    );
    let (server, _home) = start(Cli::Claude, &model, &workspace);
    let id = create(&server);
    let item = wait_settled(&server, &id, "review", Duration::from_secs(240));
    let branch = format!("flightdeck/{}", &id[..8]);

    let commits = git(
        &repo,
        &["log", "--format=%an|%s", &format!("main..{branch}")],
    );
    assert!(
        commits
            .lines()
            .any(|l| l.starts_with("flightdeck|Say hello (attempt 1)")),
        "flightdeck committed what the agent left: {commits}"
    );
    let files = git(&repo, &["log", "--format=", "--name-only", &branch]);
    assert!(files.contains("hello.txt"), "{files}");
    assert!(
        !files.contains("AGENTS.md"),
        "AGENTS.md entered a commit: {files}"
    );
    assert!(
        item["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["path"] == branch.as_str()),
        "the branch is the item's deliverable: {item:#}"
    );

    let (status, moved) = server.move_to(&id, "done");
    assert_eq!(status, 200, "{moved}");
    assert_eq!(
        std::fs::read_to_string(repo.join("hello.txt")).unwrap(),
        "hello from the agent\n",
        "main, checked out in the repository, has the agent's file"
    );
    git(&repo, &["merge-base", "--is-ancestor", &branch, "main"]);
}
