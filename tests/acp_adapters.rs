//! The Codex and Gemini CLI ACP adapters with a person in the loop: the real `codex-acp`
//! (`acp-codex`) and `gemini --acp` (`acp-gemini`), from npm (pinned in tests/agent-clis/),
//! run under the default sandbox against our scripted OpenAI Responses and Gemini model
//! servers. Each asks permission for a shell command; a person allows it over the API; the
//! command's file is written and the item reaches Review.

mod common;
#[path = "common/model_server.rs"]
mod model_server;

use common::*;
use model_server::{Fault, ModelServer};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const INSTALL: &str = "cd tests/agent-clis && npm ci --no-audit --no-fund";
/// The command a person must allow: it writes a file the test looks for.
const GUARDED: &str = "touch guarded.txt";
/// The deliverable, allowed by `approvals.allow_commands` in every test.
const DELIVER: &str = "printf 'hello from the agent\\n' > hello.txt && printf '# Report\\n' > \"$FLIGHTDECK_ARTIFACTS/report.md\"";
const FINAL: &str = "Done: wrote hello.txt and the report.";
const WAIT: Duration = Duration::from_secs(240);

#[derive(Clone, Copy, Debug)]
enum Adapter {
    Codex,
    Gemini,
}

impl Adapter {
    fn preset(self) -> &'static str {
        match self {
            Adapter::Codex => "acp-codex",
            Adapter::Gemini => "acp-gemini",
        }
    }

    fn binary(self) -> &'static str {
        match self {
            Adapter::Codex => "codex-acp",
            Adapter::Gemini => "gemini",
        }
    }
}

fn clis_bin(adapter: Adapter) -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/agent-clis/node_modules/.bin");
    assert!(
        bin.join(adapter.binary()).exists(),
        "the ACP adapters are not installed: run `{INSTALL}`"
    );
    bin
}

/// A user's home with the CLI the adapter wraps set up to use `model` (as a person
/// configures it), and a flightdeck running the adapter's preset under the default sandbox.
fn start(adapter: Adapter, model: &ModelServer) -> (TestServer, tempfile::TempDir) {
    let home = tempfile::tempdir().expect("home");
    match adapter {
        Adapter::Codex => {
            model_server::configure_codex_home(home.path(), model);
        }
        Adapter::Gemini => {
            model_server::configure_gemini_home(home.path());
        }
    }
    let path = format!(
        "{}:{}",
        clis_bin(adapter).display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let url = model.url.clone();
    let home_path = home.path().to_path_buf();
    let config = format!(
        "[agent]\npreset = \"{}\"\n[pool]\nsize = 1\nmax_attempts = 1\nidle_timeout_secs = 120\n[approvals]\nallow_commands = [\"printf 'hello*\"]\n",
        adapter.preset()
    );
    let server = TestServer::start_prepared(&config, move |cmd| {
        cmd.env("PATH", &path)
            .env("HOME", &home_path)
            .env_remove("CODEX_HOME")
            .env_remove("GEMINI_CLI_HOME")
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
        "status": "ready",
    }));
    item["id"].as_str().unwrap().to_string()
}

