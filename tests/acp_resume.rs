//! Rejecting a review resumes the agent: the fixture ACP agent
//! (tests/fixtures/agents/acp-fixture.mjs) run by the `acp` preset through the real bridge and
//! server. An adapter that advertises `loadSession` gets the reviewer's feedback as the next
//! prompt of the same ACP session (the fixture keeps each session's prompts in its workspace and
//! replays them on `session/load`); one that does not starts a new session whose AGENTS.md
//! carries a recap of the previous attempt and the feedback.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const FEEDBACK: &str = "Say hello in French as well, please.";

fn start(mode: &[&str]) -> TestServer {
    let command = acp_fixture_command(mode);
    TestServer::start(&format!(
        "[agent]\npreset = \"acp\"\ncommand = {}\n[pool]\nsize = 1\nmax_attempts = 3\n",
        json!(command)
    ))
}

fn log(server: &TestServer, id: &str) -> String {
    server
        .req("GET", &format!("/api/items/{id}/log"))
        .call()
        .ok()
        .and_then(|r| r.into_string().ok())
        .unwrap_or_default()
}

fn sessions(server: &TestServer, id: &str) -> Vec<Value> {
    let (_, sessions) = server.get(&format!("/api/agents?item={id}"));
    sessions.as_array().cloned().unwrap_or_default()
}

/// The workspaces of the item's sessions; only the latest still exists (each retry moves it).
fn workspaces(server: &TestServer, id: &str) -> Vec<PathBuf> {
    sessions(server, id)
        .iter()
        .map(|s| PathBuf::from(s["workspaceDir"].as_str().unwrap_or_default()))
        .collect()
}

/// Runs an item to review, rejects it with [`FEEDBACK`], and waits for the second attempt
/// to reach review; returns the item's id.
fn reject_once(server: &TestServer) -> String {
    let item = server.create(json!({"title": "Write the greeting", "status": "ready"}));
    let id = item["id"].as_str().expect("an id").to_string();
    server.wait_status(&id, "review", WAIT);
    let (status, moved) = server.post(
        &format!("/api/items/{id}/move"),
        json!({"status": "ready", "reason": FEEDBACK}),
    );
    assert_eq!(status, 200, "{moved}");
    server.wait_for("the second attempt to reach review", WAIT, || {
        let item = server.item(&id);
        (item["status"] == "review" && sessions(server, &id).len() == 2).then_some(())
    });
    id
}

#[test]
fn an_adapter_that_can_load_hears_the_feedback_in_the_same_acp_session() {
    let server = start(&["remember"]);
    let id = reject_once(&server);
    let memory = workspaces(&server, &id)
        .into_iter()
        .map(|ws| ws.join(".acp-memory"))
        .find(|m| m.exists())
        .expect("the fixture's memory, carried to the second attempt");
    let kept: Vec<PathBuf> = std::fs::read_dir(&memory)
        .expect("the memory folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    assert_eq!(kept.len(), 1, "one ACP session for both attempts: {kept:?}");
    let prompts: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(&kept[0]).expect("its prompts"))
            .expect("a list of prompts");
    assert_eq!(
        prompts.len(),
        2,
        "AGENTS.md, then the feedback: {prompts:?}"
    );
    assert!(
        prompts[0].starts_with("# Write the greeting"),
        "{}",
        prompts[0]
    );
    assert!(
        prompts[1].contains(FEEDBACK) && !prompts[1].contains("# Write the greeting"),
        "the second prompt is the reviewer's feedback, not a new AGENTS.md: {}",
        prompts[1]
    );
    let log = log(&server, &id);
    assert!(
        log.contains("I remember: # Write the greeting"),
        "the resumed session replays the first attempt: {log}"
    );
    assert!(log.contains("Heard: The reviewer rejected"), "{log}");
    assert_eq!(server.item(&id)["status"], "review");
}

#[test]
fn an_adapter_that_cannot_load_starts_afresh_with_a_recap_of_the_previous_attempt() {
    let server = start(&["forget"]);
    let id = reject_once(&server);
    let second = workspaces(&server, &id)
        .into_iter()
        .find(|ws| ws.join("AGENTS.md").exists())
        .expect("the second attempt's workspace");
    let md = std::fs::read_to_string(second.join("AGENTS.md")).expect("its AGENTS.md");
    assert!(md.contains("## What the previous attempt did"), "{md}");
    assert!(
        md.contains("ended with \"completed: item moved to review\""),
        "{md}"
    );
    assert!(md.contains(FEEDBACK), "the reviewer's feedback: {md}");
    assert!(md.contains("- `done.txt`"), "the files it changed: {md}");
    assert!(
        md.contains("Wrote done.txt as asked by # Write the greeting"),
        "the last things it said: {md}"
    );
    let said = md
        .find("Wrote done.txt as asked by")
        .expect("the quote is there");
    let fence = md[..said].rfind("```text\n").expect("quoted in a fence");
    assert!(
        !md[fence..said].contains("\n```\n"),
        "inside the fence: {md}"
    );
    let log = log(&server, &id);
    assert!(!log.contains("I remember"), "no session was loaded: {log}");
}
