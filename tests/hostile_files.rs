//! A hostile agent attacks the server through the files of its session folder
//! (`tests/fixtures/agents/hostile-files.sh`, one mode per attack): links to the config, the
//! store or `/dev/zero`, FIFOs, files swapped after completion, a workspace that points
//! outside, a flood of declared artifacts, and artifacts that name the store. Each test checks
//! what a user would notice: the secret is not shown, the server keeps answering and stays
//! small, the item ends with a reason a person can read.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);
/// A line of the config that must never reach anyone through the API.
const CANARY: &str = "canary-7f3a-the-config-file-is-secret";
/// Peak memory a server may reach in these tests; the attacks, unchecked, take gigabytes.
const MODEST_RSS_KB: u64 = 300 * 1024;
/// Peak memory while an agent prints 480 MB of artifact declarations.
const FLOOD_RSS_KB: u64 = 1024 * 1024;
/// The most artifacts one attempt may hand back (the API's limit per request).
const ARTIFACTS_MAX: usize = 200;

/// A server whose agent runs `hostile-files.sh MODE ARGS...` with the lines preset; `pool`
/// adds `[pool]` keys (one attempt per item unless it says otherwise).
fn hostile(mode: &str, args: &[&str], pool: &str) -> TestServer {
    let pool = if pool.contains("max_attempts") {
        pool.to_string()
    } else {
        format!("max_attempts = 1\n{pool}")
    };
    let mut argv = vec![
        "/bin/sh".to_string(),
        fixture("agents/hostile-files.sh"),
        mode.to_string(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    TestServer::start(&format!(
        "# {CANARY}\n[pool]\nsize = 1\n{pool}\n[agent]\npreset = \"lines\"\ncommand = {}\n",
        serde_json::to_string(&argv).unwrap()
    ))
}

fn id_of(item: &Value) -> String {
    item["id"].as_str().expect("item id").to_string()
}

fn reason(item: &Value) -> String {
    item["statusReason"].as_str().unwrap_or("").to_string()
}

fn text_of(v: Value) -> String {
    match v {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

/// The item's sessions, newest first.
fn sessions_of(s: &TestServer, item_id: &str) -> Vec<Value> {
    let (status, v) = s.get(&format!("/api/agents?item={item_id}"));
    assert_eq!(status, 200, "{v}");
    v.as_array().cloned().unwrap_or_default()
}

/// The server's peak resident memory so far, in KiB.
fn peak_rss_kb(s: &TestServer) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

fn assert_alive(s: &TestServer) {
    assert!(alive(s.pid()), "the server died");
    let (status, body) = s.get("/healthz");
    assert_eq!(status, 200, "{body}");
}

fn file_artifacts(item: &Value) -> Vec<Value> {
    item["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .filter(|a| a["type"] == "file")
        .cloned()
        .collect()
}

fn download(s: &TestServer, item_id: &str, artifact: &Value) -> (u16, Value) {
    s.get(&format!(
        "/api/items/{item_id}/artifacts/{}",
        artifact["id"].as_str().expect("artifact id")
    ))
}

#[test]
fn a_log_swapped_for_a_link_to_the_config_does_not_serve_the_config() {
    let s = hostile("log-symlink-to-config", &[], "");
    let id = id_of(&s.create_ready("hide the log"));
    s.wait_status(&id, "review", T);
    let (status, log) = s.get(&format!("/api/items/{id}/log"));
    assert_eq!(status, 200, "{log}");
    let log = text_of(log);
    assert!(!log.contains(CANARY), "the config was served: {log}");
    assert!(
        log.contains("session.log") && log.contains("symbolic link"),
        "the log says why it is not shown: {log}"
    );
}

#[test]
fn a_fifo_for_a_log_does_not_freeze_the_server() {
    let s = hostile("log-fifo", &[], "");
    let id = id_of(&s.create_ready("jam the log"));
    s.wait_status(&id, "review", T);
    // More readers than the server has HTTP workers: were each stuck on the FIFO, nothing
    // would answer any more.
    let answers: Vec<Option<(u16, String)>> = std::thread::scope(|scope| {
        let readers: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    let (status, body) = s.get(&format!("/api/items/{id}/log"));
                    (status, text_of(body))
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let (status, body) = s.get("/healthz");
        assert_eq!(
            status, 200,
            "/healthz answers while the FIFO exists: {body}"
        );
        readers.into_iter().map(|r| r.join().ok()).collect()
    });
    for answer in answers {
        let (status, log) = answer.expect("every log request is answered");
        assert_eq!(status, 200, "{log}");
        assert!(
            log.contains("session.log") && log.contains("FIFO"),
            "the log says why it is not shown: {log}"
        );
    }
}

#[test]
fn an_acceptance_report_linked_to_dev_zero_fails_the_attempt_and_memory_stays_modest() {
    let s = hostile("acceptance-symlink-devzero", &[], "");
    let id = id_of(&s.create_ready("endless report"));
    let item = s.wait_status(&id, "blocked", T);
    let why = reason(&item);
    assert!(
        why.contains("acceptance.json") && why.contains("symbolic link"),
        "{why}"
    );
    assert_alive(&s);
    let peak = peak_rss_kb(&s);
    assert!(peak < MODEST_RSS_KB, "peak RSS {peak} KiB");
}

#[test]
fn an_acceptance_report_that_is_a_fifo_fails_the_attempt_and_frees_the_slot() {
    let s = hostile("acceptance-fifo", &[], "");
    let id = id_of(&s.create_ready("jammed report"));
    let item = s.wait_status(&id, "blocked", T);
    let why = reason(&item);
    assert!(
        why.contains("acceptance.json") && why.contains("FIFO"),
        "{why}"
    );
    let pool = s.wait_for("the slot to be free", T, || {
        let (_, pool) = s.get("/api/pool");
        (pool["running"] == 0).then_some(pool)
    });
    assert_eq!(pool["free"], 1, "{pool}");
}

#[test]
fn an_artifact_swapped_for_a_link_after_completion_is_not_served() {
    let s = hostile("artifact-swap-after-completion", &[], "");
    let id = id_of(&s.create_ready("swap later"));
    let item = s.wait_status(&id, "review", T);
    let files = file_artifacts(&item);
    assert_eq!(files.len(), 2, "{item}");
    for a in &files {
        let (status, body) = download(&s, &id, a);
        assert_eq!(status, 200, "served before the swap: {body}");
    }
    // What a process the agent left behind could do once the files were collected: replace
    // them with a symlink and a hard link to the store.
    let data = s.data_dir();
    let store_path = data.join("flightdeck.redb");
    let store = std::fs::read(&store_path).expect("store");
    for a in &files {
        let path = data.join(a["path"].as_str().unwrap());
        std::fs::remove_file(&path).unwrap();
        if path.ends_with("report.txt") {
            std::os::unix::fs::symlink(&store_path, &path).unwrap();
        } else {
            std::fs::hard_link(&store_path, &path).unwrap();
        }
    }
    for a in &files {
        let (status, body) = download(&s, &id, a);
        let body = text_of(body);
        assert_eq!(status, 410, "{} is refused: {body}", a["path"]);
        assert!(
            !body.as_bytes().starts_with(&store[..16]),
            "the store was served"
        );
        assert!(body.contains("refused"), "{body}");
    }
}

#[test]
fn a_workspace_swapped_for_a_link_does_not_make_the_next_attempt_write_outside() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().display().to_string();
    let s = hostile(
        "workspace-symlink",
        &[&target],
        "max_attempts = 2\nretry_backoff_secs = 0.2",
    );
    let id = id_of(&s.create_ready("point the workspace outside"));
    let item = s.wait_status(&id, "blocked", T);
    assert_eq!(item["attempts"], 2, "{item}");
    assert!(
        !outside.path().join("AGENTS.md").exists(),
        "the second attempt wrote AGENTS.md outside its session folder"
    );
    let sessions = sessions_of(&s, &id);
    let latest = Path::new(sessions[0]["dataDir"].as_str().unwrap()).join("workspace.moved");
    let agents_md = std::fs::read_to_string(latest.join("AGENTS.md")).expect("AGENTS.md inside");
    assert!(
        agents_md.contains("point the workspace outside"),
        "{agents_md}"
    );
}

#[test]
fn a_flood_of_declared_artifacts_is_bounded_and_the_listing_survives_restarts() {
    let mut s = hostile("artifact-flood", &[], "");
    let id = id_of(&s.create_ready("flood"));
    let item = s.wait_status(&id, "review", Duration::from_secs(300));
    let artifacts = item["artifacts"].as_array().expect("artifacts");
    assert_eq!(artifacts.len(), ARTIFACTS_MAX, "{}", artifacts.len());
    assert!(artifacts
        .iter()
        .all(|a| a["description"].as_str().unwrap().starts_with("small ")));
    // The log is tens of MB (the agent printed 480 MB): read its end from the session folder.
    let session = sessions_of(&s, &id)[0]["dataDir"]
        .as_str()
        .unwrap()
        .to_string();
    let log = std::fs::read(Path::new(&session).join("session.log")).expect("session.log");
    let tail = String::from_utf8_lossy(&log[log.len().saturating_sub(4000)..]).to_string();
    assert!(
        tail.contains("8100 artifacts the agent declared were dropped"),
        "the log says what was dropped: {tail}"
    );
    let progress: Vec<String> = s
        .events_since(0)
        .into_iter()
        .filter(|e| e["type"] == "work:progress" && e["data"]["itemId"] == id.as_str())
        .map(|e| e["data"]["message"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        progress.iter().any(|m| m.contains("8100")),
        "the board shows the count: {progress:?}"
    );
    // Unchecked, the flood is kept whole (480 MB) and copied into events: gigabytes. What
    // remains is the output in transit, which the budgets of issue 9 item 9 bound.
    let peak = peak_rss_kb(&s);
    assert!(peak < FLOOD_RSS_KB, "peak RSS {peak} KiB");
    s.restart();
    let (status, items) = s.get("/api/items");
    assert_eq!(status, 200);
    assert!(
        items.to_string().len() < 1 << 20,
        "the listing stays small: {} bytes",
        items.to_string().len()
    );
}

#[test]
fn artifacts_name_only_files_of_the_items_own_session_folders() {
    let s = hostile("artifact-store-path", &[], "");
    let a = id_of(&s.create_ready("first"));
    let b = id_of(&s.create_ready("second"));
    let item_a = s.wait_status(&a, "review", T);
    s.wait_status(&b, "review", T);
    // What the agent declared through its output: only its honest file is kept.
    let files = file_artifacts(&item_a);
    assert_eq!(files.len(), 1, "{item_a}");
    assert!(files[0]["path"].as_str().unwrap().ends_with("/honest.txt"));
    let own = sessions_of(&s, &a)[0]["id"].as_str().unwrap().to_string();
    let other = sessions_of(&s, &b)[0]["id"].as_str().unwrap().to_string();
    let store = std::fs::read(s.data_dir().join("flightdeck.redb")).expect("store");
    let config = s.config_path().display().to_string();
    for path in [
        "flightdeck.redb".to_string(),
        "./flightdeck.redb".to_string(),
        "token".to_string(),
        config,
        format!("agents/{other}/artifacts/honest.txt"),
        format!("agents/{own}/session.log"),
        format!("agents/{own}/../{other}/artifacts/honest.txt"),
    ] {
        let (status, err) = s.post(
            &format!("/api/items/{a}/artifacts"),
            json!({"type": "file", "path": path, "description": "try"}),
        );
        assert!(status == 422 || status == 400, "{path}: {status} {err}");
        let message = err["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.contains("own session folders"),
            "{path}: the message names the rule: {err}"
        );
    }
    for path in [
        format!("agents/{own}/artifacts/honest.txt"),
        format!("agents/{own}/workspace/AGENTS.md"),
    ] {
        let (status, art) = s.post(
            &format!("/api/items/{a}/artifacts"),
            json!({"type": "file", "path": path, "description": "mine"}),
        );
        assert_eq!(status, 201, "{path}: {art}");
    }
    let item_a = s.item(&a);
    for art in file_artifacts(&item_a) {
        let (status, body) = download(&s, &a, &art);
        assert_eq!(status, 200, "{art}");
        assert!(!text_of(body).as_bytes().starts_with(&store[..16]));
    }
}
