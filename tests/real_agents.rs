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
    let home = tempfile::tempdir().expect("home");
    match cli {
        Cli::Claude => {}
        Cli::Codex => {
            let dir = home.path().join(".codex");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join("config.toml"),
                format!(
                    "model = \"gpt-5-codex\"\nmodel_provider = \"scripted\"\n\n[model_providers.scripted]\nname = \"scripted\"\nbase_url = \"{}/v1\"\nwire_api = \"responses\"\nenv_key = \"SCRIPTED_API_KEY\"\nrequest_max_retries = 2\nstream_max_retries = 1\nstream_idle_timeout_ms = 600000\n",
                    model.url
                ),
            )
            .unwrap();
        }
        Cli::Gemini => {
            let dir = home.path().join(".gemini");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join("settings.json"),
                json!({
                    "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": false}},
                    "general": {"disableAutoUpdate": true, "disableUpdateNag": true},
                    "privacy": {"usageStatisticsEnabled": false},
                    "telemetry": {"enabled": false}
                })
                .to_string(),
            )
            .unwrap();
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
        "[agent]\npreset = \"{}\"\n[pool]\nsize = 1\nretry_backoff_secs = 0.1\n{extra}",
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
    assert_eq!(status["sandbox"], "landlock", "this kernel enforces Landlock");
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
        .find(|s| s["itemId"] == item_id)
        .cloned()
        .expect("a session for the item")
}

fn succeeds_end_to_end(cli: Cli) {
    let model = ModelServer::start(SCRIPT, FINAL, Fault::None);
    let (server, _home) = start(cli, &model, "");
    let id = create(&server);
    let item = server.wait_status(&id, "review", Duration::from_secs(240));
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
    assert_eq!(item["acceptanceReport"][0]["met"], true, "{item}");
    assert!(
        session["tokensUsed"].as_u64().unwrap_or(0) > 0,
        "{session}"
    );
    assert!(model.model_requests().len() >= 3, "the CLI asked the scripted model");
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
