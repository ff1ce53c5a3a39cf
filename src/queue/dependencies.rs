//! Dependency rules: every id in `blockedBy` names an existing item, and no chain of
//! `blockedBy` ever leads back to where it started.

use super::store::Tx;
use super::QueueError;
use std::collections::HashSet;

/// Checks that `item_id` may depend on every item in `blocked_by`: each exists, and none of
/// them depends (directly or through others) on `item_id`. The error names the cycle.
pub fn check(tx: &Tx, item_id: &str, blocked_by: &[String]) -> Result<(), QueueError> {
    for id in blocked_by {
        if id == item_id {
            return Err(QueueError::Cycle(vec![item_id.into(), item_id.into()]));
        }
        if tx.item(id)?.is_none() {
            return Err(QueueError::UnknownReference {
                field: "blockedBy".into(),
                id: id.clone(),
            });
        }
    }
    for id in blocked_by {
        let mut seen = HashSet::new();
        let mut path = vec![item_id.to_string(), id.clone()];
        if reaches(tx, id, item_id, &mut seen, &mut path)? {
            return Err(QueueError::Cycle(path));
        }
    }
    Ok(())
}

/// Depth-first walk along `blockedBy` from `from`; true (with `path` ending at `target`) when
/// `target` is reachable.
fn reaches(
    tx: &Tx,
    from: &str,
    target: &str,
    seen: &mut HashSet<String>,
    path: &mut Vec<String>,
) -> Result<bool, QueueError> {
    if !seen.insert(from.to_string()) {
        return Ok(false);
    }
    let Some(item) = tx.item(from)? else {
        return Ok(false);
    };
    for next in &item.blocked_by {
        path.push(next.clone());
        if next == target || reaches(tx, next, target, seen, path)? {
            return Ok(true);
        }
        path.pop();
    }
    Ok(false)
}
