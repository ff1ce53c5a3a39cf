//! The agent pool with real child processes: small POSIX sh agents under
//! `tests/fixtures/agents/` speak the `lines` protocol, and coordinate with the tests through
//! files whose paths they get on their command line (or write into their own workspace).
//!
//! Agents that write outside their session folder run with `sandbox = "off"`: under Landlock
//! (the default where the kernel has it) they could not. The others keep the default sandbox,
//! so the normal path is covered too.

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

// ---- helpers -------------------------------------------------------------------------------

/// An `[agent]` table running a fixture script with the lines preset; `more` adds keys.
fn script_agent(script: &str, args: &[&str], more: &str) -> String {
    let mut argv = vec!["/bin/sh".to_string(), fixture(&format!("agents/{script}"))];
    argv.extend(args.iter().map(|a| a.to_string()));
    // A JSON array of strings is a valid TOML inline array.
    format!(
        "[agent]\npreset = \"lines\"\ncommand = {}\n{more}\n",
        serde_json::to_string(&argv).unwrap()
    )
}

/// A folder for files the test and its agents share, gone when the test ends.
fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("scratch dir")
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

fn id_of(item: &Value) -> String {
    item["id"].as_str().expect("item id").to_string()
}

/// The item's sessions, newest first.
fn sessions_of(s: &TestServer, item_id: &str) -> Vec<Value> {
    let (status, v) = s.get(&format!("/api/agents?item={item_id}"));
    assert_eq!(status, 200, "{v}");
    v.as_array().cloned().unwrap_or_default()
}

/// Waits for the item's session that is working, and returns it.
fn working_session(s: &TestServer, item_id: &str) -> Value {
    s.wait_for(&format!("a working session of {item_id}"), T, || {
        sessions_of(s, item_id)
            .into_iter()
            .find(|x| x["status"] == "working")
    })
}

/// Waits until every session of the item has ended (the session record is written just
/// after the item moves), and returns them, newest first.
fn ended_sessions(s: &TestServer, item_id: &str) -> Vec<Value> {
    s.wait_for(&format!("the sessions of {item_id} to end"), T, || {
        let all = sessions_of(s, item_id);
        all.iter()
            .all(|x| x["status"] == "completed" || x["status"] == "failed")
            .then_some(all)
    })
}

fn pool(s: &TestServer) -> Value {
    let (status, v) = s.get("/api/pool");
    assert_eq!(status, 200, "{v}");
    v
}

/// `POST /api/dispatch`; returns the ids of the items it started.
fn dispatch(s: &TestServer) -> Vec<String> {
    let (status, v) = s.post("/api/dispatch", json!({}));
    assert_eq!(status, 200, "{v}");
    v["started"]
        .as_array()
        .expect("started")
        .iter()
        .map(|x| x["workItemId"].as_str().expect("workItemId").to_string())
        .collect()
}

fn reason(item: &Value) -> String {
    item["statusReason"].as_str().unwrap_or("").to_string()
}

