//! The webhook outbox: one row per (webhook, event), written in the same transaction as the
//! event, so an event the queue acknowledged is never lost to a crash before it is delivered.
//!
//! The queue knows nothing of HTTP or formats: it is given [`OutboxRoute`]s, each of which
//! renders an event into the body its webhook gets (or skips it). The delivery workers read
//! due rows and report attempts through the messages below; like every write, those go through
//! the QueueManager. Rows of one item (the *group*) are delivered in event order: only the
//! oldest pending row of a group is ever due, so a later event of an item waits until the
//! earlier one is delivered or given up.
//!
//! Bounds: a worker reads a batch of at most [`DueDeliveries::limit`] rows and `max_bytes`
//! of bodies; finished rows are pruned by age and count ([`PruneDeliveries`]); a pending row
//! is finished within `give_up_after` of being due.

use super::manager::QueueManager;
use super::store::Snapshot;
use super::QueueError;
use crate::model::{Event, EventKind};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use redb::{ReadableTable, ReadableTableMetadata, Table, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// (event seq, webhook) -> [`Delivery`] JSON: the delivery log, in event order.
const DELIVERIES: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("webhook_deliveries");
/// (event seq, webhook) -> the exact body sent (signed as it is).
const BODIES: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("webhook_bodies");
/// Pending deliveries: (webhook, group, event seq) -> when the next attempt is due (ms since
/// the epoch). The first key of each (webhook, group) is the only one that may be sent.
const PENDING: TableDefinition<(&str, &str, u64), i64> = TableDefinition::new("webhook_pending");

/// How one webhook turns an event (and its stored JSON) into the body it is sent, or `None`
/// when the webhook does not take this event.
pub type Render = dyn Fn(&Event, &str, &EventFacts) -> Option<String> + Send + Sync;

/// What the store knows about an event beyond its data, for readable messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventFacts {
    /// Tokens used by every session of the event's item so far.
    pub tokens_used: u64,
}

/// One configured webhook, as the queue sees it.
pub struct OutboxRoute {
    /// Stable across restarts: the key of its rows.
    pub webhook: String,
    /// The URL without anything secret, for the delivery log.
    pub target: String,
    pub render: Box<Render>,
}

/// Every webhook, and how to tell the workers that rows were added.
pub struct Outbox {
    pub routes: Vec<OutboxRoute>,
    pub wake: Box<dyn Fn() + Send + Sync>,
}

impl Outbox {
    pub fn none() -> Arc<Outbox> {
        Arc::new(Outbox {
            routes: Vec::new(),
            wake: Box::new(|| {}),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

/// One (webhook, event) delivery and how it went.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Sent as `X-Flightdeck-Delivery`; the same on every retry and redelivery.
    pub id: String,
    pub webhook: String,
    /// The webhook's URL without its path or query (where tokens live).
    pub target: String,
    pub seq: u64,
    pub event_type: EventKind,
    /// The item (or session) whose events are delivered in order.
    pub group: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    /// When the current round of attempts began (creation, or the last redelivery).
    pub due_since: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_try_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The receiver's last HTTP status, when it answered.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_response_code: Option<u16>,
    /// What went wrong last, in words.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub delivered_at: Option<DateTime<Utc>>,
}

/// The delivery id of (event seq, webhook).
fn delivery_id(seq: u64, webhook: &str) -> String {
    format!("{seq}-{webhook}")
}

/// The (event seq, webhook) a delivery id names, None when it names none.
pub fn parse_delivery_id(id: &str) -> Option<(u64, &str)> {
    let (seq, webhook) = id.split_once('-')?;
    Some((seq.parse().ok()?, webhook))
}

/// The group whose events are delivered in order: the item, else the session, else the pool.
fn group_of(event: &Event) -> String {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Keys {
        item_id: Option<String>,
        item: Option<Id>,
        agent: Option<Agent>,
        agent_id: Option<String>,
    }
    #[derive(Deserialize)]
    struct Id {
        id: String,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Agent {
        work_item_id: String,
    }
    let Ok(keys) = serde_json::from_str::<Keys>(event.data.get()) else {
        return "pool".into();
    };
    keys.item_id
        .or(keys.item.map(|i| i.id))
        .or(keys.agent.map(|a| a.work_item_id))
        .or(keys.agent_id.map(|a| format!("agent:{a}")))
        .unwrap_or_else(|| "pool".into())
}

/// The outbox's tables, opened once per write transaction.
pub(super) struct OutboxTables<'a> {
    deliveries: Table<'a, (u64, &'static str), &'static [u8]>,
    bodies: Table<'a, (u64, &'static str), &'static [u8]>,
    pending: Table<'a, (&'static str, &'static str, u64), i64>,
}

impl<'a> OutboxTables<'a> {
    pub(super) fn open(txn: &'a WriteTransaction) -> Result<Self, QueueError> {
        Ok(OutboxTables {
            deliveries: txn.open_table(DELIVERIES)?,
            bodies: txn.open_table(BODIES)?,
            pending: txn.open_table(PENDING)?,
        })
    }

