//! `flightdeck approvals`, `approve ID OPTION` and `say ID TEXT` against the real server and a
//! real ACP agent (the fixture tests/fixtures/agents/acp-fixture.mjs in mode `ask`, through
//! the real bridge): what a person reads is sentences with the item's title and the way to
//! answer, and each failure exits with the code src/cli/exit.rs gives it.

mod common;
use common::*;
use serde_json::json;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const TOKEN: &str = "cli-approvals-token-81c2";
const WAIT: Duration = Duration::from_secs(60);

fn cli(s: &TestServer, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(s.config_path())
        .args(["--server", &s.url])
        .args(args)
        .env_remove("FLIGHTDECK_URL")
        .env_remove("FLIGHTDECK_TOKEN")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run the CLI")
}

/// (exit code, stdout, stderr)
fn run(s: &TestServer, args: &[&str]) -> (i32, String, String) {
    let out = cli(s, args);
    (
        out.status.code().expect("an exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn approvals_approve_and_say_speak_in_sentences_and_exit_by_the_documented_codes() {
    let command = json!(acp_fixture_command(&["ask"]));
    let mut s = TestServer::start(&format!(
        "token = \"{TOKEN}\"\n[agent]\npreset = \"acp\"\ncommand = {command}\n[pool]\nsize = 1\nmax_attempts = 1\n[approvals]\ntimeout_secs = 600\n"
    ));
    s.set_token(TOKEN);

    let (code, out, _) = run(&s, &["approvals"]);
    assert_eq!((code, out.as_str()), (0, "No agent waits for a person.\n"));

    let item = s.create(json!({"title": "Touch the file", "status": "ready"}));
    let item_id = item["id"].as_str().expect("id").to_string();
    let approval = s.wait_for("a permission request", WAIT, || {
        let (_, list) = s.get("/api/approvals");
        list.as_array().and_then(|l| l.first().cloned())
    });
    let id = approval["id"].as_str().expect("approval id").to_string();

    let (code, out, _) = run(&s, &["approvals"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "{id}  \"Touch the file\" asks to execute: Run touch allowed.txt\n    command: touch allowed.txt\n    answer with: flightdeck approve {id} OPTION, OPTION one of allow (Allow), reject (Reject)\n"
        )
    );

    let (code, _, err) = run(&s, &["approve", &id, "maybe"]);
    assert_eq!(
        code, 5,
        "an option the request does not offer is invalid input: {err}"
    );
    assert!(
        err.contains("\"maybe\" is not an option of this request; choose one of"),
        "{err}"
    );
    let (code, _, err) = run(&s, &["approve", "no-such-approval", "allow"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("there is no pending approval"), "{err}");

    let (code, out, err) = run(&s, &["say", &item_id, "Please also say thanks"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "Queued: the agent reads it when its current turn ends.\n"
    );

    let (code, out, err) = run(&s, &["approve", &id, "allow"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "\"Run touch allowed.txt\" on \"Touch the file\": Allow (a person chose it)\n"
    );
    s.wait_status(&item_id, "review", WAIT);

    let (code, _, err) = run(&s, &["approve", &id, "allow"]);
    assert_eq!(code, 3, "an answered request is gone: {err}");
    let (code, _, err) = run(&s, &["say", &item_id, "too late"]);
    assert_eq!(code, 4, "no agent to talk to is a conflict: {err}");
    assert!(
        err.contains("\"Touch the file\" has no running ACP session (it is review)"),
        "{err}"
    );
    let (code, _, err) = run(&s, &["say", "no-such-item", "hello"]);
    assert_eq!(code, 3, "{err}");

    let (code, out, _) = run(&s, &["approvals"]);
    assert_eq!((code, out.as_str()), (0, "No agent waits for a person.\n"));
}
