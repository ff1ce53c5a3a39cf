//! Webhooks: every matching event is POSTed to the configured receivers, at least once and in
//! order per item, even across crashes.
//!
//! The queue writes one outbox row per (webhook, event) in the transaction that stores the
//! event (`queue/outbox.rs`), so nothing acknowledged can be lost before it is sent. One
//! delivery worker per webhook (`worker.rs`), on a thread of its own, reads due rows through
//! the QueueManager, POSTs them with a signature (`signature.rs`) and a delivery id that stays
//! the same on every retry and redelivery, and reports each attempt back; failures are retried
//! with exponential backoff and jitter until `webhook_delivery.give_up_after_secs`, then the
//! delivery is marked failed. Bodies are the event itself or a readable chat line
//! (`format.rs`); which events a webhook takes is its filter (`filter.rs`).
//!
//! A webhook URL often holds a token in its path (Slack's and Discord's do): it is never
//! logged, and the delivery log shows only its scheme and host.

mod filter;
mod format;
mod signature;
mod worker;

pub use filter::{wire_name, EventFilter};
pub use format::{readable_line, render};
pub use signature::{sign, HEADER as SIGNATURE_HEADER};
pub use worker::{DELIVERY_HEADER, EVENT_HEADER};

use crate::config::{invalid, ConfigError, WebhookConfig, WebhookDeliveryConfig, WebhookFormat};
use crate::queue::{AbandonDeliveries, Outbox, OutboxRoute, QueueManager};
use actix::Addr;
use sha2::{Digest, Sha256};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

/// One webhook, checked: it exists only if its config entry is valid.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// The key of its outbox rows: `name`, else derived from the URL.
    pub id: String,
    pub url: String,
    /// The URL without path or query, safe to show and log.
    pub target: String,
    pub secret: String,
    pub format: WebhookFormat,
    pub filter: EventFilter,
}

impl Webhook {
    fn parse(index: usize, config: &WebhookConfig) -> Result<Webhook, ConfigError> {
        let key = |field: &str| format!("webhooks[{index}].{field}");
        let target = target_of(&config.url).ok_or_else(|| {
            invalid(
                &key("url"),
                "must be an http:// or https:// URL with a host, like \"https://hooks.slack.com/services/...\"",
            )
        })?;
        let filter = EventFilter::parse(&config.events).map_err(|m| invalid(&key("events"), m))?;
        let id = if config.name.is_empty() {
            let digest = Sha256::digest(config.url.as_bytes());
            digest[..6].iter().map(|b| format!("{b:02x}")).collect()
        } else {
            let plain = config.name.len() <= 40
                && config
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
            if !plain {
                return Err(invalid(
                    &key("name"),
                    format!(
                        "{:?}: use at most 40 letters, digits, '_', '.' or '-'",
                        config.name
                    ),
                ));
            }
            config.name.clone()
        };
        Ok(Webhook {
            id,
            url: config.url.clone(),
            target,
            secret: config.secret.clone(),
            format: config.format,
            filter,
        })
    }

    /// The outbox route of this webhook: its filter, then its format.
    fn route(&self) -> OutboxRoute {
        let (filter, format) = (self.filter.clone(), self.format);
        OutboxRoute {
            webhook: self.id.clone(),
            target: self.target.clone(),
            render: Box::new(move |event, json, facts| {
                if !filter.matches(event.kind) {
                    return None;
                }
                render(format, event, json, facts)
            }),
        }
    }
}

/// `scheme://host[:port]` of an http(s) URL, None when it is not one. What follows the host
/// (where webhook tokens live) is left out.
fn target_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !matches!(scheme, "http" | "https") {
        return None;
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    // user:password@ would be a secret too.
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return None;
    }
    Some(format!("{scheme}://{host}"))
}

/// Checks `[[webhooks]]` and `[webhook_delivery]`; the error names the key.
pub fn validate(
    webhooks: &[WebhookConfig],
    delivery: &WebhookDeliveryConfig,
) -> Result<(), ConfigError> {
    parse_all(webhooks)?;
    let positive = [
        ("webhook_delivery.backoff_ms", delivery.backoff_ms),
        (
            "webhook_delivery.max_backoff_secs",
            delivery.max_backoff_secs,
        ),
        (
            "webhook_delivery.give_up_after_secs",
            delivery.give_up_after_secs,
        ),
        ("webhook_delivery.keep_count", delivery.keep_count),
    ];
    for (key, value) in positive {
        if value == 0 {
            return Err(invalid(key, "must be at least 1"));
        }
    }
    if !(100..=600_000).contains(&delivery.timeout_ms) {
        return Err(invalid(
            "webhook_delivery.timeout_ms",
            "must be between 100 and 600000",
        ));
    }
    Ok(())
}

