//! What an attempt comes to, with real agents: `tests/fixtures/agents/problem.sh` reports bad
//! credentials, a rate limit or another error through the lines protocol's `error` event (as
//! the presets' parsers report them from the real CLIs), crashes with protocol JSON and a
//! backtrace, or floods stderr; `gate.sh` runs until a person cancels it.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

// ---- helpers -------------------------------------------------------------------------------

/// A server whose agent is a fixture script (lines preset, default sandbox); `pool` holds
/// `[pool]` keys.
fn server(pool: &str, script: &str, args: &[&str]) -> TestServer {
    let mut argv = vec!["/bin/sh".to_string(), fixture(&format!("agents/{script}"))];
    argv.extend(args.iter().map(|a| a.to_string()));
    TestServer::start(&format!(
        "[pool]\nsize = 1\n{pool}\n[agent]\npreset = \"lines\"\ncommand = {}\n",
        serde_json::to_string(&argv).unwrap()
    ))
}

fn id_of(item: &Value) -> String {
    item["id"].as_str().expect("item id").to_string()
}

fn reason(item: &Value) -> String {
    item["statusReason"].as_str().unwrap_or("").to_string()
}

/// The item's sessions, newest first.
fn sessions_of(s: &TestServer, item_id: &str) -> Vec<Value> {
    let (status, v) = s.get(&format!("/api/agents?item={item_id}"));
    assert_eq!(status, 200, "{v}");
    v.as_array().cloned().unwrap_or_default()
}

fn working_session(s: &TestServer, item_id: &str) -> Value {
    s.wait_for(&format!("a working session of {item_id}"), T, || {
        sessions_of(s, item_id)
            .into_iter()
            .find(|x| x["status"] == "working")
    })
}

/// The item's first session, whatever its status: an agent that fails at once may be
/// finished before a look could find it working.
fn first_session(s: &TestServer, item_id: &str) -> Value {
    s.wait_for(&format!("a session of {item_id}"), T, || {
        sessions_of(s, item_id).into_iter().last()
    })
}

fn workspace_of(session: &Value) -> PathBuf {
    PathBuf::from(session["workspaceDir"].as_str().expect("workspaceDir"))
}

fn read_pid(s: &TestServer, path: &Path) -> u32 {
    s.wait_for(&format!("pid file {}", path.display()), T, || {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
    })
}

fn wait_dead(s: &TestServer, what: &str, pid: u32) {
    s.wait_for(&format!("{what} (pid {pid}) to be gone"), T, || {
        (!alive(pid)).then_some(())
    });
}

fn pool(s: &TestServer) -> Value {
    let (status, v) = s.get("/api/pool");
    assert_eq!(status, 200, "{v}");
    v
}

