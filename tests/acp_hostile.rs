//! A hostile agent on the other end of the Agent Client Protocol: the fixture agent
//! tests/fixtures/agents/acp-fixture.mjs (one mode per attack) run by the `acp` preset through
//! the real bridge, sandbox and server. File requests outside the session folder are refused
//! with a JSON-RPC error that says why, and write nothing; a 50 MB line and lines that are not
//! JSON-RPC neither crash the bridge nor grow the server; a flood of permission requests puts
//! at most 20 before a person; a terminal whose processes fork and ignore SIGTERM leaves
//! nothing running; and a request the policy decides is recorded where a person sees it.
//! Also here, with the same fixture: an agent waiting for a person is not taken for stalled.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// A flightdeck whose agent is the fixture in `mode` (with `args`), `extra` config appended.
fn start(mode: &[&str], extra: &str) -> TestServer {
    let command = acp_fixture_command(mode);
    TestServer::start(&format!(
        "[agent]\npreset = \"acp\"\ncommand = {}\n[pool]\nsize = 1\nmax_attempts = 1\n{extra}",
        json!(command)
    ))
}

fn run_item(server: &TestServer, title: &str) -> String {
    let item = server.create(json!({"title": title, "status": "ready"}));
    item["id"].as_str().expect("an id").to_string()
}

/// Waits until the item's attempt is over; returns the item.
fn finished(server: &TestServer, id: &str) -> Value {
    server.wait_for("the attempt to end", WAIT, || {
        let item = server.item(id);
        (!["ready", "in_flight"].contains(&item["status"].as_str().unwrap_or(""))).then_some(item)
    })
}

fn log(server: &TestServer, id: &str) -> String {
    server
        .req("GET", &format!("/api/items/{id}/log"))
        .call()
        .ok()
        .and_then(|r| r.into_string().ok())
        .unwrap_or_default()
}

fn answers(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("answers.json")).expect("the fixture's answers");
    serde_json::from_str(&text).expect("answers.json is JSON")
}

#[test]
fn file_requests_outside_the_session_folder_are_refused_in_words_and_write_nothing() {
    let outside = tempfile::tempdir().expect("a folder outside");
    std::fs::write(outside.path().join("secret.txt"), "TOPSECRET-4711").expect("secret");
    let server = start(&["escape", &outside.path().display().to_string()], "");
    let id = run_item(&server, "Escape the folder");
    finished(&server, &id);
    let ws = server.workspace(&id);
    let answers = answers(&ws);
    for attempt in [
        "readEtc",
        "readUp",
        "writeOutside",
        "writeDotDot",
        "writeLink",
        "readLink",
    ] {
        let error = &answers[attempt]["error"];
        let message = error["message"].as_str().unwrap_or_default();
        assert!(
            error["code"].is_i64() && message.len() > 20,
            "{attempt} is refused with a JSON-RPC error that says why: {}",
            answers[attempt]
        );
        assert!(
            !message.contains("TOPSECRET"),
            "{attempt}: nothing of the file leaks: {message}"
        );
    }
    assert!(
        answers["readLink"]["result"].is_null(),
        "the secret behind the symlink is not read"
    );
    assert!(
        answers["writeInside"]["error"].is_null(),
        "a write inside the session folder works: {}",
        answers["writeInside"]
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("inside.txt"))
            .ok()
            .as_deref(),
        Some("fine")
    );
    let written: Vec<_> = std::fs::read_dir(outside.path())
        .expect("outside")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(written, vec!["secret.txt"], "nothing written outside");
    assert!(!ws.parent().expect("parent").join("dotdot.txt").exists());
    assert!(
        log(&server, &id).contains("flightdeck refused the agent's fs/write_text_file"),
        "the log says what was refused"
    );
}

/// The server's peak resident memory, in kB.
fn peak_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn a_50_mb_line_neither_crashes_the_bridge_nor_grows_the_server() {
    let server = start(&["bigline"], "");
    let before = peak_kb(server.pid());
    let id = run_item(&server, "Shout");
    let item = finished(&server, &id);
    assert_eq!(item["status"], "review", "the agent finished: {item}");
    let log = log(&server, &id);
    assert!(
        log.contains("the agent sent a message over 8388608 bytes; flightdeck ignored it"),
        "the log says a line was skipped: {log}"
    );
    assert!(log.contains("Still here after the long line."), "{log}");
    let grown = peak_kb(server.pid()).saturating_sub(before);
    assert!(
        grown < 30 * 1024,
        "the server's peak memory grew by {grown} kB"
    );
}

