//! `results.md` and `results.json` from the raw JSON files the benchmarks wrote.

use crate::stats::round;
use crate::Args;
use serde_json::{json, Map, Value};
use std::fmt::Write;

pub(crate) struct Row {
    pub id: &'static str,
    pub figure: String,
    pub flightdeck: Option<f64>,
    pub reference: Option<f64>,
    pub unit: &'static str,
    /// Some: the ratio shown (flightdeck / reference unless said otherwise).
    pub ratio: Option<f64>,
    pub target: &'static str,
    pub met: Option<bool>,
}

pub(crate) fn num(v: &Value, path: &[&str]) -> Option<f64> {
    let mut v = v;
    for p in path {
        v = v.get(p)?;
    }
    v.as_f64()
}

fn fmt(v: Option<f64>, unit: &str) -> String {
    match v {
        None => "-".into(),
        Some(v) if v.abs() >= 1000.0 => format!("{}{unit}", group(v.round() as i64)),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}{unit}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}{unit}"),
        Some(v) => format!("{v:.2}{unit}"),
    }
}

pub(crate) fn group(v: i64) -> String {
    let s = v.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0 {
        format!("-{out}")
    } else {
        out
    }
}

pub(crate) fn div(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

/// Why a target is missed: what the profile of this run pointed at. Shown only for targets
/// the run missed.
fn why(id: &str) -> &'static str {
    match id {
        "enqueue_rate" | "enqueue_p99" => include_str!("../../notes/enqueue.md"),
        "claim_rate" | "claim_p99" | "claim_chain_rate" => include_str!("../../notes/claim.md"),
        "dispatch_off" | "dispatch_sandbox" => include_str!("../../notes/dispatch.md"),
        "runners_dispatch" => include_str!("../../notes/runners.md"),
        "events_p99" | "events_missed" => include_str!("../../notes/events.md"),
        "scale_claim_p50" | "scale_claim_p99" => include_str!("../../notes/scale.md"),
        "idle_rss" => include_str!("../../notes/memory.md"),
        "peak_rss_output" | "peak_rss_ws" => include_str!("../../notes/peak-memory.md"),
        id if id.starts_with("scale_sizes") => include_str!("../../notes/scale-sizes.md"),
        _ => "",
    }
}