    /// Adds a row for every webhook that takes `event`; returns how many.
    pub(super) fn enqueue(
        &mut self,
        outbox: &Outbox,
        event: &Event,
        json: &str,
        facts: &EventFacts,
    ) -> Result<usize, QueueError> {
        let mut added = 0;
        let mut group = None;
        for route in &outbox.routes {
            let Some(body) = (route.render)(event, json, facts) else {
                continue;
            };
            let group = group.get_or_insert_with(|| group_of(event));
            let delivery = Delivery {
                id: delivery_id(event.seq, &route.webhook),
                webhook: route.webhook.clone(),
                target: route.target.clone(),
                seq: event.seq,
                event_type: event.kind,
                group: group.clone(),
                status: DeliveryStatus::Pending,
                attempts: 0,
                created_at: event.at,
                due_since: event.at,
                next_try_at: Some(event.at),
                last_attempt_at: None,
                last_response_code: None,
                last_error: None,
                delivered_at: None,
            };
            let key = (event.seq, route.webhook.as_str());
            self.bodies.insert(key, body.as_bytes())?;
            self.put(&delivery)?;
            added += 1;
        }
        Ok(added)
    }

    fn get(&self, seq: u64, webhook: &str) -> Result<Option<Delivery>, QueueError> {
        Ok(match self.deliveries.get((seq, webhook))? {
            Some(bytes) => Some(serde_json::from_slice(bytes.value())?),
            None => None,
        })
    }

