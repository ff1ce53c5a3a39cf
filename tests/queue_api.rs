//! The work queue over HTTP: validation, dependencies, the state machine, claims, completion,
//! errors, and persistence across restarts and kills. The agent pool is held at size 0 (or
//! auto-dispatch off) so these tests drive the queue by hand.

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::HashSet;

/// No agent ever starts: the tests claim by hand.
const MANUAL: &str = "[pool]\nsize = 0\n";

fn error_of(v: &Value) -> (&str, &str, Option<&str>) {
    (
        v["error"]["code"].as_str().unwrap_or(""),
        v["error"]["message"].as_str().unwrap_or(""),
        v["error"]["field"].as_str(),
    )
}

#[test]
fn create_fills_defaults_and_get_returns_it() {
    let s = TestServer::start(MANUAL);
    let item =
        s.create(json!({"title": "  Build login page  ", "acceptanceCriteria": ["form", "tests"]}));
    assert_eq!(item["title"], "Build login page");
    assert_eq!(item["status"], "inbox");
    assert_eq!(item["priority"], "medium");
    assert_eq!(item["complexity"], "m");
    assert_eq!(item["attempts"], 0);
    assert_eq!(item["blocks"], json!([]));
    assert!(uuid_like(item["id"].as_str().unwrap()));
    assert!(item["createdAt"].as_str().unwrap().ends_with('Z'));
    let id = item["id"].as_str().unwrap();
    assert_eq!(s.item(id), item);
    // Any unique prefix works, like git.
    assert_eq!(s.item(&id[..8])["id"], item["id"]);
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[test]
fn bad_input_is_400_naming_the_field_and_changes_nothing() {
    let s = TestServer::start(MANUAL);
    let long = "x".repeat(201);
    let cases = [
        (json!({"title": "   "}), "title"),
        (json!({"title": long}), "title"),
        (
            json!({"title": "t", "description": "d".repeat(20_001)}),
            "description",
        ),
        (
            json!({"title": "t", "acceptanceCriteria": (0..51).map(|i| i.to_string()).collect::<Vec<_>>()}),
            "acceptanceCriteria",
        ),
        (
            json!({"title": "t", "acceptanceCriteria": ["ok", ""]}),
            "acceptanceCriteria[1]",
        ),
        (
            json!({"title": "t", "acceptanceCriteria": ["c".repeat(501)]}),
            "acceptanceCriteria[0]",
        ),
        (json!({"title": "t", "priority": "asap"}), "priority"),
        (json!({"title": "t", "complexity": "huge"}), "complexity"),
        (json!({"title": "t", "status": "done"}), "status"),
        (json!({"title": "t", "colour": "red"}), "colour"),
        (json!({"title": 5}), "title"),
        (json!({"description": "no title"}), "title"),
        (
            json!({"title": "t", "blockedBy": "not-a-list"}),
            "blockedBy",
        ),
    ];
    for (body, field) in cases {
        let (status, err) = s.post("/api/items", body.clone());
        assert_eq!(status, 400, "{body} -> {err}");
        let (_, message, f) = error_of(&err);
        assert_eq!(f, Some(field), "{body} -> {err}");
        assert!(!message.is_empty());
    }
    let (_, items) = s.get("/api/items");
    assert_eq!(items, json!([]), "nothing was created");
}

#[test]
fn every_error_status_has_a_json_body() {
    let s = TestServer::start(MANUAL);
    let (status, err) = s.send_raw("POST", "/api/items", "application/json", b"{\"title\": ");
    assert_eq!(status, 400);
    assert_eq!(error_of(&err).0, "malformed_json");
    let (status, err) = s.send_raw("POST", "/api/items", "text/plain", b"{\"title\":\"x\"}");
    assert_eq!(status, 415, "{err}");
    assert!(error_of(&err).1.contains("application/json"));
    let big = format!(
        "{{\"title\":\"x\",\"description\":\"{}\"}}",
        "a".repeat(1_100_000)
    );
    let (status, err) = s.send_raw("POST", "/api/items", "application/json", big.as_bytes());
    assert_eq!(status, 413, "{err}");
    assert!(error_of(&err).1.contains("1 MiB"));
    let (status, err) = s.get("/api/items/00000000-0000-0000-0000-000000000000");
    assert_eq!(status, 404);
    assert_eq!(error_of(&err).0, "not_found");
    let (status, _) = s.get("/api/nothing-here");
    assert_eq!(status, 404);
    let (status, err) = s.get("/api/items?status=flying");
    assert_eq!(status, 400);
    assert_eq!(error_of(&err).2, Some("status"));
    let (status, _) = s.get("/healthz");
    assert_eq!(status, 200);
}

#[test]
fn dependencies_mirror_reject_unknown_ids_and_cycles() {
    let s = TestServer::start(MANUAL);
    let a = s.create(json!({"title": "A"}));
    let a_id = a["id"].as_str().unwrap();
    let b = s.create(json!({"title": "B", "blockedBy": [a_id]}));
    let b_id = b["id"].as_str().unwrap();
    assert_eq!(s.item(a_id)["blocks"], json!([b_id]));

    let (status, err) = s.post(
        "/api/items",
        json!({"title": "C", "blockedBy": ["00000000-0000-0000-0000-000000000000"]}),
    );
    assert_eq!(status, 422, "{err}");
    assert_eq!(error_of(&err).2, Some("blockedBy"));

    let c = s.create(json!({"title": "C", "blockedBy": [b_id]}));
    let c_id = c["id"].as_str().unwrap();
    // A -> C would close A <- B <- C <- A.
    let (status, err) = s.send(
        "PATCH",
        &format!("/api/items/{a_id}"),
        json!({"blockedBy": [c_id]}),
    );
    assert_eq!(status, 422, "{err}");
    assert_eq!(error_of(&err).0, "dependency_cycle");
    let message = error_of(&err).1;
    for id in [a_id, b_id, c_id] {
        assert!(message.contains(id), "the cycle is named: {message}");
    }
    let (status, _) = s.send(
        "PATCH",
        &format!("/api/items/{a_id}"),
        json!({"blockedBy": [a_id]}),
    );
    assert_eq!(status, 422, "an item cannot wait for itself");
    assert_eq!(s.item(a_id)["blockedBy"], json!([]), "nothing changed");

    // Re-pointing C from B to A moves the mirror too.
    let (status, _) = s.send(
        "PATCH",
        &format!("/api/items/{c_id}"),
        json!({"blockedBy": [a_id]}),
    );
    assert_eq!(status, 200);
    assert_eq!(s.item(b_id)["blocks"], json!([]));
    let mut blocks: Vec<String> = serde_json::from_value(s.item(a_id)["blocks"].clone()).unwrap();
    blocks.sort();
    let mut expected = vec![b_id.to_string(), c_id.to_string()];
    expected.sort();
    assert_eq!(blocks, expected);

    // Deleting A removes it from everyone's blockedBy.
    let (status, _) = s.send("DELETE", &format!("/api/items/{a_id}"), json!(null));
    assert_eq!(status, 204);
    assert_eq!(s.item(b_id)["blockedBy"], json!([]));
    assert_eq!(s.item(c_id)["blockedBy"], json!([]));
    let (status, _) = s.get(&format!("/api/items/{a_id}"));
    assert_eq!(status, 404);
}

#[test]
fn the_state_machine_is_enforced_with_409_naming_allowed_moves() {
    let s = TestServer::start(MANUAL);
    let id = s.create(json!({"title": "flow"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, err) = s.move_to(&id, "done");
    assert_eq!(status, 409);
    assert!(
        error_of(&err)
            .1
            .contains("allowed moves from inbox: planning, blocked"),
        "{err}"
    );
    let (status, err) = s.move_to(&id, "in_flight");
    assert_eq!(status, 409, "{err}");
    assert_eq!(s.move_to(&id, "planning").0, 200);
    assert_eq!(s.move_to(&id, "ready").0, 200);
    let (status, err) = s.move_to(&id, "in_flight");
    assert_eq!(status, 409);
    assert!(error_of(&err).1.contains("only through a claim"), "{err}");
    let (status, claimed) = s.claim("agent-1");
    assert_eq!(status, 200);
    assert_eq!(claimed["item"]["status"], "in_flight");
    assert_eq!(claimed["item"]["assignedAgentId"], "agent-1");
    assert_eq!(claimed["item"]["attempts"], 1);
    assert!(claimed["context"].as_str().unwrap().contains("# flow"));
    let (status, err) = s.send("DELETE", &format!("/api/items/{id}"), json!(null));
    assert_eq!(status, 409, "in-flight items cannot be deleted: {err}");
    let (status, item) = s.post(&format!("/api/items/{id}/complete"), json!({}));
    assert_eq!(status, 200, "{item}");
    assert_eq!(item["item"]["status"], "review");
    assert_eq!(item["accepted"], true);
    assert!(
        item["item"].get("assignedAgentId").is_none(),
        "assignment released"
    );
    let (status, rejected) = s.post(
        &format!("/api/items/{id}/move"),
        json!({"status": "ready", "reason": "needs tests"}),
    );
    assert_eq!(status, 200);
    assert_eq!(rejected["statusReason"], "needs tests");
    assert_eq!(s.move_to(&id, "blocked").0, 200);
    assert_eq!(s.move_to(&id, "inbox").0, 200);
    let (_, history) = s.get(&format!("/api/items/{id}/history"));
    let tos: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["to"].as_str().unwrap())
        .collect();
    assert_eq!(
        tos,
        [
            "inbox",
            "planning",
            "ready",
            "in_flight",
            "review",
            "ready",
            "blocked",
            "inbox"
        ]
    );
    assert_eq!(history[5]["reason"], "needs tests");
    // done is final.
    assert_eq!(s.move_to(&id, "planning").0, 200);
    assert_eq!(s.move_to(&id, "ready").0, 200);
    s.claim("agent-2");
    s.post(&format!("/api/items/{id}/complete"), json!({}));
    assert_eq!(s.move_to(&id, "done").0, 200);
    assert!(s.item(&id)["completedAt"].is_string());
    let (status, err) = s.move_to(&id, "ready");
    assert_eq!(status, 409);
    assert!(error_of(&err).1.contains("final"));
}

#[test]
fn claims_take_priority_then_age_and_respect_blockers() {
    let s = TestServer::start(MANUAL);
    let low = s.create(json!({"title": "low", "priority": "low", "status": "ready"}));
    let blocker = s.create(json!({"title": "blocker", "priority": "low"}));
    let urgent_blocked = s.create(json!({"title": "urgent but blocked", "priority": "urgent", "status": "ready", "blockedBy": [blocker["id"]]}));
    let high1 = s.create(json!({"title": "high 1", "priority": "high", "status": "ready"}));
    let high2 = s.create(json!({"title": "high 2", "priority": "high", "status": "ready"}));
    let order: Vec<Value> = (0..3)
        .map(|i| s.claim(&format!("a{i}")).1["item"]["id"].clone())
        .collect();
    assert_eq!(
        order,
        vec![high1["id"].clone(), high2["id"].clone(), low["id"].clone()]
    );
    let (status, _) = s.claim("a9");
    assert_eq!(status, 204, "the urgent item waits for its blocker");
    // Finish the blocker; the urgent item becomes claimable.
    let b = blocker["id"].as_str().unwrap();
    s.move_to(b, "planning");
    s.move_to(b, "ready");
    let (_, c) = s.claim("a10");
    assert_eq!(c["item"]["id"], blocker["id"]);
    s.post(&format!("/api/items/{b}/complete"), json!({}));
    assert_eq!(s.claim("a11").0, 204, "review is not done");
    s.move_to(b, "done");
    assert_eq!(s.claim("a12").1["item"]["id"], urgent_blocked["id"]);
}

#[test]
fn concurrent_claims_never_hand_out_the_same_item() {
    let s = TestServer::start(MANUAL);
    for i in 0..60 {
        s.create_ready(&format!("item {i}"));
    }
    let claimed: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|w| {
                let s = &s;
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let (status, body) = s.claim(&format!("worker-{w}"));
                        if status == 204 {
                            break mine;
                        }
                        assert_eq!(status, 200, "{body}");
                        mine.push(body["item"]["id"].as_str().unwrap().to_string());
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let unique: HashSet<&String> = claimed.iter().collect();
    assert_eq!(claimed.len(), 60, "every item claimed once");
    assert_eq!(unique.len(), 60, "no item claimed twice");
}

#[test]
fn completing_checks_acceptance_criteria_against_artifacts() {
    let s = TestServer::start("[pool]\nsize = 0\nmax_attempts = 2\nretry_backoff_secs = 0\n");
    let item = s.create(json!({"title": "with criteria", "status": "ready", "acceptanceCriteria": ["has docs", "has tests"]}));
    let id = item["id"].as_str().unwrap();
    s.claim("a");
    let (status, out) = s.post(&format!("/api/items/{id}/complete"), json!({}));
    assert_eq!(status, 200);
    assert_eq!(out["accepted"], false);
    assert_eq!(
        out["item"]["status"], "ready",
        "a failed attempt goes back to ready"
    );
    assert!(out["item"]["statusReason"]
        .as_str()
        .unwrap()
        .contains("no artifact"));
    s.claim("b");
    let (_, out) = s.post(
        &format!("/api/items/{id}/complete"),
        json!({
            "artifacts": [{"type": "pr", "path": "https://example.invalid/pr/1", "description": "the PR"}],
            "acceptance": [{"criterion": "has docs", "met": true}, {"criterion": "has tests", "met": false, "evidence": "none yet"}],
        }),
    );
    assert_eq!(out["accepted"], false);
    assert_eq!(out["item"]["status"], "blocked", "attempts used up");
    assert!(out["unmet"][0].as_str().unwrap().contains("has tests"));
    assert_eq!(out["item"]["artifacts"].as_array().unwrap().len(), 1);
    // Artifacts declared over the API cannot point outside the data dir.
    let (status, err) = s.post(
        &format!("/api/items/{id}/artifacts"),
        json!({"type": "file", "path": "../../etc/passwd"}),
    );
    assert_eq!(status, 422, "{err}");
    let (status, err) = s.post(
        &format!("/api/items/{id}/artifacts"),
        json!({"type": "file", "path": "/etc/passwd"}),
    );
    assert_eq!(status, 422, "{err}");
    let (status, art) = s.post(
        &format!("/api/items/{id}/artifacts"),
        json!({"type": "link", "path": "https://example.invalid", "description": "docs"}),
    );
    assert_eq!(status, 201, "{art}");
    assert_eq!(art["type"], "link");
}

#[test]
fn events_are_numbered_and_replayable() {
    let s = TestServer::start(MANUAL);
    let a = s.create(json!({"title": "A"}));
    let id = a["id"].as_str().unwrap();
    s.move_to(id, "planning");
    s.send(
        "PATCH",
        &format!("/api/items/{id}"),
        json!({"priority": "high"}),
    );
    let events = s.events_since(0);
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["work:added", "work:status_changed", "work:updated"]);
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3]);
    let changed = &events[1]["data"];
    assert_eq!(changed["itemId"], id);
    assert_eq!(
        (changed["from"].as_str(), changed["to"].as_str()),
        (Some("inbox"), Some("planning"))
    );
    assert_eq!(changed["reason"], Value::Null);
    assert_eq!(
        changed["item"]["status"], "planning",
        "the event carries the item"
    );
    assert_eq!(s.events_since(2).len(), 1);
    // Numbering continues across restarts.
    let mut s = s;
    s.restart();
    s.move_to(id, "ready");
    let events = s.events_since(3);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["seq"], 4);
}

