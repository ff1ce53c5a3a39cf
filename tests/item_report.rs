//! The review evidence kept on the item (issue 11): the acceptance report of the latest
//! attempt is the item's `report` (each criterion met or not, with the agent's evidence), so
//! the board shows it beside the verdict; and items made from the board say so in `createdBy`.
//! Real server, real agents (the built-in demo agent and a fixture script).

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn id_of(item: &Value) -> String {
    item["id"].as_str().expect("item id").to_string()
}

/// `report.criteria` as (criterion, met, evidence).
fn criteria(item: &Value) -> Vec<(String, bool, String)> {
    item["report"]["criteria"]
        .as_array()
        .unwrap_or_else(|| panic!("the item carries no report: {item}"))
        .iter()
        .map(|e| {
            (
                e["criterion"].as_str().unwrap_or_default().to_string(),
                e["met"].as_bool().expect("met is a bool"),
                e["evidence"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn an_item_in_review_carries_its_acceptance_report() {
    let s = TestServer::start("[pool]\nsize = 1\n");
    let item = s.create(json!({
        "title": "Write the plan",
        "acceptanceCriteria": ["the plan names every step", "the plan is short"],
    }));
    assert!(
        item["report"].is_null(),
        "no report before any attempt: {item}"
    );
    let id = id_of(&item);
    s.move_to(&id, "planning");
    s.move_to(&id, "ready");
    let item = s.wait_status(&id, "review", T);
    let report = criteria(&item);
    let named: Vec<&str> = report.iter().map(|(c, _, _)| c.as_str()).collect();
    assert_eq!(named, ["the plan names every step", "the plan is short"]);
    for (criterion, met, evidence) in &report {
        assert!(met, "{criterion} is reported met");
        assert!(!evidence.trim().is_empty(), "{criterion} has evidence");
    }
}

#[test]
fn a_blocked_item_keeps_the_report_that_says_which_criterion_was_not_met() {
    let argv = ["/bin/sh".to_string(), fixture("agents/acceptance.sh")];
    let s = TestServer::start(&format!(
        "[pool]\nsize = 1\nmax_attempts = 1\n[agent]\npreset = \"lines\"\ncommand = {}\n",
        serde_json::to_string(&argv).expect("argv as JSON")
    ));
    let id = id_of(&s.create(json!({
        "title": "two criteria",
        "status": "ready",
        "acceptanceCriteria": ["a", "b"],
    })));
    let item = s.wait_status(&id, "blocked", T);
    assert_eq!(
        criteria(&item),
        [
            ("a".to_string(), true, "out.txt".to_string()),
            ("b".to_string(), false, "ran out of time".to_string()),
        ]
    );
    // A person retries it and an outside runner claims it: while that attempt runs, the old
    // report no longer speaks for the item.
    let (status, pool) = s.send("PUT", "/api/pool", json!({"size": 0}));
    assert_eq!(status, 200, "{pool}");
    let (status, moved) = s.move_to(&id, "ready");
    assert_eq!(status, 200, "{moved}");
    let (status, claimed) = s.claim("outside-runner");
    assert_eq!(status, 200, "{claimed}");
    let running = s.item(&id);
    assert_eq!(running["status"], "in_flight");
    assert!(running["report"].is_null(), "{running}");
}

#[test]
fn items_created_from_the_board_are_recorded_as_by_board() {
    let s = TestServer::start("");
    let from_board: Value = s
        .req("POST", "/api/items")
        .set("X-Flightdeck-Client", "board")
        .send_json(json!({"title": "Made on the board"}))
        .expect("create from the board")
        .into_json()
        .expect("JSON item");
    assert_eq!(from_board["createdBy"], "board");
    assert_eq!(s.item(&id_of(&from_board))["createdBy"], "board");

    let from_api = s.create(json!({"title": "Made through the API"}));
    assert_eq!(from_api["createdBy"], "api");
    let named = s.create(json!({"title": "Named", "createdBy": "ci"}));
    assert_eq!(named["createdBy"], "ci");
}
