//! The command line as scripts and people use it, against the real server: each documented
//! exit code for the failure it names, `--json` output that parses on every read command,
//! completion scripts for bash, zsh and fish, no colour or styling codes with `NO_COLOR` or
//! into a pipe, and the same id prefixes accepted by every command that takes an id.

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::Read;
use std::process::{Command, Output, Stdio};

const TOKEN: &str = "cli-test-token-5d1e";

/// A server with a token and no agents: nothing moves unless a test moves it.
fn server() -> TestServer {
    let mut s = TestServer::start(&format!(
        "token = \"{TOKEN}\"\n[pool]\nsize = 0\nauto_dispatch = false\n"
    ));
    s.set_token(TOKEN);
    s
}

/// The CLI, pointed at the test server through its config (which holds the token).
fn cli(s: &TestServer, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("--config")
        .arg(s.config_path())
        .args(["--server", &s.url])
        .args(args)
        .env_remove("FLIGHTDECK_URL")
        .env_remove("FLIGHTDECK_TOKEN")
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    command
}

fn run(mut command: Command) -> Output {
    command.output().expect("run the CLI")
}

fn code(output: &Output) -> i32 {
    output
        .status
        .code()
        .expect("the CLI exits with a code, not a signal")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs the CLI and parses its stdout as JSON; panics with its output otherwise.
fn json_of(s: &TestServer, args: &[&str]) -> Value {
    let out = run(cli(s, args));
    assert_eq!(code(&out), 0, "{args:?}: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?} --json is not JSON ({e}): {}", text(&out.stdout)))
}

#[test]
fn each_failure_has_its_documented_exit_code() {
    let s = server();
    let inbox = s.create(json!({"title": "still in the inbox"}));
    let inbox_id = inbox["id"].as_str().unwrap();

    let ok = run(cli(&s, &["list"]));
    assert_eq!(code(&ok), 0, "a list succeeds: {}", text(&ok.stderr));

    let usage = run(cli(&s, &["frobnicate"]));
    assert_eq!(code(&usage), 2, "an unknown command is a usage error");

    let missing = run(cli(&s, &["show", "ffffffff"]));
    assert_eq!(code(&missing), 3, "no such item: {}", text(&missing.stderr));
    assert!(text(&missing.stderr).contains("not found"));

    let conflict = run(cli(&s, &["move", inbox_id, "done"]));
    assert_eq!(
        code(&conflict),
        4,
        "inbox -> done is refused by the state machine: {}",
        text(&conflict.stderr)
    );
    assert!(text(&conflict.stderr).contains("allowed moves from inbox"));

    let invalid = run(cli(&s, &["add", "a title", "--priority", "whenever"]));
    assert_eq!(
        code(&invalid),
        5,
        "a priority the server does not know: {}",
        text(&invalid.stderr)
    );
    assert!(text(&invalid.stderr).contains("priority"));

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nobody = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut command = cli(&s, &["list"]);
    command.args(["--server", &nobody]);
    let no_server = run(command);
    assert_eq!(code(&no_server), 6, "{}", text(&no_server.stderr));
    assert!(text(&no_server.stderr).contains("no flightdeck server answers"));

    let mut command = cli(&s, &["list"]);
    command.env("FLIGHTDECK_TOKEN", "not-the-token");
    let unauthorized = run(command);
    assert_eq!(
        code(&unauthorized),
        7,
        "a wrong token: {}",
        text(&unauthorized.stderr)
    );

    let mut command = Command::new(BIN);
    command.args(["--config", "/nonexistent/flightdeck.toml", "list"]);
    let other = run(command);
    assert_eq!(code(&other), 1, "a config file that is not there");

    let help = text(&run(cli(&s, &["--help"])).stdout);
    for line in [
        "0  success",
        "2  usage error",
        "3  not found",
        "4  conflict",
        "5  invalid input",
        "6  no server",
        "7  unauthorized",
    ] {
        assert!(help.contains(line), "--help documents exit code {line}");
    }
}

