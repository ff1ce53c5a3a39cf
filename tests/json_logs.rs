//! `log.format = "json"`: every line the server writes to stderr is one JSON object, and
//! every HTTP line carries a request id, the caller's when it sent a sane one.

mod common;

use common::TestServer;
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;

#[test]
fn json_logs_are_one_object_per_line_with_the_request_id_on_http_lines() {
    let dir = tempfile::tempdir().unwrap();
    let stderr_path = dir.path().join("stderr.log");
    let path = stderr_path.clone();
    let mut server = TestServer::start_prepared("[log]\nformat = \"json\"\n", move |command| {
        let file = std::fs::File::create(&path).expect("stderr file");
        command.env("RUST_LOG", "info").stderr(Stdio::from(file));
    });
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let token = server.token().unwrap();
    let call = |path: &str, id: Option<&str>| {
        let mut request = agent
            .get(&format!("{}{path}", server.url))
            .set("Authorization", &format!("Bearer {token}"));
        if let Some(id) = id {
            request = request.set("X-Request-Id", id);
        }
        match request.call() {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{e}"),
        }
    };
    let answer = call("/api/status", Some("probe-42.a:b_c"));
    assert_eq!(answer.header("X-Request-Id"), Some("probe-42.a:b_c"));
    let answer = call("/api/items?token=hunter2", Some("bad id\twith spaces"));
    let generated = answer.header("X-Request-Id").unwrap().to_string();
    assert!(
        !generated.is_empty() && !generated.contains(' '),
        "{generated}"
    );
    call("/healthz", None);

    let lines = server.wait_for("three access lines", Duration::from_secs(30), || {
        let text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        (text.matches("flightdeck::http").count() >= 3).then_some(text)
    });
    server.terminate();
    let lines = std::fs::read_to_string(&stderr_path).unwrap_or(lines);
    assert!(
        !lines.contains("hunter2"),
        "a token value reached the log:\n{lines}"
    );
    let mut http = Vec::new();
    for line in lines.lines() {
        let entry: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        for key in ["ts", "level", "target", "message"] {
            assert!(entry[key].is_string(), "no {key} in {line}");
        }
        if entry["target"] == "flightdeck::http" {
            assert!(entry["request_id"].is_string(), "no request id in {line}");
            http.push(entry);
        }
    }
    let id_of = |path: &str| {
        http.iter()
            .find(|e| e["message"].as_str().unwrap().contains(path))
            .map(|e| e["request_id"].as_str().unwrap().to_string())
    };
    assert_eq!(id_of("/api/status").as_deref(), Some("probe-42.a:b_c"));
    assert_eq!(id_of("/api/items").as_deref(), Some(generated.as_str()));
    assert!(id_of("/healthz").is_some());
}
