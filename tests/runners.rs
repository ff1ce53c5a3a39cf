//! Runners on "other machines": the real server and real `flightdeck runner` processes, each
//! with its own state dir and config, running fixture agents that leave a deliverable.

mod common;

use common::{fixture, unsafe_kill, TestServer, BIN};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// A `flightdeck runner` process, killed when dropped.
struct Runner {
    child: Child,
}

impl Runner {
    /// Starts a runner named `name` whose agent is `sh <agent> <args>`.
    fn start(server: &TestServer, token: &str, name: &str, slots: u32, agent: &[&str]) -> Runner {
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
        let child = Command::new(BIN)
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
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a runner");
        Runner { child }
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
