//! `GET /api/items` a page at a time, against the real server: pages follow one another in
//! list order (priority, then age) with nothing missed or repeated, `X-Next-Cursor` leads to
//! the next page and is absent on the last, `X-Event-Seq` names the last event the page saw,
//! a bad `limit` or `cursor` is a 400 naming the field, and `flightdeck list` pages through.

mod common;
use common::*;
use serde_json::{json, Value};
use std::process::{Command, Stdio};

const TOKEN: &str = "pages-test-token-8c2f";

fn server() -> TestServer {
    let mut s = TestServer::start(&format!("token = \"{TOKEN}\"\n[pool]\nsize = 0\n"));
    s.set_token(TOKEN);
    s
}

/// One page: status, body, `X-Next-Cursor`, `X-Event-Seq`.
fn page(s: &TestServer, query: &str) -> (u16, Value, Option<String>, Option<u64>) {
    let result = ureq::get(&format!("{}/api/items?{query}", s.url))
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .call();
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let next = resp.header("X-Next-Cursor").map(str::to_string);
    let seq = resp.header("X-Event-Seq").and_then(|v| v.parse().ok());
    let status = resp.status();
    let body = serde_json::from_str(&resp.into_string().unwrap_or_default()).unwrap_or(Value::Null);
    (status, body, next, seq)
}

fn ids(items: &Value) -> Vec<String> {
    items
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|i| i["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn pages_follow_one_another_in_list_order_and_name_the_event_they_saw() {
    let s = server();
    let priorities = ["low", "urgent", "medium", "high"];
    let mut created = Vec::new();
    for i in 0..23 {
        let priority = priorities[i % 4];
        created.push(s.create(json!({"title": format!("item {i}"), "priority": priority})));
    }
    let (status, everything, next, _) = page(&s, "limit=5000");
    assert_eq!(status, 200);
    assert!(next.is_none(), "one page holds all 23");
    let all = ids(&everything);
    assert_eq!(all.len(), 23);
    // Urgent first, then high, medium, low; within a priority the oldest first.
    let mut expected = created.clone();
    let rank = |p: &str| priorities_rank(p);
    expected.sort_by_key(|i| rank(i["priority"].as_str().unwrap_or("")));
    assert_eq!(all, ids(&Value::Array(expected)));

    let last_seq = s.events_since(0).last().expect("events")["seq"].as_u64();
    let (_, first, mut cursor, seq) = page(&s, "limit=5");
    assert_eq!(seq, last_seq, "X-Event-Seq is the last event the page saw");
    let mut paged = ids(&first);
    assert_eq!(paged.len(), 5);
    // An item added between pages with the lowest priority turns up on a later page.
    let late = s.create(json!({"title": "added while paging", "priority": "low"}));
    let mut pages = 1;
    while let Some(c) = cursor {
        let (status, body, next, _) = page(&s, &format!("limit=5&cursor={c}"));
        assert_eq!(status, 200, "{body}");
        let got = ids(&body);
        assert!(!got.is_empty() && got.len() <= 5);
        paged.extend(got);
        cursor = next;
        pages += 1;
    }
    assert_eq!(
        pages, 5,
        "24 items in pages of 5, the last page without X-Next-Cursor"
    );
    let mut expected = all.clone();
    expected.push(late["id"].as_str().unwrap_or_default().to_string());
    assert_eq!(paged, expected, "nothing missed, nothing repeated");

    // Filters page too.
    let (_, lows, next, _) = page(&s, "priority=low&limit=4");
    assert_eq!(ids(&lows).len(), 4);
    let (_, rest, last, _) = page(
        &s,
        &format!("priority=low&limit=4&cursor={}", next.unwrap()),
    );
    assert_eq!(
        ids(&rest).len(),
        3,
        "7 low items: 6, and the one added late"
    );
    assert!(last.is_none());
}

fn priorities_rank(p: &str) -> u8 {
    match p {
        "urgent" => 0,
        "high" => 1,
        "medium" => 2,
        _ => 3,
    }
}

#[test]
fn a_bad_limit_or_cursor_is_refused_by_name() {
    let s = server();
    s.create(json!({"title": "one"}));
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=5001", "limit"),
        ("limit=many", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=AAAAAAAAAAAAAAAAAAAA", "cursor"),
    ] {
        let (status, body, _, _) = page(&s, query);
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(
            body["error"]["field"].as_str(),
            Some(field),
            "{query}: {body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(field),
            "{query}: the message names the field: {body}"
        );
    }
    let (status, body, _, _) = page(&s, "limit=5000");
    assert_eq!(status, 200);
    assert_eq!(ids(&body).len(), 1, "nothing changed");
}

#[test]
fn the_first_page_holds_500_and_the_cli_lists_every_item() {
    let s = server();
    for i in 0..501 {
        s.create(json!({"title": format!("item {i}")}));
    }
    let (_, first, next, _) = page(&s, "");
    assert_eq!(ids(&first).len(), 500, "500 items by default");
    assert!(next.is_some(), "a second page follows");
    let output = Command::new(BIN)
        .arg("--config")
        .arg(s.config_path())
        .args(["--server", &s.url, "list", "--json"])
        .env_remove("FLIGHTDECK_URL")
        .env_remove("FLIGHTDECK_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run the CLI");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let listed = ids(&listed);
    assert_eq!(
        listed.len(),
        501,
        "flightdeck list pages through to the last item"
    );
    let unique: std::collections::BTreeSet<&String> = listed.iter().collect();
    assert_eq!(unique.len(), 501);
}