fn log_text(s: &TestServer, item_id: &str) -> String {
    let (status, v) = s.get(&format!("/api/items/{item_id}/log"));
    assert_eq!(status, 200, "{v}");
    match v {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

/// Reads a pid file once it exists.
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

/// The lines of a record.sh log.
fn log_lines(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(what, id)| (what.to_string(), id.to_string()))
        .collect()
}

fn starts(path: &Path) -> Vec<String> {
    log_lines(path)
        .into_iter()
        .filter(|(what, _)| what == "start")
        .map(|(_, id)| id)
        .collect()
}

/// Calls `each` every 100 ms for `window`: seeing that something does *not* happen takes a
/// bounded look.
fn observe<T>(window: Duration, mut each: impl FnMut() -> T) -> Vec<T> {
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < window {
        seen.push(each());
        std::thread::sleep(Duration::from_millis(100));
    }
    seen
}

// ---- the pool ------------------------------------------------------------------------------

#[test]
fn pool_never_runs_more_than_its_size() {
    let dir = scratch();
    let log = dir.path().join("runs.log");
    let s = TestServer::start(&format!(
        "[pool]\nsize = 3\n{}",
        script_agent("record.sh", &[&path_str(&log), "0.4"], "sandbox = \"off\"")
    ));
    let ids: Vec<String> = (0..20)
        .map(|i| id_of(&s.create_ready(&format!("item {i}"))))
        .collect();
    s.wait_for(
        "all 20 items to reach review",
        Duration::from_secs(60),
        || {
            let running = pool(&s)["running"].as_u64().unwrap();
            assert!(running <= 3, "the pool of 3 runs {running} agents");
            let (_, items) = s.get("/api/items?status=review");
            (items.as_array().map(Vec::len) == Some(20)).then_some(())
        },
    );
    // Replay the log: the number of agents between their start and end lines.
    let (mut now, mut max) = (0i32, 0i32);
    for (what, _) in log_lines(&log) {
        now += if what == "start" { 1 } else { -1 };
        max = max.max(now);
    }
    assert!(max <= 3, "{max} agents ran at once in a pool of 3");
    assert_eq!(max, 3, "the pool of 3 never ran 3 agents at once");
    assert_eq!(now, 0, "every start has an end");
    let started: HashSet<String> = starts(&log).into_iter().collect();
    assert_eq!(started, ids.iter().cloned().collect(), "each item ran");
    assert_eq!(starts(&log).len(), 20, "each item ran exactly once");
    for id in &ids {
        let item = s.item(id);
        assert_eq!(item["attempts"], 1, "{item}");
    }
}

#[test]
fn dispatch_starts_items_by_priority_then_age() {
    let dir = scratch();
    let log = dir.path().join("runs.log");
    let s = TestServer::start(&format!(
        "[pool]\nsize = 1\nauto_dispatch = false\n{}",
        script_agent("record.sh", &[&path_str(&log)], "sandbox = \"off\"")
    ));
    let mut names = HashMap::new();
    for (title, priority) in [
        ("low", "low"),
        ("urgent", "urgent"),
        ("high-older", "high"),
        ("medium", "medium"),
        ("high-newer", "high"),
    ] {
        let item = s.create(json!({"title": title, "priority": priority, "status": "ready"}));
        names.insert(id_of(&item), title.to_string());
    }
    assert_eq!(pool(&s)["autoDispatch"], false);
    // Nothing starts by itself.
    assert!(
        observe(Duration::from_millis(1500), || pool(&s)["running"].clone())
            .iter()
            .all(|r| r == 0)
    );
    for _ in 0..5 {
        let started = dispatch(&s);
        assert_eq!(started.len(), 1, "one dispatch starts one item");
        s.wait_status(&started[0], "review", T);
        // The item reaches review a moment before its session has ended and freed the slot.
        s.wait_for("the pool's one slot to be free", T, || {
            (pool(&s)["running"] == 0).then_some(())
        });
    }
    assert!(dispatch(&s).is_empty(), "nothing left to start");
    let order: Vec<&str> = starts(&log).iter().map(|id| names[id].as_str()).collect();
    assert_eq!(
        order,
        ["urgent", "high-older", "high-newer", "medium", "low"]
    );
}

#[test]
fn manual_dispatch_with_the_pool_full_starts_nothing_until_a_slot_frees() {
    let dir = scratch();
    let gate = dir.path().join("gate");
    let s = TestServer::start(&format!(
        "[pool]\nsize = 1\nauto_dispatch = false\n{}",
        script_agent("gate.sh", &[&path_str(&gate)], "")
    ));
    let first =
        id_of(&s.create(json!({"title": "first", "priority": "urgent", "status": "ready"})));
    let second = id_of(&s.create_ready("second"));
    assert_eq!(dispatch(&s), [first.as_str()]);
    working_session(&s, &first);

    // The pool is full: dispatch answers 200 with nothing started, again and again.
    for _ in 0..3 {
        let (status, v) = s.post("/api/dispatch", json!({}));
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["started"], json!([]), "dispatch into a full pool: {v}");
    }
    let seen = observe(Duration::from_millis(1000), || {
        (
            pool(&s)["running"].clone(),
            s.item(&second)["status"].clone(),
        )
    });
    assert!(
        seen.iter()
            .all(|(running, status)| running == 1 && status == "ready"),
        "a full pool of 1 started nothing more: {seen:?}"
    );
    assert!(
        sessions_of(&s, &second).is_empty(),
        "the second item never started"
    );

    // The slot frees: the next dispatch starts the waiting item.
    std::fs::write(&gate, "").unwrap();
    s.wait_status(&first, "review", T);
    s.wait_for("the slot to free", T, || {
        (pool(&s)["running"] == 0).then_some(())
    });
    assert_eq!(dispatch(&s), [second.as_str()]);
    s.wait_status(&second, "review", T);
    assert_eq!(sessions_of(&s, &first).len(), 1, "the first item ran once");
}

