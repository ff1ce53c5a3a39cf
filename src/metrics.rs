//! What a server left running for days tells Prometheus: `GET /metrics` in the OpenMetrics
//! text format (which Prometheus scrapes as its own), every name prefixed `flightdeck_`.
//!
//! Two kinds of numbers live here. Counters and histograms are bumped where the thing happens:
//! the QueueManager counts claims, completions, failures and retries once their batch has
//! committed, and times each commit; the Dispatcher counts the sessions it starts; a session
//! counts the tokens its agent reports. Gauges are read from the actors that own them at
//! scrape time (items per status from the counts the store keeps, the pool from the
//! Dispatcher, the event seq and WebSocket clients from the Monitor, the store's file size),
//! so a scrape never walks the store.
//!
//! The registry is one per process (a server is one per process), so any part can record
//! without being handed a handle. Other parts use the small functions below, never the
//! registry itself; `rate_limit_pause_started`/`_ended` are for the agent rate-limit handling.

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::VecDeque;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PresetLabel {
    preset: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabel {
    preset: String,
    /// `input` or `output`.
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    /// How the attempt's session ended: `completed` or `failed`.
    outcome: String,
}

fn attempt_histogram() -> Histogram {
    // 1 s .. about 2.3 h.
    Histogram::new(exponential_buckets(1.0, 2.0, 14))
}

/// Every metric of the process.
struct Metrics {
    registry: Registry,
    items: Family<StatusLabel, Gauge>,
    claims: Counter,
    completions: Counter,
    failures: Counter,
    retries: Counter,
    attempt_duration: Family<OutcomeLabel, Histogram, fn() -> Histogram>,
    dispatch_delay: Histogram,
    pool_size: Gauge,
    pool_running: Gauge,
    sessions: Family<PresetLabel, Counter>,
    tokens: Family<TokenLabel, Counter>,
    tokens_today: Gauge,
    daily_token_budget: Gauge,
    rate_limit_pauses: Family<PresetLabel, Counter>,
    rate_limit_paused: Family<PresetLabel, Gauge>,
    websocket_clients: Gauge,
    event_seq: Gauge,
    store_bytes: Gauge,
    write_batch_size: Histogram,
    commit_seconds: Histogram,
    budget_exceeded: Counter,
    /// When recent failed attempts happened, newest last, for "failures in the last hour".
    recent_failures: Mutex<VecDeque<Instant>>,
}

/// The window of [`failures_last_hour`].
const RECENT_WINDOW: Duration = Duration::from_secs(3600);
/// Most failure times kept: past this the count reads as "at least" this many.
const RECENT_MAX: usize = 100_000;

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("flightdeck");
        let m = Metrics {
            items: Family::default(),
            claims: Counter::default(),
            completions: Counter::default(),
            failures: Counter::default(),
            retries: Counter::default(),
            attempt_duration: Family::new_with_constructor(attempt_histogram),
            // 10 ms .. about 45 min.
            dispatch_delay: Histogram::new(exponential_buckets(0.01, 4.0, 10)),
            pool_size: Gauge::default(),
            pool_running: Gauge::default(),
            sessions: Family::default(),
            tokens: Family::default(),
            tokens_today: Gauge::default(),
            daily_token_budget: Gauge::default(),
            rate_limit_pauses: Family::default(),
            rate_limit_paused: Family::default(),
            websocket_clients: Gauge::default(),
            event_seq: Gauge::default(),
            store_bytes: Gauge::default(),
            write_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            // 0.5 ms .. about 4 s.
            commit_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            budget_exceeded: Counter::default(),
            recent_failures: Mutex::new(VecDeque::new()),
            registry: Registry::default(),
        };
        registry.register("items", "Work items per status", m.items.clone());
        registry.register(
            "claims",
            "Items claimed (by agents or over the API)",
            m.claims.clone(),
        );
        registry.register(
            "completions",
            "Completions whose acceptance was met",
            m.completions.clone(),
        );
        registry.register(
            "failures",
            "Failed attempts (agent failure, timeout, unmet acceptance)",
            m.failures.clone(),
        );
        registry.register(
            "retries",
            "Failed attempts sent back to ready for another try",
            m.retries.clone(),
        );
        registry.register(
            "attempt_duration_seconds",
            "Wall-clock time of an agent session, from start to its end",
            m.attempt_duration.clone(),
        );
        registry.register(
            "dispatch_delay_seconds",
            "Time an item waited claimable (ready, backoff over) before it was claimed",
            m.dispatch_delay.clone(),
        );
        registry.register(
            "pool_size",
            "Agents allowed at once (pool.size)",
            m.pool_size.clone(),
        );
        registry.register("pool_running", "Agents running now", m.pool_running.clone());
        registry.register("sessions", "Agent sessions started", m.sessions.clone());
        registry.register(
            "tokens",
            "Tokens agents reported, by direction",
            m.tokens.clone(),
        );
        registry.register(
            "tokens_today",
            "Tokens used so far this UTC day (what budgets.daily_tokens counts)",
            m.tokens_today.clone(),
        );
        registry.register(
            "daily_token_budget",
            "The pool's daily token budget (0 = none)",
            m.daily_token_budget.clone(),
        );
        registry.register(
            "budget_exceeded",
            "Token budgets reached (an item's, or the pool's daily one)",
            m.budget_exceeded.clone(),
        );
        registry.register(
            "rate_limit_pauses",
            "Times dispatch paused because an agent's provider rate-limited it",
            m.rate_limit_pauses.clone(),
        );
        registry.register(
            "rate_limit_paused",
            "1 while dispatch is paused for a rate limit",
            m.rate_limit_paused.clone(),
        );
        registry.register(
            "websocket_clients",
            "Boards and tools connected to /ws",
            m.websocket_clients.clone(),
        );
        registry.register(
            "event_seq",
            "Sequence number of the last event",
            m.event_seq.clone(),
        );
        registry.register(
            "store_bytes",
            "Size of the store file (flightdeck.redb)",
            m.store_bytes.clone(),
        );
        registry.register(
            "write_batch_size",
            "Writes committed together in one transaction (group commit)",
            m.write_batch_size.clone(),
        );
        registry.register(
            "commit_seconds",
            "Time one write batch took, transaction and fsync included",
            m.commit_seconds.clone(),
        );
        Metrics { registry, ..m }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Creates the labelled series a dashboard expects before anything has happened, for the
/// configured `preset`, so every panel has a series from the first scrape.
pub fn prepare(preset: &str) {
    let m = &*METRICS;
    let label = PresetLabel {
        preset: preset.into(),
    };
    // Each lookup holds the family's lock until it is dropped.
    drop(m.sessions.get_or_create(&label));
    drop(m.rate_limit_pauses.get_or_create(&label));
    drop(m.rate_limit_paused.get_or_create(&label));
    for kind in ["input", "output"] {
        drop(m.tokens.get_or_create(&TokenLabel {
            preset: preset.into(),
            kind: kind.into(),
        }));
    }
    for outcome in ["completed", "failed"] {
        drop(m.attempt_duration.get_or_create(&OutcomeLabel {
            outcome: outcome.into(),
        }));
    }
}

/// The gauges read from their owners at scrape time.
pub struct Readings<'a> {
    pub items: &'a [(&'static str, u64)],
    pub pool_size: usize,
    pub pool_running: usize,
    pub tokens_today: u64,
    pub daily_token_budget: u64,
    pub websocket_clients: usize,
    pub event_seq: u64,
    pub store_bytes: u64,
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The whole exposition, after setting the gauges to `readings`.
pub fn render(readings: &Readings) -> Result<String, std::fmt::Error> {
    let m = &*METRICS;
    for (status, n) in readings.items {
        m.items
            .get_or_create(&StatusLabel {
                status: status.to_string(),
            })
            .set(gauge_value(*n));
    }
    m.pool_size.set(gauge_value(readings.pool_size as u64));
    m.pool_running
        .set(gauge_value(readings.pool_running as u64));
    m.tokens_today.set(gauge_value(readings.tokens_today));
    m.daily_token_budget
        .set(gauge_value(readings.daily_token_budget));
    m.websocket_clients
        .set(gauge_value(readings.websocket_clients as u64));
    m.event_seq.set(gauge_value(readings.event_seq));
    m.store_bytes.set(gauge_value(readings.store_bytes));
    let mut text = String::new();
    encode(&mut text, &m.registry)?;
    Ok(text)
}

