//! `GET /metrics`: what a person watching Prometheus sees after real work (items created,
//! claimed, completed, failed, and an agent run), who may read it, and that the Grafana
//! dashboard in deploy/ only asks for metrics the server has.

mod common;
use common::*;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// The value of the sample `series` (a name with its labels, as printed) in a scrape.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn scrape(s: &TestServer) -> String {
    let (status, body) = s.get("/metrics");
    assert_eq!(status, 200, "{body}");
    body.as_str().expect("metrics are text").to_string()
}

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
fn counters_and_gauges_follow_what_happens_to_the_queue_and_the_agents() {
    let s = TestServer::start(&format!(
        "[pool]\nsize = 1\nauto_dispatch = false\nretry_backoff_secs = 0.0\n{}",
        spend_agent(1000, 200, 3)
    ));
    let before = scrape(&s);
    assert_eq!(sample(&before, "flightdeck_claims_total"), Some(0.0));
    assert_eq!(sample(&before, "flightdeck_pool_size"), Some(1.0));

    // Claimed and completed over the API: one claim, one completion, one item in review.
    let done = s.create_ready("Build login page");
    let (status, claimed) = s.claim("tester");
    assert_eq!(status, 200, "{claimed}");
    assert_eq!(claimed["item"]["id"], done["id"]);
    let id = done["id"].as_str().unwrap();
    let (status, body) = s.post(&format!("/api/items/{id}/complete"), json!({}));
    assert_eq!(status, 200, "{body}");

    // A completion that misses its acceptance criteria: a failure, and a retry.
    let unmet = s.create(json!({"title": "Write the docs", "status": "ready",
        "acceptanceCriteria": ["a page exists"]}));
    let (status, _) = s.claim("tester");
    assert_eq!(status, 200);
    let uid = unmet["id"].as_str().unwrap();
    let (status, body) = s.post(&format!("/api/items/{uid}/complete"), json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], false);
    let (status, _) = s.move_to(uid, "blocked");
    assert_eq!(status, 200);

    // An agent run: three token lines of 1000 in and 200 out.
    let agent_item = s.create_ready("Fix the date bug");
    let (status, body) = s.post("/api/dispatch", json!({}));
    assert_eq!(status, 200, "{body}");
    s.wait_status(agent_item["id"].as_str().unwrap(), "review", T);
    let text = s.wait_for("the agent's session to be counted", T, || {
        let text = scrape(&s);
        (sample(
            &text,
            r#"flightdeck_attempt_duration_seconds_count{outcome="completed"}"#,
        ) == Some(1.0))
        .then_some(text)
    });

    assert_eq!(sample(&text, "flightdeck_claims_total"), Some(3.0));
    assert_eq!(sample(&text, "flightdeck_completions_total"), Some(2.0));
    assert_eq!(sample(&text, "flightdeck_failures_total"), Some(1.0));
    assert_eq!(sample(&text, "flightdeck_retries_total"), Some(1.0));
    assert_eq!(
        sample(&text, r#"flightdeck_items{status="review"}"#),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, r#"flightdeck_items{status="blocked"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"flightdeck_items{status="ready"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, r#"flightdeck_sessions_total{preset="lines"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"flightdeck_tokens_total{preset="lines",kind="input"}"#
        ),
        Some(3000.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"flightdeck_tokens_total{preset="lines",kind="output"}"#
        ),
        Some(600.0)
    );
    assert_eq!(sample(&text, "flightdeck_tokens_today"), Some(3600.0));
    assert_eq!(
        sample(&text, "flightdeck_dispatch_delay_seconds_count"),
        Some(3.0)
    );
    assert_eq!(sample(&text, "flightdeck_pool_running"), Some(0.0));
    let last_seq = s.events_since(0).last().unwrap()["seq"].as_f64().unwrap();
    assert!(sample(&text, "flightdeck_event_seq").unwrap() >= last_seq);
    assert!(sample(&text, "flightdeck_store_bytes").unwrap() > 0.0);
    assert!(sample(&text, "flightdeck_write_batch_size_count").unwrap() > 0.0);
    assert!(sample(&text, "flightdeck_commit_seconds_count").unwrap() > 0.0);
    assert_eq!(sample(&text, "flightdeck_websocket_clients"), Some(0.0));
}

#[test]
fn metrics_need_the_token_unless_public() {
    let s = TestServer::start("");
    let refused = ureq::get(&format!("{}/metrics", s.url)).call();
    match refused {
        Err(ureq::Error::Status(401, response)) => {
            let body = response.into_string().unwrap_or_default();
            assert!(body.contains("API token"), "{body}");
        }
        other => panic!("expected 401 without the token, got {other:?}"),
    }
    let wrong = ureq::get(&format!("{}/metrics", s.url))
        .set("Authorization", "Bearer wrong")
        .call();
    assert!(matches!(wrong, Err(ureq::Error::Status(401, _))));
    assert!(scrape(&s).contains("flightdeck_items"));

    let open = TestServer::start("[metrics]\npublic = true\n");
    let response = ureq::get(&format!("{}/metrics", open.url))
        .call()
        .expect("public metrics answer without a token");
    assert!(response.content_type().contains("openmetrics-text"));
    let text = response.into_string().unwrap();
    assert!(text.contains("flightdeck_pool_size 2"), "{text}");
    // The API itself still needs the token.
    let api = ureq::get(&format!("{}/api/items", open.url)).call();
    assert!(matches!(api, Err(ureq::Error::Status(401, _))));
}

#[test]
fn the_grafana_dashboard_queries_only_metrics_the_server_exposes() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/flightdeck.json"
    );
    let text = std::fs::read_to_string(path).expect("deploy/grafana/flightdeck.json");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let mut queried = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a target's expr");
            let mut rest = expr;
            while let Some(at) = rest.find("flightdeck_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                queried.insert(name);
            }
        }
    }
    assert!(queried.len() >= 10, "the dashboard queries {queried:?}");

    let s = TestServer::start(&spend_agent(1, 1, 1));
    let text = scrape(&s);
    let exposed: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next().map(str::to_string))
        .collect();
    let missing: Vec<&String> = queried.iter().filter(|q| !exposed.contains(*q)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics /metrics does not have: {missing:?}"
    );
}