fn parse_all(webhooks: &[WebhookConfig]) -> Result<Vec<Webhook>, ConfigError> {
    let mut out: Vec<Webhook> = Vec::new();
    for (index, config) in webhooks.iter().enumerate() {
        let hook = Webhook::parse(index, config)?;
        if let Some(twin) = out.iter().position(|h| h.id == hook.id) {
            return Err(invalid(
                &format!("webhooks[{index}]"),
                format!(
                    "has the same name (or URL) as webhooks[{twin}]: give each a distinct name"
                ),
            ));
        }
        out.push(hook);
    }
    Ok(out)
}

/// The configured webhooks, ready to be given to the store and then started.
pub struct Webhooks {
    hooks: Vec<Arc<Webhook>>,
    settings: WebhookDeliveryConfig,
    wakeups: Vec<Receiver<()>>,
    outbox: Arc<Outbox>,
}

impl Webhooks {
    pub fn from_config(
        webhooks: &[WebhookConfig],
        settings: &WebhookDeliveryConfig,
    ) -> Result<Webhooks, ConfigError> {
        let hooks: Vec<Arc<Webhook>> = parse_all(webhooks)?.into_iter().map(Arc::new).collect();
        let mut wakers = Vec::new();
        let mut wakeups = Vec::new();
        for _ in &hooks {
            // One pending wake-up is enough: the worker reads everything due when it wakes.
            let (tx, rx) = sync_channel::<()>(1);
            wakers.push(tx);
            wakeups.push(rx);
        }
        let outbox = Arc::new(Outbox {
            routes: hooks.iter().map(|h| h.route()).collect(),
            wake: Box::new(move || {
                for waker in &wakers {
                    let _ = waker.try_send(());
                }
            }),
        });
        Ok(Webhooks {
            hooks,
            settings: settings.clone(),
            wakeups,
            outbox,
        })
    }

    /// What the store offers every event to.
    pub fn outbox(&self) -> Arc<Outbox> {
        self.outbox.clone()
    }

    /// Gives up the pending deliveries of webhooks no longer configured, then starts one
    /// delivery worker per webhook.
    pub async fn start(self, queue: Addr<QueueManager>) -> std::io::Result<()> {
        let configured = self.hooks.iter().map(|h| h.id.clone()).collect();
        match queue.send(AbandonDeliveries { configured }).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => log::warn!(
                "{n} pending webhook deliveries belong to webhooks no longer in the config: marked failed"
            ),
            Ok(Err(e)) => log::warn!("could not check the webhook outbox: {e}"),
            Err(e) => log::warn!("could not check the webhook outbox: {e}"),
        }
        for (index, (hook, wakeup)) in self.hooks.into_iter().zip(self.wakeups).enumerate() {
            log::info!(
                "webhook {} delivers to {} ({} format)",
                hook.id,
                hook.target,
                format!("{:?}", hook.format).to_lowercase()
            );
            let settings = self.settings.clone();
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("webhook-{index}"))
                .spawn(move || worker::run(hook, settings, queue, wakeup, index == 0))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_keep_no_path_query_or_credentials() {
        assert_eq!(
            target_of("https://hooks.slack.com/services/T0/B0/secret").as_deref(),
            Some("https://hooks.slack.com")
        );
        assert_eq!(
            target_of("http://user:pw@127.0.0.1:9000/x?token=y").as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(target_of("ftp://x/"), None);
        assert_eq!(target_of("https:///path"), None);
        assert_eq!(target_of("https://a b/"), None);
    }

    #[test]
    fn bad_entries_are_refused_by_key() {
        let hook = |url: &str, name: &str| WebhookConfig {
            url: url.into(),
            name: name.into(),
            ..WebhookConfig::default()
        };
        let delivery = WebhookDeliveryConfig::default();
        let err = validate(
            &[hook("https://a.example/x", ""), hook("nope", "")],
            &delivery,
        );
        assert!(err.unwrap_err().to_string().contains("webhooks[1].url"));
        let err = validate(&[hook("https://a.example/x", "a b")], &delivery);
        assert!(err.unwrap_err().to_string().contains("webhooks[0].name"));
        let twins = [
            hook("https://a.example/x", ""),
            hook("https://a.example/x", ""),
        ];
        assert!(validate(&twins, &delivery)
            .unwrap_err()
            .to_string()
            .contains("webhooks[1]"));
        let slow = WebhookDeliveryConfig {
            timeout_ms: 5,
            ..WebhookDeliveryConfig::default()
        };
        assert!(validate(&[], &slow)
            .unwrap_err()
            .to_string()
            .contains("webhook_delivery.timeout_ms"));
    }
}
