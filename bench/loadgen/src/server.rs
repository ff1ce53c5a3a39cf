//! The real flightdeck release binary on a free loopback port with a data dir of its own:
//! started, timed until it prints where it listens, measured (VmRSS, VmHWM), and stopped by
//! SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What a benchmark's server runs with; everything else is flightdeck's default.
#[derive(Clone)]
pub struct Setup {
    pub pool_size: u32,
    pub auto_dispatch: bool,
    /// `[queue] review`
    pub review: bool,
    /// The `[agent]` table's lines, or None for the default agent (demo, sandbox auto).
    pub agent: Option<String>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            pool_size: 0,
            auto_dispatch: true,
            review: false,
            agent: None,
        }
    }
}

pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub pid: u32,
    /// From spawning the process to reading its "listening" line.
    pub startup: Duration,
}

pub fn write_config(dir: &Path, setup: &Setup) -> PathBuf {
    std::fs::create_dir_all(dir).expect("server dir");
    let mut text = format!(
        "[server]\nbind = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\n[queue]\nreview = {}\n\n[pool]\nsize = {}\nauto_dispatch = {}\n",
        dir.join("data").display(),
        setup.review,
        setup.pool_size,
        setup.auto_dispatch
    );
    if let Some(agent) = &setup.agent {
        text.push_str("\n[agent]\n");
        text.push_str(agent);
        text.push('\n');
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

impl Server {
    /// Starts the binary on the config already in `dir` (see [`write_config`]).
    pub fn boot(bin: &Path, dir: &Path) -> Server {
        let bin = bin
            .canonicalize()
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        let config = dir.join("config.toml");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .expect("server log");
        let started = Instant::now();
        let mut child = Command::new(&bin)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .env_remove("FLIGHTDECK_BIND")
            .env_remove("FLIGHTDECK_DATA_DIR")
            .env_remove("FLIGHTDECK_TOKEN")
            .env_remove("FLIGHTDECK_POOL_SIZE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("flightdeck listening on ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send((url.trim().to_string(), Instant::now()));
                    }
                }
            }
        });
        let (url, at) = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(v) => v,
            Err(_) => {
                let _ = child.kill();
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                panic!("flightdeck did not say where it listens within 120 s; its log:\n{log}");
            }
        };
        // With no token configured the server generated one before it listened.
        if let Ok(token) = std::fs::read_to_string(dir.join("data").join("token")) {
            crate::http::remember_token(&url, token.trim());
        }
        let pid = child.id();
        Server {
            child: Some(child),
            url,
            pid,
            startup: at - started,
        }
    }

    /// A fresh server: `dir` is emptied first.
    pub fn start(bin: &Path, dir: &Path, setup: &Setup) -> Server {
        let _ = std::fs::remove_dir_all(dir);
        write_config(dir, setup);
        Server::boot(bin, dir)
    }

    /// Resident memory in KiB (VmRSS).
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// The most resident memory the server ever had, in KiB (VmHWM, the high-water mark).
    pub fn hwm_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    fn status_kib(&self, key: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// User + system CPU seconds the server has used so far (from /proc/PID/stat).
    pub fn cpu_secs(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        let after = stat.rsplit(')').next().unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        // fields[0] is state (field 3); utime is field 14, stime 15.
        let ticks: f64 = [11usize, 12]
            .iter()
            .filter_map(|i| fields.get(*i).and_then(|v| v.parse::<f64>().ok()))
            .sum();
        ticks / 100.0
    }

    /// SIGTERM, then wait (SIGKILL after 20 s).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    eprintln!(
                        "flightdeck (pid {}) did not stop on SIGTERM; killing it",
                        child.id()
                    );
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}
