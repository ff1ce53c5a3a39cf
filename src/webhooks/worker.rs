//! One webhook's delivery worker: a thread of its own (never the queue's, never an HTTP
//! worker's), because an attempt blocks for up to `webhook_delivery.timeout_ms` on a receiver
//! that does not answer. It asks the QueueManager for a bounded batch of due deliveries, POSTs
//! each, and reports every attempt back as a write; when nothing is due it sleeps until the
//! earliest retry, or until the store says new rows were written.
//!
//! An attempt that is interrupted (the server killed mid-request) was never recorded, so the
//! row is still due at the next start and is sent again with the same delivery id: receivers
//! drop duplicates by that id.

use super::filter::wire_name;
use super::signature;
use super::Webhook;
use crate::config::WebhookDeliveryConfig;
use crate::queue::{
    AttemptResult, Delivery, DueDeliveries, PruneDeliveries, QueueManager, RecordAttempt,
};
use actix::Addr;
use chrono::{DateTime, Utc};
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The delivery id header: the same on every retry and redelivery of a delivery.
pub const DELIVERY_HEADER: &str = "X-Flightdeck-Delivery";
/// The event type header (`work:status_changed`).
pub const EVENT_HEADER: &str = "X-Flightdeck-Event";

/// At most this many deliveries, and about this many bytes of bodies, in memory at once.
const BATCH: usize = 32;
const BATCH_BYTES: usize = 4 << 20;
/// The longest nap while nothing is due (new rows wake the worker sooner).
const IDLE: Duration = Duration::from_secs(60);
/// After the store refused a write, wait this long before trying again.
const STORE_PAUSE: Duration = Duration::from_secs(5);
/// How often the delivery log is pruned, and how much at most per pass.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
const PRUNE_ROWS: usize = 5_000;
/// How much of a receiver's answer is read (so the connection can be reused), at most.
const ANSWER_BYTES: u64 = 64 << 10;

/// How one attempt went.
struct Attempt {
    response_code: Option<u16>,
    error: Option<String>,
}

pub(super) fn run(
    hook: Arc<Webhook>,
    settings: WebhookDeliveryConfig,
    queue: Addr<QueueManager>,
    wakeup: Receiver<()>,
    prunes: bool,
) {
    let runtime = match actix_rt::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            log::error!("webhook {}: cannot start its delivery worker: {e}", hook.id);
            return;
        }
    };
    let timeout = Duration::from_millis(settings.timeout_ms);
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(timeout)
        .timeout_read(timeout)
        .timeout_write(timeout)
        .redirects(0)
        .user_agent(concat!("flightdeck-webhooks/", env!("CARGO_PKG_VERSION")))
        .build();
    let mut last_prune: Option<Instant> = None;
    loop {
        if prunes && last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(Instant::now());
            let prune = PruneDeliveries {
                keep_days: settings.keep_days,
                keep_count: settings.keep_count,
                max_rows: PRUNE_ROWS,
            };
            match runtime.block_on(queue.send(prune)) {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => log::debug!("pruned {n} finished webhook deliveries"),
                Ok(Err(e)) => log::warn!("could not prune the webhook delivery log: {e}"),
                Err(_) => return,
            }
        }
        let due = DueDeliveries {
            webhook: hook.id.clone(),
            limit: BATCH,
            max_bytes: BATCH_BYTES,
        };
        let batch = match runtime.block_on(queue.send(due)) {
            Ok(Ok(batch)) => batch,
            Ok(Err(e)) => {
                log::warn!("webhook {}: cannot read the outbox: {e}", hook.id);
                if !nap(&wakeup, STORE_PAUSE) {
                    return;
                }
                continue;
            }
            // The queue stopped: the server is shutting down.
            Err(_) => return,
        };
        let sent_some = !batch.due.is_empty();
        for (delivery, body) in batch.due {
            let attempt = send(&agent, &hook, &delivery, &body, timeout);
            let at = Utc::now();
            let result = next_step(&delivery, &attempt, at, &settings);
            report(&hook, &delivery, &attempt, &result);
            let record = RecordAttempt {
                seq: delivery.seq,
                webhook: hook.id.clone(),
                at,
                response_code: attempt.response_code,
                error: attempt.error,
                result,
            };
            match runtime.block_on(queue.send(record)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    log::warn!("webhook {}: cannot record a delivery attempt: {e}", hook.id);
                    if !nap(&wakeup, STORE_PAUSE) {
                        return;
                    }
                    break;
                }
                Err(_) => return,
            }
        }
        // A delivery just finished may have made the next event of its item due.
        if sent_some || batch.more {
            continue;
        }
        let wait = batch
            .next_at
            .map(|at| (at - Utc::now()).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(IDLE)
            .min(IDLE);
        if !nap(&wakeup, wait) {
            return;
        }
    }
}

/// Sleeps up to `wait`, or until woken; false when the store is gone for good.
fn nap(wakeup: &Receiver<()>, wait: Duration) -> bool {
    !matches!(
        wakeup.recv_timeout(wait),
        Err(RecvTimeoutError::Disconnected)
    )
}