/// Waits for `done` to hold of the server, failing with the item and the agents' logs if the
/// item settles elsewhere or after [`WAIT`].
fn wait_for<T>(
    server: &TestServer,
    id: &str,
    what: &str,
    mut done: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = done() {
            return value;
        }
        let item = server.item(id);
        let settled = ["blocked", "done"].contains(&item["status"].as_str().unwrap_or(""));
        assert!(
            start.elapsed() < WAIT && !settled,
            "waited for {what}; the item:\n{item:#}\nagent logs:\n{}",
            server.agent_logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn option_of(approval: &Value, kind: &str) -> String {
    approval["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == kind)
        .and_then(|o| o["optionId"].as_str())
        .unwrap_or_else(|| panic!("no {kind} option in {approval:#}"))
        .to_string()
}

/// The adapter asks before running the guarded command; a person allows it over the API; it
/// runs, the deliverable follows, and the item reaches Review.
fn an_approved_command_runs_and_the_item_reaches_review(adapter: Adapter) {
    let model = ModelServer::start(&[GUARDED, DELIVER], FINAL, Fault::None);
    model.escalate_shell();
    let (server, _home) = start(adapter, &model);
    let id = create(&server);
    let approval = wait_for(&server, &id, "a permission request", || {
        let (_, list) = server.get("/api/approvals");
        list.as_array().and_then(|l| l.first().cloned())
    });
    assert_eq!(approval["itemId"], id.as_str());
    assert_eq!(approval["tool"]["kind"], "execute", "{approval:#}");
    // Gemini CLI names the command in the title only (its requests carry no rawInput).
    let names_it = |field: &str| {
        approval["tool"][field]
            .as_str()
            .is_some_and(|c| c.contains(GUARDED))
    };
    assert!(names_it("command") || names_it("title"), "{approval:#}");
    // The request is listed at once; the item's flag follows in the store's next write.
    server.wait_for("the item to show it waits on a person", WAIT, || {
        (server.item(&id)["waitingOnPerson"] == true).then_some(())
    });
    let ws = server.workspace(&id);
    assert!(
        !ws.join("guarded.txt").exists(),
        "ran before it was allowed"
    );
    let (code, body) = server.post(
        &format!("/api/approvals/{}", approval["id"].as_str().unwrap()),
        json!({ "option": option_of(&approval, "allow_once") }),
    );
    assert_eq!(code, 200, "{body}");
    // The deliverable's command reaches a person too where the adapter's request does not
    // name it in a form `approvals.allow_commands` matches (see README); a person allows it.
    let item = wait_for(&server, &id, "the item in review", || {
        let item = server.item(&id);
        if item["status"] == "review" {
            return Some(item);
        }
        let (_, list) = server.get("/api/approvals");
        for next in list.as_array().into_iter().flatten() {
            assert!(
                !next["tool"].to_string().contains("guarded"),
                "asked twice: {next:#}"
            );
            server.post(
                &format!("/api/approvals/{}", next["id"].as_str().unwrap()),
                json!({ "option": option_of(next, "allow_once") }),
            );
        }
        None
    });
    assert_eq!(item["waitingOnPerson"], false);
    assert!(
        ws.join("guarded.txt").exists(),
        "the allowed command ran; logs:\n{}",
        server.agent_logs()
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("hello.txt")).unwrap_or_default(),
        "hello from the agent\n"
    );
    assert!(
        model.model_requests().len() >= 3,
        "the adapter asked the scripted model"
    );
}

#[test]
fn codex_acp_asks_and_an_approved_command_reaches_review() {
    an_approved_command_runs_and_the_item_reaches_review(Adapter::Codex);
}

/// Gemini CLI over ACP asks a person before a shell command, and the answer reaches it; the
/// allowed command then fails inside Gemini CLI (README: "acp-gemini"), so the run itself
/// cannot reach Review yet.
#[test]
fn gemini_acp_asks_a_person_before_a_shell_command_and_gets_the_answer() {
    let model = ModelServer::start(&[GUARDED, DELIVER], FINAL, Fault::None);
    let (server, _home) = start(Adapter::Gemini, &model);
    let id = create(&server);
    let approval = wait_for(&server, &id, "a permission request", || {
        let (_, list) = server.get("/api/approvals");
        list.as_array().and_then(|l| l.first().cloned())
    });
    assert_eq!(approval["itemId"], id.as_str());
    assert_eq!(approval["tool"]["kind"], "execute", "{approval:#}");
    assert_eq!(approval["tool"]["title"], GUARDED, "{approval:#}");
    // The request is listed at once; the item's flag follows in the store's next write.
    server.wait_for("the item to show it waits on a person", WAIT, || {
        (server.item(&id)["waitingOnPerson"] == true).then_some(())
    });
    let (code, body) = server.post(
        &format!("/api/approvals/{}", approval["id"].as_str().unwrap()),
        json!({ "option": option_of(&approval, "allow_once") }),
    );
    assert_eq!(code, 200, "{body}");
    wait_for(&server, &id, "the answer to reach the agent", || {
        let item = server.item(&id);
        (server.agent_logs().contains("Allow (a person chose it)")
            && item["waitingOnPerson"] == false)
            .then_some(())
    });
}
