//! Runners on "other machines": the real server and real `flightdeck runner` processes, each
//! with its own state dir and config, running fixture agents that leave a deliverable.

mod common;
#[path = "runners/partition.rs"]
mod partition;

use common::{fixture, unsafe_kill, TestServer, BIN};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// A `flightdeck runner` process, killed when dropped.
struct Runner {
    child: Child,
    /// Where its stderr (its log) goes.
    log: PathBuf,
}

impl Runner {
    /// Starts a runner named `name` whose agent is `sh <agent> <args>`.
    fn start(server: &TestServer, token: &str, name: &str, slots: u32, agent: &[&str]) -> Runner {
        Self::start_in(server, token, name, slots, agent, &[])
    }

    /// Like [`Runner::start`], run through `wrapper` (say, `ip netns exec NS`).
    fn start_in(
        server: &TestServer,
        token: &str,
        name: &str,
        slots: u32,
        agent: &[&str],
        wrapper: &[String],
    ) -> Runner {
        let dir = server.dir.path().join(format!("runner-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let command: Vec<String> = std::iter::once("sh".to_string())
            .chain(agent.iter().map(|a| a.to_string()))
            .collect();
        let config = format!(
            "[server]\ndata_dir = \"{}\"\n[agent]\npreset = \"lines\"\ncommand = {}\n",
            dir.join("state").display(),
            serde_json::to_string(&command).unwrap()
        );
        let path = dir.join("runner.toml");
        std::fs::write(&path, config).unwrap();
        let log = dir.join("stderr.log");
        let stderr = std::fs::File::create(&log).unwrap();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let child = command
            .args(["runner", "--config"])
            .arg(&path)
            .args([
                "--server",
                &server.url,
                "--name",
                name,
                "--slots",
                &slots.to_string(),
            ])
            .env("FLIGHTDECK_RUNNER_TOKEN", token)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start a runner");
        Runner { child, log }
    }

    /// What it has logged so far.
    fn logged(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill9(&mut self) {
        unsafe_kill(self.child.id(), 9);
        let _ = self.child.wait();
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn runner_token(server: &TestServer, name: &str) -> String {
    let (status, made) = server.post("/api/runner-tokens", json!({ "name": name }));
    assert_eq!(status, 201, "{made}");
    made["token"].as_str().unwrap().to_string()
}

fn runners(server: &TestServer) -> Vec<Value> {
    let (status, body) = server.get("/api/runners");
    assert_eq!(status, 200, "{body}");
    body["runners"].as_array().cloned().unwrap_or_default()
}

/// The runner (by name) that holds the item, once one does.
fn holder(server: &TestServer, item: &str) -> String {
    server.wait_for("a runner to hold the item", WAIT, || {
        runners(server)
            .into_iter()
            .find(|r| {
                r["items"]
                    .as_array()
                    .is_some_and(|i| i.iter().any(|x| x == item))
            })
            .map(|r| r["name"].as_str().unwrap().to_string())
    })
}

fn server() -> TestServer {
    TestServer::start("[pool]\nsize = 0\nretry_backoff_secs = 0\n[runners]\nlease_secs = 3\n")
}

fn with_token(
    server: &TestServer,
    token: &str,
    method: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let req = ureq::request(method, &format!("{}{path}", server.url))
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", "application/json");
    let resp = if method == "GET" {
        req.call()
    } else {
        req.send_json(body)
    };
    match resp {
        Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_runner_killed_mid_item_loses_it_to_another_runner_after_its_lease_and_one_completion_counts() {
    let server = server();
    let token = runner_token(&server, "hosts");
    let never = server.dir.path().join("never-opened");
    let gate = fixture("agents/gate.sh");
    let mut stuck = Runner::start(
        &server,
        &token,
        "stuck",
        1,
        &[&gate, never.to_str().unwrap()],
    );
    let item = server.create_ready("Fix the flaky export")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(holder(&server, &item), "stuck");
    stuck.kill9();
    let ok = fixture("agents/ok.sh");
    let _a = Runner::start(&server, &token, "alpha", 2, &[&ok]);
    let _b = Runner::start(&server, &token, "beta", 2, &[&ok]);
    let done = server.wait_status(&item, "review", WAIT);
    assert_eq!(done["attempts"], 2, "{done}");
    let (_, history) = server.get(&format!("/api/items/{item}/history"));
    let reasons: Vec<String> = history
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["reason"].as_str().map(str::to_string))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("lost runner: stuck sent no heartbeat")),
        "{reasons:?}"
    );
    let completions: Vec<Value> = server
        .events_since(0)
        .into_iter()
        .filter(|e| e["type"] == "work:completed" && e["data"]["item"]["id"] == item.as_str())
        .collect();
    assert_eq!(
        completions.len(),
        1,
        "exactly one completion: {completions:?}"
    );
    // What the winner left is on the server: its log and its diff.
    let (_, diff) = server.get(&format!("/api/items/{item}/diff"));
    assert_eq!(diff["files"][0]["path"], "result.txt", "{diff}");
    let log = ureq::get(&format!("{}/api/items/{item}/log", server.url))
        .set(
            "Authorization",
            &format!("Bearer {}", server.token().unwrap_or_default()),
        )
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(log.contains(&format!("done with {item}")), "{log}");
}

#[test]
fn a_late_write_under_an_old_fence_is_refused_with_409_in_words() {
    let server = server();
    let token = runner_token(&server, "manual");
    let reg = |id: &str| {
        with_token(
            &server,
            &token,
            "POST",
            "/api/runners/register",
            json!({"id": id, "name": id, "slots": 1, "version": "test"}),
        )
    };
    assert_eq!(reg("late").0, 200);
    assert_eq!(reg("prompt").0, 200);
    let item = server.create_ready("Write the changelog")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, claimed) = with_token(
        &server,
        &token,
        "POST",
        "/api/runners/late/claim",
        json!({"free": 1}),
    );
    let old_fence = claimed["claims"][0]["lease"]["fence"].as_u64().unwrap();
    // "late" sends no heartbeat: its lease runs out and the item goes back to ready.
    server.wait_for("the lease to run out", WAIT, || {
        (server.item(&item)["status"] == "ready").then_some(())
    });
    let (_, again) = with_token(
        &server,
        &token,
        "POST",
        "/api/runners/prompt/claim",
        json!({"free": 1}),
    );
    let new_fence = again["claims"][0]["lease"]["fence"].as_u64().unwrap();
    assert!(new_fence > old_fence);
    let (status, refused) = with_token(
        &server,
        &token,
        "POST",
        &format!("/api/runners/late/items/{item}/complete"),
        json!({"fence": old_fence}),
    );
    assert_eq!(status, 409, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("Write the changelog") && message.contains("claimed again"),
        "{message}"
    );
    let (status, _) = with_token(
        &server,
        &token,
        "POST",
        &format!("/api/runners/prompt/items/{item}/fail"),
        json!({"fence": new_fence, "reason": "the model was down", "verdict": "retry"}),
    );
    assert_eq!(status, 200);
}

#[test]
fn a_runner_token_calls_only_the_runner_routes_and_a_revoked_one_nothing() {
    let server = server();
    let (_, made) = server.post("/api/runner-tokens", json!({"name": "ci"}));
    let token = made["token"].as_str().unwrap().to_string();
    let (status, body) = with_token(&server, &token, "GET", "/api/items", Value::Null);
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("runner routes"));
    assert_eq!(
        with_token(&server, &token, "GET", "/api/runners", Value::Null).0,
        403
    );
    assert_eq!(
        with_token(
            &server,
            &token,
            "POST",
            "/api/runner-tokens",
            json!({"name": "x"})
        )
        .0,
        403
    );
    let register = json!({"id": "r1", "name": "r1", "slots": 1, "version": "test"});
    assert_eq!(
        with_token(
            &server,
            &token,
            "POST",
            "/api/runners/register",
            register.clone()
        )
        .0,
        200
    );
    let (_, list) = server.get("/api/runner-tokens");
    assert!(
        !list.to_string().contains(&token),
        "the token is never listed"
    );
    let id = made["id"].as_str().unwrap();
    assert_eq!(
        server
            .send("DELETE", &format!("/api/runner-tokens/{id}"), Value::Null)
            .0,
        204
    );
    assert_eq!(
        with_token(&server, &token, "POST", "/api/runners/register", register).0,
        401
    );
}

#[test]
fn a_drained_runner_finishes_its_item_takes_no_more_and_stops() {
    let server = server();
    let token = runner_token(&server, "drain");
    let gate = server.dir.path().join("gate");
    let script = fixture("agents/gate.sh");
    let mut runner = Runner::start(
        &server,
        &token,
        "draining",
        1,
        &[&script, gate.to_str().unwrap()],
    );
    let first = server.create_ready("First")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(holder(&server, &first), "draining");
    let second = server.create_ready("Second")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let id = runners(&server)[0]["id"].as_str().unwrap().to_string();
    let (status, drained) = server.post(&format!("/api/runners/{id}/drain"), json!({}));
    assert_eq!(status, 200, "{drained}");
    // The answer to its next heartbeat tells it to drain; then its agent may finish.
    let before = drained["lastHeartbeat"].clone();
    server.wait_for("the runner's next heartbeat", WAIT, || {
        (runners(&server)[0]["lastHeartbeat"] != before).then_some(())
    });
    std::fs::write(&gate, "").unwrap();
    server.wait_status(&first, "review", WAIT);
    let exit = server.wait_for("the drained runner to stop", WAIT, || {
        runner.child.try_wait().ok().flatten()
    });
    assert!(exit.success(), "{exit}");
    assert_eq!(server.item(&second)["status"], "ready");
    let overview = server.get("/api/runners").1;
    assert_eq!(overview["runners"][0]["draining"], true);
}

#[test]
fn an_item_no_online_runner_can_take_says_so() {
    let server = server();
    let (status, item) = server.post(
        "/api/items",
        json!({"title": "Train the model", "status": "ready", "requires": ["gpu"]}),
    );
    assert_eq!(status, 201, "{item}");
    let (_, overview) = server.get("/api/runners");
    let reason = overview["unroutable"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("gpu") && reason.contains("Train the model"),
        "{reason}"
    );
    let (status, bad) = server.post("/api/items", json!({"title": "x", "requires": ["GPU!"]}));
    assert_eq!(status, 400, "{bad}");
}

/// Writes an agent script into the test's folder: it waits for `gate` (when given), prints
/// `said`, and leaves `deliverable` in result.txt.
fn agent_script(
    server: &TestServer,
    name: &str,
    gate: Option<&Path>,
    said: &str,
    deliverable: &str,
) -> String {
    let path = server.dir.path().join(format!("{name}.sh"));
    let wait = gate
        .map(|g| format!("echo \"waiting on $FLIGHTDECK_ITEM_ID\"\nwhile [ ! -e '{}' ]; do sleep 0.1; done\n", g.display()))
        .unwrap_or_default();
    std::fs::write(
        &path,
        format!("#!/bin/sh\n{wait}echo \"{said} $FLIGHTDECK_ITEM_ID\"\necho '{deliverable}' > \"$FLIGHTDECK_WORKSPACE/result.txt\"\n"),
    )
    .unwrap();
    path.display().to_string()
}

fn completions(server: &TestServer, item: &str) -> usize {
    server
        .events_since(0)
        .into_iter()
        .filter(|e| e["type"] == "work:completed" && e["data"]["item"]["id"] == item)
        .count()
}

fn item_log(server: &TestServer, item: &str) -> String {
    let (status, log) = server.get(&format!("/api/items/{item}/log"));
    assert_eq!(status, 200, "{log}");
    match log {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

fn history_reasons(server: &TestServer, item: &str) -> Vec<String> {
    let (_, history) = server.get(&format!("/api/items/{item}/history"));
    history
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c["reason"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_partitioned_runner_loses_its_item_and_its_late_completion_is_refused_after_the_link_heals() {
    let partition = match partition::Partition::make() {
        Ok(p) => p,
        Err(why) => {
            println!("SKIPPED: partition test needs `ip netns` (root): {why}");
            return;
        }
    };
    let server = TestServer::start_bound(
        &format!("{}:0", partition.host_address),
        "[pool]\nsize = 0\nretry_backoff_secs = 0\n[runners]\nlease_secs = 3\n",
    );
    let token = runner_token(&server, "hosts");
    let gate = server.dir.path().join("island-gate");
    let island_agent = agent_script(
        &server,
        "island",
        Some(&gate),
        "island finished",
        "fix from the island",
    );
    let island = Runner::start_in(
        &server,
        &token,
        "island",
        1,
        &[&island_agent],
        &partition.wrapper(),
    );
    let item = server.create_ready("Port the exporter")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(holder(&server, &item), "island");
    server.wait_for("the island's first log line", WAIT, || {
        item_log(&server, &item)
            .contains("waiting on")
            .then_some(())
    });
    partition.cut();
    // The island's agent finishes while cut off: its completion cannot get through.
    std::fs::write(&gate, "").unwrap();
    server.wait_for("the island's lease to run out", WAIT, || {
        history_reasons(&server, &item)
            .iter()
            .any(|r| r.contains("lost runner: island"))
            .then_some(())
    });
    let winner_agent = agent_script(
        &server,
        "mainland",
        None,
        "mainland finished",
        "fix from the mainland",
    );
    let _mainland = Runner::start(&server, &token, "mainland", 1, &[&winner_agent]);
    server.wait_status(&item, "review", WAIT);
    partition.heal();
    // Its late completion reaches the server and is refused there, in words naming the item
    // (the runner logs the server's answer to its POST .../complete).
    let refusal = server.wait_for("the island's late completion to be refused", WAIT, || {
        let logged = island.logged();
        logged
            .lines()
            .find(|l| l.contains("refused this attempt's completion"))
            .map(str::to_string)
    });
    assert!(
        refusal.contains("Port the exporter") && refusal.contains("this write is refused"),
        "{refusal}"
    );
    assert!(refusal.contains("409"), "{refusal}");
    // The board shows the winner's result, and only it.
    let done = server.item(&item);
    assert_eq!(done["status"], "review", "{done}");
    assert_eq!(done["attempts"], 2, "{done}");
    assert_eq!(completions(&server, &item), 1);
    let log = item_log(&server, &item);
    assert!(log.contains("mainland finished"), "{log}");
    assert!(!log.contains("island finished"), "{log}");
    let (_, diff) = server.get(&format!("/api/items/{item}/diff"));
    let diff = diff.to_string();
    assert!(diff.contains("fix from the mainland"), "{diff}");
    assert!(!diff.contains("fix from the island"), "{diff}");
}

#[test]
fn a_server_killed_while_runners_hold_leases_comes_back_with_every_item_finished_once() {
    let mut server =
        TestServer::start("[pool]\nsize = 0\nretry_backoff_secs = 0\n[runners]\nlease_secs = 20\n");
    let token = runner_token(&server, "hosts");
    let gate = server.dir.path().join("gate");
    let agent = agent_script(
        &server,
        "worker",
        Some(&gate),
        "deliverable written",
        "the fix",
    );
    let _runners: Vec<Runner> = ["north", "south", "east"]
        .iter()
        .map(|name| Runner::start(&server, &token, name, 2, &[&agent]))
        .collect();
    let items: Vec<String> = (0..9)
        .map(|n| {
            server.create_ready(&format!("Task {n}"))["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    server.wait_for("every runner slot to hold a lease", WAIT, || {
        let held: usize = runners(&server)
            .iter()
            .map(|r| r["items"].as_array().map_or(0, Vec::len))
            .sum();
        (held == 6).then_some(())
    });
    server.kill_for_status();
    server.restart_same_port();
    std::fs::write(&gate, "").unwrap();
    for id in &items {
        let item = server.wait_status(id, "review", WAIT);
        assert_eq!(
            item["attempts"], 1,
            "no lease was lost to the restart: {item}"
        );
        assert_eq!(completions(&server, id), 1, "{item}");
        let log = item_log(&server, id);
        assert_eq!(log.matches("waiting on").count(), 1, "{log}");
        assert_eq!(log.matches("deliverable written").count(), 1, "{log}");
        assert!(
            !history_reasons(&server, id)
                .iter()
                .any(|r| r.contains("lost runner")),
            "{id}"
        );
    }
    let (_, all) = server.get("/api/items");
    assert_eq!(
        all.as_array().map(Vec::len),
        Some(items.len()),
        "nothing lost"
    );
}

#[test]
fn a_restarted_runner_comes_back_under_its_id_and_its_item_finishes_once() {
    let server = server();
    let token = runner_token(&server, "hosts");
    let gate = server.dir.path().join("gate");
    let agent = agent_script(
        &server,
        "phoenix",
        Some(&gate),
        "deliverable written",
        "the fix",
    );
    let mut first = Runner::start(&server, &token, "phoenix", 1, &[&agent]);
    let item = server.create_ready("Rebuild the index")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(holder(&server, &item), "phoenix");
    let id = runners(&server)[0]["id"].clone();
    first.kill9();
    let _again = Runner::start(&server, &token, "phoenix", 1, &[&agent]);
    server.wait_for("the runner to be back online under its id", WAIT, || {
        let list = runners(&server);
        (list.len() == 1 && list[0]["id"] == id && list[0]["online"] == true).then_some(())
    });
    std::fs::write(&gate, "").unwrap();
    let done = server.wait_status(&item, "review", WAIT);
    assert_eq!(completions(&server, &item), 1, "{done}");
    let list = runners(&server);
    assert_eq!(list.len(), 1, "one runner, not two: {list:?}");
    assert_eq!(list[0]["id"], id);
    let log = item_log(&server, &item);
    assert_eq!(log.matches("deliverable written").count(), 1, "{log}");
}

/// `flightdeck runner-ready --state-dir DIR`: its exit code and what it printed.
fn runner_ready(state_dir: &Path) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["runner-ready", "--state-dir"])
        .arg(state_dir)
        .output()
        .expect("run flightdeck runner-ready");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), said)
}

#[test]
fn a_runner_is_ready_while_its_server_answers_and_not_once_the_server_is_gone() {
    let mut server =
        TestServer::start("[pool]\nsize = 0\nretry_backoff_secs = 0\n[runners]\nlease_secs = 3\n");
    let token = runner_token(&server, "hosts");
    let agent = agent_script(&server, "probe", None, "probed", "the fix");
    let state = server.dir.path().join("runner-probe").join("state");
    let (code, said) = runner_ready(&state);
    assert_eq!(code, 1, "no runner has run here yet: {said}");
    assert!(said.contains("not ready"), "{said}");
    let _runner = Runner::start(&server, &token, "probe", 1, &[&agent]);
    let said = server.wait_for("the registered runner to be ready", WAIT, || {
        let (code, said) = runner_ready(&state);
        (code == 0).then_some(said)
    });
    assert!(said.contains("ready: the server answered"), "{said}");
    server.kill();
    let said = server.wait_for("the runner to stop being ready", WAIT, || {
        let (code, said) = runner_ready(&state);
        (code == 1).then_some(said)
    });
    assert!(said.contains("not ready"), "{said}");
    // The server comes back: so does the runner's readiness.
    server.restart_same_port();
    server.wait_for("the runner to be ready again", WAIT, || {
        (runner_ready(&state).0 == 0).then_some(())
    });
}