    /// Stores `delivery` and keeps the pending index in step with its status.
    fn put(&mut self, delivery: &Delivery) -> Result<(), QueueError> {
        let key = (delivery.seq, delivery.webhook.as_str());
        self.deliveries
            .insert(key, serde_json::to_vec(delivery)?.as_slice())?;
        let pending_key = (
            delivery.webhook.as_str(),
            delivery.group.as_str(),
            delivery.seq,
        );
        match (delivery.status, delivery.next_try_at) {
            (DeliveryStatus::Pending, Some(at)) => {
                self.pending.insert(pending_key, at.timestamp_millis())?;
            }
            _ => {
                self.pending.remove(pending_key)?;
            }
        }
        Ok(())
    }
}

/// The outbox's tables in a read snapshot.
impl Snapshot {
    /// The due head of each of `webhook`'s groups, oldest event first within the batch order,
    /// at most `limit` of them and about `max_bytes` of bodies (at least one).
    fn due_deliveries(
        &self,
        webhook: &str,
        now: DateTime<Utc>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<DueBatch, QueueError> {
        let pending = self.txn.open_table(PENDING)?;
        let deliveries = self.txn.open_table(DELIVERIES)?;
        let bodies = self.txn.open_table(BODIES)?;
        let now_ms = now.timestamp_millis();
        let mut batch = DueBatch::default();
        let mut bytes = 0;
        let mut cursor = String::new();
        let mut first = true;
        loop {
            let from = if first { 0 } else { u64::MAX };
            first = false;
            let Some(entry) = pending.range((webhook, cursor.as_str(), from)..)?.next() else {
                break;
            };
            let (key, at) = entry?;
            let (hook, group, seq) = key.value();
            if hook != webhook {
                break;
            }
            cursor = group.to_string();
            let at = at.value();
            if at > now_ms {
                let at = DateTime::from_timestamp_millis(at);
                batch.next_at = match (batch.next_at, at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                continue;
            }
            let Some(record) = deliveries.get((seq, webhook))? else {
                continue;
            };
            let delivery: Delivery = serde_json::from_slice(record.value())?;
            let body = bodies
                .get((seq, webhook))?
                .map(|b| b.value().to_vec())
                .unwrap_or_default();
            bytes += body.len();
            batch.due.push((delivery, body));
            if batch.due.len() >= limit || bytes >= max_bytes {
                batch.more = true;
                break;
            }
        }
        Ok(batch)
    }

    /// Deliveries, newest first, after the delivery `before` names when given.
    fn deliveries(
        &self,
        before: Option<(u64, &str)>,
        status: Option<DeliveryStatus>,
        limit: usize,
    ) -> Result<Vec<Delivery>, QueueError> {
        let table = self.txn.open_table(DELIVERIES)?;
        let mut out = Vec::new();
        let range = match before {
            Some(end) => table.range(..end)?,
            None => table.range::<(u64, &str)>(..)?,
        };
        for entry in range.rev() {
            let (_, v) = entry?;
            let delivery: Delivery = serde_json::from_slice(v.value())?;
            if status.is_none_or(|s| s == delivery.status) {
                out.push(delivery);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}

// ---- Messages ------------------------------------------------------------------------------

/// What a worker should send now.
#[derive(Debug, Default)]
pub struct DueBatch {
    /// Due deliveries with their bodies.
    pub due: Vec<(Delivery, Vec<u8>)>,
    /// The earliest later attempt among the heads not yet due.
    pub next_at: Option<DateTime<Utc>>,
    /// The batch was cut short by its bounds: ask again at once.
    pub more: bool,
}

/// A bounded batch of `webhook`'s deliveries that are due now.
#[derive(Message)]
#[rtype(result = "Result<DueBatch, QueueError>")]
pub struct DueDeliveries {
    pub webhook: String,
    pub limit: usize,
    pub max_bytes: usize,
}

/// How one attempt went, and what follows from it.
#[derive(Debug, Clone)]
pub enum AttemptResult {
    Delivered,
    /// Try again at `next_try`.
    Retry {
        next_try: DateTime<Utc>,
    },
    /// Given up: the delivery is marked failed.
    GiveUp,
}

/// Record an attempt of one delivery.
#[derive(Message)]
#[rtype(result = "Result<(), QueueError>")]
pub struct RecordAttempt {
    pub seq: u64,
    pub webhook: String,
    pub at: DateTime<Utc>,
    pub response_code: Option<u16>,
    pub error: Option<String>,
    pub result: AttemptResult,
}

/// Send a delivery again, with the same delivery id.
#[derive(Message)]
#[rtype(result = "Result<Delivery, QueueError>")]
pub struct Redeliver {
    pub id: String,
}

/// The delivery log, newest first.
#[derive(Message)]
#[rtype(result = "Result<Vec<Delivery>, QueueError>")]
pub struct ListDeliveries {
    /// A delivery id: list the ones before it (the next page).
    pub before: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub limit: usize,
}

/// Mark the pending deliveries of webhooks no longer configured as failed, so nothing waits
/// forever for a worker that will never come.
#[derive(Message)]
#[rtype(result = "Result<usize, QueueError>")]
pub struct AbandonDeliveries {
    pub configured: Vec<String>,
}

/// Remove finished deliveries older than `keep_days`, and the oldest finished ones beyond
/// `keep_count`; at most `max_rows` per call.
#[derive(Message)]
#[rtype(result = "Result<usize, QueueError>")]
pub struct PruneDeliveries {
    pub keep_days: u64,
    pub keep_count: u64,
    pub max_rows: usize,
}

// ---- Handlers ------------------------------------------------------------------------------

impl Handler<DueDeliveries> for QueueManager {
    type Result = ResponseFuture<Result<DueBatch, QueueError>>;

    fn handle(&mut self, m: DueDeliveries, _: &mut Context<Self>) -> Self::Result {
        self.read(move |snap| snap.due_deliveries(&m.webhook, Utc::now(), m.limit, m.max_bytes))
    }
}

impl Handler<ListDeliveries> for QueueManager {
    type Result = ResponseFuture<Result<Vec<Delivery>, QueueError>>;

    fn handle(&mut self, m: ListDeliveries, _: &mut Context<Self>) -> Self::Result {
        self.read(move |snap| {
            let before = match &m.before {
                Some(id) => Some(
                    parse_delivery_id(id)
                        .ok_or_else(|| QueueError::not_found("webhook delivery", id))?,
                ),
                None => None,
            };
            snap.deliveries(before, m.status, m.limit)
        })
    }
}

impl Handler<RecordAttempt> for QueueManager {
    type Result = ResponseFuture<Result<(), QueueError>>;

    fn handle(&mut self, m: RecordAttempt, ctx: &mut Context<Self>) -> Self::Result {
        self.write(ctx, move |tx, _| {
            let outbox = tx.outbox();
            let Some(mut delivery) = outbox.get(m.seq, &m.webhook)? else {
                return Ok(());
            };
            delivery.attempts = delivery.attempts.saturating_add(1);
            delivery.last_attempt_at = Some(m.at);
            delivery.last_response_code = m.response_code;
            delivery.last_error = m.error;
            match m.result {
                AttemptResult::Delivered => {
                    delivery.status = DeliveryStatus::Delivered;
                    delivery.delivered_at = Some(m.at);
                    delivery.next_try_at = None;
                }
                AttemptResult::Retry { next_try } => {
                    delivery.status = DeliveryStatus::Pending;
                    delivery.next_try_at = Some(next_try);
                }
                AttemptResult::GiveUp => {
                    delivery.status = DeliveryStatus::Failed;
                    delivery.next_try_at = None;
                }
            }
            outbox.put(&delivery)
        })
    }
}

impl Handler<Redeliver> for QueueManager {
    type Result = ResponseFuture<Result<Delivery, QueueError>>;

    fn handle(&mut self, m: Redeliver, ctx: &mut Context<Self>) -> Self::Result {
        self.write(ctx, move |tx, _| {
            let now = tx.now;
            let not_found = || QueueError::not_found("webhook delivery", &m.id);
            let (seq, webhook) = parse_delivery_id(&m.id).ok_or_else(not_found)?;
            // Found first, from a read: a refusal must write nothing (see `Tx::attempt`).
            let mut delivery = tx.outbox_read().get(seq, webhook)?.ok_or_else(not_found)?;
            let outbox = tx.outbox();
            delivery.status = DeliveryStatus::Pending;
            delivery.due_since = now;
            delivery.next_try_at = Some(now);
            delivery.delivered_at = None;
            outbox.put(&delivery)?;
            tx.wake_outbox();
            Ok(delivery)
        })
    }
}

impl Handler<AbandonDeliveries> for QueueManager {
    type Result = ResponseFuture<Result<usize, QueueError>>;

    fn handle(&mut self, m: AbandonDeliveries, ctx: &mut Context<Self>) -> Self::Result {
        self.write(ctx, move |tx, _| {
            let outbox = tx.outbox();
            let mut orphans = Vec::new();
            for entry in outbox.pending.iter()? {
                let (key, _) = entry?;
                let (webhook, _, seq) = key.value();
                if !m.configured.iter().any(|c| c == webhook) {
                    orphans.push((seq, webhook.to_string()));
                }
            }
            for (seq, webhook) in &orphans {
                if let Some(mut delivery) = outbox.get(*seq, webhook)? {
                    delivery.status = DeliveryStatus::Failed;
                    delivery.next_try_at = None;
                    delivery.last_error = Some(format!(
                        "the webhook {webhook} is no longer in the config, so this delivery was given up"
                    ));
                    outbox.put(&delivery)?;
                }
            }
            Ok(orphans.len())
        })
    }
}

impl Handler<PruneDeliveries> for QueueManager {
    type Result = ResponseFuture<Result<usize, QueueError>>;

    fn handle(&mut self, m: PruneDeliveries, ctx: &mut Context<Self>) -> Self::Result {
        self.write(ctx, move |tx, _| {
            let cutoff = tx.now - chrono::Duration::days(m.keep_days.min(36_500) as i64);
            let outbox = tx.outbox();
            let mut excess = outbox.deliveries.len()?.saturating_sub(m.keep_count);
            let mut doomed = Vec::new();
            for entry in outbox.deliveries.iter()? {
                if doomed.len() >= m.max_rows {
                    break;
                }
                let (key, value) = entry?;
                let delivery: Delivery = serde_json::from_slice(value.value())?;
                let old = delivery.created_at < cutoff;
                if !old && excess == 0 {
                    break;
                }
                if delivery.status != DeliveryStatus::Pending {
                    let (seq, webhook) = key.value();
                    doomed.push((seq, webhook.to_string()));
                    excess = excess.saturating_sub(1);
                }
            }
            for (seq, webhook) in &doomed {
                outbox.deliveries.remove((*seq, webhook.as_str()))?;
                outbox.bodies.remove((*seq, webhook.as_str()))?;
            }
            Ok(doomed.len())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids_round_trip_and_refuse_garbage() {
        assert_eq!(
            parse_delivery_id(&delivery_id(42, "ops-1")),
            Some((42, "ops-1"))
        );
        assert_eq!(parse_delivery_id("x-ops"), None);
        assert_eq!(parse_delivery_id("42"), None);
    }

    #[test]
    fn events_group_by_their_item() {
        let event = |kind, data: &str| Event {
            seq: 1,
            kind,
            at: Utc::now(),
            data: serde_json::value::RawValue::from_string(data.into()).unwrap(),
        };
        let moved = event(
            EventKind::WorkStatusChanged,
            r#"{"itemId":"a","from":"ready"}"#,
        );
        assert_eq!(group_of(&moved), "a");
        let added = event(EventKind::WorkAdded, r#"{"item":{"id":"b","title":"t"}}"#);
        assert_eq!(group_of(&added), "b");
        let spawned = event(EventKind::AgentSpawned, r#"{"agent":{"workItemId":"c"}}"#);
        assert_eq!(group_of(&spawned), "c");
        let resized = event(EventKind::PoolResized, r#"{"size":3}"#);
        assert_eq!(group_of(&resized), "pool");
    }
}
