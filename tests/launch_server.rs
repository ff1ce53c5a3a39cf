//! The launch server (`flightdeck launch-server`, the one process that forks every agent):
//! when it is killed, the agents it started die with it, their items say why in words, and
//! the next item still starts (the server starts a new launch server).

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// An agent that delivers a file at once when its item says FINISH, and otherwise writes its pid
/// to `agent.pid` in its workspace and sleeps.
const AGENT: &str = r#"grep -q FINISH "$0" && { echo done > result.txt; exit 0; }; echo $$ > agent.pid; exec sleep 600"#;

fn server() -> TestServer {
    let argv = ["/bin/sh", "-c", AGENT, "{prompt_file}"];
    TestServer::start(&format!(
        "[pool]\nsize = 2\nretry_backoff_secs = 600.0\n[queue]\nreview = false\n\
         [agent]\npreset = \"lines\"\ncommand = {}\n",
        serde_json::to_string(&argv).expect("argv")
    ))
}

fn id_of(item: &Value) -> String {
    item["id"].as_str().expect("item id").to_string()
}

/// The pid a running item's agent wrote.
fn agent_pid(s: &TestServer, id: &str) -> u32 {
    s.wait_for(&format!("the agent of {id} to write its pid"), T, || {
        let (_, sessions) = s.get(&format!("/api/agents?item={id}"));
        let workspace = sessions[0]["workspaceDir"].as_str()?;
        std::fs::read_to_string(Path::new(workspace).join("agent.pid"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
    })
}

/// Is `pid` a live `sleep` (not a zombie, not a reused pid)?
fn sleeping(pid: u32) -> bool {
    alive(pid)
        && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep\0"))
}

/// The pid of the server's launch server: its child whose argv says `launch-server`.
fn launch_server_of(s: &TestServer) -> Option<u32> {
    let server = s.pid().to_string();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let parent = stat.rsplit_once(") ")?.1.split(' ').nth(1)?;
            let argv = std::fs::read(entry.path().join("cmdline")).ok()?;
            (parent == server && argv.split(|b| *b == 0).any(|a| a == b"launch-server"))
                .then_some(pid)
        })
}

#[test]
fn killing_the_launch_server_ends_its_agents_with_a_reason_and_the_next_item_starts() {
    let s = server();
    let ids: Vec<String> = ["first", "second"]
        .iter()
        .map(|title| id_of(&s.create(json!({"title": title, "status": "ready"}))))
        .collect();
    let agents: Vec<u32> = ids.iter().map(|id| agent_pid(&s, id)).collect();
    for pid in &agents {
        s.wait_for(&format!("agent {pid} to sleep"), T, || {
            sleeping(*pid).then_some(())
        });
    }
    let launcher = launch_server_of(&s).expect("the server has a launch server child");

    unsafe_kill(launcher, 9);

    for pid in &agents {
        s.wait_for(&format!("agent {pid} to be gone"), T, || {
            (!sleeping(*pid)).then_some(())
        });
    }
    for id in &ids {
        let item = s.wait_for(&format!("item {id} to say why its agent ended"), T, || {
            let item = s.item(id);
            let reason = item["statusReason"].as_str().unwrap_or("").to_string();
            reason.contains("launch server").then_some(item)
        });
        let reason = item["statusReason"].as_str().unwrap_or("");
        assert!(
            reason.contains(&format!(
                "launch server (pid {launcher}) was killed by signal 9"
            )),
            "{reason}"
        );
        assert_ne!(item["status"], "in_progress", "{item}");
    }

    let next = id_of(&s.create(json!({
        "title": "after the launch server died",
        "status": "ready",
        "description": "FINISH",
    })));
    let start = std::time::Instant::now();
    while s.item(&next)["status"] != "done" {
        assert!(
            start.elapsed() < T,
            "the item after the kill did not finish: {}\nagents' logs:\n{}",
            s.item(&next),
            s.agent_logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let relaunched = launch_server_of(&s).expect("a new launch server");
    assert_ne!(relaunched, launcher);
    assert!(Path::new(&format!("/proc/{relaunched}")).exists());
}