/// An item was claimed after waiting `waited` claimable.
pub fn claimed(waited: Duration) {
    METRICS.claims.inc();
    METRICS.dispatch_delay.observe(waited.as_secs_f64());
}

/// A completion met its acceptance.
pub fn completed() {
    METRICS.completions.inc();
}

/// An attempt failed; `retried` when its item went back to ready.
pub fn failed(retried: bool) {
    METRICS.failures.inc();
    if retried {
        METRICS.retries.inc();
    }
    if let Ok(mut recent) = METRICS.recent_failures.lock() {
        let now = Instant::now();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > RECENT_WINDOW)
        {
            recent.pop_front();
        }
        if recent.len() >= RECENT_MAX {
            recent.pop_front();
        }
        recent.push_back(now);
    }
}

/// Failed attempts in the last hour (since this server started, at most).
pub fn failures_last_hour() -> u64 {
    let Ok(recent) = METRICS.recent_failures.lock() else {
        return 0;
    };
    let now = Instant::now();
    recent
        .iter()
        .filter(|t| now.duration_since(**t) <= RECENT_WINDOW)
        .count() as u64
}

/// A session ended after `took`; `completed` when its work was accepted.
pub fn attempt_ended(took: Duration, completed: bool) {
    let outcome = if completed { "completed" } else { "failed" };
    METRICS
        .attempt_duration
        .get_or_create(&OutcomeLabel {
            outcome: outcome.into(),
        })
        .observe(took.as_secs_f64());
}

