//! Figure 9, runners (issue 12): the same items dispatched by the server's own pool and by
//! `flightdeck runner` processes pulling them over HTTP under leases, with the same number of
//! slots; and what live leases cost the server: fake runners registered over HTTP with a
//! runner token hold leases on items whose agents never finish and renew them by heartbeat,
//! while the server's CPU time (utime + stime from /proc) is read across a window.

use crate::http::Conn;
use crate::server::{Server, Setup};
use crate::stats::round;
use crate::Args;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An agent that leaves one file in its workspace: a deliverable, so the attempt counts.
fn agent_lines() -> String {
    let command = json!([
        "sh",
        "-c",
        "echo done > \"$FLIGHTDECK_WORKSPACE/result.txt\""
    ]);
    format!("preset = \"lines\"\ncommand = {command}\nsandbox = \"off\"")
}

fn json_of(conn: &mut Conn, method: &str, path: &str, body: Option<&str>) -> Value {
    let r = conn
        .request(method, path, body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    assert!(
        r.status < 300,
        "{method} {path}: HTTP {}: {}",
        r.status,
        r.text()
    );
    r.json()
}

fn runner_token(conn: &mut Conn) -> String {
    let made = json_of(
        conn,
        "POST",
        "/api/runner-tokens",
        Some("{\"name\":\"bench\"}"),
    );
    made["token"].as_str().expect("a runner token").to_string()
}

/// Waits until every one of `n` items is done or blocked; returns (done, blocked).
fn wait_finished(conn: &mut Conn, n: usize) -> (usize, usize) {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let status = json_of(conn, "GET", "/api/status", None);
        let done = status["counts"]["done"].as_u64().unwrap_or(0) as usize;
        let blocked = status["counts"]["blocked"].as_u64().unwrap_or(0) as usize;
        if done + blocked >= n || Instant::now() > deadline {
            return (done, blocked);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Runners(Vec<Child>);

impl Drop for Runners {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_runner(bin: &Path, dir: &Path, url: &str, token: &str, name: &str, slots: usize) -> Child {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).expect("runner dir");
    let config = dir.join("runner.toml");
    let text = format!(
        "[server]\ndata_dir = \"{}\"\n\n[agent]\n{}\n",
        dir.join("state").display(),
        agent_lines()
    );
    std::fs::write(&config, text).expect("runner config");
    let log = std::fs::File::create(dir.join("runner.log")).expect("runner log");
    Command::new(bin)
        .args(["runner", "--config"])
        .arg(&config)
        .args([
            "--server",
            url,
            "--name",
            name,
            "--slots",
            &slots.to_string(),
        ])
        .env("FLIGHTDECK_RUNNER_TOKEN", token)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start a runner: {e}"))
}

/// One dispatch run: `runners` = 0 uses the server's own pool of `slots` slots; otherwise
/// that many runner processes of `slots / runners` slots each. Items are made first; the
/// clock starts when the slots are switched on (the pool resized, the runners started).
fn dispatch_once(bin: &Path, work: &Path, n: usize, slots: usize, runners: usize) -> Value {
    let name = if runners == 0 { "pool" } else { "runners" };
    let dir = crate::bench::fresh_dir(work, &format!("runners-dispatch-{name}"));
    let setup = Setup {
        pool_size: 0,
        auto_dispatch: true,
        review: false,
        agent: Some(agent_lines()),
    };
    let server = Server::start(bin, &dir.join("server"), &setup);
    let mut conn = Conn::open(&server.url).expect("connect");
    let token = runner_token(&mut conn);
    let mut fill = crate::bench::enqueue(&server.url, n, 16, false, "runners");
    assert_eq!(
        fill.errors,
        0,
        "creating items failed: {:?}",
        fill.first_error.take()
    );
    let cpu0 = server.cpu_secs();
    let t0 = Instant::now();
    let _procs = match slots.checked_div(runners) {
        None => {
            json_of(
                &mut conn,
                "PUT",
                "/api/pool",
                Some(&format!("{{\"size\":{slots}}}")),
            );
            Runners(Vec::new())
        }
        Some(per) => Runners(
            (0..runners)
                .map(|i| start_runner(bin, &dir, &server.url, &token, &format!("r{i}"), per))
                .collect(),
        ),
    };
    let (done, blocked) = wait_finished(&mut conn, n);
    let wall = t0.elapsed().as_secs_f64();
    let cpu = server.cpu_secs() - cpu0;
    server.stop();
    json!({
        "n": n,
        "slots": slots,
        "runners": runners,
        "done": done,
        "blocked": blocked,
        "wall_secs": round(wall, 3),
        "items_per_s": round(done as f64 / wall, 1),
        "server_cpu_secs": round(cpu, 2),
    })
}

/// `runners-dispatch`: the same `n` items through the local pool, then through runners.
pub fn dispatch_bench(args: &Args) -> Value {
    let bin = args.path("bin");
    let work = args.path("work");
    let n = args.usize_or("n", 1_000);
    let runners = args.usize_or("runners", 4);
    let slots = runners * args.usize_or("slots", 8);
    let pool = dispatch_once(&bin, &work, n, slots, 0);
    let remote = dispatch_once(&bin, &work, n, slots, runners);
    let ratio = remote["wall_secs"].as_f64().unwrap_or(f64::NAN)
        / pool["wall_secs"].as_f64().unwrap_or(f64::NAN);
    json!({
        "n": n,
        "slots": slots,
        "runners": runners,
        "pool": pool,
        "remote": remote,
        "ratio": round(ratio, 3),
    })
}

/// `runners-leases`: `leases` live leases held by fake runners of 8 slots each, renewed every
/// `beat` seconds (spread evenly), the server's CPU read over `window` seconds after `settle`.
pub fn leases_bench(args: &Args) -> Value {
    let bin = args.path("bin");
    let work = args.path("work");
    let leases = args.usize_or("leases", 1_000);
    let beat = Duration::from_secs(args.usize_or("beat", 10) as u64);
    let window = Duration::from_secs(args.usize_or("window", 60) as u64);
    let slots = 8;
    let runners = leases.div_ceil(slots);
    let dir = crate::bench::fresh_dir(&work, "runners-leases");
    let setup = Setup {
        pool_size: 0,
        auto_dispatch: true,
        review: false,
        agent: Some(agent_lines()),
    };
    let server = Server::start(&bin, &dir, &setup);
    let mut admin = Conn::open(&server.url).expect("connect");
    let token = runner_token(&mut admin);
    let mut fill = crate::bench::enqueue(&server.url, leases, 16, false, "leased");
    assert_eq!(
        fill.errors,
        0,
        "creating items failed: {:?}",
        fill.first_error.take()
    );

    // Register every runner and claim its slots: none of them ever runs or finishes anything.
    let mut held: Vec<(String, Vec<String>)> = Vec::with_capacity(runners);
    let mut conn = Conn::open_with_token(&server.url, &token).expect("connect");
    for i in 0..runners {
        let id = format!("bench-{i}");
        let body = json!({"id": id, "name": id, "slots": slots, "version": "bench"}).to_string();
        json_of(&mut conn, "POST", "/api/runners/register", Some(&body));
        let free = slots.min(leases - i * slots);
        let claimed = json_of(
            &mut conn,
            "POST",
            &format!("/api/runners/{id}/claim"),
            Some(&format!("{{\"free\":{free}}}")),
        );
        let items: Vec<String> = claimed["claims"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .filter_map(|c| c["item"]["id"].as_str().map(str::to_string))
            .collect();
        held.push((id, items));
    }
    let claimed: usize = held.iter().map(|(_, items)| items.len()).sum();

    // Heartbeats: 4 threads share the runners, each runner's beat at its own offset.
    let stop = Arc::new(AtomicBool::new(false));
    let beats = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let renewed = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let threads = 4;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let mine: Vec<(usize, String, String)> = held
                .iter()
                .enumerate()
                .filter(|(i, _)| i % threads == t)
                .map(|(i, (id, items))| (i, id.clone(), json!({ "running": items }).to_string()))
                .collect();
            let (stop, beats, failures, renewed) = (
                stop.clone(),
                beats.clone(),
                failures.clone(),
                renewed.clone(),
            );
            let (url, token) = (server.url.clone(), token.clone());
            std::thread::spawn(move || {
                let mut conn = Conn::open_with_token(&url, &token).expect("connect");
                let mut round = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    for (i, id, body) in &mine {
                        let offset = beat.mul_f64(*i as f64 / runners as f64);
                        let due = start + beat * round + offset;
                        while Instant::now() < due {
                            if stop.load(Ordering::Relaxed) {
                                return;
                            }
                            std::thread::sleep(
                                (due - Instant::now()).min(Duration::from_millis(100)),
                            );
                        }
                        let path = format!("/api/runners/{id}/heartbeat");
                        match conn.request("POST", &path, Some(body)) {
                            Ok(r) if r.status == 200 => {
                                beats.fetch_add(1, Ordering::Relaxed);
                                let n = r.json()["leases"].as_array().map_or(0, Vec::len);
                                renewed.fetch_add(n, Ordering::Relaxed);
                            }
                            _ => {
                                failures.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    round += 1;
                }
            })
        })
        .collect();
    // A round first (or --settle seconds), so the window sees steady state.
    std::thread::sleep(Duration::from_secs(
        args.usize_or("settle", beat.as_secs() as usize) as u64,
    ));
    let cpu0 = server.cpu_secs();
    let beats0 = beats.load(Ordering::Relaxed);
    let t0 = Instant::now();
    std::thread::sleep(window);
    let cpu = server.cpu_secs() - cpu0;
    let secs = t0.elapsed().as_secs_f64();
    let beats_in_window = beats.load(Ordering::Relaxed) - beats0;
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    // Every lease is still held: none ran out while renewed.
    let status = json_of(&mut admin, "GET", "/api/status", None);
    let in_flight = status["counts"]["in_flight"].as_u64().unwrap_or(0);
    server.stop();
    let total_beats = beats.load(Ordering::Relaxed).max(1);
    json!({
        "leases": leases,
        "claimed": claimed,
        "runners": runners,
        "beat_secs": beat.as_secs(),
        "window_secs": round(secs, 1),
        "heartbeats_in_window": beats_in_window,
        "heartbeat_failures": failures.load(Ordering::Relaxed),
        "leases_renewed_per_beat": round(renewed.load(Ordering::Relaxed) as f64 / total_beats as f64, 2),
        "in_flight_at_end": in_flight,
        "server_cpu_secs": round(cpu, 3),
        "server_cpu_percent": round(100.0 * cpu / secs, 2),
    })
}
