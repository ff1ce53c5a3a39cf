//! The rows and details of `bench/run --scale` (see `scale_sizes.rs`) in `results.md`: the
//! largest store against the smallest, and the targets of issue 15 (start-up and the first
//! page at the size closest to 100,000, idle memory at the largest).

use crate::report::{div, group, num, Row};
use serde_json::Value;
use std::fmt::Write;

/// Idle resident memory after a restart at the largest size must stay under this (MiB).
const IDLE_RSS_MIB: f64 = 150.0;
/// Start-up to listening at the middle size (100,000 in the full mode) must stay under this (ms).
const STARTUP_MS: f64 = 50.0;
/// The first page of `GET /api/items` at the middle size, p99, must stay under this (ms).
const FIRST_PAGE_MS: f64 = 10.0;
/// The largest size's latencies must stay within this multiple of the smallest size's.
const LATENCY_RATIO: f64 = 1.5;

/// (size, its figures), smallest first.
fn sizes(scale: &Value) -> Vec<(u64, Value)> {
    let mut sizes: Vec<(u64, Value)> = scale
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| k.parse::<u64>().ok().map(|n| (n, v.clone())))
                .collect()
        })
        .unwrap_or_default();
    sizes.sort_by_key(|(n, _)| *n);
    sizes
}

fn row(
    id: &'static str,
    figure: String,
    flightdeck: Option<f64>,
    reference: Option<f64>,
    target: &'static str,
    max: Option<f64>,
) -> Row {
    let ratio = div(flightdeck, reference);
    Row {
        id,
        figure,
        flightdeck,
        reference,
        unit: "",
        ratio,
        target,
        met: max.and_then(|m| ratio.map(|r| r <= m)),
    }
}

pub fn rows(scale: &Value) -> Vec<Row> {
    let sizes = sizes(scale);
    let (Some(small), Some(large)) = (sizes.first(), sizes.last()) else {
        return Vec::new();
    };
    // The size the absolute start-up and first-page targets are set for.
    let middle = sizes
        .iter()
        .find(|(n, _)| *n == 100_000)
        .unwrap_or(&sizes[sizes.len() / 2]);
    let (s, m, l) = (
        group(small.0 as i64),
        group(middle.0 as i64),
        group(large.0 as i64),
    );
    let (small, middle, large) = (&small.1, &middle.1, &large.1);
    let ratio = Some(LATENCY_RATIO);
    vec![
        row(
            "scale_sizes_enqueue_one_p99",
            format!("Enqueue p99, 1 client, into a store of {l} vs {s} items (ms)"),
            num(large, &["enqueue_one_client", "p99_ms"]),
            num(small, &["enqueue_one_client", "p99_ms"]),
            "<= 1.5",
            ratio,
        ),
        row(
            "scale_sizes_enqueue_conc_p99",
            format!(
                "Enqueue p99, {} clients, into a store of {l} vs {s} items (ms)",
                num(large, &["enqueue_concurrent", "conc"]).unwrap_or(0.0)
            ),
            num(large, &["enqueue_concurrent", "p99_ms"]),
            num(small, &["enqueue_concurrent", "p99_ms"]),
            "<= 1.5",
            ratio,
        ),
        row(
            "scale_sizes_claim_p99",
            format!("Sequential claim p99 with {l} vs {s} items (ms)"),
            num(large, &["claim", "p99_ms"]),
            num(small, &["claim", "p99_ms"]),
            "<= 1.5",
            ratio,
        ),
        row(
            "scale_sizes_idle_rss",
            format!(
                "Idle resident memory after a restart with {l} items (MiB); reference = the target"
            ),
            num(large, &["rss_kib_idle_after_restart"]).map(|k| k / 1024.0),
            Some(IDLE_RSS_MIB),
            "< 1.0",
            Some(1.0),
        ),
        row(
            "scale_sizes_startup",
            format!("Start-up to listening with {m} items (ms); reference = the target"),
            num(middle, &["startup_ms"]),
            Some(STARTUP_MS),
            "< 1.0",
            Some(1.0),
        ),
        row(
            "scale_sizes_startup_large",
            format!("Start-up to listening (ms), {l} vs {s} items"),
            num(large, &["startup_ms"]),
            num(small, &["startup_ms"]),
            "info",
            None,
        ),
        row(
            "scale_sizes_first_page",
            format!("GET /api/items first page p99 with {m} items (ms); reference = the target"),
            num(middle, &["first_page", "p99_ms"]),
            Some(FIRST_PAGE_MS),
            "< 1.0",
            Some(1.0),
        ),
        row(
            "scale_sizes_first_page_large",
            format!("GET /api/items first page p99 (ms), {l} vs {s} items"),
            num(large, &["first_page", "p99_ms"]),
            num(small, &["first_page", "p99_ms"]),
            "info",
            None,
        ),
        row(
            "scale_sizes_bytes_per_item",
            format!("Store file bytes per item, {l} vs {s} items"),
            num(large, &["store_bytes_per_item"]),
            num(small, &["store_bytes_per_item"]),
            "info",
            None,
        ),
        row(
            "scale_sizes_fill",
            format!("Filling {l} items over HTTP, 64 clients (items/s), vs filling {s}"),
            num(large, &["fill", "items_per_s"]),
            num(small, &["fill", "items_per_s"]),
            "info",
            None,
        ),
    ]
}