#[test]
fn lines_that_are_not_json_rpc_are_named_and_skipped() {
    let server = start(&["malformed"], "");
    let id = run_item(&server, "Mumble");
    let item = finished(&server, &id);
    assert_eq!(item["status"], "review", "the agent finished: {item}");
    let log = log(&server, &id);
    assert!(
        log.contains("the agent sent a line that is not JSON-RPC"),
        "the log names the bad line: {log}"
    );
    assert!(log.contains("Still here after the bad lines."), "{log}");
}

#[test]
fn a_flood_of_permission_requests_puts_at_most_twenty_before_a_person() {
    let server = start(&["flood"], "[approvals]\ntimeout_secs = 600\n");
    let id = run_item(&server, "Ask again and again");
    server.wait_for("180 requests refused", WAIT, || {
        let refused = log(&server, &id)
            .matches("20 requests already wait for a person")
            .count();
        (refused >= 180).then_some(())
    });
    let (_, waiting) = server.get("/api/approvals");
    assert_eq!(waiting.as_array().map(Vec::len), Some(20), "{waiting}");
    // The desk lists requests at once; their events follow in the store's next writes.
    let events = server.wait_for("the 20 approval:requested events", WAIT, || {
        let events = server.events_since(0);
        let requested = events
            .iter()
            .filter(|e| e["type"] == "approval:requested")
            .count();
        (requested >= 20).then_some(events)
    });
    let count = |kind: &str| events.iter().filter(|e| e["type"] == kind).count();
    assert_eq!(count("approval:requested"), 20);
    assert_eq!(
        count("approval:resolved"),
        0,
        "refusals past the bound are in the log only"
    );
    // The request is listed at once; the item's flag follows in the store's next write.
    server.wait_for("the item to show it waits on a person", WAIT, || {
        (server.item(&id)["waitingOnPerson"] == true).then_some(())
    });
}

#[test]
fn a_terminal_whose_processes_fork_and_ignore_sigterm_is_gone_after_the_session() {
    let server = start(&["fork"], "");
    let id = run_item(&server, "Leave something running");
    finished(&server, &id);
    let pids: Vec<u32> = std::fs::read_to_string(server.workspace(&id).join("pids.txt"))
        .expect("the fixture wrote its terminal's pids")
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    assert_eq!(pids.len(), 2, "the shell and its forked child: {pids:?}");
    for pid in pids {
        server.wait_for(&format!("process {pid} to be gone"), WAIT, || {
            (!alive(pid)).then_some(())
        });
    }
}

#[test]
fn a_request_the_policy_decides_is_recorded_where_a_person_sees_it() {
    let server = start(
        &["policy"],
        "[approvals]\nallow_commands = [\"cargo test*\"]\n",
    );
    let id = run_item(&server, "Run the tests");
    let item = finished(&server, &id);
    assert_eq!(item["status"], "review", "{item}");
    let events = server.events_since(0);
    let resolved: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "approval:resolved")
        .collect();
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    let data = &resolved[0]["data"];
    assert_eq!(data["decidedBy"], "policy");
    assert_eq!(data["itemId"], id.as_str());
    assert_eq!(
        data["message"],
        "flightdeck allowed `cargo test --lib` on \"Run the tests\" without asking: the command matches \"cargo test*\" (approvals.allow_commands)"
    );
    assert!(!events.iter().any(|e| e["type"] == "approval:requested"));
    assert!(log(&server, &id).contains("flightdeck allowed `cargo test --lib`"));
}

#[test]
fn an_agent_waiting_for_a_person_is_not_stopped_as_stalled() {
    // The idle limit is 2 s; the person answers after more than twice that, and the agent
    // then thinks 0.8 s before it says anything: its idle clock starts at the answer, not at
    // its last output before the question.
    let server = start(
        &["ask", "800"],
        "idle_timeout_secs = 2\n[approvals]\ntimeout_secs = 600\n",
    );
    let id = run_item(&server, "Ask, then wait");
    let approval = server.wait_for("the permission request", WAIT, || {
        let (_, waiting) = server.get("/api/approvals");
        waiting.as_array()?.first().cloned()
    });
    let asked = std::time::Instant::now();
    while asked.elapsed() < Duration::from_millis(4500) {
        let item = server.item(&id);
        assert_eq!(
            item["status"], "in_flight",
            "an agent waiting for a person was stopped: {item}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let approval_id = approval["id"].as_str().expect("an approval id");
    let (status, answer) = server.post(
        &format!("/api/approvals/{approval_id}"),
        json!({"option": "allow"}),
    );
    assert_eq!(status, 200, "{answer}");
    let item = finished(&server, &id);
    assert_eq!(item["status"], "review", "{item}");
}
