//! Peak server memory under the two floods an attacker tried: one agent printing 200 MB of
//! output, and 500 WebSocket clients that connect and never read while events flow. Each
//! starts a fresh server and reports its peak resident memory (`VmHWM`), so what counts is
//! the worst moment of the run, not where it settled.

use crate::bench::fresh_dir;
use crate::http::Conn;
use crate::server::{Server, Setup};
use crate::stats::round;
use crate::Args;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The seq of the last retained event, paging through `GET /api/events` the way a client
/// catching up would.
fn last_seq(conn: &mut Conn) -> u64 {
    let mut since = 0;
    loop {
        let r = conn
            .request(
                "GET",
                &format!("/api/events?since={since}&limit=20000"),
                None,
            )
            .expect("GET /api/events");
        assert_eq!(r.status, 200, "GET /api/events: {}", r.text());
        let events = r.json();
        let Some(last) = events
            .as_array()
            .and_then(|a| a.last())
            .and_then(|e| e["seq"].as_u64())
        else {
            return since;
        };
        since = last;
    }
}

fn status_of(conn: &mut Conn, id: &str) -> String {
    let r = conn
        .request("GET", &format!("/api/items/{id}"), None)
        .expect("GET item");
    r.json()["status"].as_str().unwrap_or("?").to_string()
}

