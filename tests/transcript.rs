//! The log viewer's API: `GET /api/items/{id}/transcript` answers an item's attempts with their
//! line counts and any window of one attempt's lines, raw and parsed by the preset's parser;
//! `/transcript/search` finds lines anywhere in the log; bad queries are 400 naming the
//! parameter; and `GET /api/items/{id}/log` with no query is the plain text it always was.

mod common;
use common::*;
use serde_json::Value;
use std::time::Duration;

const T: Duration = Duration::from_secs(120);

fn id_of(item: &Value) -> String {
    item["id"].as_str().expect("item id").to_string()
}

/// A server whose agent is tests/fixtures/agents/transcript.sh with these arguments.
fn server_with_agent(args: &[&str]) -> TestServer {
    let mut argv = vec!["/bin/sh".to_string(), fixture("agents/transcript.sh")];
    argv.extend(args.iter().map(|a| a.to_string()));
    TestServer::start(&format!(
        "[pool]\nsize = 1\n[agent]\npreset = \"lines\"\ncommand = {}\n",
        serde_json::to_string(&argv).expect("argv")
    ))
}

fn finished_run(lines: u64) -> (TestServer, String) {
    let s = server_with_agent(&[&lines.to_string()]);
    let id = id_of(&s.create_ready("print a transcript"));
    s.wait_for("the run to end", T, || {
        let item = s.item(&id);
        ["review", "done"]
            .contains(&item["status"].as_str().unwrap_or(""))
            .then_some(())
    });
    (s, id)
}