#[test]
fn blocked_item_waits_until_its_dependency_is_done() {
    let dir = scratch();
    let log = dir.path().join("runs.log");
    let s = TestServer::start(&format!(
        "[pool]\nsize = 1\n{}",
        script_agent("record.sh", &[&path_str(&log)], "sandbox = \"off\"")
    ));
    let a = id_of(&s.create(json!({"title": "A", "status": "ready", "priority": "low"})));
    // B outranks everything, but needs A.
    let b = id_of(
        &s.create(json!({"title": "B", "status": "ready", "priority": "urgent", "blockedBy": [a]})),
    );
    s.wait_status(&a, "review", T);
    assert_eq!(s.item(&b)["status"], "ready");
    // A later, lower item runs while B still waits: the dispatcher looked, and passed B over.
    let c = id_of(&s.create(json!({"title": "C", "status": "ready", "priority": "low"})));
    s.wait_status(&c, "review", T);
    let item_b = s.item(&b);
    assert_eq!(item_b["status"], "ready", "{item_b}");
    assert_eq!(item_b["attempts"], 0);
    assert!(
        sessions_of(&s, &b).is_empty(),
        "B must not start while A is in review"
    );
    assert_eq!(starts(&log), [a.clone(), c.clone()]);

    let (status, v) = s.move_to(&a, "done");
    assert_eq!(status, 200, "{v}");
    s.wait_status(&b, "review", T);
    assert_eq!(starts(&log), [a, c, b]);
}

// ---- failures ------------------------------------------------------------------------------

#[test]
fn failing_agent_is_retried_then_blocked() {
    let s = TestServer::start(&format!(
        "[pool]\nsize = 1\nmax_attempts = 2\nretry_backoff_secs = 0.2\n{}",
        script_agent("fail.sh", &[], "")
    ));
    let id = id_of(&s.create_ready("always fails"));
    let item = s.wait_status(&id, "blocked", T);
    assert_eq!(item["attempts"], 2, "{item}");
    let why = reason(&item);
    assert!(why.contains("exited with code 1"), "{why}");
    // The last line it printed (stdout and stderr race, so either of its two lines).
    assert!(
        why.contains("boom: the build is broken") || why.contains("about to fail"),
        "{why}"
    );
    let sessions = ended_sessions(&s, &id);
    assert_eq!(sessions.len(), 2);
    assert!(
        sessions.iter().all(|x| x["status"] == "failed"),
        "{sessions:?}"
    );
    let log = log_text(&s, &id);
    assert!(log.contains("=== attempt 1 "), "{log}");
    assert!(log.contains("=== attempt 2 "), "{log}");
    // What the agent printed (outside the "=== ... ===" headers), once per attempt.
    let printed = |text: &str| {
        log.lines()
            .filter(|l| !l.starts_with("===") && l.contains(text))
            .count()
    };
    assert_eq!(printed("about to fail"), 2, "{log}");
    assert_eq!(printed("boom: the build is broken"), 2, "{log}");
}