/// The Dispatcher started an agent session of `preset`.
pub fn session_started(preset: &str) {
    METRICS
        .sessions
        .get_or_create(&PresetLabel {
            preset: preset.into(),
        })
        .inc();
}

/// An agent of `preset` reported tokens.
pub fn tokens(preset: &str, input: u64, output: u64) {
    for (kind, n) in [("input", input), ("output", output)] {
        if n > 0 {
            METRICS
                .tokens
                .get_or_create(&TokenLabel {
                    preset: preset.into(),
                    kind: kind.into(),
                })
                .inc_by(n);
        }
    }
}

/// A token budget was reached.
pub fn budget_exceeded() {
    METRICS.budget_exceeded.inc();
}

/// Dispatch paused because an agent of `preset` was rate-limited: counts the pause and sets
/// `flightdeck_rate_limit_paused{preset}` to 1 until [`rate_limit_pause_ended`].
pub fn rate_limit_pause_started(preset: &str) {
    let label = PresetLabel {
        preset: preset.into(),
    };
    METRICS.rate_limit_pauses.get_or_create(&label).inc();
    METRICS.rate_limit_paused.get_or_create(&label).set(1);
}

/// The rate-limit pause of `preset` is over.
pub fn rate_limit_pause_ended(preset: &str) {
    METRICS
        .rate_limit_paused
        .get_or_create(&PresetLabel {
            preset: preset.into(),
        })
        .set(0);
}

/// One group commit of `writes` writes, which took `took`.
pub fn batch_committed(writes: usize, took: Duration) {
    METRICS.write_batch_size.observe(writes as f64);
    METRICS.commit_seconds.observe(took.as_secs_f64());
}
