//! Items are stored as the very JSON text the API sends: a page of `GET /api/items` is the
//! stored texts joined, and an event that carries an item carries the text just stored, so
//! neither decodes and encodes every item again (on 2 cores that work took CPU from the
//! writer while people listed the board).
//!
//! That holds only while every stored item is in the current shape. An item written by an
//! older release lacks the fields added since: decoding fills in their defaults, but its
//! stored text would go out without them. So the store records the shape its items are in
//! ([`SHAPE_KEY`], a fingerprint of the fields an item always carries, [`shape`]) and at
//! start-up rewrites every item once when the binary's shape differs (`Tx::reshape_items`,
//! run by `operations::recover`). Nobody has to remember to bump a version: adding a field
//! changes the fingerprint.

use crate::model::{Complexity, Priority, Status, WorkItem};
use chrono::{TimeZone, Utc};
use serde::Deserialize;
use std::borrow::Cow;

/// The META key holding the [`shape`] of the stored items.
pub const SHAPE_KEY: &str = "format:item_shape";

/// What list filters look at, read from an item's stored text without building the rest.
#[derive(Deserialize)]
pub struct ItemHead<'a> {
    pub status: Status,
    pub priority: Priority,
    #[serde(borrow)]
    pub title: Cow<'a, str>,
}

impl<'a> ItemHead<'a> {
    pub fn read(stored: &'a [u8]) -> Result<ItemHead<'a>, serde_json::Error> {
        serde_json::from_slice(stored)
    }
}

/// A fingerprint of the fields every stored item carries (FNV-1a of their names in order):
/// it changes when a field is added, renamed or removed. Fields left out while empty
/// (`Option`s skipped when `None`) do not count: an old item without them is already in shape.
pub fn shape() -> u64 {
    let at = Utc.timestamp_opt(0, 0).single().unwrap_or_default();
    // Every field is listed, so adding one to WorkItem does not compile until it is here too.
    let sample = WorkItem {
        id: String::new(),
        title: String::new(),
        description: String::new(),
        acceptance_criteria: Vec::new(),
        status: Status::Inbox,
        priority: Priority::Medium,
        complexity: Complexity::M,
        assigned_agent_id: None,
        assigned_session_key: None,
        created_at: at,
        updated_at: at,
        created_by: String::new(),
        artifacts: Vec::new(),
        blocked_by: Vec::new(),
        blocks: Vec::new(),
        attempts: 0,
        status_reason: None,
        completed_at: None,
        retry_at: None,
        status_since: None,
        max_tokens: None,
        tokens_used: 0,
        cost_usd: 0.0,
        report: None,
        requires: Vec::new(),
        waiting_on_person: false,
    };
    let names = match serde_json::to_value(&sample) {
        Ok(serde_json::Value::Object(fields)) => fields.keys().cloned().collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in names.join(",").bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_of_a_stored_item_is_its_status_priority_and_title() {
        let text = br#"{"id":"x","title":"Fix \"the\" bug","status":"ready","priority":"high","artifacts":[{"a":1}]}"#;
        let head = ItemHead::read(text).unwrap();
        assert_eq!(head.status, Status::Ready);
        assert_eq!(head.priority, Priority::High);
        assert_eq!(head.title, "Fix \"the\" bug");
    }

    #[test]
    fn the_shape_is_stable_and_names_the_fields() {
        assert_eq!(shape(), shape());
        assert_ne!(shape(), 0xcbf2_9ce4_8422_2325, "some fields were counted");
    }
}