#[test]
fn wall_clock_timeout_stops_the_agent() {
    let s = TestServer::start(&format!(
        "[pool]\nsize = 1\nmax_attempts = 1\ntimeout_secs = 1\n{}",
        script_agent("chatty.sh", &[], "")
    ));
    let id = id_of(&s.create_ready("never finishes"));
    let pid = working_session(&s, &id)["pid"].as_u64().expect("pid") as u32;
    let item = s.wait_status(&id, "blocked", T);
    let why = reason(&item);
    assert!(why.contains("timed out"), "{why}");
    wait_dead(&s, "the timed-out agent", pid);
    let session = &ended_sessions(&s, &id)[0];
    assert_eq!(session["status"], "failed");
    assert!(log_text(&s, &id).contains("still working"));
}

#[test]
fn silent_agent_is_stopped_as_stalled() {
    let s = TestServer::start(&format!(
        "[pool]\nsize = 1\nmax_attempts = 1\nidle_timeout_secs = 1\n{}",
        script_agent("quiet.sh", &[], "")
    ));
    let id = id_of(&s.create_ready("goes quiet"));
    let pid = working_session(&s, &id)["pid"].as_u64().expect("pid") as u32;
    // Far sooner than the 30 s the agent sleeps.
    let item = s.wait_status(&id, "blocked", Duration::from_secs(15));
    let why = reason(&item);
    assert!(why.contains("stalled"), "{why}");
    wait_dead(&s, "the stalled agent", pid);
}

#[test]
fn failing_verify_command_fails_the_attempt() {
    let s = TestServer::start(&format!(
        "[pool]\nsize = 1\nmax_attempts = 1\n{}",
        script_agent("ok.sh", &[], "verify = [\"/bin/false\"]")
    ));
    let id = id_of(&s.create_ready("verified"));
    let item = s.wait_status(&id, "blocked", T);
    let why = reason(&item);
    assert!(why.contains("verify"), "{why}");
    assert_eq!(ended_sessions(&s, &id)[0]["status"], "failed");

    // The same agent with a verify command that passes reaches review.
    let s = TestServer::start(&format!(
        "[pool]\nsize = 1\nmax_attempts = 1\n{}",
        script_agent(
            "ok.sh",
            &[],
            "verify = [\"/bin/sh\", \"-c\", \"test -f AGENTS.md\"]"
        )
    ));
    let id = id_of(&s.create_ready("verified"));
    s.wait_status(&id, "review", T);
}

// ---- stopping agents -----------------------------------------------------------------------

#[test]
fn cancel_kills_the_whole_process_group() {
    let s = TestServer::start(&format!(
        "[pool]\nsize = 1\nauto_dispatch = false\n{}",
        script_agent("spawner.sh", &[], "")
    ));
    let id = id_of(&s.create_ready("starts a helper"));
    assert_eq!(dispatch(&s), [id.as_str()]);
    let session = working_session(&s, &id);
    let sid = session["id"].as_str().unwrap().to_string();
    let ws = PathBuf::from(session["workspaceDir"].as_str().unwrap());
    let agent = read_pid(&s, &ws.join("agent.pid"));
    let child = read_pid(&s, &ws.join("child.pid"));
    assert_eq!(session["pid"], agent, "the session records the agent's pid");
    assert!(alive(agent) && alive(child));
    // The agents list shows it working on the item.
    let (_, all) = s.get("/api/agents");
    assert!(all
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["id"] == sid.as_str()
            && x["workItemId"] == id.as_str()
            && x["status"] == "working"));

    let (status, v) = s.post(&format!("/api/agents/{sid}/cancel"), json!({}));
    assert_eq!(status, 200, "{v}");
    let item = s.wait_status(&id, "blocked", T);
    assert!(reason(&item).contains("cancel"), "{item}");
    wait_dead(&s, "the cancelled agent", agent);
    wait_dead(&s, "the agent's background helper", child);
    s.wait_for("the session to be failed", T, || {
        let x = s.get(&format!("/api/agents/{sid}")).1;
        (x["status"] == "failed").then_some(())
    });
    s.wait_for("the slot to be free", T, || {
        (pool(&s)["running"] == 0).then_some(())
    });
    // Cancelling it again is refused: it already ended.
    let (status, _) = s.post(&format!("/api/agents/{sid}/cancel"), json!({}));
    assert_eq!(status, 409);
}

