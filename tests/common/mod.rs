//! Test harness: the real `flightdeck` binary on a free port with a temporary data dir, and
//! typed helpers to drive it over HTTP, so tests read like what a user does.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_flightdeck");

/// Applied to the server's command before it starts.
type Prepare = dyn Fn(&mut Command) + Send + Sync;

pub struct TestServer {
    pub url: String,
    pub dir: tempfile::TempDir,
    data: PathBuf,
    child: Option<Child>,
    agent: ureq::Agent,
    token: Option<String>,
    /// Applied to the server's command at every boot (say, to give it a terminal).
    prepare: Option<Box<Prepare>>,
}

/// A config for tests: the given TOML is appended to `[server]` settings that put the data
/// dir in the temp folder and the server on a free port.
pub fn config_text(dir: &Path, extra: &str) -> String {
    format!(
        "[server]\nbind = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{}\n",
        dir.join("data").display(),
        extra
    )
}

impl TestServer {
    /// A server with default settings, except `extra` TOML (tables other than `[server]`,
    /// or `token = ".."` lines right after `[server]`).
    pub fn start(extra: &str) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_with(dir, None, extra, None)
    }

    /// Like [`TestServer::start`], listening on `bind` (an address with port 0: say, one end
    /// of a veth pair a test made).
    pub fn start_bound(bind: &str, extra: &str) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = Self::start_with(dir, None, extra, None);
        server.kill();
        server.set_bind(bind);
        server.boot();
        server
    }

    /// Rewrites the `bind` line of the config for the next boot.
    fn set_bind(&self, bind: &str) {
        let text = std::fs::read_to_string(self.config_path()).expect("read config");
        let text = text.replacen("bind = \"127.0.0.1:0\"", &format!("bind = \"{bind}\""), 1);
        std::fs::write(self.config_path(), text).expect("write config");
    }

    /// Like [`TestServer::start`], with `prepare` applied to the server's command at every
    /// boot (and restart).
    pub fn start_prepared(
        extra: &str,
        prepare: impl Fn(&mut Command) + Send + Sync + 'static,
    ) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_with(dir, None, extra, Some(Box::new(prepare)))
    }

    /// Like [`TestServer::start`], with the data dir at `data_parent/data` (say, on a small
    /// file system of the test's own).
    pub fn start_in(data_parent: &Path, extra: &str) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_with(dir, Some(data_parent.join("data")), extra, None)
    }

    fn start_with(
        dir: tempfile::TempDir,
        data: Option<PathBuf>,
        extra: &str,
        prepare: Option<Box<Prepare>>,
    ) -> TestServer {
        let text = match &data {
            Some(data) => format!(
                "[server]\nbind = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{}\n",
                data.display(),
                extra
            ),
            None => config_text(dir.path(), extra),
        };
        std::fs::write(dir.path().join("config.toml"), text).expect("write config");
        let data = data.unwrap_or_else(|| dir.path().join("data"));
        let mut server = TestServer {
            url: String::new(),
            dir,
            data,
            child: None,
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .build(),
            token: None,
            prepare,
        };
        server.boot();
        server
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data.clone()
    }

    pub fn set_token(&mut self, token: &str) {
        self.token = Some(token.to_string());
    }

    /// The token every request of this harness sends: the one set with [`set_token`], else
    /// the one the server generated into `{data_dir}/token`.
    ///
    /// [`set_token`]: TestServer::set_token
    pub fn token(&self) -> Option<String> {
        self.token.clone()
    }

    /// Starts the binary and waits for the line that says where it listens.
    pub fn boot(&mut self) {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--config"])
            .arg(self.config_path())
            .current_dir(self.dir.path())
            .env(
                "RUST_LOG",
                std::env::var("FLIGHTDECK_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env_remove("FLIGHTDECK_BIND")
            .env_remove("FLIGHTDECK_DATA_DIR")
            .env_remove("FLIGHTDECK_TOKEN")
            .env_remove("FLIGHTDECK_POOL_SIZE")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(prepare) = &self.prepare {
            prepare(&mut command);
        }
        let mut child = command.spawn().expect("start flightdeck");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("flightdeck listening on ") {
                        break url.trim().to_string();
                    }
                }
                _ => panic!("flightdeck exited before listening"),
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.url = url;
        self.child = Some(child);
        // With no token configured the server generated one; use it like the CLI would.
        if self.token.is_none() {
            if let Ok(token) = std::fs::read_to_string(self.data_dir().join("token")) {
                self.token = Some(token.trim().to_string());
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGKILL, as a crash would; returns how the process ended, so a test can check that
    /// it was still running until the kill.
    pub fn kill_for_status(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        unsafe_kill(child.id(), 9);
        child.wait().expect("wait")
    }

    /// SIGTERM, and wait for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        unsafe_kill(child.id(), 15);
        child.wait().expect("wait")
    }

    pub fn restart(&mut self) {
        self.kill();
        self.boot();
    }

    /// SIGKILL, then boot again on the same address and port, so clients that know the URL
    /// (runners, a browser) find it again.
    pub fn restart_same_port(&mut self) {
        self.kill();
        let address = self.url.trim_start_matches("http://").to_string();
        let text = std::fs::read_to_string(self.config_path()).expect("read config");
        let text = match text.lines().find(|l| l.starts_with("bind = ")) {
            Some(line) => text.replacen(line, &format!("bind = \"{address}\""), 1),
            None => text,
        };
        std::fs::write(self.config_path(), text).expect("write config");
        self.boot();
    }

    /// A request with the token set, for headers the helpers do not send.
    pub fn req(&self, method: &str, path: &str) -> ureq::Request {
        let r = self.agent.request(method, &format!("{}{path}", self.url));
        match &self.token {
            Some(t) => r.set("Authorization", &format!("Bearer {t}")),
            None => r,
        }
    }

    fn answer(result: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
        let resp = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("transport error: {e}"),
        };
        let status = resp.status();
        let text = resp.into_string().unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        Self::answer(self.req("GET", path).call())
    }

    pub fn send(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        Self::answer(self.req(method, path).send_json(body))
    }

    /// Sends a raw body with the given content type.
    pub fn send_raw(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> (u16, Value) {
        Self::answer(
            self.req(method, path)
                .set("Content-Type", content_type)
                .send_bytes(body),
        )
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("POST", path, body)
    }

    /// Creates an item; panics unless 201.
    pub fn create(&self, body: Value) -> Value {
        let (status, item) = self.post("/api/items", body);
        assert_eq!(status, 201, "create failed: {item}");
        item
    }

    pub fn create_ready(&self, title: &str) -> Value {
        self.create(json!({"title": title, "status": "ready"}))
    }

    pub fn item(&self, id: &str) -> Value {
        let (status, item) = self.get(&format!("/api/items/{id}"));
        assert_eq!(status, 200, "get {id}: {item}");
        item
    }

    pub fn move_to(&self, id: &str, status: &str) -> (u16, Value) {
        self.post(&format!("/api/items/{id}/move"), json!({"status": status}))
    }

    pub fn claim(&self, agent: &str) -> (u16, Value) {
        self.post(
            "/api/claim",
            json!({"agentId": agent, "sessionKey": format!("key-{agent}")}),
        )
    }

    pub fn events_since(&self, since: u64) -> Vec<Value> {
        let (status, events) = self.get(&format!("/api/events?since={since}&limit=20000"));
        assert_eq!(status, 200);
        events.as_array().cloned().unwrap_or_default()
    }

    /// Polls `check` until it returns Some, or panics after `timeout` naming `what`.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut() -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = check() {
                return v;
            }
            if start.elapsed() > timeout {
                panic!("timed out after {timeout:?} waiting for {what}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the item has the given status; returns it.
    pub fn wait_status(&self, id: &str, status: &str, timeout: Duration) -> Value {
        self.wait_for(&format!("item {id} to be {status}"), timeout, || {
            let item = self.item(id);
            (item["status"] == status).then_some(item)
        })
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn unsafe_kill(pid: u32, signal: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// Is a process with this pid alive (and not a zombie)?
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// The path of a fixture under tests/fixtures.
pub fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

/// A new pseudo-terminal: its master end (what the user's terminal would read) and its slave
/// end (a program's stdout and stderr), for tests of what reaches a terminal.
pub fn open_pty() -> (std::fs::File, std::fs::File) {
    // SAFETY: plain libc calls on a descriptor this function owns; ptsname's buffer is
    // copied out at once.
    unsafe {
        let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(fd >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        let master: std::fs::File = std::os::fd::FromRawFd::from_raw_fd(fd);
        assert_eq!(libc::grantpt(fd), 0, "grantpt");
        assert_eq!(libc::unlockpt(fd), 0, "unlockpt");
        let name = libc::ptsname(fd);
        assert!(!name.is_null(), "ptsname");
        let path = std::ffi::CStr::from_ptr(name)
            .to_string_lossy()
            .into_owned();
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true);
        std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOCTTY);
        let slave = options.open(&path).expect("open the pty's slave end");
        (master, slave)
    }
}

/// The argv of the scripted ACP agent (tests/fixtures/agents/acp-fixture.mjs, a Node script)
/// in `mode`, for `agent.command` with the `acp` preset.
pub fn acp_fixture_command(mode: &[&str]) -> Vec<String> {
    let node = std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("node"))
                .find(|p| p.exists())
        })
        .map(|p| p.display().to_string())
        .expect("node is on PATH (the ACP fixture agent is a Node script)");
    let mut command = vec![node, fixture("agents/acp-fixture.mjs")];
    command.extend(mode.iter().map(|s| s.to_string()));
    command
}

impl TestServer {
    /// Everything the agents of this server printed (every session.log), for failure
    /// messages.
    pub fn agent_logs(&self) -> String {
        std::fs::read_dir(self.data_dir().join("agents"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("session.log")).ok())
            .collect::<Vec<_>>()
            .join("\n---\n")
    }

    /// The workspace folder of the newest session of the item.
    pub fn workspace(&self, item_id: &str) -> PathBuf {
        let (_, sessions) = self.get(&format!("/api/agents?item={item_id}"));
        PathBuf::from(sessions[0]["workspaceDir"].as_str().expect("a session"))
    }
}