/// POSTs one delivery.
fn send(
    agent: &ureq::Agent,
    hook: &Webhook,
    delivery: &Delivery,
    body: &[u8],
    timeout: Duration,
) -> Attempt {
    let mut request = agent
        .post(&hook.url)
        .set("Content-Type", "application/json")
        .set(DELIVERY_HEADER, &delivery.id)
        .set(EVENT_HEADER, &wire_name(delivery.event_type));
    if !hook.secret.is_empty() {
        request = request.set(signature::HEADER, &signature::sign(&hook.secret, body));
    }
    match request.send_bytes(body) {
        Ok(response) => {
            let code = response.status();
            let words = answer_words(&response);
            drain(response);
            match code {
                200..=299 => Attempt {
                    response_code: Some(code),
                    error: None,
                },
                _ => Attempt {
                    response_code: Some(code),
                    error: Some(format!(
                        "the receiver answered {words}, and redirects are not followed"
                    )),
                },
            }
        }
        Err(ureq::Error::Status(code, response)) => {
            let words = answer_words(&response);
            drain(response);
            Attempt {
                response_code: Some(code),
                error: Some(format!("the receiver answered {words}")),
            }
        }
        Err(ureq::Error::Transport(transport)) => Attempt {
            response_code: None,
            error: Some(transport_words(&transport, timeout)),
        },
    }
}

/// "500 Internal Server Error", with the receiver's reason phrase made harmless.
fn answer_words(response: &ureq::Response) -> String {
    let text: String = response
        .status_text()
        .chars()
        .filter(|c| !c.is_control())
        .take(80)
        .collect();
    format!("{} {}", response.status(), text.trim())
}

fn drain(response: ureq::Response) {
    let _ = std::io::copy(
        &mut response.into_reader().take(ANSWER_BYTES),
        &mut std::io::sink(),
    );
}

/// What went wrong on the way, in words and without the URL (which may hold a token).
fn transport_words(transport: &ureq::Transport, timeout: Duration) -> String {
    use ureq::ErrorKind;
    let io = std::error::Error::source(transport)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .map(|e| e.kind());
    if matches!(
        io,
        Some(std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock)
    ) {
        return format!(
            "no answer within {} ms (webhook_delivery.timeout_ms)",
            timeout.as_millis()
        );
    }
    let detail = std::error::Error::source(transport)
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    match transport.kind() {
        ErrorKind::Dns => format!("could not resolve the receiver's host name{detail}"),
        ErrorKind::ConnectionFailed => format!("could not connect to the receiver{detail}"),
        ErrorKind::Io => format!("the connection to the receiver failed{detail}"),
        other => format!("the request failed: {other}{detail}"),
    }
}

/// Delivered, retried later (exponential backoff with jitter), or given up.
fn next_step(
    delivery: &Delivery,
    attempt: &Attempt,
    now: DateTime<Utc>,
    settings: &WebhookDeliveryConfig,
) -> AttemptResult {
    if attempt.error.is_none() {
        return AttemptResult::Delivered;
    }
    let deadline =
        delivery.due_since + chrono::Duration::seconds(settings.give_up_after_secs as i64);
    if now >= deadline {
        return AttemptResult::GiveUp;
    }
    let delay = backoff(delivery.attempts + 1, settings);
    let next_try = (now + chrono::Duration::milliseconds(delay as i64)).min(deadline);
    AttemptResult::Retry { next_try }
}

/// The wait after the `attempt`-th failure, in ms: base x 2^(attempt-1), at most the cap,
/// then a random half of it taken off so that receivers back from an outage are not hit by
/// every delivery at once.
fn backoff(attempt: u32, settings: &WebhookDeliveryConfig) -> u64 {
    let cap = settings.max_backoff_secs.saturating_mul(1000);
    let exp = attempt.saturating_sub(1).min(40);
    let full = settings
        .backoff_ms
        .saturating_mul(1u64 << exp)
        .min(cap)
        .max(1);
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    full / 2 + random % (full / 2 + 1)
}

/// Logs an attempt that did not deliver: the webhook's name and host, never its URL.
fn report(hook: &Webhook, delivery: &Delivery, attempt: &Attempt, result: &AttemptResult) {
    let Some(error) = &attempt.error else {
        return;
    };
    let what = format!(
        "webhook {} ({}): delivery {} of {}",
        hook.id,
        hook.target,
        delivery.id,
        wire_name(delivery.event_type)
    );
    match result {
        AttemptResult::GiveUp => log::warn!(
            "{what} failed for good after {} attempts: {error}",
            delivery.attempts + 1
        ),
        AttemptResult::Retry { next_try } => {
            // The first failure is news; the retries after it are in the delivery log.
            let level = match delivery.attempts {
                0 => log::Level::Info,
                _ => log::Level::Debug,
            };
            log::log!(
                level,
                "{what}, attempt {}: {error}; next try at {}",
                delivery.attempts + 1,
                next_try.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            )
        }
        AttemptResult::Delivered => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let settings = WebhookDeliveryConfig {
            backoff_ms: 1000,
            max_backoff_secs: 10,
            ..WebhookDeliveryConfig::default()
        };
        for _ in 0..50 {
            let first = backoff(1, &settings);
            assert!((500..=1000).contains(&first), "{first}");
            let third = backoff(3, &settings);
            assert!((2000..=4000).contains(&third), "{third}");
            let late = backoff(30, &settings);
            assert!((5000..=10_000).contains(&late), "{late}");
        }
    }
}
