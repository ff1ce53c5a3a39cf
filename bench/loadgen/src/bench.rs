//! The benchmarks. Each returns its raw numbers as JSON (times in ms unless named `_secs`).

use crate::http::Conn;
use crate::server::{Server, Setup};
use crate::stats::{parse_rfc3339, percentile, round, str_after, summary, u64_after};
use crate::Args;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// A folder under `work` that no earlier run used. Runs never reuse (so never delete) a
/// folder: ext4 skips recently deleted inodes when it allocates new ones, so deleting
/// thousands of agent folders just before a run would slow that run's `mkdir`s.
pub fn fresh_dir(work: &Path, name: &str) -> std::path::PathBuf {
    (1..)
        .map(|i| work.join(format!("{name}-{i}")))
        .find(|d| !d.exists())
        .expect("a free folder name")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn lat_json(values: &mut [f64]) -> Value {
    let s = summary(values);
    json!({
        "p50_ms": round(s.p50, 3),
        "p99_ms": round(s.p99, 3),
        "p999_ms": round(s.p999, 3),
        "max_ms": round(s.max, 3),
        "mean_ms": round(s.mean, 3),
    })
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

// ---- Enqueue ---------------------------------------------------------------------------------

pub struct EnqueueRun {
    pub secs: f64,
    pub lat_ms: Vec<f64>,
    pub errors: usize,
    pub first_error: Option<String>,
    /// (item id, when its 201 was read), when asked for.
    pub acks: Vec<(String, Instant)>,
    pub started: Instant,
}

/// Creates `n` ready items with `conc` keep-alive clients.
pub fn enqueue(url: &str, n: usize, conc: usize, keep_acks: bool, prefix: &str) -> EnqueueRun {
    let next = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(conc + 1));
    let mut handles = Vec::new();
    for _ in 0..conc {
        let (next, barrier, url, prefix) = (
            next.clone(),
            barrier.clone(),
            url.to_string(),
            prefix.to_string(),
        );
        handles.push(std::thread::spawn(move || {
            let mut conn = Conn::open(&url).expect("connect");
            let mut lat = Vec::with_capacity(n / conc + 1);
            let mut acks = Vec::new();
            let mut errors = 0;
            let mut first_error = None;
            barrier.wait();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let body = format!("{{\"title\":\"{prefix} {i}\",\"status\":\"ready\"}}");
                let t = Instant::now();
                match conn.request("POST", "/api/items", Some(&body)) {
                    Ok(r) if r.status == 201 => {
                        let done = Instant::now();
                        lat.push(ms(done - t));
                        if keep_acks {
                            if let Some(id) = str_after(r.text(), "\"id\":\"") {
                                acks.push((id.to_string(), done));
                            }
                        }
                    }
                    Ok(r) => {
                        errors += 1;
                        first_error.get_or_insert(format!("HTTP {}: {}", r.status, r.text()));
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e.to_string());
                        conn = match Conn::open(&url) {
                            Ok(c) => c,
                            Err(_) => break,
                        };
                    }
                }
            }
            (lat, acks, errors, first_error, Instant::now())
        }));
    }
    barrier.wait();
    let started = Instant::now();
    let mut run = EnqueueRun {
        secs: 0.0,
        lat_ms: Vec::with_capacity(n),
        errors: 0,
        first_error: None,
        acks: Vec::new(),
        started,
    };
    let mut last = started;
    for h in handles {
        let (lat, acks, errors, first_error, end) = h.join().expect("enqueue worker");
        run.lat_ms.extend(lat);
        run.acks.extend(acks);
        run.errors += errors;
        if run.first_error.is_none() {
            run.first_error = first_error;
        }
        last = last.max(end);
    }
    run.secs = (last - started).as_secs_f64();
    run
}

fn enqueue_json(run: &mut EnqueueRun, n: usize, conc: usize) -> Value {
    let ok = run.lat_ms.len();
    merge(
        json!({
            "n": n,
            "conc": conc,
            "ok": ok,
            "errors": run.errors,
            "first_error": run.first_error,
            "secs": round(run.secs, 3),
            "items_per_s": round(ok as f64 / run.secs, 1),
        }),
        lat_json(&mut run.lat_ms),
    )
}

