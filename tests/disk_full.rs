//! A full disk gives clear 503 errors and never a corrupted store: on a tiny tmpfs, writes
//! fail once it is full, reads keep working, and after the space comes back (and a restart)
//! every write that was acknowledged is there and the store takes writes again.
//! Needs root (mount); CI runs as root.

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

#[test]
fn a_full_disk_is_a_clear_503_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&mnt)
        .status()
        .expect("run mount");
    assert!(
        mounted.success(),
        "this test needs root to mount a small tmpfs"
    );
    let _guard = Mount(mnt.clone());

    let mut s = TestServer::start_in(&mnt, "[pool]\nsize = 0\n");
    let description = "d".repeat(19_000);
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for i in 0..2_000 {
        let (status, body) = s.post(
            "/api/items",
            json!({"title": format!("fill {i}"), "description": description}),
        );
        match status {
            201 => acknowledged.push(body["id"].as_str().unwrap().to_string()),
            _ => {
                refused = Some((status, body));
                break;
            }
        }
    }
    let (status, body) = refused.expect("the disk filled up");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(!acknowledged.is_empty());
    // Reads still answer.
    let (status, _) = s.get("/healthz");
    assert_eq!(status, 200);
    let (status, _) = s.get(&format!("/api/items/{}", acknowledged[0]));
    assert_eq!(status, 200);

    // Space comes back; after a restart everything acknowledged is there and writes work.
    let grown = Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(grown.success());
    s.restart();
    let (_, items) = s.get("/api/items");
    let ids: std::collections::HashSet<&str> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    for id in &acknowledged {
        assert!(ids.contains(id.as_str()), "acknowledged item {id} lost");
    }
    let (status, _) = s.post("/api/items", json!({"title": "after the disk was freed"}));
    assert_eq!(status, 201);
    s.kill();
}