#[test]
fn everything_acknowledged_survives_kill_and_restart() {
    let mut s = TestServer::start(MANUAL);
    let mut ids = Vec::new();
    for i in 0..25 {
        ids.push(s.create(json!({"title": format!("keep {i}"), "status": "ready"}))["id"].clone());
    }
    let (_, claimed) = s.claim("doomed");
    s.kill();
    s.boot();
    let (_, items) = s.get("/api/items");
    let got: HashSet<Value> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].clone())
        .collect();
    assert_eq!(got, ids.iter().cloned().collect::<HashSet<_>>());
    // The item claimed when the server died is not left in flight.
    let recovered = s.item(claimed["item"]["id"].as_str().unwrap());
    assert_eq!(recovered["status"], "ready");
    assert!(recovered["statusReason"]
        .as_str()
        .unwrap()
        .contains("interrupted"));
    let (_, status) = s.get("/api/status");
    assert_eq!(status["counts"]["ready"], 25);
    assert_eq!(status["counts"]["in_flight"], 0);
}

#[test]
fn list_filters_and_sorts() {
    let s = TestServer::start(MANUAL);
    s.create(json!({"title": "Write docs", "priority": "low"}));
    s.create(json!({"title": "Fix login bug", "priority": "urgent", "status": "ready"}));
    s.create(json!({"title": "Login page", "priority": "high"}));
    let (_, all) = s.get("/api/items");
    let titles: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Fix login bug", "Login page", "Write docs"]);
    let (_, found) = s.get("/api/items?q=login");
    assert_eq!(found.as_array().unwrap().len(), 2);
    let (_, ready) = s.get("/api/items?status=ready");
    assert_eq!(ready.as_array().unwrap().len(), 1);
    let (_, low) = s.get("/api/items?priority=low");
    assert_eq!(low[0]["title"], "Write docs");
}

