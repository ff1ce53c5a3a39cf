//! Agents are kept in their own folder by the kernel (Landlock), not by convention: an agent
//! that tries to read another session's workspace, the store or the config, or to write
//! outside its folder, fails.

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

fn report(s: &TestServer, item: &Value) -> HashMap<String, String> {
    let id = item["id"].as_str().unwrap();
    let art = item["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["path"].as_str().unwrap().ends_with("report.txt"))
        .expect("the probe wrote its report");
    let (status, text) = s.get(&format!(
        "/api/items/{id}/artifacts/{}",
        art["id"].as_str().unwrap()
    ));
    assert_eq!(status, 200);
    text.as_str()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn agents_cannot_read_other_sessions_the_store_or_the_config_nor_write_outside() {
    let extra = format!(
        "[pool]\nsize = 1\n[queue]\nreview = false\n[agent]\npreset = \"lines\"\ncommand = [\"/bin/sh\", \"{}\"]\n",
        fixture("agents/sandbox-probe.sh")
    );
    let s = TestServer::start(&extra);
    let (_, status) = s.get("/api/status");
    assert_eq!(
        status["sandbox"], "landlock",
        "this kernel enforces Landlock"
    );
    let data = s.data_dir().canonicalize().unwrap();
    let outside = s.dir.path().join("escape.txt");
    let common = format!(
        "DATA={}\nOUTSIDE={}\nCONFIG={}",
        data.display(),
        outside.display(),
        s.config_path().display()
    );
    let first = s.create(json!({"title": "first", "status": "ready", "description": common}));
    let first = s.wait_status(
        first["id"].as_str().unwrap(),
        "done",
        Duration::from_secs(30),
    );
    let (_, sessions) = s.get("/api/agents");
    let ws = sessions[0]["workspaceDir"].as_str().unwrap().to_string();
    let description = format!("TARGET={ws}/secret.txt\n{common}");
    let second =
        s.create(json!({"title": "second", "status": "ready", "description": description}));
    let second = s.wait_status(
        second["id"].as_str().unwrap(),
        "done",
        Duration::from_secs(30),
    );

    let own = report(&s, &first);
    for allowed in [
        "own_workspace_write",
        "own_artifacts_write",
        "own_tmp_write",
        "system_read",
    ] {
        assert_eq!(own[allowed], "allowed", "{allowed}: {own:?}");
    }
    let probe = report(&s, &second);
    for denied in [
        "other_workspace_read",
        "other_workspace_write",
        "store_read",
        "data_dir_list",
        "config_read",
        "outside_write",
    ] {
        assert_eq!(probe[denied], "denied", "{denied}: {probe:?}");
    }
    assert!(!outside.exists(), "nothing was written outside");
    assert!(std::fs::read_to_string(format!("{ws}/secret.txt"))
        .unwrap()
        .starts_with("secret of"));
}
