//! Crash safety: concurrent writers, SIGKILL at a random moment, several times in a row, on the
//! same data dir. Every write acknowledged before the kill is there after it, nothing is half
//! written, `blocks` mirrors `blockedBy`, nothing stays in flight, and `seq` never repeats.
//! Also: SIGTERM lets a running agent finish within the grace period.

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What writers were told succeeded: created ids, and items whose claim was acknowledged.
#[derive(Default)]
struct Acknowledged {
    created: HashSet<String>,
    claimed: HashSet<String>,
    completed: HashSet<String>,
}

fn writer(s_url: &str, token: &str, w: usize, stop: &AtomicBool, ack: &Mutex<Acknowledged>) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    let bearer = format!("Bearer {token}");
    let post = |path: &str| {
        agent
            .post(&format!("{s_url}{path}"))
            .set("Authorization", &bearer)
    };
    let mut last: Option<String> = None;
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let mut body = json!({"title": format!("w{w} #{i}"), "status": "ready"});
        if let Some(prev) = &last {
            if i % 3 == 0 {
                body["blockedBy"] = json!([prev]);
            }
        }
        match post("/api/items").send_json(body) {
            Ok(r) if r.status() == 201 => {
                let v: Value = r.into_json().unwrap();
                let id = v["id"].as_str().unwrap().to_string();
                ack.lock().unwrap().created.insert(id.clone());
                last = Some(id);
            }
            _ => break,
        }
        if i % 2 == 0 {
            let claim = post("/api/claim")
                .send_json(json!({"agentId": format!("w{w}"), "sessionKey": format!("k{w}-{i}")}));
            if let Ok(r) = claim {
                if r.status() == 200 {
                    let v: Value = r.into_json().unwrap();
                    let id = v["item"]["id"].as_str().unwrap().to_string();
                    ack.lock().unwrap().claimed.insert(id.clone());
                    let done = post(&format!("/api/items/{id}/complete")).send_json(json!({}));
                    if matches!(done, Ok(ref r) if r.status() == 200) {
                        ack.lock().unwrap().completed.insert(id);
                    }
                }
            }
        }
    }
}

fn check_invariants(s: &TestServer, ack: &Acknowledged, last_seq: &mut u64) {
    let (status, items) = s.get("/api/items");
    assert_eq!(status, 200);
    let items: HashMap<String, Value> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].as_str().unwrap().to_string(), i.clone()))
        .collect();
    for id in &ack.created {
        assert!(items.contains_key(id), "acknowledged item {id} lost");
    }
    for id in &ack.completed {
        let st = items[id]["status"].as_str().unwrap();
        assert!(st == "review", "acknowledged completion of {id} lost: {st}");
    }
    for (id, item) in &items {
        assert_ne!(item["status"], "in_flight", "{id} left in flight");
        for b in item["blockedBy"].as_array().unwrap() {
            let blocker = &items[b.as_str().unwrap()];
            assert!(
                blocker["blocks"].as_array().unwrap().contains(&json!(id)),
                "blocks mirrors blockedBy"
            );
        }
        for d in item["blocks"].as_array().unwrap() {
            let dependent = &items[d.as_str().unwrap()];
            assert!(dependent["blockedBy"]
                .as_array()
                .unwrap()
                .contains(&json!(id)));
        }
    }
    let events = s.events_since(0);
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "seq increases by one"
    );
    let newest = *seqs.last().unwrap_or(&0);
    assert!(
        newest >= *last_seq,
        "seq never goes backwards ({newest} < {last_seq})"
    );
    *last_seq = newest;
}

#[test]
fn sigkill_under_concurrent_writes_loses_nothing_acknowledged() {
    let mut s = TestServer::start("[pool]\nsize = 0\n");
    let ack = Mutex::new(Acknowledged::default());
    let mut last_seq = 0;
    for round in 0..4 {
        let stop = AtomicBool::new(false);
        let url = s.url.clone();
        let token = s.token().unwrap_or_default();
        std::thread::scope(|scope| {
            for w in 0..4 {
                let (url, token, stop, ack) = (&url, &token, &stop, &ack);
                scope.spawn(move || writer(url, token, w, stop, ack));
            }
            // A "random" moment: derived from the clock, between 150 and 650 ms in.
            let jitter = Instant::now().elapsed().subsec_nanos() as u64 % 500;
            std::thread::sleep(Duration::from_millis(150 + jitter + round * 37));
            s.kill();
            stop.store(true, Ordering::Relaxed);
        });
        s.boot();
        let ack = ack.lock().unwrap();
        assert!(!ack.created.is_empty(), "round {round} wrote something");
        check_invariants(&s, &ack, &mut last_seq);
    }
}

#[test]
fn sigterm_gives_running_agents_their_grace_then_stops() {
    let extra = "[pool]\nsize = 1\nshutdown_grace_secs = 20\n[agent]\npreset = \"lines\"\ncommand = [\"/bin/sh\", \"-c\", \"echo working; sleep 1; echo done\"]\n";
    let mut s = TestServer::start(extra);
    let id = s.create_ready("finish me")["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.wait_status(&id, "in_flight", Duration::from_secs(10));
    let started = Instant::now();
    let status = s.terminate();
    assert!(
        status.success() || status.code().is_some(),
        "exited: {status}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "did not wait out the whole grace"
    );
    s.boot();
    let item = s.item(&id);
    assert_eq!(
        item["status"], "review",
        "the agent finished within the grace: {item}"
    );
}