#[test]
fn the_token_guards_the_api_but_not_health_or_the_board() {
    let mut s = TestServer::start("token = \"s3cret-token\"\n[pool]\nsize = 0\n");
    let (status, err) = s.get("/api/items");
    assert_eq!(status, 401, "{err}");
    let (status, _) = s.get("/healthz");
    assert_eq!(status, 200);
    let (status, page) = s.get("/");
    assert_eq!(status, 200);
    assert!(
        page.as_str().unwrap_or("").contains("<html"),
        "the board is served"
    );
    s.set_token("wrong");
    assert_eq!(s.get("/api/items").0, 401);
    s.set_token("s3cret-token");
    assert_eq!(s.get("/api/items").0, 200);
}

#[test]
fn cli_talks_to_the_server() {
    let s = TestServer::start(MANUAL);
    let run = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args(["--server", &s.url, "--config"])
            .arg(s.config_path())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, out, err) = run(&[
        "add",
        "Build login page",
        "--priority",
        "high",
        "--criterion",
        "a form",
        "--status",
        "ready",
    ]);
    assert!(ok, "{err}");
    assert!(out.starts_with("added "), "{out}");
    let prefix = out.split_whitespace().nth(1).unwrap().to_string();
    let (ok, out, _) = run(&["list"]);
    assert!(ok);
    assert!(out.lines().next().unwrap().starts_with("ID"));
    assert!(
        out.contains("Build login page") && out.contains("high"),
        "{out}"
    );
    let (ok, out, _) = run(&["show", &prefix]);
    assert!(ok);
    assert!(out.contains("a form"));
    let (ok, _, err) = run(&["move", &prefix, "done"]);
    assert!(!ok, "an illegal move fails");
    assert!(err.contains("allowed moves"), "{err}");
    let (ok, out, _) = run(&["list", "--json"]);
    assert!(ok);
    let items: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(items.as_array().unwrap().len(), 1);
    let (ok, out, _) = run(&["status"]);
    assert!(ok && out.contains("ready"), "{out}");
    let gone = std::process::Command::new(BIN)
        .args(["--server", "http://127.0.0.1:9", "list"])
        .output()
        .unwrap();
    assert!(!gone.status.success());
    let msg = String::from_utf8_lossy(&gone.stderr);
    assert!(
        msg.contains("flightdeck serve") && msg.lines().count() == 1,
        "{msg}"
    );
}

