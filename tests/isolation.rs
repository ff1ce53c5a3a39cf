//! Agents and their verify commands are isolated as processes, not only as file readers: a
//! hostile agent (`tests/fixtures/agents/hostile-process.sh`, one mode per attack) runs
//! against the real server and every attack must fail while the agent's ordinary needs
//! (harmless devices, the network) keep working. Each attempt prints "probe NAME=verdict";
//! the tests read the verdicts from the item's log.

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// An `[agent]` table running hostile-process.sh in `mode`; `more` adds keys.
fn hostile(mode: &str, more: &str) -> String {
    let argv = ["/bin/sh", &fixture("agents/hostile-process.sh"), mode];
    format!(
        "[agent]\npreset = \"lines\"\ncommand = {}\n{more}\n",
        serde_json::to_string(&argv).unwrap()
    )
}

/// An `[agent]` table whose agent succeeds at once and whose verify command is
/// hostile-process.sh in `mode`.
fn hostile_verify(mode: &str) -> String {
    let agent = ["/bin/sh", &fixture("agents/ok.sh")];
    let verify = ["/bin/sh", &fixture("agents/hostile-process.sh"), mode];
    format!(
        "[agent]\npreset = \"lines\"\ncommand = {}\nverify = {}\n",
        serde_json::to_string(&agent).unwrap(),
        serde_json::to_string(&verify).unwrap()
    )
}

fn id_of(item: &Value) -> String {
    item["id"].as_str().expect("item id").to_string()
}