pub fn enqueue_bench(args: &Args) -> Value {
    let bin = args.path("bin");
    let work = args.path("work");
    let n = args.usize_or("n", 50_000);
    let conc = args.usize_or("conc", 64);
    // Clients that list the first page of items over and over while the enqueue runs: reads
    // must not slow writes down.
    let listers = args.usize_or("listers", 0);
    let server = Server::start(&bin, &fresh_dir(&work, "enqueue"), &Setup::default());
    let cpu0 = server.cpu_secs();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let lists: Vec<_> = (0..listers)
        .map(|_| {
            let (url, stop) = (server.url.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut conn = Conn::open(&url).expect("connect");
                let mut done = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let r = conn
                        .request("GET", "/api/items", None)
                        .expect("GET /api/items");
                    assert_eq!(r.status, 200, "GET /api/items: {}", r.text());
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut run = enqueue(&server.url, n, conc, false, "bench");
    stop.store(true, Ordering::Relaxed);
    let lists_done: usize = lists.into_iter().map(|h| h.join().expect("lister")).sum();
    let cpu = server.cpu_secs() - cpu0;
    let rss = server.rss_kib();
    server.stop();
    merge(
        enqueue_json(&mut run, n, conc),
        json!({"server_cpu_secs": round(cpu, 2), "server_rss_kib": rss,
            "listers": listers, "lists_done": lists_done}),
    )
}

// ---- Claim and complete ----------------------------------------------------------------------

pub fn claim_bench(args: &Args) -> Value {
    let bin = args.path("bin");
    let work = args.path("work");
    let n = args.usize_or("n", 20_000);
    let conc = args.usize_or("conc", 32);
    // `--chain 1`: each completion claims the worker's next item in the same call
    // (`claimNext`), so a cycle is one request and one commit instead of two.
    let chain = args.usize_or("chain", 0) == 1;
    let server = Server::start(&bin, &fresh_dir(&work, "claim"), &Setup::default());
    let mut fill = enqueue(&server.url, n, 64, false, "claimable");
    let fill_json = enqueue_json(&mut fill, n, 64);

    let barrier = Arc::new(Barrier::new(conc + 1));
    let mut handles = Vec::new();
    for w in 0..conc {
        let (barrier, url) = (barrier.clone(), server.url.clone());
        handles.push(std::thread::spawn(move || {
            let mut conn = Conn::open(&url).expect("connect");
            let (mut cycle, mut claim, mut complete) = (Vec::new(), Vec::new(), Vec::new());
            let mut errors = 0usize;
            let mut first_error: Option<String> = None;
            let claim_body = format!("{{\"agentId\":\"w{w}\",\"sessionKey\":\"k{w}\"}}");
            let complete_body = match chain {
                true => format!("{{\"claimNext\":{claim_body}}}"),
                false => "{}".to_string(),
            };
            barrier.wait();
            // In chain mode, the item the last completion claimed.
            let mut chained: Option<String> = None;
            loop {
                let t0 = Instant::now();
                if chain {
                    let id = match chained.take() {
                        Some(id) => id,
                        None if cycle.is_empty() => {
                            match conn.request("POST", "/api/claim", Some(&claim_body)) {
                                Ok(r) if r.status == 200 => {
                                    match str_after(r.text(), "\"id\":\"") {
                                        Some(id) => id.to_string(),
                                        None => break,
                                    }
                                }
                                Ok(_) => break,
                                Err(e) => {
                                    errors += 1;
                                    first_error.get_or_insert(e.to_string());
                                    break;
                                }
                            }
                        }
                        None => break,
                    };
                    let t1 = Instant::now();
                    let path = format!("/api/items/{id}/complete");
                    match conn.request("POST", &path, Some(&complete_body)) {
                        Ok(r) if r.status == 200 => {
                            let t2 = Instant::now();
                            cycle.push(ms(t2 - t1));
                            claim.push(ms(t1 - t0));
                            complete.push(ms(t2 - t1));
                            chained = r
                                .text()
                                .split_once("\"next\":{")
                                .and_then(|(_, next)| str_after(next, "\"id\":\""))
                                .map(str::to_string);
                        }
                        Ok(r) => {
                            errors += 1;
                            first_error.get_or_insert(format!(
                                "complete: HTTP {}: {}",
                                r.status,
                                r.text()
                            ));
                            break;
                        }
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert(e.to_string());
                            break;
                        }
                    }
                    continue;
                }
                let r = match conn.request("POST", "/api/claim", Some(&claim_body)) {
                    Ok(r) => r,
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e.to_string());
                        break;
                    }
                };
                let t1 = Instant::now();
                if r.status == 204 {
                    break;
                }
                if r.status != 200 {
                    errors += 1;
                    first_error.get_or_insert(format!("claim: HTTP {}: {}", r.status, r.text()));
                    continue;
                }
                let Some(id) = str_after(r.text(), "\"id\":\"").map(str::to_string) else {
                    errors += 1;
                    continue;
                };
                let path = format!("/api/items/{id}/complete");
                match conn.request("POST", &path, Some("{}")) {
                    Ok(r) if r.status == 200 => {
                        let t2 = Instant::now();
                        cycle.push(ms(t2 - t0));
                        claim.push(ms(t1 - t0));
                        complete.push(ms(t2 - t1));
                    }
                    Ok(r) => {
                        errors += 1;
                        first_error.get_or_insert(format!(
                            "complete: HTTP {}: {}",
                            r.status,
                            r.text()
                        ));
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e.to_string());
                        break;
                    }
                }
            }
            (cycle, claim, complete, errors, first_error, Instant::now())
        }));
    }
    let cpu0 = server.cpu_secs();
    barrier.wait();
    let started = Instant::now();
    let (mut cycle, mut claim, mut complete) = (Vec::new(), Vec::new(), Vec::new());
    let mut errors = 0;
    let mut first_error = None;
    let mut last = started;
    for h in handles {
        let (c, cl, co, e, fe, end) = h.join().expect("claim worker");
        cycle.extend(c);
        claim.extend(cl);
        complete.extend(co);
        errors += e;
        if first_error.is_none() {
            first_error = fe;
        }
        last = last.max(end);
    }
    let secs = (last - started).as_secs_f64();
    let cpu = server.cpu_secs() - cpu0;
    server.stop();
    let cycles = cycle.len();
    let claim_s = summary(&mut claim);
    let complete_s = summary(&mut complete);
    merge(
        json!({
            "n": n,
            "conc": conc,
            "chain": chain,
            "cycles": cycles,
            "errors": errors,
            "first_error": first_error,
            "secs": round(secs, 3),
            "cycles_per_s": round(cycles as f64 / secs, 1),
            "claim_p50_ms": round(claim_s.p50, 3),
            "claim_p99_ms": round(claim_s.p99, 3),
            "complete_p50_ms": round(complete_s.p50, 3),
            "complete_p99_ms": round(complete_s.p99, 3),
            "server_cpu_secs": round(cpu, 2),
            "prefill": fill_json,
        }),
        lat_json(&mut cycle),
    )
}

