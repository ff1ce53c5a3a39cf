//! Token budgets with real agents: an item's budget stops its agent and blocks the item with
//! the reason; the pool's daily budget holds dispatch (across a restart) until a person
//! raises it; the cost estimate from the price table shows on the item and in `status`.

mod common;
use common::*;
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// A lines agent reporting `input` and `output` tokens `count` times, then succeeding.
fn spend_agent(input: u64, output: u64, count: u64) -> String {
    let argv = [
        "/bin/sh".to_string(),
        fixture("agents/spend.sh"),
        input.to_string(),
        output.to_string(),
        count.to_string(),
    ];
    format!(
        "[agent]\npreset = \"lines\"\ncommand = {}\n",
        serde_json::to_string(&argv).unwrap()
    )
}

#[test]
fn an_agent_past_its_items_budget_is_stopped_and_the_item_blocked_with_the_reason() {
    // 150 tokens a line for up to 200 lines (10 s): the budget of 1000 is reached early.
    let s = TestServer::start(&spend_agent(100, 50, 200));
    let item = s.create(json!({"title": "Build login page", "status": "ready", "maxTokens": 1000}));
    let id = item["id"].as_str().unwrap();
    let blocked = s.wait_status(id, "blocked", T);
    let reason = blocked["statusReason"].as_str().unwrap();
    assert!(reason.starts_with("token budget reached ("), "{reason}");
    assert!(reason.ends_with(" of 1000 tokens)"), "{reason}");
    let used: u64 = reason["token budget reached (".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(used >= 1000, "{reason}");
    // The agent was stopped, long before it printed its 200 lines.
    let session = s.wait_for("the agent's session to end", T, || {
        let (_, sessions) = s.get(&format!("/api/agents?item={id}"));
        sessions
            .as_array()
            .and_then(|l| l.first().cloned())
            .filter(|x| x["finishedAt"].is_string())
    });
    let outcome = session["outcome"].as_str().unwrap();
    assert!(outcome.contains("token budget reached"), "{outcome}");
    assert!(session["tokensUsed"].as_u64().unwrap() < 150 * 200);
    assert_eq!(
        session["inputTokens"].as_u64().unwrap() * 50,
        session["outputTokens"].as_u64().unwrap() * 100,
        "input and output are kept apart"
    );
    let event = s
        .events_since(0)
        .into_iter()
        .find(|e| e["type"] == "budget:exceeded")
        .expect("a budget:exceeded event");
    assert_eq!(event["data"]["scope"], "item");
    assert_eq!(event["data"]["itemId"], id);
    assert_eq!(event["data"]["limit"], 1000);

    // A bad budget is refused with the field named, and changes nothing.
    let (status, body) = s.post("/api/items", json!({"title": "x", "maxTokens": -5}));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("maxTokens")
            || body.to_string().contains("maxTokens"),
        "{body}"
    );
}