#[test]
fn json_output_of_every_read_command_parses() {
    let s = server();
    let blocker = json_of(
        &s,
        &["add", "write the parser", "--status", "ready", "--json"],
    );
    let id = blocker["id"].as_str().unwrap();
    assert_eq!(blocker["title"], "write the parser");

    let list = json_of(&s, &["list", "--status", "ready", "--json"]);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["id"], id);

    assert_eq!(json_of(&s, &["show", id, "--json"])["id"], id);
    let status = json_of(&s, &["status", "--json"]);
    assert_eq!(status["counts"]["ready"], 1, "{status}");
    let log = json_of(&s, &["logs", id, "--json"]);
    assert_eq!(log["item"], id);
    assert_eq!(log["log"], "", "no agent ran: the log is empty");
    let moved = json_of(
        &s,
        &["move", id, "blocked", "--reason", "waiting", "--json"],
    );
    assert_eq!(moved["status"], "blocked");
    let dispatched = json_of(&s, &["dispatch", "--json"]);
    assert_eq!(
        dispatched["started"],
        json!([]),
        "a pool of 0 starts nothing"
    );
}

#[test]
fn every_command_taking_an_id_accepts_the_prefix_the_tables_show() {
    let s = server();
    let added = run(cli(&s, &["add", "write the parser", "--status", "ready"]));
    let line = text(&added.stdout);
    let short = line
        .split_whitespace()
        .nth(1)
        .expect("`added ID [status] title`")
        .to_string();
    assert_eq!(short.len(), 8, "the short id is 8 characters: {line}");
    let full = s.item(&short)["id"].as_str().unwrap().to_string();
    assert!(full.starts_with(&short));

    let table = text(&run(cli(&s, &["list"])).stdout);
    assert!(
        table.contains(&short),
        "the table shows the same short id: {table}"
    );

    let shown = run(cli(&s, &["show", &short[..4]]));
    assert_eq!(code(&shown), 0, "{}", text(&shown.stderr));
    assert!(text(&shown.stdout).contains(&full));

    let dependent = json_of(
        &s,
        &["add", "use the parser", "--blocked-by", &short, "--json"],
    );
    assert_eq!(dependent["blockedBy"], json!([full]));

    let logs = run(cli(&s, &["logs", &short]));
    assert_eq!(code(&logs), 0, "{}", text(&logs.stderr));

    let moved = run(cli(&s, &["move", &short, "blocked"]));
    assert_eq!(code(&moved), 0, "{}", text(&moved.stderr));
    assert_eq!(
        text(&moved.stdout).trim(),
        format!("moved {short} to blocked"),
        "the answer names the item as the tables do"
    );
}

#[test]
fn completions_print_for_bash_zsh_and_fish() {
    let s = server();
    for (shell, marker) in [
        ("bash", "complete -F _flightdeck"),
        ("zsh", "#compdef flightdeck"),
        ("fish", "complete -c flightdeck"),
    ] {
        let out = run(cli(&s, &["completions", shell]));
        assert_eq!(code(&out), 0, "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell} script: {script:.200}");
        for command in ["list", "show", "completions"] {
            assert!(script.contains(command), "{shell} completes `{command}`");
        }
    }
    let unknown = run(cli(&s, &["completions", "tcsh"]));
    assert_eq!(code(&unknown), 2, "an unsupported shell is a usage error");
}

#[test]
fn pipes_and_no_color_get_no_escape_codes() {
    let s = server();
    s.create(json!({"title": "plain title", "status": "ready"}));
    for args in [&["--help"][..], &["list"], &["status"], &["frobnicate"]] {
        let out = run(cli(&s, args));
        for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            assert!(
                !bytes.contains(&0x1b),
                "{args:?} wrote an escape code into a pipe ({stream}): {}",
                text(bytes)
            );
        }
    }
    // On a terminal, help is styled unless NO_COLOR is set.
    let styled = on_terminal(cli(&s, &["--help"]));
    assert!(
        styled.contains(&0x1b),
        "help is styled on a terminal, so the next check can fail"
    );
    for args in [&["--help"][..], &["list"], &["frobnicate"]] {
        let mut command = cli(&s, args);
        command.env("NO_COLOR", "1");
        let seen = on_terminal(command);
        assert!(
            !seen.contains(&0x1b),
            "{args:?} with NO_COLOR wrote an escape code to the terminal: {}",
            text(&seen)
        );
    }
}

/// Runs `command` with a pseudo-terminal as stdout and stderr; returns what the terminal got.
fn on_terminal(mut command: Command) -> Vec<u8> {
    let (mut master, slave) = open_pty();
    let mut child = command
        .stdout(slave.try_clone().expect("dup the pty"))
        .stderr(slave)
        .spawn()
        .expect("start the CLI");
    drop(command);
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        // Ends with EIO once no process holds the slave end any more.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        seen
    });
    child.wait().expect("wait for the CLI");
    reader.join().expect("the pty reader")
}