pub fn report(args: &Args) {
    let raw_dir = args.path("raw");
    let mut raw = Map::new();
    let mut names: Vec<_> = std::fs::read_dir(&raw_dir)
        .expect("raw dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    for path in names {
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        match serde_json::from_str::<Value>(&text) {
            Ok(v) => {
                raw.insert(stem, v);
            }
            Err(e) => eprintln!("report: {} is not JSON ({e}); left out", path.display()),
        }
    }
    let get = |k: &str| raw.get(k).cloned().unwrap_or(Value::Null);
    let (enq, pg_enq, claim, pg_claim, floor) = (
        get("enqueue"),
        get("pg_enqueue"),
        get("claim"),
        get("pg_claim"),
        get("floor"),
    );
    let enq_listing = get("enqueue_listing");
    let (d_off, d_sb, xargs, events, scale, meta) = (
        get("dispatch_off"),
        get("dispatch_sandbox"),
        get("xargs"),
        get("events"),
        get("scale"),
        get("meta"),
    );
    let (mem_output, mem_ws, mem_meta) =
        (get("memory_output"), get("memory_ws"), get("memory_meta"));
    let mut sizes: Vec<(u64, Value)> = scale
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| k.parse::<u64>().ok().map(|n| (n, v.clone())))
                .collect()
        })
        .unwrap_or_default();
    sizes.sort_by_key(|(n, _)| *n);
    let (small_n, small) = sizes.first().cloned().unwrap_or((0, Value::Null));
    let (large_n, large) = sizes.last().cloned().unwrap_or((0, Value::Null));

    let mut rows = Vec::new();
    let higher = |id, figure: String, fd, rf, unit, target: &'static str, min: Option<f64>| {
        let ratio = div(fd, rf);
        Row {
            id,
            figure,
            flightdeck: fd,
            reference: rf,
            unit,
            ratio,
            target,
            met: min.and_then(|m| ratio.map(|r| r >= m)),
        }
    };
    let lower = |id, figure: String, fd, rf, unit, target: &'static str, max: Option<f64>| {
        let ratio = div(fd, rf);
        Row {
            id,
            figure,
            flightdeck: fd,
            reference: rf,
            unit,
            ratio,
            target,
            met: max.and_then(|m| ratio.map(|r| r <= m)),
        }
    };
    let n_enq = num(&enq, &["n"]).unwrap_or(0.0) as i64;
    rows.push(higher(
        "enqueue_rate",
        format!("Enqueue: {} items, 64 clients (items/s)", group(n_enq)),
        num(&enq, &["items_per_s"]),
        num(&pg_enq, &["tps"]),
        "",
        ">= 2.0",
        Some(2.0),
    ));
    rows.push(lower(
        "enqueue_p50",
        "Enqueue latency p50 (ms)".into(),
        num(&enq, &["p50_ms"]),
        num(&pg_enq, &["p50_ms"]),
        "",
        "info",
        None,
    ));
    rows.push(lower(
        "enqueue_p99",
        "Enqueue latency p99 (ms)".into(),
        num(&enq, &["p99_ms"]),
        num(&pg_enq, &["p99_ms"]),
        "",
        "<= 1.0",
        Some(1.0),
    ));
    rows.push(higher(
        "enqueue_listing",
        format!(
            "Enqueue with {} clients listing items all along vs enqueue alone (items/s)",
            num(&enq_listing, &["listers"]).unwrap_or(0.0)
        ),
        num(&enq_listing, &["items_per_s"]),
        num(&enq, &["items_per_s"]),
        "",
        ">= 0.9",
        Some(0.9),
    ));
    let n_claim = num(&claim, &["cycles"]).unwrap_or(0.0) as i64;
    rows.push(higher(
        "claim_rate",
        format!(
            "Claim + complete: {} cycles, 32 workers (cycles/s)",
            group(n_claim)
        ),
        num(&claim, &["cycles_per_s"]),
        num(&pg_claim, &["tps"]),
        "",
        ">= 1.2",
        Some(1.2),
    ));
    let claim_chain = get("claim_chain");
    rows.push(higher(
        "claim_chain_rate",
        format!(
            "Claim + complete, chained: each completion claims the worker's next item (`claimNext`), {} cycles, 32 workers (cycles/s)",
            group(num(&claim_chain, &["cycles"]).unwrap_or(0.0) as i64)
        ),
        num(&claim_chain, &["cycles_per_s"]),
        num(&pg_claim, &["tps"]),
        "",
        ">= 1.2",
        Some(1.2),
    ));
    rows.push(lower(
        "claim_p50",
        "Claim + complete cycle p50 (ms)".into(),
        num(&claim, &["p50_ms"]),
        num(&pg_claim, &["p50_ms"]),
        "",
        "info",
        None,
    ));
    rows.push(lower(
        "claim_p99",
        "Claim + complete cycle p99 (ms)".into(),
        num(&claim, &["p99_ms"]),
        num(&pg_claim, &["p99_ms"]),
        "",
        "<= 1.0",
        Some(1.0),
    ));
    rows.push(higher(
        "floor_multiple",
        "Enqueue rate (items/s) vs the store floor: durable redb tx/s, one ~300 B item each, 1 thread".into(),
        num(&enq, &["items_per_s"]),
        num(&floor, &["tx_per_s"]),
        "",
        "info (multiple)",
        None,
    ));
    rows.push(higher(
        "floor_batched",
        format!(
            "Enqueue rate (items/s) vs redb with {} items per durable tx (group-commit ceiling)",
            num(&floor, &["batch"]).unwrap_or(0.0)
        ),
        num(&enq, &["items_per_s"]),
        num(&floor, &["batched_items_per_s"]),
        "",
        "info",
        None,
    ));
    rows.push(higher(
        "floor_batched_sequential",
        format!(
            "Enqueue rate (items/s) vs redb with {} items per durable tx, time-ordered keys",
            num(&floor, &["batch"]).unwrap_or(0.0)
        ),
        num(&enq, &["items_per_s"]),
        num(&floor, &["batched_sequential_items_per_s"]),
        "",
        "info",
        None,
    ));
    let n_dispatch = num(&d_off, &["n"]).unwrap_or(0.0) as i64;
    rows.push(lower(
        "dispatch_off",
        format!(
            "Dispatch {} items, pool 8, `touch done` agent, sandbox off: wall (s) vs xargs -P 8",
            group(n_dispatch)
        ),
        num(&d_off, &["wall_secs"]),
        num(&xargs, &["wall_secs"]),
        "",
        "<= 1.5",
        Some(1.5),
    ));
    rows.push(lower(
        "dispatch_sandbox",
        format!(
            "Dispatch, default sandbox (`{}`): wall (s) vs xargs -P 8",
            d_sb["sandbox"].as_str().unwrap_or("?")
        ),
        num(&d_sb, &["wall_secs"]),
        num(&xargs, &["wall_secs"]),
        "",
        "<= 1.3",
        Some(1.3),
    ));
    for (id, label, v) in [
        ("dispatch_delay_off", "sandbox off", &d_off),
        ("dispatch_delay_sandbox", "default sandbox", &d_sb),
    ] {
        rows.push(Row {
            id,
            figure: format!("Dispatch delay, slot free -> agent spawned, p50 (ms), {label}"),
            flightdeck: num(v, &["delay_p50_ms"]),
            reference: None,
            unit: "",
            ratio: None,
            target: "info",
            met: None,
        });
    }
    let clients = num(&events, &["clients"]).unwrap_or(0.0) as i64;
    rows.push(Row {
        id: "events_rate",
        figure: format!(
            "Events delivered/s, {clients} WebSocket clients, {} items enqueued",
            group(num(&events, &["n"]).unwrap_or(0.0) as i64)
        ),
        flightdeck: num(&events, &["events_per_s"]),
        reference: None,
        unit: "",
        ratio: None,
        target: "info",
        met: None,
    });
    rows.push(lower(
        "events_p99",
        "Events: 201 received -> `work:added` arrives, p99 (ms); reference = the target".into(),
        num(&events, &["p99_ms"]),
        Some(50.0),
        "",
        "< 1.0",
        Some(1.0),
    ));
    let missed = num(&events, &["clients_missing_events"]).unwrap_or(0.0)
        + num(&events, &["clients_with_seq_gaps"]).unwrap_or(0.0);
    rows.push(Row {
        id: "events_missed",
        figure: "Events: clients that missed an event (missing or seq gap)".into(),
        flightdeck: events.is_object().then_some(missed),
        reference: Some(0.0),
        unit: "",
        ratio: None,
        target: "0",
        met: events.is_object().then_some(missed == 0.0),
    });
    let (sl, ll) = (group(small_n as i64), group(large_n as i64));
    rows.push(lower(
        "scale_claim_p50",
        format!("Sequential claim p50 (ms), {ll} vs {sl} items"),
        num(&large, &["claim_p50_ms"]),
        num(&small, &["claim_p50_ms"]),
        "",
        "<= 1.5",
        Some(1.5),
    ));
    rows.push(lower(
        "scale_claim_p99",
        format!("Sequential claim p99 (ms), {ll} vs {sl} items"),
        num(&large, &["claim_p99_ms"]),
        num(&small, &["claim_p99_ms"]),
        "",
        "<= 1.5",
        Some(1.5),
    ));
    rows.push(lower(
        "scale_startup",
        format!("Start-up to listening (ms), {ll} vs {sl} items"),
        num(&large, &["startup_ms"]),
        num(&small, &["startup_ms"]),
        "",
        "info",
        None,
    ));
    let rss = |v: &Value| {
        let a = num(v, &["rss_kib_after_fill"]);
        let b = num(v, &["rss_kib_idle_after_restart"]);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b) / 1024.0),
            (a, b) => a.or(b).map(|v| v / 1024.0),
        }
    };
    rows.push(lower(
        "idle_rss",
        format!("Idle resident memory with {ll} items (MiB); reference = the target"),
        rss(&large),
        Some(100.0),
        "",
        "< 1.0",
        Some(1.0),
    ));
    rows.push(Row {
        id: "fill_large",
        figure: format!("Filling {ll} items over HTTP, 64 clients (items/s)"),
        flightdeck: num(&large, &["fill", "items_per_s"]),
        reference: None,
        unit: "",
        ratio: None,
        target: "info",
        met: None,
    });
    rows.push(lower(
        "list_first_page",
        format!("GET /api/items first page (500 items) p99 (ms) with {ll} items; reference = the target"),
        num(&large, &["first_page_p99_ms"]),
        Some(10.0),
        "",
        "< 1.0",
        Some(1.0),
    ));
    rows.extend(crate::scale_report::rows(&get("scale_sizes")));

    rows.push(lower(
        "peak_rss_output",
        format!(
            "Peak memory while one agent prints {} MiB of output (MiB, VmHWM); reference = the target",
            num(&mem_output, &["output_mib"]).unwrap_or(0.0)
        ),
        num(&mem_output, &["server_hwm_mib"]),
        Some(300.0),
        "",
        "< 1.0",
        Some(1.0),
    ));
    rows.push(lower(
        "peak_rss_ws",
        format!(
            "Peak memory with {} WebSocket clients that never read, {} events of 19 KB (MiB, VmHWM); reference = the target",
            num(&mem_ws, &["clients"]).unwrap_or(0.0),
            group(num(&mem_ws, &["n"]).unwrap_or(0.0) as i64)
        ),
        num(&mem_ws, &["server_hwm_mib"]),
        Some(300.0),
        "",
        "< 1.0",
        Some(1.0),
    ));

    let (r_dispatch, r_leases) = (get("runners_dispatch"), get("runners_leases"));
    rows.push(lower(
        "runners_dispatch",
        format!(
            "Dispatch {} items by {} `flightdeck runner` processes x {} slots (agent writes one file): wall (s) vs the local pool of {}",
            group(num(&r_dispatch, &["n"]).unwrap_or(0.0) as i64),
            num(&r_dispatch, &["runners"]).unwrap_or(0.0),
            num(&r_dispatch, &["slots"]).unwrap_or(0.0) / num(&r_dispatch, &["runners"]).unwrap_or(1.0).max(1.0),
            num(&r_dispatch, &["slots"]).unwrap_or(0.0),
        ),
        num(&r_dispatch, &["remote", "wall_secs"]),
        num(&r_dispatch, &["pool", "wall_secs"]),
        "",
        "<= 1.5",
        Some(1.5),
    ));
    rows.push(lower(
        "runners_leases",
        format!(
            "{} live leases ({} runners over HTTP) renewed every {} s: server CPU over {} s (% of one core); reference = the target",
            group(num(&r_leases, &["claimed"]).unwrap_or(0.0) as i64),
            num(&r_leases, &["runners"]).unwrap_or(0.0),
            num(&r_leases, &["beat_secs"]).unwrap_or(0.0),
            num(&r_leases, &["window_secs"]).unwrap_or(0.0).round(),
        ),
        num(&r_leases, &["server_cpu_percent"]),
        Some(5.0),
        "",
        "< 1.0",
        Some(1.0),
    ));

    // ---- results.md ----
    let mode = meta["mode"].as_str().unwrap_or("?");
    let mut md = String::new();
    let _ = writeln!(md, "# flightdeck benchmark results\n");
    let _ = writeln!(
        md,
        "Written by `bench/run{}` on {} (commit {}). Machine: {}, {} cores, {}; {}. Every flightdeck figure is the release binary over loopback HTTP/WebSocket with a durable (fsync) redb store; the reference is PostgreSQL {} with `fsync=on`, `synchronous_commit=on`, driven by pgbench on the same machine with the same client count. Load generator and servers share the 2 cores. Each throughput benchmark ran {} time(s); the run shown is the median one (`runs` below lists them all). See `bench/README.md` for what each figure means.\n",
        if mode == "quick" { " --quick" } else { "" },
        meta["date"].as_str().unwrap_or("?"),
        meta["commit"].as_str().unwrap_or("?"),
        meta["cpu"].as_str().unwrap_or("?"),
        meta["cores"].as_str().unwrap_or("?"),
        meta["memory"].as_str().unwrap_or("?"),
        meta["kernel"].as_str().unwrap_or("?"),
        meta["postgres"].as_str().unwrap_or("?"),
        meta["repeat"].as_u64().unwrap_or(1),
    );
    let _ = writeln!(
        md,
        "Load average (1, 5, 15 min) when the benchmarks started: {}; when they ended: {}. The suite itself brings it to about 2; a higher start means other work shared the machine.\n",
        meta["loadavg_start"].as_str().unwrap_or("?"),
        meta["loadavg_end"].as_str().unwrap_or("?"),
    );
    if mode == "quick" {
        let _ = writeln!(
            md,
            "**Quick mode: small sizes, for checking that the suite runs. These numbers are not the results.**\n"
        );
    }
    let _ = writeln!(
        md,
        "| figure | flightdeck | reference | ratio | target | met |"
    );
    let _ = writeln!(md, "| --- | ---: | ---: | ---: | --- | --- |");
    for r in &rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            r.figure,
            fmt(r.flightdeck, r.unit),
            fmt(r.reference, r.unit),
            r.ratio
                .map(|v| format!("{v:.2}"))
                .unwrap_or_else(|| "-".into()),
            r.target,
            match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            }
        );
    }
    let _ = writeln!(
        md,
        "\nRatios are flightdeck / reference: throughput wants >= 1, times and latencies want <= the bound.\n"
    );

    let _ = writeln!(md, "## Details\n");
    let detail = |md: &mut String, label: &str, v: &Value, keys: &[&str]| {
        if !v.is_object() {
            return;
        }
        let parts: Vec<String> = keys
            .iter()
            .filter_map(|k| v.get(*k).map(|x| format!("{k} {x}")))
            .collect();
        let _ = writeln!(md, "- {label}: {}", parts.join(", "));
    };
    detail(
        &mut md,
        "Enqueue",
        &enq,
        &[
            "runs",
            "ok",
            "errors",
            "secs",
            "p50_ms",
            "p99_ms",
            "p999_ms",
            "max_ms",
            "server_cpu_secs",
        ],
    );
    detail(
        &mut md,
        "PostgreSQL INSERT",
        &pg_enq,
        &[
            "runs",
            "processed",
            "p50_ms",
            "p99_ms",
            "max_ms",
            "failed_transactions",
        ],
    );
    detail(
        &mut md,
        "Claim + complete",
        &claim,
        &[
            "runs",
            "cycles",
            "errors",
            "secs",
            "claim_p50_ms",
            "claim_p99_ms",
            "complete_p50_ms",
            "complete_p99_ms",
            "server_cpu_secs",
        ],
    );
    detail(
        &mut md,
        "PostgreSQL claim + complete",
        &pg_claim,
        &[
            "runs",
            "processed",
            "p50_ms",
            "p99_ms",
            "max_ms",
            "failed_transactions",
        ],
    );
    detail(
        &mut md,
        "redb floor",
        &floor,
        &[
            "runs",
            "tx",
            "value_bytes",
            "tx_per_s",
            "p50_ms",
            "p99_ms",
            "batch",
            "batched_items_per_s",
            "batched_sequential_items_per_s",
        ],
    );
    detail(
        &mut md,
        "Dispatch, sandbox off",
        &d_off,
        &[
            "runs",
            "done",
            "blocked",
            "wall_secs",
            "items_per_s",
            "first_spawn_ms",
            "delay_p50_ms",
            "delay_p99_ms",
            "claim_to_spawn_p50_ms",
            "spawn_to_done_p50_ms",
            "server_cpu_secs",
        ],
    );
    detail(
        &mut md,
        "Dispatch, default sandbox",
        &d_sb,
        &[
            "runs",
            "sandbox",
            "done",
            "blocked",
            "wall_secs",
            "items_per_s",
            "first_spawn_ms",
            "delay_p50_ms",
            "delay_p99_ms",
            "claim_to_spawn_p50_ms",
            "spawn_to_done_p50_ms",
            "server_cpu_secs",
        ],
    );
    detail(
        &mut md,
        "xargs floor",
        &xargs,
        &["runs", "n", "parallel", "wall_secs"],
    );
    detail(
        &mut md,
        "Events",
        &events,
        &[
            "runs",
            "clients_connected",
            "events_delivered",
            "events_per_s",
            "p50_ms",
            "p99_ms",
            "max_ms",
            "early",
            "clients_missing_events",
            "clients_with_seq_gaps",
            "clients_closed",
            "drain_after_enqueue_ms",
            "server_cpu_secs",
            "server_rss_kib_connected",
        ],
    );
    if let Some(e) = events.get("enqueue") {
        detail(
            &mut md,
            "Enqueue during the events run",
            e,
            &["items_per_s", "p50_ms", "p99_ms"],
        );
    }
    for (n, v) in &sizes {
        detail(
            &mut md,
            &format!("Scale, {} items", group(*n as i64)),
            v,
            &[
                "startup_ms",
                "first_startup_ms",
                "claim_p50_ms",
                "claim_p99_ms",
                "rss_kib_after_fill",
                "rss_kib_idle_after_restart",
                "first_page_p50_ms",
                "first_page_p99_ms",
                "status_ms",
            ],
        );
        if let Some(f) = v.get("fill") {
            detail(
                &mut md,
                &format!("Fill, {} items", group(*n as i64)),
                f,
                &["secs", "items_per_s", "p99_ms", "errors"],
            );
        }
    }
    crate::scale_report::details(&mut md, &get("scale_sizes"), &get("scale_sizes_meta"));

    detail(
        &mut md,
        "Peak memory, agent output",
        &mem_output,
        &[
            "output_mib",
            "item_status",
            "wall_secs",
            "events_total",
            "server_hwm_kib",
            "server_rss_kib_idle_before",
            "server_cpu_secs",
        ],
    );
    detail(
        &mut md,
        "Peak memory, WebSocket clients that never read",
        &mem_ws,
        &[
            "clients_connected",
            "n",
            "description_bytes",
            "enqueue_secs",
            "enqueue_errors",
            "idle_clients_dropped",
            "close_reasons",
            "reader_received",
            "reader_gap_notices",
            "reader_closed",
            "server_rss_kib_connected",
            "server_hwm_kib",
            "server_cpu_secs",
        ],
    );
    if mem_meta.is_object() {
        let _ = writeln!(
            md,
            "- The peak-memory figures were measured on their own by `bench/run --memory` on {} (commit {}, load average {}); the other figures come from the full run above.",
            mem_meta["date"].as_str().unwrap_or("?"),
            mem_meta["commit"].as_str().unwrap_or("?"),
            mem_meta["loadavg"].as_str().unwrap_or("?"),
        );
    }

    detail(
        &mut md,
        "Runners, dispatch (local pool)",
        &r_dispatch["pool"],
        &[
            "n",
            "slots",
            "done",
            "blocked",
            "wall_secs",
            "items_per_s",
            "server_cpu_secs",
        ],
    );
    detail(
        &mut md,
        "Runners, dispatch (runner processes)",
        &r_dispatch["remote"],
        &[
            "n",
            "runners",
            "slots",
            "done",
            "blocked",
            "wall_secs",
            "items_per_s",
            "server_cpu_secs",
        ],
    );
    detail(
        &mut md,
        "Runners, live leases",
        &r_leases,
        &[
            "leases",
            "claimed",
            "runners",
            "beat_secs",
            "window_secs",
            "heartbeats_in_window",
            "heartbeat_failures",
            "leases_renewed_per_beat",
            "in_flight_at_end",
            "server_cpu_secs",
            "server_cpu_percent",
        ],
    );
    let runners_meta = get("runners_meta");
    if runners_meta.is_object() {
        let _ = writeln!(
            md,
            "- The runner figures were measured on their own by `bench/run --runners` on {} (commit {}, load average {}); the other figures come from the full run above.",
            runners_meta["date"].as_str().unwrap_or("?"),
            runners_meta["commit"].as_str().unwrap_or("?"),
            runners_meta["loadavg"].as_str().unwrap_or("?"),
        );
    }

    let missed: Vec<&Row> = rows.iter().filter(|r| r.met == Some(false)).collect();
    let _ = writeln!(md, "\n## Where a target is missed and why\n");
    if missed.is_empty() {
        let _ = writeln!(md, "Every target is met in this run.");
    }
    let mut explained = std::collections::HashSet::new();
    for r in &missed {
        let _ = writeln!(
            md,
            "- **{}**: {} against {} (ratio {}, target {}).",
            r.figure,
            fmt(r.flightdeck, r.unit),
            fmt(r.reference, r.unit),
            r.ratio
                .map(|v| format!("{v:.2}"))
                .unwrap_or_else(|| "-".into()),
            r.target
        );
    }
    for r in &missed {
        let text = why(r.id).trim();
        if !text.is_empty() && explained.insert(text) {
            let _ = writeln!(md, "\n{text}");
        }
    }
    std::fs::write(args.path("md"), md).expect("write results.md");

    // ---- results.json ----
    let figures: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "figure": r.figure,
                "flightdeck": r.flightdeck.map(|v| round(v, 3)),
                "reference": r.reference.map(|v| round(v, 3)),
                "ratio": r.ratio.map(|v| round(v, 3)),
                "target": r.target,
                "met": r.met,
            })
        })
        .collect();
    let out = json!({
        "mode": mode,
        "meta": meta,
        "figures": figures,
        "raw": Value::Object(raw),
    });
    std::fs::write(
        args.path("json"),
        serde_json::to_string_pretty(&out).expect("json") + "\n",
    )
    .expect("write results.json");
}