#[test]
fn restart_recovers_interrupted_work_and_kills_its_processes() {
    let mut s = TestServer::start(&format!(
        "[pool]\nsize = 1\nauto_dispatch = false\nretry_backoff_secs = 0.0\n{}",
        script_agent("spawner.sh", &[], "")
    ));
    let id = id_of(&s.create_ready("interrupted"));
    assert_eq!(dispatch(&s), [id.as_str()]);
    let session = working_session(&s, &id);
    let sid = session["id"].as_str().unwrap().to_string();
    let ws = PathBuf::from(session["workspaceDir"].as_str().unwrap());
    let agent = read_pid(&s, &ws.join("agent.pid"));
    let child = read_pid(&s, &ws.join("child.pid"));
    assert!(alive(agent) && alive(child));
    std::fs::write(ws.join("work.txt"), "half done").unwrap();

    s.kill();
    s.boot();
    let item = s.item(&id);
    assert_eq!(item["status"], "ready", "{item}");
    assert!(reason(&item).contains("interrupted"), "{item}");
    let (_, old) = s.get(&format!("/api/agents/{sid}"));
    assert_eq!(old["status"], "failed", "{old}");
    assert!(old["outcome"]
        .as_str()
        .unwrap_or("")
        .contains("interrupted"));
    wait_dead(&s, "the agent of the killed server", agent);
    wait_dead(&s, "the background helper of the killed server", child);
    assert_eq!(pool(&s)["running"], 0);

    // The item runs again on the new server, continuing in the interrupted workspace.
    std::fs::remove_file(ws.join("child.pid")).unwrap();
    assert_eq!(dispatch(&s), [id.as_str()]);
    let again = working_session(&s, &id);
    assert_ne!(again["id"], sid.as_str());
    assert_eq!(again["attempt"], 2);
    let new_ws = PathBuf::from(again["workspaceDir"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(new_ws.join("work.txt")).unwrap(),
        "half done"
    );
    let agents_md = std::fs::read_to_string(new_ws.join("AGENTS.md")).unwrap();
    assert!(agents_md.contains("interrupted"), "{agents_md}");
    // Leave nothing running behind.
    let child = read_pid(&s, &new_ws.join("child.pid"));
    let again_id = again["id"].as_str().unwrap();
    let (status, v) = s.post(&format!("/api/agents/{again_id}/cancel"), json!({}));
    assert_eq!(status, 200, "{v}");
    wait_dead(&s, "the second attempt's helper", child);
}

// ---- live pool size ------------------------------------------------------------------------

#[test]
fn pool_size_follows_config_edits_and_put() {
    let dir = scratch();
    let gate = dir.path().join("gate");
    let agent = script_agent("gate.sh", &[&path_str(&gate)], "");
    let s = TestServer::start(&format!("[pool]\nsize = 1\n{agent}"));
    let ids: Vec<String> = (0..3)
        .map(|i| id_of(&s.create_ready(&format!("gated {i}"))))
        .collect();
    s.wait_for("one agent running", T, || {
        (pool(&s)["running"] == 1).then_some(())
    });
    assert_eq!(pool(&s)["size"], 1);

    std::fs::write(
        s.config_path(),
        config_text(s.dir.path(), &format!("[pool]\nsize = 3\n{agent}")),
    )
    .unwrap();
    s.wait_for(
        "the pool to grow to 3 and fill",
        Duration::from_secs(10),
        || {
            let p = pool(&s);
            (p["size"] == 3 && p["running"] == 3).then_some(())
        },
    );
    for id in &ids {
        assert_eq!(s.item(id)["status"], "in_flight");
    }

    // A broken edit changes nothing.
    std::fs::write(s.config_path(), "[pool\nsize = = 1\n").unwrap();
    let sizes = observe(Duration::from_millis(2500), || pool(&s)["size"].clone());
    assert!(sizes.iter().all(|x| x == 3), "{sizes:?}");

    // PUT resizes at once; shrinking stops nobody.
    let (status, v) = s.send("PUT", "/api/pool", json!({"size": 2}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["size"], 2);
    assert_eq!(pool(&s)["size"], 2);
    assert_eq!(pool(&s)["running"], 3);

    std::fs::write(&gate, "").unwrap();
    for id in &ids {
        s.wait_status(id, "review", T);
    }
    assert_eq!(pool(&s)["size"], 2);
}

#[test]
fn review_limit_holds_dispatch() {
    let s = TestServer::start(&format!(
        "[queue]\nreview_limit = 1\n[pool]\nsize = 1\n{}",
        script_agent("ok.sh", &[], "")
    ));
    let ids: Vec<String> = (0..3)
        .map(|i| id_of(&s.create_ready(&format!("item {i}"))))
        .collect();
    let first = s.wait_for("an item in review", T, || {
        ids.iter()
            .find(|id| s.item(id)["status"] == "review")
            .cloned()
    });
    let held = s.wait_for("dispatch to be held", T, || {
        let p = pool(&s);
        p["held"].as_str().map(str::to_string)
    });
    assert!(held.contains("review"), "{held}");
    assert_eq!(pool(&s)["running"], 0);
    for id in ids.iter().filter(|id| **id != first) {
        let item = s.item(id);
        assert_eq!(item["status"], "ready", "{item}");
        assert!(sessions_of(&s, id).is_empty());
    }

    let (status, v) = s.move_to(&first, "done");
    assert_eq!(status, 200, "{v}");
    let second = s.wait_for("a second item in review", T, || {
        ids.iter()
            .find(|id| **id != first && s.item(id)["status"] == "review")
            .cloned()
    });
    s.wait_for("dispatch to be held again", T, || {
        pool(&s)["held"].is_string().then_some(())
    });
    let rest: Vec<&String> = ids
        .iter()
        .filter(|id| **id != first && **id != second)
        .collect();
    assert_eq!(s.item(rest[0])["status"], "ready");
}

// ---- what agents see and hand back ---------------------------------------------------------

#[test]
fn retry_continues_in_the_previous_workspace() {
    let s = TestServer::start(&format!(
        "[pool]\nsize = 1\nmax_attempts = 2\nretry_backoff_secs = 0.2\n{}",
        script_agent("retry.sh", &[], "")
    ));
    let id = id_of(&s.create_ready("needs two tries"));
    let item = s.wait_for("the item to settle", T, || {
        let item = s.item(&id);
        matches!(item["status"].as_str(), Some("review") | Some("blocked")).then_some(item)
    });
    assert_eq!(item["status"], "review", "{item}\n{}", log_text(&s, &id));
    assert_eq!(item["attempts"], 2);
    let sessions = sessions_of(&s, &id);
    assert_eq!(sessions.len(), 2);
    let ws = PathBuf::from(sessions[0]["workspaceDir"].as_str().unwrap());
    let notes = std::fs::read_to_string(ws.join("notes.txt")).unwrap();
    assert_eq!(
        notes,
        "first attempt, notes for later\nsecond attempt, finished\n"
    );
    let agents_md = std::fs::read_to_string(ws.join("AGENTS.md")).unwrap();
    assert!(
        agents_md.contains("first try failed on purpose"),
        "{agents_md}"
    );
    assert!(log_text(&s, &id).contains("found my notes: first attempt, notes for later"));
}

#[test]
fn artifacts_are_collected_and_downloadable() {
    let s = TestServer::start(&format!(
        "[pool]\nsize = 1\n{}",
        script_agent("artifacts.sh", &[], "")
    ));
    let id = id_of(&s.create_ready("writes files"));
    let item = s.wait_status(&id, "review", T);
    let files: Vec<&Value> = item["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["type"] == "file")
        .collect();
    assert_eq!(files.len(), 2, "{item}");
    // The description the agent declared is kept.
    assert!(
        files.iter().any(|a| a["description"] == "the report"
            && a["path"].as_str().unwrap().ends_with("/report.md")),
        "{item}"
    );
    let mut contents = Vec::new();
    for a in &files {
        let (status, body) = s.get(&format!(
            "/api/items/{id}/artifacts/{}",
            a["id"].as_str().unwrap()
        ));
        assert_eq!(status, 200, "{body}");
        contents.push(body.as_str().expect("file text").to_string());
    }
    contents.sort();
    assert_eq!(
        contents,
        [
            "plain notes, second file\n".to_string(),
            format!("report for {id}\nall good\n"),
        ]
    );
    let session = &ended_sessions(&s, &id)[0];
    assert_eq!(session["status"], "completed");
    assert_eq!(session["tokensUsed"], 120);
    let progress: Vec<String> = s
        .events_since(0)
        .into_iter()
        .filter(|e| e["type"] == "work:progress" && e["data"]["itemId"] == id.as_str())
        .map(|e| e["data"]["message"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        progress.contains(&"wrote two files".to_string()),
        "{progress:?}"
    );
    assert!(
        progress.contains(&"plain line of progress".to_string()),
        "{progress:?}"
    );
}

#[test]
fn unmet_criterion_in_the_acceptance_report_fails_the_attempt() {
    let s = TestServer::start(&format!(
        "[pool]\nsize = 1\nmax_attempts = 1\n{}",
        script_agent("acceptance.sh", &[], "")
    ));
    let id = id_of(&s.create(json!({
        "title": "two criteria",
        "status": "ready",
        "acceptanceCriteria": ["a", "b"],
    })));
    let item = s.wait_status(&id, "blocked", T);
    let why = reason(&item);
    assert!(why.contains("not met: b"), "{why}");
    assert!(!why.contains("not met: a"), "{why}");
    assert_eq!(ended_sessions(&s, &id)[0]["status"], "failed");
}

#[test]
fn shell_metacharacters_in_titles_are_inert() {
    // Instead of `rm -rf ~`, a canary folder: were the title ever run by a shell, this test
    // must fail without harming the machine. The sandbox is off so that nothing but the
    // absence of a shell keeps the title from acting.
    let dir = scratch();
    let d = dir.path().display();
    let canary = dir.path().join("canary");
    std::fs::create_dir(&canary).unwrap();
    let title = format!(
        "$(touch {d}/pwned); rm -rf {d}/canary ; `touch {d}/pwned2` && echo \"$HOME\" > {d}/pwned3 | cat '"
    );
    let s = TestServer::start("[agent]\nsandbox = \"off\"\n");
    let description = format!("`touch {d}/pwned4`\n$(touch {d}/pwned5)");
    let item = s.create(json!({"title": title, "status": "ready", "description": description}));
    assert_eq!(item["title"], title.as_str());
    let id = id_of(&item);
    s.wait_status(&id, "review", T);
    for name in ["pwned", "pwned2", "pwned3", "pwned4", "pwned5"] {
        assert!(!dir.path().join(name).exists(), "{name} was created");
    }
    assert!(canary.is_dir(), "the canary folder was removed");
    let ws = PathBuf::from(sessions_of(&s, &id)[0]["workspaceDir"].as_str().unwrap());
    let agents_md = std::fs::read_to_string(ws.join("AGENTS.md")).unwrap();
    assert_eq!(
        agents_md.lines().next(),
        Some(format!("# {title}").as_str())
    );
}

#[test]
fn default_config_runs_the_demo_agent_end_to_end() {
    let s = TestServer::start("");
    let id = id_of(&s.create(json!({
        "title": "Add a dark mode",
        "status": "ready",
        "acceptanceCriteria": ["toggle in settings"],
    })));
    let item = s.wait_status(&id, "review", T);
    let plan = item["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == "file" && a["path"].as_str().unwrap_or("").ends_with("plan.md"))
        .unwrap_or_else(|| panic!("no plan.md artifact: {item}"))
        .clone();
    let (status, body) = s.get(&format!(
        "/api/items/{id}/artifacts/{}",
        plan["id"].as_str().unwrap()
    ));
    assert_eq!(status, 200);
    let text = body.as_str().expect("plan text");
    assert!(text.contains("# Plan: Add a dark mode"), "{text}");
    assert!(text.contains("toggle in settings"), "{text}");
    assert_eq!(ended_sessions(&s, &id)[0]["status"], "completed");
}