/// One agent prints `--mib` MiB of random bytes as base64 (76-character lines, so 150 MiB
/// make 200 MiB of output and 2.7 million lines) as fast as the server reads it.
pub fn output_bench(args: &Args) -> Value {
    let bin = args.path("bin");
    let work = args.path("work");
    let mib = args.usize_or("mib", 150);
    let script = format!("head -c {} /dev/urandom | base64", mib << 20);
    let setup = Setup {
        pool_size: 1,
        auto_dispatch: true,
        review: false,
        agent: Some(format!(
            "preset = \"lines\"\ncommand = [\"sh\", \"-c\", {}]\nsandbox = \"off\"",
            serde_json::to_string(&script).expect("json")
        )),
    };
    let server = Server::start(&bin, &fresh_dir(&work, "memory-output"), &setup);
    let mut conn = Conn::open(&server.url).expect("connect");
    let rss_idle = server.hwm_kib();
    let t0 = Instant::now();
    let r = conn
        .request(
            "POST",
            "/api/items",
            Some("{\"title\":\"print a lot\",\"status\":\"ready\"}"),
        )
        .expect("create item");
    assert_eq!(r.status, 201, "create: {}", r.text());
    let id = r.json()["id"].as_str().expect("item id").to_string();
    let deadline = t0 + Duration::from_secs(900);
    let status = loop {
        let status = status_of(&mut conn, &id);
        if matches!(status.as_str(), "done" | "blocked" | "review") || Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let wall = t0.elapsed().as_secs_f64();
    let hwm = server.hwm_kib();
    let rss_after = server.rss_kib();
    let events = last_seq(&mut conn);
    let cpu = server.cpu_secs();
    server.stop();
    json!({
        "output_mib": (mib * 4).div_ceil(3),
        "item_status": status,
        "wall_secs": round(wall, 2),
        "events_total": events,
        "server_hwm_kib": hwm,
        "server_hwm_mib": round(hwm as f64 / 1024.0, 1),
        "server_rss_kib_idle_before": rss_idle,
        "server_rss_kib_after": rss_after,
        "server_cpu_secs": round(cpu, 2),
    })
}

/// A WebSocket client that asks for a replay from `since` (only new events when None),
/// completes the handshake, and is then read only if its caller wants to.
fn ws_client(
    host: &str,
    since: Option<u64>,
) -> Option<tungstenite::WebSocket<std::net::TcpStream>> {
    let stream = std::net::TcpStream::connect(host).ok()?;
    let url = match since {
        Some(s) => format!("ws://{host}/ws?since={s}"),
        None => format!("ws://{host}/ws"),
    };
    tungstenite::client(url, stream).ok().map(|(ws, _)| ws)
}

/// Creates `n` items with `description`, `conc` keep-alive clients at a time; returns the
/// number of failures.
fn create_items(url: &str, n: usize, conc: usize, prefix: &str, description: &str) -> usize {
    let next = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..conc)
        .map(|_| {
            let (url, next, prefix) = (url.to_string(), next.clone(), prefix.to_string());
            let body_tail = format!(",\"description\":\"{description}\"}}");
            std::thread::spawn(move || {
                let mut conn = Conn::open(&url).expect("connect");
                let mut errors = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= n {
                        return errors;
                    }
                    let body = format!("{{\"title\":\"{prefix} {i}\"{body_tail}");
                    match conn.request("POST", "/api/items", Some(&body)) {
                        Ok(r) if r.status == 201 => {}
                        _ => errors += 1,
                    }
                }
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap_or(n)).sum()
}

/// `--clients` WebSocket clients connect and never read. Half of `--n` items (each with a
/// `--desc`-byte description, so each `work:added` event is about that size) are created
/// first, so the clients' `?since=0` asks for a replay of all of them; the other half are
/// created while the clients sit there. One more client reads everything, to show the stream
/// still flows for a client that keeps up.
pub fn ws_idle_bench(args: &Args) -> Value {
    use tungstenite::Message;
    let bin = args.path("bin");
    let work = args.path("work");
    let clients = args.usize_or("clients", 500);
    let n = args.usize_or("n", 2_000);
    let desc = args.usize_or("desc", 19_000);
    let conc = args.usize_or("conc", 8);
    let server = Server::start(&bin, &fresh_dir(&work, "memory-ws"), &Setup::default());
    let host = crate::http::host_of(&server.url);
    let description = "x".repeat(desc);
    let t0 = Instant::now();
    let mut errors = create_items(&server.url, n / 2, conc, "before", &description);

    let received = Arc::new(AtomicU64::new(0));
    let gaps = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (host, received, gaps, stop) =
            (host.clone(), received.clone(), gaps.clone(), stop.clone());
        std::thread::spawn(move || -> Option<String> {
            let mut ws = ws_client(&host, Some(0))?;
            let _ = ws
                .get_ref()
                .set_read_timeout(Some(Duration::from_millis(200)));
            while !stop.load(Ordering::Relaxed) {
                match ws.read() {
                    Ok(Message::Text(t)) if t.contains("\"work:added\"") => {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Message::Text(t)) if t.contains("\"monitor:gap\"") => {
                        gaps.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Message::Close(c)) => return Some(format!("{c:?}")),
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e))
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => return Some(e.to_string()),
                }
            }
            None
        })
    };
    let idle: Vec<_> = (0..clients)
        .filter_map(|_| ws_client(&host, Some(0)))
        .collect();
    let connected = idle.len();
    let rss_connected = server.rss_kib();
    errors += create_items(&server.url, n - n / 2, conc, "during", &description);
    let enqueue_secs = t0.elapsed().as_secs_f64();
    // The reader gets everything (or what the journal still held when it connected, after a
    // gap notice): wait until it has all, or nothing new came for 3 s, or 60 s passed.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = (0, Instant::now());
    while Instant::now() < deadline {
        let got = received.load(Ordering::Relaxed);
        if got >= n as u64 {
            break;
        }
        if got != last.0 {
            last = (got, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(3) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(1));
    let hwm = server.hwm_kib();
    let rss_after = server.rss_kib();
    stop.store(true, Ordering::Relaxed);
    let reader_closed = reader.join().expect("reader thread");

    // How the idle clients were treated: each now reads what was sent to it, up to a close.
    let mut dropped = 0;
    let mut reasons: Vec<String> = Vec::new();
    for mut ws in idle {
        let _ = ws
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(300)));
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            match ws.read() {
                Ok(Message::Close(c)) => {
                    dropped += 1;
                    let reason = c.map(|f| f.reason.to_string()).unwrap_or_default();
                    if !reasons.contains(&reason) && reasons.len() < 3 {
                        reasons.push(reason);
                    }
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    let cpu = server.cpu_secs();
    server.stop();
    json!({
        "clients": clients,
        "clients_connected": connected,
        "n": n,
        "description_bytes": desc,
        "enqueue_secs": round(enqueue_secs, 2),
        "enqueue_errors": errors,
        "reader_received": received.load(Ordering::Relaxed),
        "reader_gap_notices": gaps.load(Ordering::Relaxed),
        "reader_closed": reader_closed,
        "idle_clients_dropped": dropped,
        "close_reasons": reasons,
        "server_rss_kib_connected": rss_connected,
        "server_rss_kib_after": rss_after,
        "server_hwm_kib": hwm,
        "server_hwm_mib": round(hwm as f64 / 1024.0, 1),
        "server_cpu_secs": round(cpu, 2),
    })
}