#[test]
fn a_worker_completes_and_claims_its_next_item_in_one_call() {
    let s = TestServer::start(MANUAL);
    let first = s.create(json!({"title": "first", "priority": "high", "status": "ready"}));
    let second = s.create(json!({"title": "second", "priority": "low", "status": "ready"}));
    let (_, c) = s.claim("w1");
    assert_eq!(c["item"]["id"], first["id"]);
    let id = first["id"].as_str().unwrap();
    let worker = json!({"agentId": "w1", "sessionKey": "w1/2"});

    // Completed, and the next item is the worker's, with its AGENTS.md.
    let (status, v) = s.post(
        &format!("/api/items/{id}/complete"),
        json!({"claimNext": worker}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["accepted"].clone(), v["item"]["status"].clone()),
        (json!(true), json!("review")),
        "{v}"
    );
    assert_eq!(v["next"]["item"]["id"], second["id"], "{v}");
    assert_eq!(v["next"]["item"]["status"], "in_flight", "{v}");
    assert_eq!(v["next"]["item"]["assignedAgentId"], "w1", "{v}");
    assert!(
        v["next"]["context"].as_str().unwrap().contains("second"),
        "{v}"
    );

    // A completion that is refused claims nothing: the item it would take stays ready.
    let third = s.create(json!({"title": "third", "status": "ready"}));
    let (status, v) = s.post(
        &format!("/api/items/{id}/complete"),
        json!({"claimNext": worker}),
    );
    assert_eq!(status, 409, "{v}");
    assert_eq!(s.item(third["id"].as_str().unwrap())["status"], "ready");

    // A bad claimer is refused by name before anything is written.
    let second_id = second["id"].as_str().unwrap();
    let (status, v) = s.post(
        &format!("/api/items/{second_id}/complete"),
        json!({"claimNext": {"agentId": ""}}),
    );
    assert_eq!(status, 400, "{v}");
    assert_eq!(s.item(second_id)["status"], "in_flight");

    // With nothing left to claim, `next` is null; without `claimNext` too.
    let (_, v) = s.post(
        &format!("/api/items/{second_id}/complete"),
        json!({"claimNext": worker}),
    );
    assert_eq!(v["next"]["item"]["id"], third["id"], "{v}");
    let third_id = third["id"].as_str().unwrap();
    let (status, v) = s.post(
        &format!("/api/items/{third_id}/complete"),
        json!({"claimNext": worker}),
    );
    assert_eq!(status, 200, "{v}");
    assert!(v["next"].is_null(), "{v}");
}
