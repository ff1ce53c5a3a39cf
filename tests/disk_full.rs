//! A full disk gives clear 503 errors and never a corrupted store: on a tiny tmpfs, writes
//! fail once it is full, reads keep working, `/readyz` says why the store cannot write while
//! `/healthz` stays 200, and once the space comes back the same server takes writes again with
//! no restart, `/readyz` turns 200, and every write that was acknowledged is there (after a
//! restart too). Needs root (mount); CI runs as root.

mod common;
use common::*;
use serde_json::json;
use std::process::Command;

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Mounts a tmpfs of `size` at `at`; unmounted when the guard drops.
fn mount_tmpfs(at: &std::path::Path, size: &str) -> Mount {
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .status()
        .expect("run mount");
    assert!(
        mounted.success(),
        "this test needs root to mount a small tmpfs"
    );
    Mount(at.to_path_buf())
}

/// Gives the tmpfs at `at` a new size: space comes back.
fn remount(at: &std::path::Path, size: &str) {
    let grown = Command::new("mount")
        .args(["-o", &format!("remount,size={size}")])
        .arg(at)
        .status()
        .expect("run mount");
    assert!(grown.success(), "remount {} to {size}", at.display());
}

/// Creates big items until the disk is full; returns the ids acknowledged (201) and the
/// answer to the first refused write.
fn fill(s: &TestServer) -> (Vec<String>, (u16, serde_json::Value)) {
    let description = "d".repeat(19_000);
    let mut acknowledged = Vec::new();
    for i in 0..2_000 {
        let (status, body) = s.post(
            "/api/items",
            json!({"title": format!("fill {i}"), "description": description}),
        );
        match status {
            201 => acknowledged.push(body["id"].as_str().unwrap().to_string()),
            _ => return (acknowledged, (status, body)),
        }
    }
    panic!("2,000 items of 19 KB did not fill a 3 MB disk");
}

#[test]
fn a_full_disk_is_a_clear_503_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let _guard = mount_tmpfs(&mnt, "3m");

    let mut s = TestServer::start_in(&mnt, "[pool]\nsize = 0\n");
    let (mut acknowledged, (status, body)) = fill(&s);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(!acknowledged.is_empty());
    // Reads still answer; the server is alive but not ready, and says why.
    let (status, _) = s.get("/healthz");
    assert_eq!(status, 200);
    let (status, body) = s.get(&format!("/api/items/{}", acknowledged[0]));
    assert_eq!(status, 200, "a read while the disk is full: {body}");
    let (status, body) = s.get("/readyz");
    assert_eq!(status, 503, "/readyz while the disk is full: {body}");
    let why = body["error"]["message"].as_str().unwrap_or("");
    assert!(why.contains("cannot write"), "{body}");
    // Still full: a second write is refused the same way, and nothing is half written.
    let big = "d".repeat(19_000);
    let (status, body) = s.post(
        "/api/items",
        json!({"title": "still full", "description": big}),
    );
    assert_eq!(status, 503, "{body}");

    // Space comes back: the same server takes writes again, with no restart.
    remount(&mnt, "64m");
    let (status, body) = s.post("/api/items", json!({"title": "after the disk was freed"}));
    assert_eq!(status, 201, "the first write after space returned: {body}");
    let after = body["id"].as_str().unwrap().to_string();
    let (status, body) = s.get("/readyz");
    assert_eq!(status, 200, "/readyz once space is back: {body}");
    assert_eq!(body["status"], "ready");
    assert_acknowledged(&s, &acknowledged);

    // A restart finds everything acknowledged, before and after the disk was full.
    s.restart();
    acknowledged.push(after);
    assert_acknowledged(&s, &acknowledged);
    let (status, _) = s.post("/api/items", json!({"title": "after a restart"}));
    assert_eq!(status, 201);
    s.kill();
}

#[test]
fn readyz_recovers_without_a_write_once_space_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let _guard = mount_tmpfs(&mnt, "3m");
    let s = TestServer::start_in(&mnt, "[pool]\nsize = 0\n");
    let (status, body) = s.get("/readyz");
    assert_eq!((status, &body["status"]), (200, &json!("ready")), "{body}");
    fill(&s);
    let (status, body) = s.get("/readyz");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "not_ready");
    // A probe while still full stays 503.
    let (status, _) = s.get("/readyz");
    assert_eq!(status, 503);
    remount(&mnt, "64m");
    let (status, body) = s.get("/readyz");
    assert_eq!(
        status, 200,
        "/readyz once space is back, before any write: {body}"
    );
    let (status, body) = s.post("/api/items", json!({"title": "written after recovery"}));
    assert_eq!(status, 201, "{body}");
}

/// Every acknowledged item is listed.
fn assert_acknowledged(s: &TestServer, acknowledged: &[String]) {
    let (status, items) = s.get("/api/items");
    assert_eq!(status, 200, "{items}");
    let ids: std::collections::HashSet<&str> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    for id in acknowledged {
        assert!(ids.contains(id.as_str()), "acknowledged item {id} lost");
    }
}
