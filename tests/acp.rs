//! Agents over the Agent Client Protocol with a person in the loop: the real
//! `claude-agent-acp` adapter (from npm, pinned in tests/agent-clis/) run by the `acp-claude`
//! preset under the default sandbox, against our scripted model server. Its shell commands
//! ask permission; a person answers over the API (or nobody does, and the request is refused
//! at the timeout); a follow-up message changes what the agent does; cancel asks the agent
//! to stop its turn with `session/cancel`.

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

fn clis_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/agent-clis/node_modules/.bin");
    assert!(
        bin.join("claude-agent-acp").exists(),
        "the ACP adapters are not installed: run `{INSTALL}`"
    );
    bin
}

/// A flightdeck running `acp-claude` against `model`, with `extra` config appended.
fn start(model: &ModelServer, extra: &str) -> (TestServer, tempfile::TempDir) {
    let home = tempfile::tempdir().expect("home");
    let path = format!(
        "{}:{}",
        clis_bin().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let url = model.url.clone();
    let home_path = home.path().to_path_buf();
    let config = format!(
        "[agent]\npreset = \"acp-claude\"\ncancel_grace_secs = 20\n[pool]\nsize = 1\nmax_attempts = 1\nidle_timeout_secs = 120\n[approvals]\nallow_commands = [\"printf 'hello*\", \"printf 'extra*\"]\n{extra}"
    );
    let server = TestServer::start_prepared(&config, move |cmd| {
        cmd.env("PATH", &path)
            .env("HOME", &home_path)
            .env_remove("CLAUDE_CONFIG_DIR")
            .env("ANTHROPIC_BASE_URL", &url)
            .env("ANTHROPIC_API_KEY", "sk-ant-scripted");
    });
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

/// Waits for `done` to hold of the server, failing with the agents' logs after [`WAIT`].
fn wait_for<T>(server: &TestServer, what: &str, mut done: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = done() {
            return value;
        }
        assert!(
            start.elapsed() < WAIT,
            "waited for {what}; agent logs:\n{}",
            server.agent_logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_status(server: &TestServer, id: &str, status: &str) -> Value {
    wait_for(server, &format!("the item in {status}"), || {
        let item = server.item(id);
        (item["status"] == status).then_some(item)
    })
}

/// The first approval waiting for a person.
fn wait_approval(server: &TestServer) -> Value {
    wait_for(server, "a permission request", || {
        let (_, list) = server.get("/api/approvals");
        list.as_array().and_then(|l| l.first().cloned())
    })
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

fn events_of(server: &TestServer, kind: &str) -> Vec<Value> {
    let (_, events) = server.get("/api/events?since=0");
    events
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"] == kind)
        .cloned()
        .collect()
}

#[test]
fn a_shell_command_approved_over_the_api_runs_and_the_item_reaches_review() {
    let model = ModelServer::start(&[GUARDED, DELIVER], FINAL, Fault::None);
    let (server, _home) = start(&model, "");
    let id = create(&server);
    let approval = wait_approval(&server);
    assert_eq!(approval["itemId"], id.as_str());
    assert_eq!(approval["itemTitle"], "Say hello");
    assert_eq!(approval["tool"]["kind"], "execute");
    assert!(
        approval["tool"]["command"]
            .as_str()
            .is_some_and(|c| c.contains("touch guarded.txt")),
        "{approval:#}"
    );
    // The request is listed at once; the item's flag follows in the store's next write.
    server.wait_for("the item to show it waits on a person", WAIT, || {
        (server.item(&id)["waitingOnPerson"] == true).then_some(())
    });
    let (code, body) = server.post(
        &format!("/api/approvals/{}", approval["id"].as_str().unwrap()),
        json!({"option": "no-such-option"}),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("choose one of"));
    let allow = option_of(&approval, "allow_once");
    let (code, body) = server.post(
        &format!("/api/approvals/{}", approval["id"].as_str().unwrap()),
        json!({ "option": allow }),
    );
    assert_eq!(code, 200, "{body}");
    let (code, _) = server.post(
        &format!("/api/approvals/{}", approval["id"].as_str().unwrap()),
        json!({ "option": allow }),
    );
    assert_eq!(code, 404, "an answered request is no longer waiting");
    let item = wait_status(&server, &id, "review");
    assert_eq!(item["waitingOnPerson"], false);
    let ws = server.workspace(&id);
    assert!(ws.join("guarded.txt").exists(), "the allowed command ran");
    assert!(ws.join("hello.txt").exists());
    let requested = events_of(&server, "approval:requested");
    assert_eq!(requested.len(), 1, "{requested:#?}");
    assert!(requested[0]["data"]["message"]
        .as_str()
        .unwrap()
        .contains("Say hello"));
    let resolved = events_of(&server, "approval:resolved");
    let by = |who: &str| {
        resolved
            .iter()
            .filter(|e| e["data"]["decidedBy"] == who)
            .count()
    };
    assert_eq!(by("person"), 1, "{resolved:#?}");
    assert!(
        by("policy") >= 1,
        "the deliverable's command, allowed by approvals.allow_commands, is recorded: {resolved:#?}"
    );
}

#[test]
fn a_denied_command_does_not_run_and_the_agent_carries_on() {
    let model = ModelServer::start(&[GUARDED, DELIVER], FINAL, Fault::None);
    let (server, _home) = start(&model, "");
    let id = create(&server);
    let approval = wait_approval(&server);
    let reject = option_of(&approval, "reject_once");
    let (code, body) = server.post(
        &format!("/api/approvals/{}", approval["id"].as_str().unwrap()),
        json!({ "option": reject }),
    );
    assert_eq!(code, 200, "{body}");
    wait_status(&server, &id, "review");
    let ws = server.workspace(&id);
    assert!(!ws.join("guarded.txt").exists(), "the refused command ran");
    assert!(ws.join("hello.txt").exists(), "the agent did not carry on");
}

#[test]
fn a_request_nobody_answers_is_refused_at_the_timeout() {
    let model = ModelServer::start(&[GUARDED, DELIVER], FINAL, Fault::None);
    let (server, _home) = start(&model, "timeout_secs = 2\n");
    let id = create(&server);
    wait_status(&server, &id, "review");
    let ws = server.workspace(&id);
    assert!(
        !ws.join("guarded.txt").exists(),
        "the unanswered command ran"
    );
    let all = events_of(&server, "approval:resolved");
    // Nobody answered: the event must not say a person did.
    assert!(
        !all.iter().any(|e| e["data"]["decidedBy"] == "person"),
        "{all:#?}"
    );
    let resolved: Vec<&Value> = all
        .iter()
        .filter(|e| e["data"]["decidedBy"] == "timeout")
        .collect();
    assert_eq!(resolved.len(), 1, "{all:#?}");
    let message = resolved[0]["data"]["message"].as_str().unwrap();
    assert!(message.contains("nobody answered within 2s"), "{message}");
}

#[test]
fn a_follow_up_message_changes_what_the_agent_writes() {
    let model = ModelServer::start(&[GUARDED, DELIVER], FINAL, Fault::None);
    let (server, _home) = start(&model, "");
    let id = create(&server);
    let approval = wait_approval(&server);
    // The turn is in progress (it waits on the person), so the message queues behind it.
    let (code, body) = server.post(
        &format!("/api/items/{id}/messages"),
        json!({"text": "Please also run: printf 'extra\\n' > extra.txt"}),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["delivery"], "queued");
    let allow = option_of(&approval, "allow_once");
    server.post(
        &format!("/api/approvals/{}", approval["id"].as_str().unwrap()),
        json!({ "option": allow }),
    );
    wait_status(&server, &id, "review");
    let ws = server.workspace(&id);
    assert_eq!(
        std::fs::read_to_string(ws.join("extra.txt")).unwrap_or_default(),
        "extra\n",
        "the message did not reach the agent; logs:\n{}",
        server.agent_logs()
    );
    assert!(server
        .agent_logs()
        .contains("message from a person: Please also run"));
    let (code, body) = server.post(
        &format!("/api/items/{id}/messages"),
        json!({"text": "one more thing"}),
    );
    assert_eq!(code, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no running ACP session"),
        "{body}"
    );
}

#[test]
fn cancel_asks_the_agent_to_stop_its_turn_with_session_cancel() {
    let model = ModelServer::start(&[GUARDED, DELIVER], FINAL, Fault::None);
    let (server, _home) = start(&model, "");
    let id = create(&server);
    wait_approval(&server);
    let (code, body) = server.post(
        &format!("/api/items/{id}/move"),
        json!({"status": "blocked", "reason": "not now"}),
    );
    assert_eq!(code, 200, "{body}");
    wait_for(&server, "the agent to end its turn", || {
        server
            .agent_logs()
            .contains("the agent stopped its turn after session/cancel")
            .then_some(())
    });
    let (_, list) = server.get("/api/approvals");
    assert_eq!(list, json!([]), "a cancelled session's requests are gone");
    assert_eq!(server.item(&id)["waitingOnPerson"], false);
    assert!(!server.workspace(&id).join("guarded.txt").exists());
}