#[test]
fn the_daily_budget_pauses_dispatch_across_a_restart_until_it_is_raised() {
    // 240,000 tokens per run (2 lines of 100,000 in, 20,000 out) against 150,000 a day.
    let mut s = TestServer::start(&format!(
        "[budgets]\ndaily_tokens = 150000\n[budgets.prices.lines]\ninput_per_mtok = 3.0\noutput_per_mtok = 15.0\n{}",
        spend_agent(100_000, 20_000, 2)
    ));
    let first = s.create_ready("Build login page");
    let first_id = first["id"].as_str().unwrap().to_string();
    let reviewed = s.wait_status(&first_id, "review", T);
    assert_eq!(reviewed["tokensUsed"], 240_000);
    // 200,000 x $3 + 40,000 x $15 per million tokens.
    let cost = reviewed["costUsd"].as_f64().unwrap();
    assert!((cost - 1.2).abs() < 1e-9, "{cost}");

    let second = s.create_ready("Write the docs");
    let second_id = second["id"].as_str().unwrap().to_string();
    let pool = s.wait_for("dispatch to pause for the daily budget", T, || {
        let (_, pool) = s.get("/api/pool");
        pool["held"]
            .as_str()
            .is_some_and(|h| h.contains("daily token budget is spent"))
            .then_some(pool)
    });
    assert_eq!(pool["tokensToday"], 240_000);
    assert_eq!(pool["dailyTokens"], 150_000);
    assert_eq!(s.item(&second_id)["status"], "ready", "the next item waits");
    let event = s
        .events_since(0)
        .into_iter()
        .find(|e| e["type"] == "budget:exceeded")
        .expect("a budget:exceeded event");
    assert_eq!(event["data"]["scope"], "daily");

    // `flightdeck status` says so, with the cost of what waits in review.
    let out = std::process::Command::new(BIN)
        .args(["--server", &s.url, "--config"])
        .arg(s.config_path())
        .arg("status")
        .env_remove("FLIGHTDECK_TOKEN")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("240,000 of 150,000 tokens today"), "{text}");
    assert!(text.contains("$1.20"), "{text}");

    // A restart does not reset the day's tokens.
    s.restart();
    s.wait_for("dispatch to pause again after the restart", T, || {
        let (_, pool) = s.get("/api/pool");
        pool["held"]
            .as_str()
            .is_some_and(|h| h.contains("daily token budget is spent"))
            .then_some(())
    });
    assert_eq!(s.item(&second_id)["status"], "ready");

    // A bad budget is refused; raising it resumes dispatch.
    let (status, body) = s.send("PUT", "/api/budgets", json!({"dailyTokens": "lots"}));
    assert_eq!(status, 400, "{body}");
    let (status, pool) = s.send("PUT", "/api/budgets", json!({"dailyTokens": 1_000_000}));
    assert_eq!(status, 200, "{pool}");
    assert_eq!(pool["dailyTokens"], 1_000_000);
    s.wait_status(&second_id, "review", T);
}

#[test]
fn status_tells_the_person_on_call_what_waits_on_them_and_what_failed() {
    let s = TestServer::start("[pool]\nauto_dispatch = false\nretry_backoff_secs = 0.0\n");
    let (_, status) = s.get("/api/status");
    assert_eq!(status["onCall"]["waitingOnPerson"], 0);
    assert!(status["onCall"]["oldestReview"].is_null());

    let login = s.create_ready("Build login page");
    s.claim("tester");
    let id = login["id"].as_str().unwrap();
    s.post(&format!("/api/items/{id}/complete"), json!({}));
    let docs = s.create_ready("Write the docs");
    let docs_id = docs["id"].as_str().unwrap();
    s.move_to(docs_id, "blocked");
    let later = s.create_ready("Fix the date bug");
    s.claim("tester");
    s.post(
        &format!("/api/items/{}/complete", later["id"].as_str().unwrap()),
        json!({}),
    );
    let criteria =
        s.create(json!({"title": "Ship it", "status": "ready", "acceptanceCriteria": ["shipped"]}));
    s.claim("tester");
    let (_, outcome) = s.post(
        &format!("/api/items/{}/complete", criteria["id"].as_str().unwrap()),
        json!({}),
    );
    assert_eq!(outcome["accepted"], false);

    let (status, report) = s.get("/api/status");
    assert_eq!(status, 200, "{report}");
    let on_call = &report["onCall"];
    assert_eq!(on_call["waitingOnPerson"], 3);
    assert_eq!(
        on_call["oldestReview"]["title"], "Build login page",
        "the longest wait, not the latest"
    );
    assert_eq!(on_call["oldestBlocked"]["title"], "Write the docs");
    assert_eq!(on_call["failuresLastHour"], 1);

    let out = std::process::Command::new(BIN)
        .args(["--server", &s.url, "--config"])
        .arg(s.config_path())
        .arg("status")
        .env_remove("FLIGHTDECK_TOKEN")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("on call: 3 items wait on a person; 1 failed attempts in the last hour"),
        "{text}"
    );
    assert!(
        text.contains("oldest in review: Build login page, "),
        "{text}"
    );
    assert!(text.contains("oldest blocked: Write the docs, "), "{text}");
}