fn log_text(s: &TestServer, id: &str) -> String {
    let (status, v) = s.get(&format!("/api/items/{id}/log"));
    assert_eq!(status, 200, "{v}");
    match v {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

/// The verdict of every probe in the item's log: "allowed" or "denied <error>".
fn probes(s: &TestServer, id: &str) -> HashMap<String, String> {
    log_text(s, id)
        .lines()
        .filter_map(|l| l.strip_prefix("probe "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn assert_denied(probes: &HashMap<String, String>, names: &[&str]) {
    for name in names {
        let verdict = probes.get(*name).map(String::as_str).unwrap_or("missing");
        assert!(
            verdict.starts_with("denied"),
            "{name}: {verdict} ({probes:?})"
        );
    }
}

fn assert_allowed(probes: &HashMap<String, String>, names: &[&str]) {
    for name in names {
        let verdict = probes.get(*name).map(String::as_str).unwrap_or("missing");
        assert_eq!(verdict, "allowed", "{name} ({probes:?})");
    }
}

fn assert_sandboxed(s: &TestServer) {
    let (_, status) = s.get("/api/status");
    assert_eq!(
        status["sandbox"], "landlock",
        "this kernel enforces Landlock"
    );
}

/// Waits for the item's working session.
fn working_session(s: &TestServer, id: &str) -> Value {
    s.wait_for(&format!("a working session of {id}"), T, || {
        let (_, v) = s.get(&format!("/api/agents?item={id}"));
        v.as_array()?
            .iter()
            .find(|x| x["status"] == "working")
            .cloned()
    })
}

/// Waits for the item's first session, whatever its status.
fn first_session(s: &TestServer, id: &str) -> Value {
    s.wait_for(&format!("a session of {id}"), T, || {
        let (_, v) = s.get(&format!("/api/agents?item={id}"));
        v.as_array()?.last().cloned()
    })
}

fn workspace_of(session: &Value) -> PathBuf {
    PathBuf::from(session["workspaceDir"].as_str().expect("workspaceDir"))
}

/// Polls `check` until it returns Some, or panics after [`T`] naming `what`.
fn eventually<V>(what: &str, mut check: impl FnMut() -> Option<V>) -> V {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < T,
            "timed out after {T:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_pid(path: &Path) -> u32 {
    eventually(&format!("pid file {}", path.display()), || {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
    })
}

/// Is `pid` a live `sleep` (not a zombie, not a reused pid)?
fn sleeping(pid: u32) -> bool {
    alive(pid)
        && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep\0"))
}

fn wait_gone(what: &str, pid: u32) {
    eventually(&format!("{what} (pid {pid}) to be gone"), || {
        (!sleeping(pid)).then_some(())
    });
}

fn pool_running(s: &TestServer) -> u64 {
    s.get("/api/pool").1["running"].as_u64().expect("running")
}

// ---- the terminal and devices --------------------------------------------------------------

/// A pseudo-terminal: the test keeps the master, the server gets the slave as its
/// controlling terminal.
struct Terminal {
    _master: OwnedFd,
    slave: PathBuf,
}

fn open_terminal() -> Terminal {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two fds; the name, termios and winsize pointers may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty returned two fresh fds that nothing else owns.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let path = std::fs::read_link(format!("/proc/self/fd/{}", slave.as_raw_fd()))
        .expect("the terminal's name");
    Terminal {
        _master: master,
        slave: path,
    }
}

/// Runs the command as the leader of a new session whose controlling terminal is `slave`,
/// like a server started from an operator's shell.
fn attach_terminal(slave: &Path, command: &mut std::process::Command) {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(slave)
        .expect("open the terminal");
    command.stdin(tty);
    // SAFETY: setsid and ioctl are async-signal-safe and touch no memory of ours.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

impl Terminal {
    /// Whatever was pushed into the terminal's input (a complete line in canonical mode).
    fn injected(&self) -> String {
        let mut tty = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&self.slave)
            .expect("open the terminal");
        let mut buf = [0u8; 4096];
        match tty.read(&mut buf) {
            Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(_) => String::new(),
        }
    }
}

#[test]
fn agents_have_no_terminal_to_push_commands_into() {
    let terminal = open_terminal();
    let slave = terminal.slave.clone();
    let s = TestServer::start_prepared(
        &format!(
            "[pool]\nsize = 1\n[queue]\nreview = false\n{}",
            hostile("tty", "")
        ),
        move |command| attach_terminal(&slave, command),
    );
    assert_sandboxed(&s);
    let item = s.create(json!({
        "title": "push a command into the operator's shell",
        "status": "ready",
        "description": format!(
            "SERVER_PID={}\nSERVER_TTY={}",
            s.pid(),
            terminal.slave.display()
        ),
    }));
    let id = id_of(&item);
    s.wait_status(&id, "done", T);
    let probes = probes(&s, &id);
    assert_denied(
        &probes,
        &[
            "server_session",
            "tty_open",
            "server_tty_inject",
            "tty_inject",
            "fd0_inject",
            "fd1_inject",
            "fd2_inject",
            "server_fd0_inject",
            "server_fd1_inject",
            "server_fd2_inject",
        ],
    );
    let injected = terminal.injected();
    assert!(
        !injected.contains("INJECTED"),
        "the agent pushed input into the server's terminal: {injected:?}"
    );
}

#[test]
fn agents_get_only_the_harmless_devices() {
    let s = TestServer::start(&format!(
        "[pool]\nsize = 1\n[queue]\nreview = false\n{}",
        hostile("devices", "")
    ));
    assert_sandboxed(&s);
    let id = id_of(&s.create_ready("use the devices"));
    s.wait_status(&id, "done", T);
    let probes = probes(&s, &id);
    // Whatever a probe managed to create goes, so a failing run leaves nothing behind.
    let _ = std::fs::remove_file(format!("/dev/flightdeck-probe-{id}"));
    let _ = std::fs::remove_file(format!("/dev/shm/flightdeck-probe-{id}"));
    assert_allowed(
        &probes,
        &[
            "null_write",
            "zero_read",
            "full_open",
            "random_read",
            "urandom_read",
            "stdout_write",
        ],
    );
    assert_denied(
        &probes,
        &[
            "kmsg_write",
            "kmsg_read",
            "dev_create",
            "shm_write",
            "pts_open",
        ],
    );
}

// ---- the verify command --------------------------------------------------------------------

#[test]
fn verify_runs_in_the_agents_sandbox() {
    let s = TestServer::start(&format!(
        "[pool]\nsize = 1\nmax_attempts = 1\n{}",
        hostile_verify("verify-escape")
    ));
    assert_sandboxed(&s);
    let outside = s.dir.path().join("escape.txt");
    let item = s.create(json!({
        "title": "verify escapes",
        "status": "ready",
        "description": format!(
            "CONFIG={}\nDATA={}\nOUTSIDE={}",
            s.config_path().display(),
            s.data_dir().canonicalize().unwrap().display(),
            outside.display()
        ),
    }));
    let id = id_of(&item);
    let item = s.wait_status(&id, "blocked", T);
    let reason = item["statusReason"].as_str().unwrap_or("");
    assert!(
        reason.contains("verify") && reason.contains("Permission denied"),
        "the attempt fails naming the refusal: {reason}"
    );
    assert_denied(
        &probes(&s, &id),
        &[
            "verify_config_read",
            "verify_store_read",
            "verify_outside_write",
        ],
    );
    assert!(!outside.exists(), "verify wrote outside its session folder");
}

/// One item whose verify hangs, then another that must still get the (single) slot.
fn hanging_verify_server(pool: &str) -> (TestServer, String, u32) {
    let s = TestServer::start(&format!(
        "[pool]\nsize = 1\nmax_attempts = 1\nshutdown_grace_secs = 1\n{pool}\n{}",
        hostile_verify("verify-hang")
    ));
    assert_sandboxed(&s);
    let id = id_of(&s.create(json!({
        "title": "verify hangs",
        "status": "ready",
        "description": "HANG=1",
    })));
    let ws = workspace_of(&working_session(&s, &id));
    let pid = read_pid(&ws.join("verify.pid"));
    // It writes its pid, then becomes `sleep`.
    eventually("the verify command to hang", || sleeping(pid).then_some(()));
    (s, id, pid)
}

fn another_item_runs(s: &TestServer) {
    let next = id_of(&s.create_ready("after the hanging verify"));
    s.wait_status(&next, "review", T);
    s.wait_for("the pool to be idle", T, || {
        (pool_running(s) == 0).then_some(())
    });
}

#[test]
fn a_hanging_verify_is_stopped_by_the_attempts_timeout() {
    let (s, id, pid) = hanging_verify_server("timeout_secs = 3");
    let item = s.wait_status(&id, "blocked", T);
    let reason = item["statusReason"].as_str().unwrap_or("");
    assert!(reason.contains("timed out"), "{reason}");
    wait_gone("the hanging verify", pid);
    another_item_runs(&s);
}

#[test]
fn a_verify_slower_than_the_idle_limit_is_not_taken_for_a_stalled_agent() {
    let s = TestServer::start(
        "[pool]\nsize = 1\nmax_attempts = 1\nidle_timeout_secs = 1\n\
         [agent]\npreset = \"lines\"\n\
         command = [\"/bin/sh\", \"-c\", \"echo done > result.txt\"]\n\
         verify = [\"/bin/sh\", \"-c\", \"sleep 3\"]\n",
    );
    let id = id_of(&s.create_ready("slow tests"));
    let item = s.wait_status(&id, "review", T);
    assert_eq!(item["statusReason"], Value::Null, "{item}");
}

#[test]
fn cancelling_during_verify_stops_it_and_frees_the_slot() {
    let (s, id, pid) = hanging_verify_server("");
    let (status, v) = s.post(
        &format!("/api/items/{id}/move"),
        json!({"status": "blocked"}),
    );
    assert_eq!(status, 200, "{v}");
    wait_gone("the cancelled verify", pid);
    another_item_runs(&s);
    assert_eq!(s.item(&id)["status"], "blocked");
}

#[test]
fn shutdown_stops_a_hanging_verify() {
    let (mut s, _, pid) = hanging_verify_server("");
    let exit = s.terminate();
    assert!(exit.success(), "a graceful stop: {exit}");
    wait_gone("the verify of the stopped server", pid);
}

// ---- processes that leave the group --------------------------------------------------------

/// A server whose agent double-forks `setsid env -i sleep 1000`; returns the item, its
/// session and the escaped pid.
fn escaping_agent(finish: bool) -> (TestServer, String, Value, u32) {
    let s = TestServer::start(&format!(
        "[pool]\nsize = 1\nretry_backoff_secs = 60.0\n[queue]\nreview = false\n{}",
        hostile("escape-setsid", "")
    ));
    assert_sandboxed(&s);
    let id = id_of(&s.create(json!({
        "title": "leave the process group",
        "status": "ready",
        "description": if finish { "FINISH=1" } else { "FINISH=0" },
    })));
    let session = first_session(&s, &id);
    let pid = read_pid(&workspace_of(&session).join("escaped.pid"));
    (s, id, session, pid)
}

#[test]
fn nothing_an_agent_started_survives_cancel() {
    let (s, id, session, escaped) = escaping_agent(false);
    read_pid(&workspace_of(&session).join("agent.pid"));
    eventually("the escaped child to run", || {
        sleeping(escaped).then_some(())
    });
    // Moving the item away cancels its agent (and, unlike a session cancel, does not run
    // the item again).
    let (status, v) = s.post(
        &format!("/api/items/{id}/move"),
        json!({"status": "blocked"}),
    );
    assert_eq!(status, 200, "{v}");
    wait_gone("the escaped child of a cancelled agent", escaped);
}

#[test]
fn nothing_an_agent_started_survives_its_end() {
    let (s, id, _, escaped) = escaping_agent(true);
    s.wait_status(&id, "done", T);
    wait_gone("the escaped child of a finished agent", escaped);
}

#[test]
fn nothing_an_agent_started_survives_a_crash_and_restart() {
    let (mut s, id, session, escaped) = escaping_agent(false);
    read_pid(&workspace_of(&session).join("agent.pid"));
    eventually("the escaped child to run", || {
        sleeping(escaped).then_some(())
    });
    s.kill();
    s.boot();
    wait_gone("the escaped child of the crashed server's agent", escaped);
    assert!(s.item(&id)["statusReason"]
        .as_str()
        .unwrap_or("")
        .contains("interrupted"));
}

// ---- signals and the server's port ---------------------------------------------------------

#[test]
fn agents_cannot_signal_the_server() {
    let s = TestServer::start(&format!(
        "[pool]\nsize = 1\n[queue]\nreview = false\n{}",
        hostile("signal-server", "")
    ));
    assert_sandboxed(&s);
    let item = s.create(json!({
        "title": "stop the server",
        "status": "ready",
        "description": format!("SERVER_PID={}", s.pid()),
    }));
    let id = id_of(&item);
    s.wait_status(&id, "done", T);
    let probes = probes(&s, &id);
    assert_denied(&probes, &["signal_server", "signal_server_kill"]);
    assert!(
        probes["signal_server"].contains("not permitted"),
        "{probes:?}"
    );
    let (status, _) = s.get("/healthz");
    assert_eq!(status, 200, "the server stays responsive");
}

#[test]
fn agents_cannot_signal_each_other() {
    let s = TestServer::start(&format!(
        "[pool]\nsize = 2\n[queue]\nreview = false\n{}",
        hostile("signal-agent", "")
    ));
    assert_sandboxed(&s);
    let victim = id_of(&s.create_ready("the victim"));
    let victim_pid = working_session(&s, &victim)["pid"]
        .as_u64()
        .expect("the victim's pid") as u32;
    let attacker = id_of(&s.create(json!({
        "title": "kill the other agent",
        "status": "ready",
        "description": format!("TARGET_PID={victim_pid}"),
    })));
    s.wait_status(&attacker, "done", T);
    let probes = probes(&s, &attacker);
    assert_denied(&probes, &["signal_agent"]);
    assert!(
        probes["signal_agent"].contains("not permitted"),
        "{probes:?}"
    );
    assert!(alive(victim_pid), "the victim still runs");
    assert_eq!(s.item(&victim)["status"], "in_flight");
    let (status, v) = s.post(
        &format!("/api/items/{victim}/move"),
        json!({"status": "blocked"}),
    );
    assert_eq!(status, 200, "{v}");
}

#[test]
fn agents_get_no_answer_from_the_server_nor_reach_outside_abstract_sockets() {
    let s = TestServer::start(&format!(
        "[pool]\nsize = 1\n[queue]\nreview = false\n{}",
        hostile("connect-server", "")
    ));
    assert_sandboxed(&s);
    let other = std::net::TcpListener::bind("127.0.0.1:0").expect("a local listener");
    let other_port = other.local_addr().unwrap().port();
    std::thread::spawn(move || for _ in other.incoming() {});
    // An abstract unix socket made outside the agent's sandbox (say, by a desktop session).
    let name = format!("flightdeck-isolation-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let abstract_socket = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    std::thread::spawn(move || for _ in abstract_socket.incoming() {});
    let server_port = s.url.rsplit(':').next().unwrap().trim_end_matches('/');
    let item = s.create(json!({
        "title": "talk to the server",
        "status": "ready",
        "description": format!(
            "SERVER_PORT={server_port}\nOTHER_PORT={other_port}\nABSTRACT_SOCKET={name}"
        ),
    }));
    let id = id_of(&item);
    s.wait_status(&id, "done", T);
    let probes = probes(&s, &id);
    assert_denied(&probes, &["server_answers", "connect_abstract"]);
    assert_allowed(&probes, &["connect_other"]);
    // Where agents run in their sessions' cgroups (as here, in CI) the server shuts their
    // connections at once (no answer); elsewhere Landlock's port rules keep them from
    // connecting at all.
    if probes
        .get("in_session_cgroup")
        .is_some_and(|v| v == "allowed")
    {
        assert!(
            !probes["server_answers"].contains("answered"),
            "the server answers nothing on the agent's connection: {probes:?}"
        );
    }
}

/// The cgroup2 folder of process `pid`.
fn cgroup_of(pid: u32) -> PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mount = mountinfo
        .lines()
        .find_map(|line| {
            let (fields, fs) = line.split_once(" - ")?;
            fs.starts_with("cgroup2 ")
                .then(|| fields.split(' ').nth(4).map(PathBuf::from))?
        })
        .expect("a cgroup2 hierarchy is mounted");
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let own = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("the process is in a cgroup2 cgroup");
    mount.join(own.trim_start_matches('/'))
}

#[test]
fn agents_cannot_leave_their_sessions_cgroup() {
    // The server's refusal of agents' connections rests on this: a socket carries the cgroup
    // of the process that made it, so an agent must not be able to make one elsewhere.
    let s = TestServer::start(&format!(
        "[pool]\nsize = 1\n[queue]\nreview = false\n{}",
        hostile("leave-cgroup", "")
    ));
    assert_sandboxed(&s);
    let item = s.create(json!({
        "title": "leave the cgroup",
        "status": "ready",
        "description": format!("SERVER_CGROUP={}", cgroup_of(s.pid()).display()),
    }));
    let id = id_of(&item);
    s.wait_status(&id, "done", T);
    let probes = probes(&s, &id);
    assert_allowed(&probes, &["still_in_session_cgroup"]);
    assert_denied(&probes, &["cgroup_write", "clone3_into_cgroup"]);
    assert!(
        probes["clone3_into_cgroup"].contains("not implemented"),
        "clone3 fails as if the kernel had none, so the C library falls back to clone: {probes:?}"
    );
}

#[test]
fn port_rules_keep_a_sandboxed_process_off_one_port_only() {
    // Where sessions have no cgroups (or the kernel cannot say which cgroup made a
    // connection), Landlock's port rules are what keep agents off the server's port.
    let listen = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a local listener");
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || for _ in l.incoming() {});
        port
    };
    let (server, other) = (listen(), listen());
    let Some(fd) = flightdeck::sandbox::PortRules::build(server).expect("the port rules") else {
        panic!("this kernel has Landlock network rules (ABI 4)");
    };
    let dir = tempfile::tempdir().unwrap();
    let connect = |port: u16| {
        let script = format!(
            "use IO::Socket::INET; IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => {port}, Timeout => 5) or die \"connect: $!\\n\""
        );
        std::process::Command::new(BIN)
            .args(["exec-agent", "--sandbox", "--rw"])
            .arg(dir.path())
            .args([
                "--port-rules-fd",
                &fd.to_string(),
                "--",
                "perl",
                "-e",
                &script,
            ])
            .output()
            .expect("run exec-agent")
    };
    let refused = connect(server);
    assert!(!refused.status.success(), "connected to the server's port");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("connect: Permission denied"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let allowed = connect(other);
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
}

// ---- the subreaper launcher, where there are no cgroups ------------------------------------

/// Starts hostile-process.sh escape-setsid through `flightdeck exec-agent --reaper` in a
/// scratch folder, from a shell that stands in for the server; returns that shell, the
/// folder and the escaped child's pid.
fn reaper_launch(finish: bool) -> (std::process::Child, tempfile::TempDir, u32) {
    let dir = tempfile::tempdir().expect("scratch dir");
    std::fs::write(
        dir.path().join("AGENTS.md"),
        format!("FINISH={}\n", finish as u8),
    )
    .unwrap();
    let server = std::process::Command::new("/bin/sh")
        .args([
            "-c",
            "\"$0\" exec-agent --parent $$ --reaper -- /bin/sh \"$1\" escape-setsid & wait $!",
            BIN,
            &fixture("agents/hostile-process.sh"),
        ])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the launcher");
    let escaped = read_pid(&dir.path().join("escaped.pid"));
    (server, dir, escaped)
}

#[test]
fn the_subreaper_launcher_leaves_nothing_behind() {
    // The agent ends: the launcher kills what it left, then exits with the agent's status.
    let (mut server, _dir, escaped) = reaper_launch(true);
    let status = server.wait().expect("wait for the launcher");
    assert!(status.success(), "{status}");
    assert!(!sleeping(escaped), "the escaped child outlived its agent");

    // The session is stopped: SIGUSR1 to the launcher kills everything.
    let (mut server, dir, escaped) = reaper_launch(false);
    read_pid(&dir.path().join("agent.pid"));
    eventually("the escaped child to run", || {
        sleeping(escaped).then_some(())
    });
    let launcher = std::fs::read_to_string(format!("/proc/{}/task/{0}/children", server.id()))
        .expect("the shell's children");
    unsafe_kill(
        launcher.trim().parse().expect("the launcher's pid"),
        libc::SIGUSR1,
    );
    server.wait().expect("wait for the launcher");
    assert!(!sleeping(escaped), "the escaped child outlived a stop");

    // The server dies: the launcher's parent-death signal kills everything.
    let (mut server, dir, escaped) = reaper_launch(false);
    read_pid(&dir.path().join("agent.pid"));
    eventually("the escaped child to run", || {
        sleeping(escaped).then_some(())
    });
    server.kill().expect("kill the stand-in server");
    server.wait().expect("reap it");
    wait_gone("the escaped child of a dead server's agent", escaped);
}