fn log_text(s: &TestServer, item_id: &str) -> String {
    let (status, v) = s.get(&format!("/api/items/{item_id}/log"));
    assert_eq!(status, 200, "{v}");
    match v {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

/// Runs a client command of the real binary against the server; returns its stdout.
fn cli(s: &TestServer, args: &[&str]) -> String {
    let mut command = std::process::Command::new(BIN);
    command
        .args(["--server", &s.url, "--config"])
        .arg(s.config_path())
        .args(args);
    if let Some(token) = s.token() {
        command.env("FLIGHTDECK_TOKEN", token);
    }
    let out = command.output().expect("run the flightdeck CLI");
    assert!(out.status.success(), "flightdeck {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A reason a person reads: no protocol JSON, no stack-trace or backtrace fragment.
fn assert_words(why: &str) {
    for marker in [
        "{\"",
        "<unknown>",
        "stack backtrace",
        "    at ",
        "Traceback",
    ] {
        assert!(!why.contains(marker), "{marker:?} in the reason: {why}");
    }
}

/// Every reason the item's history records.
fn history_reasons(s: &TestServer, item_id: &str) -> Vec<String> {
    let (status, v) = s.get(&format!("/api/items/{item_id}/history"));
    assert_eq!(status, 200, "{v}");
    v.as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c["reason"].as_str().map(str::to_string))
        .collect()
}

// ---- verdicts ------------------------------------------------------------------------------

#[test]
fn bad_credentials_block_at_once_and_stop_the_agent() {
    let s = server(
        "max_attempts = 3\nretry_backoff_secs = 0.0",
        "problem.sh",
        &["auth"],
    );
    let id = id_of(&s.create_ready("needs a login"));
    let session = first_session(&s, &id);
    let agent = read_pid(&s, &workspace_of(&session).join("agent.pid"));

    let item = s.wait_status(&id, "blocked", T);
    let why = reason(&item);
    assert!(why.contains("could not log in"), "{why}");
    assert!(why.contains("Invalid API key"), "{why}");
    assert!(why.contains("move the item back to ready"), "{why}");
    assert_words(&why);
    assert_eq!(item["attempts"], 1, "{item}");
    // The agent would retry forever: it is stopped, not waited for.
    wait_dead(&s, "the agent that could not log in", agent);
    // Nothing retried it: one session, and a blocked item is never claimed.
    assert_eq!(sessions_of(&s, &id).len(), 1);
}

#[test]
fn a_rate_limit_requeues_uncounted_pauses_dispatch_and_lifts_by_itself() {
    // The limit lifts 12 s after the agent reports it: room for a loaded machine to look at
    // the pause before it ends.
    let s = server("max_attempts = 1", "problem.sh", &["rate_limit", "12"]);
    let id = id_of(&s.create_ready("runs into a rate limit"));
    let session = first_session(&s, &id);
    let agent = read_pid(&s, &workspace_of(&session).join("agent.pid"));

    // The move back to ready, as the event log recorded it (the item may already be running
    // again by the time this looks).
    let item = s.wait_for("the item back in ready after the rate limit", T, || {
        s.events_since(0).into_iter().find_map(|e| {
            (e["type"] == "work:status_changed"
                && e["data"]["itemId"] == id.as_str()
                && e["data"]["to"] == "ready")
                .then(|| e["data"]["item"].clone())
        })
    });
    assert_eq!(item["status"], "ready", "{item}");
    assert_eq!(item["attempts"], 0, "the attempt is not counted: {item}");
    let why = reason(&item);
    assert!(why.contains("429 Too Many Requests"), "{why}");
    assert_words(&why);
    wait_dead(&s, "the rate-limited agent", agent);
    // The pause is set when the session's end reaches the Dispatcher, just after the move.
    let pause = s.wait_for("the pool to show the pause", T, || {
        let pause = pool(&s)["pause"].clone();
        (!pause.is_null()).then_some(pause)
    });
    assert_eq!(pause["reason"], "rate limited", "{pause}");
    assert!(pause["until"].is_string(), "{pause}");
    let status = cli(&s, &["status"]);
    assert!(status.contains("paused: rate limited until"), "{status}");
    let (_, metrics) = s.get("/metrics");
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(
        metrics.contains("flightdeck_rate_limit_pauses_total{preset=\"lines\"} 1"),
        "the pause is counted in /metrics: {metrics}"
    );
    assert!(
        metrics.contains("flightdeck_rate_limit_paused{preset=\"lines\"} 1"),
        "{metrics}"
    );

    // With max_attempts = 1 the item still gets its one counted attempt once the limit lifts.
    let item = s.wait_status(&id, "review", T);
    assert_eq!(item["attempts"], 1, "{item}");
    assert_eq!(sessions_of(&s, &id).len(), 2);
    assert!(pool(&s)["pause"].is_null());
    assert!(!cli(&s, &["status"]).contains("paused"));
    let (_, metrics) = s.get("/metrics");
    assert!(
        metrics
            .as_str()
            .unwrap_or_default()
            .contains("flightdeck_rate_limit_paused{preset=\"lines\"} 0"),
        "{metrics}"
    );
}

#[test]
fn other_errors_are_retried_with_backoff_then_blocked_and_the_log_has_a_section_per_attempt() {
    let s = server(
        "max_attempts = 2\nretry_backoff_secs = 0.2",
        "problem.sh",
        &["other"],
    );
    let id = id_of(&s.create_ready("meets a flaky server"));
    let item = s.wait_status(&id, "blocked", T);
    assert_eq!(item["attempts"], 2, "{item}");
    let why = reason(&item);
    assert!(why.contains("502 Bad Gateway"), "{why}");
    assert!(why.contains("attempt 2 of 2"), "{why}");
    let reasons = history_reasons(&s, &id);
    assert!(
        reasons.iter().any(|r| r.contains("attempt 1 of 2")),
        "the first failure was retried: {reasons:?}"
    );
    for r in &reasons {
        assert_words(r);
    }

    let sessions = sessions_of(&s, &id);
    assert_eq!(sessions.len(), 2);
    let log = log_text(&s, &id);
    let shown = cli(&s, &["logs", &id]);
    for (attempt, session) in [(1, &sessions[1]), (2, &sessions[0])] {
        let header = format!(
            "=== attempt {attempt} · session {}",
            session["id"].as_str().unwrap()
        );
        assert!(log.contains(&header), "{header} in:\n{log}");
        assert!(shown.contains(&header), "{header} in:\n{shown}");
    }
    assert_eq!(log.matches("calling the model").count(), 2, "{log}");
}

#[test]
fn a_crash_is_reported_in_words_while_the_log_keeps_the_json_and_the_backtrace() {
    let s = server("max_attempts = 1", "problem.sh", &["crash"]);
    let id = id_of(&s.create_ready("crashes"));
    let item = s.wait_status(&id, "blocked", T);
    let why = reason(&item);
    assert!(why.contains("exited with code 1"), "{why}");
    assert!(why.contains("last output:"), "{why}");
    assert_words(&why);
    let log = log_text(&s, &id);
    assert!(log.contains("  11: <unknown>"), "{log}");
    assert!(log.contains(r#"{"type":"result""#), "{log}");
}

#[test]
fn a_stderr_flood_stays_in_the_log_without_flooding_progress() {
    const LINES: usize = 3000;
    let s = server("", "problem.sh", &["flood", &LINES.to_string()]);
    let started = Instant::now();
    let id = id_of(&s.create_ready("floods stderr"));
    s.wait_status(&id, "review", T);
    let elapsed = started.elapsed().as_secs();

    let progress = s
        .events_since(0)
        .into_iter()
        .filter(|e| e["type"] == "work:progress" && e["data"]["itemId"] == id.as_str())
        .count();
    // The first 10 stderr lines, one per 5 s after them, the one stdout line, a little slack.
    let bound = 10 + elapsed as usize / 5 + 1 + 3;
    assert!(
        progress <= bound,
        "{progress} progress events for {LINES} stderr lines (bound {bound})"
    );
    let log = log_text(&s, &id);
    assert_eq!(log.matches("of the flood").count(), LINES);
    assert!(log.contains(&format!("trace line {} of the flood", LINES - 1)));
}

// ---- cancel --------------------------------------------------------------------------------

/// A server whose agents wait for a gate file; returns it and the gate's path.
fn gated_server(dir: &Path) -> (TestServer, PathBuf) {
    let gate = dir.join("gate");
    let s = server(
        "max_attempts = 3\nretry_backoff_secs = 0.0",
        "gate.sh",
        &[gate.to_str().unwrap()],
    );
    (s, gate)
}

#[test]
fn cancel_blocks_the_item_for_good_without_spending_the_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let (s, gate) = gated_server(dir.path());
    let id = id_of(&s.create_ready("cancelled while it runs"));
    let session = working_session(&s, &id);
    let sid = session["id"].as_str().unwrap().to_string();
    let agent = session["pid"].as_u64().expect("session pid") as u32;

    // A status the state machine does not allow from in_flight is refused; nothing stops.
    let (status, v) = s.post(
        &format!("/api/agents/{sid}/cancel"),
        json!({"status": "inbox"}),
    );
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["field"], "status", "{v}");
    assert_eq!(s.item(&id)["status"], "in_flight");

    let (status, v) = s.post(&format!("/api/agents/{sid}/cancel"), json!({}));
    assert_eq!(status, 200, "{v}");
    let item = s.wait_status(&id, "blocked", T);
    assert_eq!(reason(&item), "cancelled by a person");
    assert_eq!(item["attempts"], 0, "no attempt spent: {item}");
    wait_dead(&s, "the cancelled agent", agent);

    // Auto-dispatch runs newer work but never the cancelled item, though its agent would
    // now finish at once.
    std::fs::write(&gate, "open").unwrap();
    let other = id_of(&s.create_ready("runs after the cancel"));
    s.wait_status(&other, "review", T);
    let item = s.item(&id);
    assert_eq!(item["status"], "blocked", "{item}");
    assert_eq!(sessions_of(&s, &id).len(), 1);

    // Until a person moves it.
    let (status, v) = s.move_to(&id, "ready");
    assert_eq!(status, 200, "{v}");
    let item = s.wait_status(&id, "review", T);
    assert_eq!(item["attempts"], 1, "{item}");
}

#[test]
fn cancel_can_requeue_and_moving_an_item_in_flight_is_a_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let (s, gate) = gated_server(dir.path());
    let id = id_of(&s.create_ready("requeued"));
    let sid = working_session(&s, &id)["id"].as_str().unwrap().to_string();
    let (status, v) = s.post(
        &format!("/api/agents/{sid}/cancel"),
        json!({"status": "ready", "reason": "make room for something urgent"}),
    );
    assert_eq!(status, 200, "{v}");
    // Requeued, it runs again (a new session) with its attempt not spent.
    let again = s.wait_for("a second session", T, || {
        sessions_of(&s, &id)
            .into_iter()
            .find(|x| x["status"] == "working" && x["id"] != sid.as_str())
    });
    assert_eq!(s.item(&id)["attempts"], 1);
    let agent = again["pid"].as_u64().expect("session pid") as u32;

    // Moving the in-flight item by hand stops its agent the same way.
    let (status, v) = s.move_to(&id, "blocked");
    assert_eq!(status, 200, "{v}");
    let item = s.item(&id);
    assert_eq!(reason(&item), "cancelled by a person");
    assert_eq!(item["attempts"], 0, "{item}");
    wait_dead(&s, "the agent of the moved item", agent);
    std::fs::write(&gate, "open").unwrap();
    let other = id_of(&s.create_ready("runs after the move"));
    s.wait_status(&other, "review", T);
    assert_eq!(s.item(&id)["status"], "blocked");
}
