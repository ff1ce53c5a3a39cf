//! Scale up to a million items (issue 15, `bench/run --scale`): does a store that holds N items
//! still enqueue, claim, list and start as it does when small, and what does it cost in memory
//! and disk? The default run's `scale` compares 1,000 with 100,000; this one fills stores as
//! large as asked (1,000,000 in the full mode), so it is a mode of its own.
//!
//! For each size, smallest first: a fresh server is filled over HTTP by `conc` clients, in
//! tenths so the fill rate can be seen to hold (or not) as the store grows; stopped by SIGTERM
//! and started again `restarts` times (the median start-up is the figure; the log is checked
//! for a repair, which would mean the stop was not clean); its resident memory read once it
//! is idle (its CPU time stands still), and the store file's size divided by the items in it.
//! Then, with every size's server up, the measurements run in `rounds` rounds, each round
//! going through every size in turn, so that whatever else the machine does weighs on every
//! size alike: enqueues from one client, enqueues from `conc` clients, the first page of
//! `GET /api/items`, and single claims interleaved one by one across the servers. The
//! enqueues add to the store, so a size's store holds a little more than its N by the end
//! (`items_at_end`); that matters only for the smallest.

use crate::bench::{enqueue, one_claim};
use crate::http::Conn;
use crate::server::{Server, Setup};
use crate::stats::{round, summary};
use crate::Args;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The machine's load average (1, 5, 15 min), as `/proc/loadavg` gives it.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn lat(values: &mut [f64]) -> Value {
    let s = summary(values);
    json!({
        "n": values.len(),
        "p50_ms": round(s.p50, 3),
        "p99_ms": round(s.p99, 3),
        "max_ms": round(s.max, 3),
    })
}

/// Waits until the server's CPU time stands still over one second (at most `limit`); the
/// seconds waited.
fn wait_idle(server: &Server, limit: Duration) -> f64 {
    let started = Instant::now();
    let mut last = server.cpu_secs();
    while started.elapsed() < limit {
        std::thread::sleep(Duration::from_secs(1));
        let now = server.cpu_secs();
        if now == last {
            break;
        }
        last = now;
    }
    round(started.elapsed().as_secs_f64(), 1)
}

/// The store file of the server whose folder is `dir` (see `server::write_config`).
fn store_bytes(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("data").join("flightdeck.redb"))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Fills the server with `n` ready items from `conc` clients, in tenths: each tenth's rate.
fn fill(server: &Server, n: usize, conc: usize) -> Value {
    let step = n.div_ceil(10).max(1);
    let (mut done, mut secs, mut errors, mut first_error) = (0, 0.0, 0, None);
    let mut tenths = Vec::new();
    let loadavg_start = loadavg();
    while done < n {
        let count = step.min(n - done);
        let mut run = enqueue(&server.url, count, conc, false, "scale");
        secs += run.secs;
        errors += run.errors;
        if first_error.is_none() {
            first_error = run.first_error.take();
        }
        let s = summary(&mut run.lat_ms);
        tenths.push(json!({
            "items_before": done,
            "items_per_s": round(run.lat_ms.len() as f64 / run.secs, 1),
            "p99_ms": round(s.p99, 3),
        }));
        done += count;
    }
    json!({
        "items": n,
        "conc": conc,
        "secs": round(secs, 2),
        "items_per_s": round((n - errors) as f64 / secs, 1),
        "errors": errors,
        "first_error": first_error,
        "tenths": tenths,
        "loadavg_start": loadavg_start,
        "loadavg_end": loadavg(),
    })
}

/// `n` enqueues, one after another on one connection: their latencies in ms.
fn enqueue_one_client(conn: &mut Conn, n: usize, round_no: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let body = format!("{{\"title\":\"single {round_no}.{i}\",\"status\":\"ready\"}}");
            let t = Instant::now();
            let r = conn
                .request("POST", "/api/items", Some(&body))
                .expect("POST /api/items");
            let d = ms(t.elapsed());
            assert_eq!(r.status, 201, "enqueue: HTTP {} {}", r.status, r.text());
            d
        })
        .collect()
}

/// One size's server and what the measurement rounds collect on it.
struct Size {
    n: usize,
    dir: PathBuf,
    server: Server,
    figures: Map<String, Value>,
    single: Vec<f64>,
    concurrent: Vec<f64>,
    concurrent_secs: f64,
    concurrent_errors: usize,
    pages: Vec<f64>,
    claims: Vec<f64>,
}