fn field(v: &Value, key: &str) -> Option<String> {
    v.get(key).map(|x| format!("{key} {x}"))
}

fn latency(v: &Value, key: &str) -> Option<String> {
    let l = v.get(key)?;
    Some(format!(
        "{key} p50 {} / p99 {} / max {} ms (n {})",
        l["p50_ms"], l["p99_ms"], l["max_ms"], l["n"]
    ))
}

pub fn details(md: &mut String, scale: &Value, meta: &Value) {
    for (n, v) in sizes(scale) {
        let mut parts: Vec<String> = [
            "startup_ms",
            "startups_ms",
            "starts_that_repaired",
            "rss_kib_after_fill",
            "hwm_kib_fill",
            "rss_kib_idle_after_restart",
            "idle_wait_secs",
            "rss_kib_at_end",
            "store_bytes",
            "store_bytes_per_item",
            "items_at_end",
            "store_bytes_at_end",
        ]
        .iter()
        .filter_map(|k| field(&v, k))
        .collect();
        for key in [
            "enqueue_one_client",
            "enqueue_concurrent",
            "claim",
            "first_page",
        ] {
            parts.extend(latency(&v, key));
        }
        let _ = writeln!(
            md,
            "- At scale, {} items: {}",
            group(n as i64),
            parts.join(", ")
        );
        let fill = &v["fill"];
        if fill.is_object() {
            let tenths: Vec<String> = fill["tenths"]
                .as_array()
                .map(|t| t.iter().map(|x| x["items_per_s"].to_string()).collect())
                .unwrap_or_default();
            let _ = writeln!(
                md,
                "- Fill at scale, {} items: secs {}, items_per_s {}, errors {}, items/s by tenth [{}], load average {} at the start, {} at the end",
                group(n as i64),
                fill["secs"],
                fill["items_per_s"],
                fill["errors"],
                tenths.join(", "),
                fill["loadavg_start"].as_str().unwrap_or("?"),
                fill["loadavg_end"].as_str().unwrap_or("?"),
            );
        }
    }
    if !scale.is_object() {
        return;
    }
    let load = format!(
        "load average {} at the start, {} when the measurement rounds began, {} at the end; {} rounds, each through every size",
        scale["loadavg_start"].as_str().unwrap_or("?"),
        scale["loadavg_measure"].as_str().unwrap_or("?"),
        scale["loadavg_end"].as_str().unwrap_or("?"),
        scale["rounds"],
    );
    if meta.is_object() {
        let _ = writeln!(
            md,
            "- The scale figures (\"At scale\") were measured on their own by `bench/run --scale` on {} (commit {}; {load}); the other figures come from the full run above.",
            meta["date"].as_str().unwrap_or("?"),
            meta["commit"].as_str().unwrap_or("?"),
        );
    } else {
        let _ = writeln!(md, "- The scale figures (\"At scale\"): {load}.");
    }
}
