//! `verify` commands that run a project's own test tool (cargo, npm, pytest) pass under the
//! default sandbox: an agent writes a tiny project into its workspace, and the item reaches
//! Review only if the tool could build and run its tests there, with its caches, toolchain
//! and temporary files where the sandbox lets it reach them. Nothing needs the network (the
//! projects have no dependencies; cargo runs `--offline`).

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

/// A `lines` agent that runs `script` (shell) in its workspace and says so.
fn shell_agent(script: &str, verify: &[&str]) -> String {
    let argv = ["/bin/sh", "-c", script];
    format!(
        "[agent]\npreset = \"lines\"\ncommand = {}\nverify = {}\n[pool]\nsize = 1\nmax_attempts = 1\n",
        serde_json::to_string(&argv).unwrap(),
        serde_json::to_string(verify).unwrap()
    )
}

/// Runs an agent that writes a project, then `verify` on it: the item must reach Review with
/// the sandbox on, and the verify command's output must show its tests passed.
fn verify_passes(script: &str, verify: &[&str], passed: &str) {
    let server = TestServer::start(&shell_agent(script, verify));
    let (_, status) = server.get("/api/status");
    assert_eq!(
        status["sandbox"], "landlock",
        "this kernel enforces Landlock"
    );
    let item = server.create(json!({
        "title": "Write a tested project",
        "status": "ready",
    }));
    let id = item["id"].as_str().unwrap().to_string();
    let settled = server.wait_for("the item to settle", Duration::from_secs(300), || {
        let item = server.item(&id);
        let status = item["status"].as_str().unwrap_or("").to_string();
        matches!(status.as_str(), "review" | "blocked" | "done").then_some(item)
    });
    // The verify command's output is in the agents' session logs.
    let log = server.agent_logs();
    assert_eq!(
        settled["status"], "review",
        "{:#}\nsession log:\n{log}",
        settled
    );
    assert!(log.contains(passed), "the tests ran and passed:\n{log}");
}

#[test]
fn cargo_test_verifies_a_rust_crate_under_the_sandbox() {
    let script = r#"mkdir -p src && printf '[package]\nname = "tiny"\nversion = "0.1.0"\nedition = "2021"\n' > Cargo.toml && printf 'pub fn add(a: i32, b: i32) -> i32 { a + b }\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn adds() { assert_eq!(super::add(2, 2), 4); }\n}\n' > src/lib.rs && echo 'wrote a crate'"#;
    verify_passes(
        script,
        &["cargo", "test", "--offline"],
        "test result: ok. 1 passed",
    );
}

#[test]
fn npm_test_verifies_a_node_package_under_the_sandbox() {
    let script = r#"printf '{"name":"tiny","version":"1.0.0","scripts":{"test":"node test.js"}}\n' > package.json && printf 'const assert = require("assert");\nassert.strictEqual(2 + 2, 4);\nconsole.log("node tests passed");\n' > test.js && echo 'wrote a package'"#;
    verify_passes(script, &["npm", "test"], "node tests passed");
}

#[test]
fn pytest_verifies_a_python_module_under_the_sandbox() {
    let script = r#"printf 'def add(a, b):\n    return a + b\n' > tiny.py && printf 'from tiny import add\n\ndef test_adds():\n    assert add(2, 2) == 4\n' > test_tiny.py && echo 'wrote a module'"#;
    verify_passes(script, &["pytest", "-q"], "1 passed");
}