/// Fills a fresh store of `n` items, restarts it, and reads start-up, memory and disk.
fn prepare(bin: &Path, work: &Path, n: usize, conc: usize, restarts: usize) -> Size {
    let dir = work.join(format!("scale-sizes-{n}"));
    eprintln!("scale: filling a store with {n} items ({conc} clients)");
    let server = Server::start(bin, &dir, &Setup::default());
    let fill = fill(&server, n, conc);
    eprintln!("scale: {n} items filled: {} items/s", fill["items_per_s"]);
    let rss_after_fill = server.rss_kib();
    let hwm_fill = server.hwm_kib();
    server.stop();

    let mut startups = Vec::new();
    let mut server = None;
    for _ in 0..restarts {
        drop(server.take());
        let s = Server::boot(bin, &dir);
        startups.push(ms(s.startup));
        server = Some(s);
    }
    let server = server.expect("at least one start");
    let idle_wait = wait_idle(&server, Duration::from_secs(30));
    let rss_idle = server.rss_kib();
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    let repaired = log.matches("was not closed cleanly").count();
    let bytes = store_bytes(&dir);
    let startup = summary(&mut startups.clone()).p50;
    eprintln!(
        "scale: {n} items: start-up {startup:.1} ms (of {startups:.1?}), idle RSS {} MiB, store {} MiB",
        rss_idle / 1024,
        bytes >> 20
    );

    let mut figures = Map::new();
    figures.insert("items".into(), json!(n));
    figures.insert("fill".into(), fill);
    figures.insert("rss_kib_after_fill".into(), json!(rss_after_fill));
    figures.insert("hwm_kib_fill".into(), json!(hwm_fill));
    figures.insert("startup_ms".into(), json!(round(startup, 2)));
    figures.insert(
        "startups_ms".into(),
        json!(startups.iter().map(|v| round(*v, 2)).collect::<Vec<_>>()),
    );
    figures.insert("starts_that_repaired".into(), json!(repaired));
    figures.insert("idle_wait_secs".into(), json!(idle_wait));
    figures.insert("rss_kib_idle_after_restart".into(), json!(rss_idle));
    figures.insert("store_bytes".into(), json!(bytes));
    figures.insert(
        "store_bytes_per_item".into(),
        json!(round(bytes as f64 / n.max(1) as f64, 1)),
    );
    Size {
        n,
        dir,
        server,
        figures,
        single: Vec::new(),
        concurrent: Vec::new(),
        concurrent_secs: 0.0,
        concurrent_errors: 0,
        pages: Vec::new(),
        claims: Vec::new(),
    }
}

pub fn sizes_bench(args: &Args) -> Value {
    let bin = args.path("bin");
    let work = args.path("work");
    let sizes = args.list("items");
    let conc = args.usize_or("conc", 64);
    let restarts = args.usize_or("restarts", 3).max(1);
    let rounds = args.usize_or("rounds", 5).max(1);
    let single = args.usize_or("single", 500).div_ceil(rounds);
    let concurrent = args.usize_or("enqueue", 5_000).div_ceil(rounds);
    let pages = args.usize_or("pages", 200).div_ceil(rounds);
    let claims = args.usize_or("claims", 800).div_ceil(rounds);
    let loadavg_start = loadavg();

    let mut all: Vec<Size> = Vec::new();
    for &n in &sizes {
        all.push(prepare(&bin, &work, n, conc, restarts));
    }

    let loadavg_measure = loadavg();
    eprintln!("scale: measuring at every size, {rounds} rounds (load average {loadavg_measure})");
    for r in 0..rounds {
        for size in &mut all {
            let mut conn = Conn::open(&size.server.url).expect("connect");
            size.single.extend(enqueue_one_client(&mut conn, single, r));
            let mut run = enqueue(&size.server.url, concurrent, conc, false, "at-size");
            size.concurrent.append(&mut run.lat_ms);
            size.concurrent_secs += run.secs;
            size.concurrent_errors += run.errors;
            for _ in 0..pages {
                let t = Instant::now();
                let resp = conn
                    .request("GET", "/api/items", None)
                    .expect("GET /api/items");
                size.pages.push(ms(t.elapsed()));
                assert_eq!(resp.status, 200, "GET /api/items: {}", resp.text());
            }
        }
        // Claims one by one across the sizes.
        let mut conns: Vec<Conn> = all
            .iter()
            .map(|s| Conn::open(&s.server.url).expect("connect"))
            .collect();
        for i in 0..claims {
            for (size, conn) in all.iter_mut().zip(&mut conns) {
                size.claims.push(one_claim(conn, r * claims + i));
            }
        }
    }

    let mut out = Map::new();
    for mut size in all {
        let enqueued = size.single.len() + size.concurrent.len();
        let f = &mut size.figures;
        f.insert("enqueue_one_client".into(), lat(&mut size.single));
        let mut c = lat(&mut size.concurrent);
        c["conc"] = json!(conc);
        c["errors"] = json!(size.concurrent_errors);
        c["items_per_s"] = json!(round(
            size.concurrent.len() as f64 / size.concurrent_secs.max(1e-9),
            1
        ));
        f.insert("enqueue_concurrent".into(), c);
        f.insert("claim".into(), lat(&mut size.claims));
        f.insert("first_page".into(), lat(&mut size.pages));
        f.insert("items_at_end".into(), json!(size.n + enqueued));
        f.insert("store_bytes_at_end".into(), json!(store_bytes(&size.dir)));
        f.insert("rss_kib_at_end".into(), json!(size.server.rss_kib()));
        f.insert("hwm_kib_after_restart".into(), json!(size.server.hwm_kib()));
        size.server.stop();
        if args.usize_or("keep", 0) == 0 {
            let _ = std::fs::remove_dir_all(&size.dir);
        }
        out.insert(size.n.to_string(), Value::Object(size.figures));
    }
    out.insert("rounds".into(), json!(rounds));
    out.insert("loadavg_start".into(), json!(loadavg_start));
    out.insert("loadavg_measure".into(), json!(loadavg_measure));
    out.insert("loadavg_end".into(), json!(loadavg()));
    Value::Object(out)
}