fn get_ok(s: &TestServer, path: &str) -> Value {
    let (status, body) = s.get(path);
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

#[test]
fn a_window_of_a_long_log_has_its_lines_raw_and_parsed() {
    let (s, id) = finished_run(100_000);
    let outline = get_ok(&s, &format!("/api/items/{id}/transcript"));
    let attempts = outline["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1, "{outline}");
    let attempt = &attempts[0];
    assert_eq!(attempt["attempt"], 1);
    assert_eq!(attempt["running"], false);
    // Five lines before the numbered ones, then the numbered ones; flightdeck's own notes may
    // follow.
    let total = attempt["lines"].as_u64().expect("line count");
    assert!(total >= 100_005, "{attempt}");
    assert!(outline["lines"].as_array().expect("lines").is_empty());

    let session = attempt["sessionId"].as_str().expect("session id");
    let page = get_ok(
        &s,
        &format!("/api/items/{id}/transcript?session={session}&from=80004&limit=3"),
    );
    let raw: Vec<&str> = page["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| l["raw"].as_str().expect("raw"))
        .collect();
    assert_eq!(raw, ["line 80000", "line 80001", "line 80002"]);
    assert_eq!(page["from"], 80004);

    let head = get_ok(
        &s,
        &format!("/api/items/{id}/transcript?session={session}&from=0&limit=5"),
    );
    let lines = head["lines"].as_array().expect("lines");
    let first = |n: usize| &lines[n]["entries"][0];
    assert_eq!(first(0)["kind"], "message");
    assert_eq!(first(0)["text"], "Reading the task");
    assert_eq!(
        lines[0]["raw"],
        r#"{"type":"progress","message":"Reading the task"}"#
    );
    assert_eq!(first(1)["kind"], "tokens");
    assert_eq!(first(1)["text"], "tokens: 120 in, 30 out");
    assert!(lines[2]["raw"]
        .as_str()
        .expect("raw")
        .contains("\u{1b}[31m"));
    assert_eq!(
        first(3)["text"],
        r#"<img src=x onerror="window.pwned=1"></script><b>not bold</b>"#
    );
    assert_eq!(first(4)["kind"], "error");
    assert_eq!(first(4)["text"], "the model API answered 500");

    let past = get_ok(
        &s,
        &format!("/api/items/{id}/transcript?session={session}&from={total}"),
    );
    assert!(past["lines"].as_array().expect("lines").is_empty());
}

#[test]
fn search_finds_lines_far_from_the_start() {
    let (s, id) = finished_run(50_000);
    let found = get_ok(
        &s,
        &format!("/api/items/{id}/transcript/search?q=LINE%2049999"),
    );
    let matches = found["matches"].as_array().expect("matches");
    assert_eq!(matches.len(), 1, "{found}");
    assert_eq!(matches[0]["line"], 49_999 + 4);
    assert_eq!(found["truncated"], false);

    // The parsed view shows the message, not the protocol around it; the raw view the line.
    let parsed = get_ok(&s, &format!("/api/items/{id}/transcript/search?q=type"));
    assert!(parsed["matches"].as_array().expect("matches").is_empty());
    let raw = get_ok(
        &s,
        &format!("/api/items/{id}/transcript/search?q=%22type%22&view=raw"),
    );
    assert_eq!(raw["matches"].as_array().expect("matches").len(), 3);

    let many = get_ok(&s, &format!("/api/items/{id}/transcript/search?q=line"));
    assert_eq!(many["matches"].as_array().expect("matches").len(), 10_000);
    assert_eq!(many["truncated"], true);
}

#[test]
fn a_running_attempt_grows_and_the_plain_log_is_unchanged() {
    let gate = tempfile::tempdir().expect("scratch");
    let gate_file = gate.path().join("open");
    let s = server_with_agent(&["3", &gate_file.display().to_string()]);
    let id = id_of(&s.create_ready("print until told"));
    let count = || {
        let outline = get_ok(&s, &format!("/api/items/{id}/transcript"));
        let attempt = outline["attempts"][0].clone();
        (attempt["running"] == true)
            .then(|| attempt["lines"].as_u64())
            .flatten()
    };
    let before = s.wait_for("the agent to print its ticks", T, || {
        count().filter(|&n| n >= 10)
    });
    let after = s.wait_for("more ticks", T, || count().filter(|&n| n > before));
    assert!(after > before);
    std::fs::write(&gate_file, "").expect("open the gate");
    s.wait_status(&id, "review", T);

    let (status, text) = s.get(&format!("/api/items/{id}/log"));
    assert_eq!(status, 200);
    let text = text.as_str().expect("the log is text");
    assert!(text.starts_with("=== attempt 1 · session "), "{text}");
    assert!(text.contains("\nline 3\ntick 1\n"), "{text}");
}

#[test]
fn bad_queries_are_refused_naming_the_parameter_and_an_unknown_session_is_not_found() {
    let s = TestServer::start("[pool]\nsize = 0\n");
    let id = id_of(&s.create_ready("never runs"));
    for (query, field) in [
        ("?from=-1", "from"),
        ("?from=x", "from"),
        ("?limit=0", "limit"),
        ("?limit=2001", "limit"),
        ("?color=red", "color"),
    ] {
        let (status, body) = s.get(&format!("/api/items/{id}/transcript{query}"));
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.contains(field), "{query}: {message}");
    }
    for (query, field) in [("", "q"), ("?q=", "q"), ("?q=x&view=html", "view")] {
        let (status, body) = s.get(&format!("/api/items/{id}/transcript/search{query}"));
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
    let long = "x".repeat(201);
    let (status, body) = s.get(&format!("/api/items/{id}/transcript/search?q={long}"));
    assert_eq!((status, &body["error"]["field"]), (400, &Value::from("q")));

    let (status, body) = s.get("/api/items/00000000-0000-0000-0000-000000000000/transcript");
    assert_eq!(status, 404, "{body}");
    // A session that is not one of the item's attempts is not found, and says where to look.
    let (status, body) = s.get(&format!("/api/items/{id}/transcript?session=nope"));
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["field"], "session", "{body}");
    // An item no agent ran has no attempts, and no lines.
    let outline = get_ok(&s, &format!("/api/items/{id}/transcript"));
    assert_eq!(outline["attempts"], serde_json::json!([]));
}