// ---- The store's physical floor --------------------------------------------------------------

pub fn floor_bench(args: &Args) -> Value {
    use redb::{Database, Durability, ReadableDatabase, TableDefinition};
    const ITEMS: TableDefinition<&str, &[u8]> = TableDefinition::new("items");
    let dir = args.path("dir");
    let n = args.usize_or("n", 2_000);
    let batch = args.usize_or("batch", 64);
    std::fs::create_dir_all(&dir).expect("floor dir");

    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next_id = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let a = rng;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            a >> 32,
            a & 0xffff,
            (a >> 16) & 0xfff,
            rng & 0xfff,
            rng >> 16 & 0xffff_ffff_ffff
        )
    };
    let value = |id: &str, i: usize| -> Vec<u8> {
        format!(
            "{{\"id\":\"{id}\",\"title\":\"bench {i}\",\"description\":\"\",\"acceptanceCriteria\":[],\"status\":\"ready\",\"priority\":\"medium\",\"complexity\":\"m\",\"createdAt\":\"2026-01-01T00:00:00.000000000Z\",\"updatedAt\":\"2026-01-01T00:00:00.000000000Z\",\"createdBy\":\"api\",\"artifacts\":[],\"blockedBy\":[],\"blocks\":[],\"attempts\":0}}"
        )
        .into_bytes()
    };

    // One item per durable transaction, one thread: the cost of a commit on this disk.
    let path = dir.join("floor.redb");
    let _ = std::fs::remove_file(&path);
    let db = Database::create(&path).expect("create redb");
    let mut lat = Vec::with_capacity(n);
    let mut bytes = 0;
    let started = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        let id = next_id();
        let v = value(&id, i);
        bytes = v.len();
        let mut tx = db.begin_write().expect("begin_write");
        tx.set_durability(Durability::Immediate)
            .expect("durability");
        {
            let mut table = tx.open_table(ITEMS).expect("open_table");
            table.insert(id.as_str(), v.as_slice()).expect("insert");
        }
        tx.commit().expect("commit");
        lat.push(ms(t.elapsed()));
    }
    let secs = started.elapsed().as_secs_f64();
    {
        let read = db.begin_read().expect("begin_read");
        let table = read.open_table(ITEMS).expect("open_table");
        assert_eq!(
            redb::ReadableTableMetadata::len(&table).expect("len"),
            n as u64
        );
    }
    drop(db);

    // The same items, `batch` per durable transaction: what group commit can reach at most.
    let path2 = dir.join("floor-batched.redb");
    let _ = std::fs::remove_file(&path2);
    let db = Database::create(&path2).expect("create redb");
    let started2 = Instant::now();
    let mut done = 0;
    while done < n {
        let mut tx = db.begin_write().expect("begin_write");
        tx.set_durability(Durability::Immediate)
            .expect("durability");
        {
            let mut table = tx.open_table(ITEMS).expect("open_table");
            for i in done..(done + batch).min(n) {
                let id = next_id();
                table
                    .insert(id.as_str(), value(&id, i).as_slice())
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
        done += batch;
    }
    let secs2 = started2.elapsed().as_secs_f64();
    drop(db);

    // The same again with time-ordered keys (as UUIDv7 ids would be): each batch appends to
    // the B-tree's last leaf instead of touching one random leaf per item.
    let path3 = dir.join("floor-sequential.redb");
    let _ = std::fs::remove_file(&path3);
    let db = Database::create(&path3).expect("create redb");
    let started3 = Instant::now();
    let mut done = 0;
    while done < n {
        let mut tx = db.begin_write().expect("begin_write");
        tx.set_durability(Durability::Immediate)
            .expect("durability");
        {
            let mut table = tx.open_table(ITEMS).expect("open_table");
            for i in done..(done + batch).min(n) {
                let id = format!("{:016x}-{}", i, &next_id()[17..]);
                table
                    .insert(id.as_str(), value(&id, i).as_slice())
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
        done += batch;
    }
    let secs3 = started3.elapsed().as_secs_f64();
    drop(db);
    let _ = std::fs::remove_file(&path3);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&path2);
    merge(
        json!({
            "tx": n,
            "value_bytes": bytes,
            "secs": round(secs, 3),
            "tx_per_s": round(n as f64 / secs, 1),
            "batch": batch,
            "batched_items_per_s": round(n as f64 / secs2, 1),
            "batched_sequential_items_per_s": round(n as f64 / secs3, 1),
        }),
        lat_json(&mut lat),
    )
}

// ---- Dispatch --------------------------------------------------------------------------------

fn get_json(conn: &mut Conn, path: &str) -> Value {
    match conn.request("GET", path, None) {
        Ok(r) if r.status == 200 => r.json(),
        Ok(r) => panic!("GET {path}: HTTP {} {}", r.status, r.text()),
        Err(e) => panic!("GET {path}: {e}"),
    }
}

pub fn dispatch_bench(args: &Args) -> Value {
    let bin = args.path("bin");
    let work = args.path("work");
    let n = args.usize_or("n", 1_000);
    let pool = args.usize_or("pool", 8);
    let sandbox = args.str_or("sandbox", "off");
    let setup = Setup {
        pool_size: 0,
        auto_dispatch: true,
        review: false,
        agent: Some(format!(
            "preset = \"lines\"\ncommand = [\"touch\", \"done\"]\nsandbox = \"{sandbox}\""
        )),
    };
    let server = Server::start(
        &bin,
        &fresh_dir(&work, &format!("dispatch-{sandbox}")),
        &setup,
    );
    let mut conn = Conn::open(&server.url).expect("connect");
    let status = get_json(&mut conn, "/api/status");
    let sandbox_active = status["sandbox"].as_str().unwrap_or("?").to_string();
    let mut fill = enqueue(&server.url, n, 16, false, "dispatch");
    assert_eq!(
        fill.errors, 0,
        "creating items failed: {:?}",
        fill.first_error
    );
    let fill_json = enqueue_json(&mut fill, n, 16);

    let cpu0 = server.cpu_secs();
    let t0 = Instant::now();
    let r = conn
        .request("PUT", "/api/pool", Some(&format!("{{\"size\":{pool}}}")))
        .expect("PUT /api/pool");
    assert_eq!(r.status, 200, "PUT /api/pool: {}", r.text());
    let deadline = t0 + Duration::from_secs(600);
    let (done, blocked) = loop {
        let status = get_json(&mut conn, "/api/status");
        let done = status["counts"]["done"].as_u64().unwrap_or(0) as usize;
        let blocked = status["counts"]["blocked"].as_u64().unwrap_or(0) as usize;
        if done + blocked >= n || Instant::now() > deadline {
            break (done, blocked);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let wall = t0.elapsed().as_secs_f64();
    let cpu = server.cpu_secs() - cpu0;
    let events = get_json(&mut conn, "/api/events?since=0&limit=20000");
    server.stop();

    // Server-side timestamps of each item's steps.
    let mut resize_at = None;
    let mut in_flight: HashMap<String, f64> = HashMap::new();
    let mut spawned: HashMap<String, f64> = HashMap::new();
    let mut done_at: HashMap<String, f64> = HashMap::new();
    let mut failed_sessions = 0;
    for e in events.as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let at = e["at"].as_str().and_then(parse_rfc3339).unwrap_or(0.0);
        let data = &e["data"];
        match e["type"].as_str().unwrap_or("") {
            "pool:resized" if data["size"].as_u64() == Some(pool as u64) => {
                resize_at.get_or_insert(at);
            }
            "work:status_changed" => {
                let id = data["itemId"].as_str().unwrap_or("").to_string();
                match data["to"].as_str() {
                    Some("in_flight") => {
                        in_flight.entry(id).or_insert(at);
                    }
                    Some("done") => {
                        done_at.insert(id, at);
                    }
                    _ => {}
                }
            }
            "agent:spawned" => {
                let id = data["agent"]["workItemId"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                spawned.entry(id).or_insert(at);
            }
            "agent:status_changed" if data["to"] == "failed" => failed_sessions += 1,
            _ => {}
        }
    }
    let resize_at = resize_at.unwrap_or(0.0);
    let mut spawn_times: Vec<f64> = spawned.values().cloned().collect();
    spawn_times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mut done_times: Vec<f64> = done_at.values().cloned().collect();
    done_times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    // The k-th agent to start had a free slot from the resize (first `pool` of them) or from
    // the (k - pool)-th item to finish: the delay from there to its process running.
    let mut delay: Vec<f64> = spawn_times
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let free = if k < pool {
                resize_at
            } else {
                done_times.get(k - pool).cloned().unwrap_or(resize_at)
            };
            ((s - free) * 1000.0).max(0.0)
        })
        .collect();
    let mut claim_to_spawn: Vec<f64> = spawned
        .iter()
        .filter_map(|(id, s)| in_flight.get(id).map(|c| (s - c) * 1000.0))
        .collect();
    let mut spawn_to_done: Vec<f64> = spawned
        .iter()
        .filter_map(|(id, s)| done_at.get(id).map(|d| (d - s) * 1000.0))
        .collect();
    let first_spawn_ms = spawn_times
        .first()
        .map(|s| (s - resize_at) * 1000.0)
        .unwrap_or(0.0);
    let delay_s = summary(&mut delay);
    let c2s = summary(&mut claim_to_spawn);
    let s2d = summary(&mut spawn_to_done);
    json!({
        "n": n,
        "pool": pool,
        "sandbox_config": sandbox,
        "sandbox": sandbox_active,
        "done": done,
        "blocked": blocked,
        "failed_sessions": failed_sessions,
        "wall_secs": round(wall, 3),
        "items_per_s": round(done as f64 / wall, 1),
        "first_spawn_ms": round(first_spawn_ms, 2),
        "delay_p50_ms": round(delay_s.p50, 2),
        "delay_p99_ms": round(delay_s.p99, 2),
        "claim_to_spawn_p50_ms": round(c2s.p50, 2),
        "claim_to_spawn_p99_ms": round(c2s.p99, 2),
        "spawn_to_done_p50_ms": round(s2d.p50, 2),
        "spawn_to_done_p99_ms": round(s2d.p99, 2),
        "server_cpu_secs": round(cpu, 2),
        "events_seen": events.as_array().map_or(0, Vec::len),
        "create": fill_json,
    })
}

// ---- Events over WebSocket -------------------------------------------------------------------

struct ClientResult {
    /// (seq, arrival) of each `work:added` after the warm-up item.
    added: Vec<(u64, Instant)>,
    /// seq -> item id (client 0 only).
    ids: Vec<(u64, String)>,
    events: u64,
    gaps: u64,
    last_event: Option<Instant>,
    closed: Option<String>,
}

fn ws_client(
    url: &str,
    index: usize,
    expect: usize,
    connected: Arc<AtomicUsize>,
    warmed: Arc<AtomicUsize>,
    finished: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> ClientResult {
    use tungstenite::client::IntoClientRequest;
    use tungstenite::Message;
    let mut result = ClientResult {
        added: Vec::with_capacity(expect + 1),
        ids: Vec::new(),
        events: 0,
        gaps: 0,
        last_event: None,
        closed: None,
    };
    let host = crate::http::host_of(url);
    let stream = match std::net::TcpStream::connect(&host) {
        Ok(s) => s,
        Err(e) => {
            result.closed = Some(format!("connect: {e}"));
            connected.fetch_add(1, Ordering::SeqCst);
            return result;
        }
    };
    let _ = stream.set_nodelay(true);
    let mut request = match format!("ws://{host}/ws").into_client_request() {
        Ok(r) => r,
        Err(e) => {
            result.closed = Some(format!("handshake: {e}"));
            connected.fetch_add(1, Ordering::SeqCst);
            return result;
        }
    };
    if let Some(token) = crate::http::token_of(&host) {
        if let Ok(value) = format!("Bearer {token}").parse() {
            request.headers_mut().insert("Authorization", value);
        }
    }
    let (mut ws, _) = match tungstenite::client(request, stream) {
        Ok(v) => v,
        Err(e) => {
            result.closed = Some(format!("handshake: {e}"));
            connected.fetch_add(1, Ordering::SeqCst);
            return result;
        }
    };
    let _ = ws
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(100)));
    connected.fetch_add(1, Ordering::SeqCst);
    let mut warm = false;
    let mut prev_seq: Option<u64> = None;
    let mut added_after_warm = 0usize;
    let mut reported = false;
    while !stop.load(Ordering::Relaxed) {
        let msg = match ws.read() {
            Ok(m) => m,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => {
                result.closed = Some(e.to_string());
                break;
            }
        };
        let now = Instant::now();
        let text = match &msg {
            Message::Text(t) => t.as_str(),
            Message::Close(c) => {
                result.closed = Some(format!("closed by server: {c:?}"));
                break;
            }
            _ => continue,
        };
        result.events += 1;
        result.last_event = Some(now);
        if let Some(seq) = u64_after(text, "\"seq\":") {
            if let Some(p) = prev_seq {
                if seq != p + 1 {
                    result.gaps += 1;
                }
            }
            prev_seq = Some(seq);
            if text.contains("\"type\":\"work:added\"") {
                if !warm {
                    warm = true;
                    warmed.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                result.added.push((seq, now));
                if index == 0 {
                    if let Some(id) = text
                        .find("\"item\":")
                        .and_then(|i| str_after(&text[i..], "\"id\":\""))
                    {
                        result.ids.push((seq, id.to_string()));
                    }
                }
                added_after_warm += 1;
                if added_after_warm >= expect && !reported {
                    reported = true;
                    finished.fetch_add(1, Ordering::SeqCst);
                }
            }
        } else if text.contains("monitor:gap") {
            result.gaps += 1;
        }
    }
    if !reported {
        finished.fetch_add(1, Ordering::SeqCst);
    }
    let _ = ws.close(None);
    result
}

pub fn events_bench(args: &Args) -> Value {
    let bin = args.path("bin");
    let work = args.path("work");
    let n = args.usize_or("n", 20_000);
    let conc = args.usize_or("conc", 64);
    let clients = args.usize_or("clients", 200);
    let server = Server::start(&bin, &fresh_dir(&work, "events"), &Setup::default());
    let connected = Arc::new(AtomicUsize::new(0));
    let warmed = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for i in 0..clients {
        let (url, c, w, f, s) = (
            server.url.clone(),
            connected.clone(),
            warmed.clone(),
            finished.clone(),
            stop.clone(),
        );
        handles.push(
            std::thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || ws_client(&url, i, n, c, w, f, s))
                .expect("ws thread"),
        );
    }
    let wait_until = |counter: &AtomicUsize, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while counter.load(Ordering::SeqCst) < clients {
            if Instant::now() > deadline {
                eprintln!(
                    "events: only {} of {clients} clients {what} after 60 s",
                    counter.load(Ordering::SeqCst)
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_until(&connected, "connected");
    // One warm-up item: once every client has seen it, every client is subscribed.
    let mut conn = Conn::open(&server.url).expect("connect");
    let r = conn
        .request(
            "POST",
            "/api/items",
            Some("{\"title\":\"warm-up\",\"status\":\"ready\"}"),
        )
        .expect("warm-up item");
    assert_eq!(r.status, 201);
    wait_until(&warmed, "saw the warm-up event");
    let rss_connected = server.rss_kib();

    let cpu0 = server.cpu_secs();
    let mut run = enqueue(&server.url, n, conc, true, "event");
    let enqueue_end = Instant::now();
    // Every client has all the events, or 60 s passed.
    let deadline = enqueue_end + Duration::from_secs(60);
    while finished.load(Ordering::SeqCst) < clients && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let drained = Instant::now();
    let cpu = server.cpu_secs() - cpu0;
    let rss = server.rss_kib();
    stop.store(true, Ordering::SeqCst);
    let results: Vec<ClientResult> = handles
        .into_iter()
        .map(|h| h.join().expect("ws client"))
        .collect();
    server.stop();

    let acks: HashMap<String, Instant> = run.acks.drain(..).collect();
    let seq_ack: HashMap<u64, Instant> = results
        .first()
        .map(|r| {
            r.ids
                .iter()
                .filter_map(|(seq, id)| acks.get(id).map(|t| (*seq, *t)))
                .collect()
        })
        .unwrap_or_default();
    let mut lat = Vec::with_capacity(clients * n);
    let mut early = 0u64;
    let mut unmatched = 0u64;
    let mut total_events = 0u64;
    let mut last_event = run.started;
    let mut clients_missing = 0;
    let mut clients_with_gaps = 0;
    let mut clients_closed = 0;
    let mut missing_events = 0u64;
    let mut close_reasons: Vec<String> = Vec::new();
    for r in &results {
        total_events += r.events;
        if let Some(t) = r.last_event {
            last_event = last_event.max(t);
        }
        if r.added.len() < n {
            clients_missing += 1;
            missing_events += (n - r.added.len()) as u64;
        }
        if r.gaps > 0 {
            clients_with_gaps += 1;
        }
        if let Some(c) = &r.closed {
            clients_closed += 1;
            if close_reasons.len() < 5 {
                close_reasons.push(c.clone());
            }
        }
        for (seq, at) in &r.added {
            match seq_ack.get(seq) {
                Some(ack) => {
                    if at < ack {
                        early += 1;
                        lat.push(0.0);
                    } else {
                        lat.push(ms(*at - *ack));
                    }
                }
                None => unmatched += 1,
            }
        }
    }
    let window = (last_event.max(enqueue_end) - run.started).as_secs_f64();
    let enq = enqueue_json(&mut run, n, conc);
    merge(
        json!({
            "n": n,
            "clients": clients,
            "clients_connected": results.iter().filter(|r| r.closed.as_deref().is_none_or(|c| !c.starts_with("connect") && !c.starts_with("handshake"))).count(),
            "events_delivered": total_events,
            "window_secs": round(window, 3),
            "events_per_s": round(total_events as f64 / window, 1),
            "drain_after_enqueue_ms": round(ms(drained - enqueue_end), 1),
            "latency_samples": lat.len(),
            "early": early,
            "unmatched": unmatched,
            "clients_missing_events": clients_missing,
            "missing_events": missing_events,
            "clients_with_seq_gaps": clients_with_gaps,
            "clients_closed": clients_closed,
            "close_reasons": close_reasons,
            "server_cpu_secs": round(cpu, 2),
            "server_rss_kib_connected": rss_connected,
            "server_rss_kib_after": rss,
            "enqueue": enq,
        }),
        lat_json(&mut lat),
    )
}

// ---- Scale: 1k vs 100k items -----------------------------------------------------------------

/// One claim on `conn`; its latency in ms.
pub fn one_claim(conn: &mut Conn, i: usize) -> f64 {
    let body = format!("{{\"agentId\":\"seq\",\"sessionKey\":\"s{i}\"}}");
    let t = Instant::now();
    let r = conn
        .request("POST", "/api/claim", Some(&body))
        .expect("claim");
    let d = ms(t.elapsed());
    assert_eq!(r.status, 200, "claim {i}: HTTP {} {}", r.status, r.text());
    d
}

/// How many times the scale benchmark loads the first page of items.
const FIRST_PAGES: usize = 200;

pub fn scale_bench(args: &Args) -> Value {
    let bin = args.path("bin");
    let work = args.path("work");
    let sizes = args.list("items");
    let claims = args.usize_or("claims", 500);
    let restarts = args.usize_or("restarts", 3).max(1);
    let conc = args.usize_or("conc", 64);
    let mut results: Vec<serde_json::Map<String, Value>> = Vec::new();
    let mut servers: Vec<Server> = Vec::new();
    for &n in &sizes {
        let dir = work.join(format!("scale-{n}"));
        let server = Server::start(&bin, &dir, &Setup::default());
        let first_startup = ms(server.startup);
        let mut fill = enqueue(&server.url, n, conc, false, "scale");
        let fill_json = enqueue_json(&mut fill, n, conc);
        std::thread::sleep(Duration::from_secs(2));
        let rss_after_fill = server.rss_kib();
        // What the board loads first: the first page of items (500).
        let mut conn = Conn::open(&server.url).expect("connect");
        let mut pages = Vec::with_capacity(FIRST_PAGES);
        let mut list_bytes = 0;
        for _ in 0..FIRST_PAGES {
            let t = Instant::now();
            let r = conn
                .request("GET", "/api/items", None)
                .expect("GET /api/items");
            pages.push(ms(t.elapsed()));
            list_bytes = r.body.len();
        }
        let first_page = summary(&mut pages);
        let t = Instant::now();
        let _ = conn
            .request("GET", "/api/status", None)
            .expect("GET /api/status");
        let status_ms = ms(t.elapsed());
        drop(conn);
        server.stop();

        let mut startups = Vec::new();
        let mut server = None;
        for _ in 0..restarts {
            drop(server.take());
            let s = Server::boot(&bin, &dir);
            startups.push(ms(s.startup));
            server = Some(s);
        }
        let server = server.expect("server");
        std::thread::sleep(Duration::from_secs(2));
        let rss_idle = server.rss_kib();
        let startup = percentile(&mut startups.clone(), 50.0);
        let mut m = serde_json::Map::new();
        m.insert("items".into(), json!(n));
        m.insert("fill".into(), fill_json);
        m.insert("first_startup_ms".into(), json!(round(first_startup, 2)));
        m.insert("startup_ms".into(), json!(round(startup, 2)));
        m.insert(
            "startups_ms".into(),
            json!(startups.iter().map(|v| round(*v, 2)).collect::<Vec<_>>()),
        );
        m.insert("rss_kib_after_fill".into(), json!(rss_after_fill));
        m.insert("rss_kib_idle_after_restart".into(), json!(rss_idle));
        m.insert("first_page_p50_ms".into(), json!(round(first_page.p50, 2)));
        m.insert("first_page_p99_ms".into(), json!(round(first_page.p99, 2)));
        m.insert("first_page_bytes".into(), json!(list_bytes));
        m.insert("status_ms".into(), json!(round(status_ms, 2)));
        results.push(m);
        servers.push(server);
    }

    // Sequential claims, alternating between the servers (all idle otherwise), so that
    // whatever else the machine is doing weighs on every size alike.
    let k = sizes.iter().map(|n| claims.min(*n)).min().unwrap_or(0);
    let mut conns: Vec<Conn> = servers
        .iter()
        .map(|s| Conn::open(&s.url).expect("connect"))
        .collect();
    let mut lat: Vec<Vec<f64>> = vec![Vec::with_capacity(k); servers.len()];
    for i in 0..k {
        for (j, conn) in conns.iter_mut().enumerate() {
            lat[j].push(one_claim(conn, i));
        }
    }
    drop(conns);
    let mut out = serde_json::Map::new();
    for ((m, server), mut l) in results.into_iter().zip(servers).zip(lat) {
        let mut m = m;
        m.insert("rss_kib_after_claims".into(), json!(server.rss_kib()));
        server.stop();
        let s = summary(&mut l);
        m.insert("claims".into(), json!(l.len()));
        m.insert("claim_p50_ms".into(), json!(round(s.p50, 3)));
        m.insert("claim_p99_ms".into(), json!(round(s.p99, 3)));
        m.insert("claim_mean_ms".into(), json!(round(s.mean, 3)));
        let n = m["items"].as_u64().unwrap_or(0);
        out.insert(n.to_string(), Value::Object(m));
    }
    if args.usize_or("keep", 0) == 0 {
        for &n in &sizes {
            let _ = std::fs::remove_dir_all(work.join(format!("scale-{n}")));
        }
    }
    Value::Object(out)
}

// ---- pgbench output --------------------------------------------------------------------------

/// Reads pgbench's stdout (`tps = ...`) and its per-transaction logs (`--log`, one file per
/// thread: `PREFIX.PID[.N]`, third column the latency in microseconds).
pub fn pgbench_summary(args: &Args) -> Value {
    let stdout = std::fs::read_to_string(args.path("stdout")).unwrap_or_default();
    let prefix = args.path("logs");
    let dir = prefix.parent().unwrap_or(Path::new(".")).to_path_buf();
    let stem = prefix
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut lat = Vec::new();
    let mut failed = 0u64;
    for entry in std::fs::read_dir(&dir).expect("pgbench log dir").flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        // pgbench's logs are PREFIX.PID and PREFIX.PID.THREAD.
        let Some(suffix) = name.strip_prefix(&format!("{stem}.")) else {
            continue;
        };
        if suffix.is_empty() || !suffix.chars().all(|c| c.is_ascii_digit() || c == '.') {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines() {
            let cols: Vec<&str> = line.split_whitespace().collect();
            match cols.get(2).map(|c| c.parse::<f64>()) {
                Some(Ok(us)) => lat.push(us / 1000.0),
                _ => failed += 1,
            }
        }
    }
    let tps = stdout
        .lines()
        .find(|l| l.starts_with("tps = ") && l.contains("without initial connection"))
        .or_else(|| stdout.lines().find(|l| l.starts_with("tps = ")))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    let processed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
        .unwrap_or("")
        .trim()
        .to_string();
    let aborted = stdout.matches("aborted").count();
    let failed_txns = stdout
        .lines()
        .find_map(|l| l.strip_prefix("number of failed transactions: "))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    merge(
        json!({
            "tps": round(tps, 1),
            "processed": processed,
            "logged": lat.len(),
            "unparsed_log_lines": failed,
            "aborted_mentions": aborted,
            "failed_transactions": failed_txns,
        }),
        lat_json(&mut lat),
    )
}

// ---- Repeated runs -----------------------------------------------------------------------------

/// Of several runs' JSON files, the run whose `--key` is the median, with every run's value of
/// that key under `runs`.
pub fn median(args: &Args) -> Value {
    let key = args.str("key");
    let mut runs: Vec<(f64, Value)> = args
        .str("files")
        .split(',')
        .filter(|f| !f.is_empty())
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{f}: {e}"));
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
            (v[key.as_str()].as_f64().unwrap_or(f64::NAN), v)
        })
        .collect();
    assert!(!runs.is_empty(), "median: no --files");
    let values: Vec<f64> = runs.iter().map(|(k, _)| *k).collect();
    runs.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    let (_, mut chosen) = runs.swap_remove((runs.len() - 1) / 2);
    if let Some(o) = chosen.as_object_mut() {
        o.insert("runs_key".into(), json!(key));
        o.insert("runs".into(), json!(values));
    }
    chosen
}
