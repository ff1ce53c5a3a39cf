//! The queue's rules against a small reference model, by property-based testing: random
//! sequences of create, move, claim, complete, fail, edit, delete and restart run in write
//! batches (as the QueueManager groups them) against the real redb store in a temp dir, and
//! after every batch the store must agree with the model and keep its invariants: `blocks`
//! mirrors `blockedBy`, the status counts match the items, each item's history ends in its
//! status, and a claim takes the item the model says comes first. A restart reopens the store
//! and runs the start-up recovery. Every operation runs through `Tx::attempt`, whose debug
//! assertion fails the test if an operation that refused had written anything. This guards
//! any change to the store's layout, its indexes or the operations.

use super::operations::{self, Completion, QueuePolicy, Verdict};
use super::store::Store;
use super::QueueError;
use crate::model::{ItemPatch, NewWorkItem, Status, WorkItem};
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use std::collections::BTreeMap;

const POLICY: QueuePolicy = QueuePolicy {
    review: true,
    max_attempts: 2,
    retry_backoff_secs: 0.0,
    item_tokens: 0,
    price: crate::config::Price {
        input_per_mtok: 0.0,
        output_per_mtok: 0.0,
    },
    lease_secs: 30,
};

const PRIORITIES: [&str; 4] = ["urgent", "high", "medium", "low"];

/// One request; `usize` fields pick among the items alive at that moment (modulo their number).
#[derive(Debug, Clone)]
enum Op {
    Create {
        priority: usize,
        status: usize,
        blockers: Vec<usize>,
    },
    Move {
        item: usize,
        to: usize,
    },
    Claim,
    Complete {
        item: usize,
    },
    Fail {
        item: usize,
        verdict: usize,
    },
    Edit {
        item: usize,
        priority: Option<usize>,
        blockers: Option<Vec<usize>>,
    },
    Delete {
        item: usize,
    },
}

#[derive(Debug, Clone)]
enum Step {
    Batch(Vec<Op>),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let pick = any::<usize>();
    let blockers = proptest::collection::vec(any::<usize>(), 0..3);
    prop_oneof![
        3 => (0..4usize, 0..3usize, blockers.clone())
            .prop_map(|(priority, status, blockers)| Op::Create { priority, status, blockers }),
        2 => (pick, 0..7usize).prop_map(|(item, to)| Op::Move { item, to }),
        3 => Just(Op::Claim),
        2 => pick.prop_map(|item| Op::Complete { item }),
        2 => (pick, 0..3usize).prop_map(|(item, verdict)| Op::Fail { item, verdict }),
        2 => (pick, proptest::option::of(0..4usize), proptest::option::of(blockers))
            .prop_map(|(item, priority, blockers)| Op::Edit { item, priority, blockers }),
        1 => pick.prop_map(|item| Op::Delete { item }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => proptest::collection::vec(op(), 1..5).prop_map(Step::Batch),
        1 => Just(Step::Restart),
    ]
}

/// What the model knows of an item.
#[derive(Debug, Clone)]
struct Entry {
    id: String,
    status: Status,
    rank: u8,
    created_at: DateTime<Utc>,
    blocked_by: Vec<String>,
    attempts: u32,
    /// Requeued after a rate limit: not claimable before its time (an hour away).
    in_backoff: bool,
}

/// What an answer may be, coarsely.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Done,
    Conflict,
    Cycle,
}

#[derive(Default)]
struct Model {
    items: Vec<Entry>,
}

fn manual_moves(from: Status) -> &'static [Status] {
    use Status::*;
    match from {
        Inbox => &[Planning, Blocked],
        Planning => &[Ready, Blocked],
        Ready => &[Blocked],
        InFlight => &[Review, Done, Blocked, Ready],
        Review => &[Done, Ready, Blocked],
        Done => &[],
        Blocked => &[Ready, Inbox],
    }
}

impl Model {
    fn pick(&self, n: usize) -> Option<usize> {
        (!self.items.is_empty()).then(|| n % self.items.len())
    }

    fn ids(&self, picks: &[usize]) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for &p in picks {
            if let Some(i) = self.pick(p) {
                if !ids.contains(&self.items[i].id) {
                    ids.push(self.items[i].id.clone());
                }
            }
        }
        ids
    }

    fn get(&mut self, id: &str) -> &mut Entry {
        self.items
            .iter_mut()
            .find(|e| e.id == id)
            .expect("in the model")
    }

    fn status(&self, id: &str) -> Option<Status> {
        self.items.iter().find(|e| e.id == id).map(|e| e.status)
    }

    /// The item a claim must take: ready, out of backoff, every blocker done; then by
    /// priority, age and id.
    fn next_claim(&self) -> Option<String> {
        self.items
            .iter()
            .filter(|e| e.status == Status::Ready && !e.in_backoff)
            .filter(|e| {
                e.blocked_by
                    .iter()
                    .all(|b| self.status(b) == Some(Status::Done))
            })
            .min_by(|a, b| (a.rank, a.created_at, &a.id).cmp(&(b.rank, b.created_at, &b.id)))
            .map(|e| e.id.clone())
    }

    /// Whether following `blockedBy` from `from` reaches `target`.
    fn reaches(&self, from: &str, target: &str, seen: &mut Vec<String>) -> bool {
        if from == target {
            return true;
        }
        if seen.iter().any(|s| s == from) {
            return false;
        }
        seen.push(from.to_string());
        let next = self
            .items
            .iter()
            .find(|e| e.id == from)
            .map(|e| e.blocked_by.clone())
            .unwrap_or_default();
        next.iter().any(|n| self.reaches(n, target, seen))
    }

    /// An attempt ended without completing: retried (no backoff in this policy) or blocked.
    fn retry_or_block(&mut self, id: &str) {
        let entry = self.get(id);
        entry.in_backoff = false;
        entry.status = if entry.attempts >= POLICY.max_attempts {
            Status::Blocked
        } else {
            Status::Ready
        };
    }

    fn restart(&mut self) {
        let in_flight: Vec<String> = self
            .items
            .iter()
            .filter(|e| e.status == Status::InFlight)
            .map(|e| e.id.clone())
            .collect();
        for id in in_flight {
            self.retry_or_block(&id);
        }
    }
}

/// Runs `op` against the store's transaction and the model, and checks that the two agree on
/// the answer.
fn run(tx: &mut super::store::Tx, model: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    let answer = |r: Result<Answer, QueueError>| match r {
        Ok(a) => Ok(a),
        Err(QueueError::Conflict(_)) => Ok(Answer::Conflict),
        Err(QueueError::Cycle(_)) => Ok(Answer::Cycle),
        Err(e) => Err(TestCaseError::fail(format!(
            "{op:?} failed unexpectedly: {e}"
        ))),
    };
    match op {
        Op::Create {
            priority,
            status,
            blockers,
        } => {
            let blocked_by = model.ids(blockers);
            let status = ["inbox", "planning", "ready"][*status];
            let new: NewWorkItem = serde_json::from_value(serde_json::json!({
                "title": "an item",
                "priority": PRIORITIES[*priority],
                "status": status,
                "blockedBy": blocked_by,
            }))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let item = tx
                .attempt(|tx| operations::create(tx, new))
                .map_err(|e| TestCaseError::fail(format!("create failed: {e}")))?;
            model.items.push(Entry {
                id: item.id.clone(),
                status: item.status,
                rank: item.priority.claim_rank(),
                created_at: item.created_at,
                blocked_by,
                attempts: 0,
                in_backoff: false,
            });
        }
        Op::Move { item, to } => {
            let Some(i) = model.pick(*item) else {
                return Ok(());
            };
            let to = Status::ALL[*to];
            let id = model.items[i].id.clone();
            let from = model.items[i].status;
            let expected = if manual_moves(from).contains(&to) {
                let entry = model.get(&id);
                entry.status = to;
                entry.in_backoff = false;
                if from == Status::InFlight {
                    entry.attempts = entry.attempts.saturating_sub(1);
                }
                Answer::Done
            } else {
                Answer::Conflict
            };
            let got = answer(
                tx.attempt(|tx| operations::move_item(tx, &id, to, None))
                    .map(|_| Answer::Done),
            )?;
            prop_assert_eq!(got, expected, "move {} from {} to {}", id, from, to);
        }
        Op::Claim => {
            let expected = model.next_claim();
            if let Some(id) = &expected {
                let entry = model.get(id);
                entry.status = Status::InFlight;
                entry.attempts += 1;
                entry.in_backoff = false;
            }
            let got = tx
                .attempt(|tx| operations::claim(tx, "agent", "session", &Default::default()))
                .map_err(|e| TestCaseError::fail(format!("claim failed: {e}")))?;
            prop_assert_eq!(
                got.map(|c| c.item.id),
                expected,
                "a claim takes the first claimable item in claim order"
            );
        }
        Op::Complete { item } => {
            let Some(i) = model.pick(*item) else {
                return Ok(());
            };
            let id = model.items[i].id.clone();
            let expected = if model.items[i].status == Status::InFlight {
                model.get(&id).status = Status::Review;
                Answer::Done
            } else {
                Answer::Conflict
            };
            let got = answer(
                tx.attempt(|tx| operations::complete(tx, &POLICY, &id, Completion::default()))
                    .map(|outcome| {
                        assert!(outcome.accepted, "no criteria: always accepted");
                        Answer::Done
                    }),
            )?;
            prop_assert_eq!(got, expected, "complete {}", id);
        }
        Op::Fail { item, verdict } => {
            let Some(i) = model.pick(*item) else {
                return Ok(());
            };
            let id = model.items[i].id.clone();
            let in_flight = model.items[i].status == Status::InFlight;
            let verdict = match verdict {
                0 => Verdict::Retry,
                1 => Verdict::Block,
                _ => Verdict::Requeue {
                    not_before: Some(tx.now + chrono::Duration::hours(1)),
                },
            };
            let expected = if in_flight {
                match verdict {
                    Verdict::Retry => model.retry_or_block(&id),
                    Verdict::Block => model.get(&id).status = Status::Blocked,
                    Verdict::Requeue { .. } => {
                        let entry = model.get(&id);
                        entry.status = Status::Ready;
                        entry.attempts = entry.attempts.saturating_sub(1);
                        entry.in_backoff = true;
                    }
                }
                Answer::Done
            } else {
                Answer::Conflict
            };
            let got = answer(
                tx.attempt(|tx| {
                    operations::fail_attempt(tx, &POLICY, &id, None, "failed", verdict, None)
                })
                .map(|_| Answer::Done),
            )?;
            prop_assert_eq!(got, expected, "fail {} ({:?})", id, verdict);
        }
        Op::Edit {
            item,
            priority,
            blockers,
        } => {
            let Some(i) = model.pick(*item) else {
                return Ok(());
            };
            let id = model.items[i].id.clone();
            let blocked_by = blockers.as_ref().map(|b| model.ids(b));
            let entry = &model.items[i];
            let expected = match &blocked_by {
                Some(b) if entry.status == Status::InFlight && *b != entry.blocked_by => {
                    Answer::Conflict
                }
                Some(b) if b.iter().any(|x| model.reaches(x, &id, &mut Vec::new())) => {
                    Answer::Cycle
                }
                _ => Answer::Done,
            };
            if expected == Answer::Done {
                let entry = model.get(&id);
                if let Some(p) = priority {
                    entry.rank = *p as u8;
                }
                if let Some(b) = &blocked_by {
                    entry.blocked_by = b.clone();
                }
            }
            let mut patch = serde_json::Map::new();
            if let Some(p) = priority {
                patch.insert("priority".into(), PRIORITIES[*p].into());
            }
            if let Some(b) = &blocked_by {
                patch.insert("blockedBy".into(), b.clone().into());
            }
            let patch: ItemPatch = serde_json::from_value(patch.into())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let got = answer(
                tx.attempt(|tx| operations::update(tx, &id, patch))
                    .map(|_| Answer::Done),
            )?;
            prop_assert_eq!(got, expected, "edit {} to {:?}", id, blocked_by);
        }
        Op::Delete { item } => {
            let Some(i) = model.pick(*item) else {
                return Ok(());
            };
            let id = model.items[i].id.clone();
            let expected = if model.items[i].status == Status::InFlight {
                Answer::Conflict
            } else {
                model.items.remove(i);
                for e in &mut model.items {
                    e.blocked_by.retain(|b| *b != id);
                }
                Answer::Done
            };
            let got = answer(
                tx.attempt(|tx| operations::delete(tx, &id))
                    .map(|_| Answer::Done),
            )?;
            prop_assert_eq!(got, expected, "delete {}", id);
        }
    }
    Ok(())
}

/// The store agrees with the model and keeps its invariants.
fn check(store: &Store, model: &Model) -> Result<(), TestCaseError> {
    let fail = |e: QueueError| TestCaseError::fail(e.to_string());
    let items: Vec<WorkItem> = store.read(|snap| snap.all_items()).map_err(fail)?;
    prop_assert_eq!(items.len(), model.items.len(), "the number of items");
    let by_id: BTreeMap<&str, &WorkItem> = items.iter().map(|i| (i.id.as_str(), i)).collect();
    for entry in &model.items {
        let item = by_id.get(entry.id.as_str()).copied();
        prop_assert!(item.is_some(), "item {} is in the store", entry.id);
        let item = item.expect("checked");
        prop_assert_eq!(item.status, entry.status, "status of {}", entry.id);
        prop_assert_eq!(item.attempts, entry.attempts, "attempts of {}", entry.id);
        prop_assert_eq!(
            item.priority.claim_rank(),
            entry.rank,
            "priority of {}",
            entry.id
        );
        prop_assert_eq!(
            &item.blocked_by,
            &entry.blocked_by,
            "blockedBy of {}",
            entry.id
        );
        prop_assert_eq!(
            item.retry_at.is_some(),
            entry.in_backoff,
            "backoff of {}",
            entry.id
        );
        let history = store.read(|snap| snap.history(&item.id)).map_err(fail)?;
        prop_assert_eq!(
            history.last().map(|c| c.to),
            Some(item.status),
            "the history of {} ends in its status",
            item.id
        );
    }
    for item in &items {
        for other in &items {
            prop_assert_eq!(
                item.blocks.contains(&other.id),
                other.blocked_by.contains(&item.id),
                "{}.blocks mirrors {}.blockedBy",
                item.id,
                other.id
            );
        }
    }
    for status in Status::ALL {
        let counted = store.read(|snap| snap.count(status)).map_err(fail)?;
        let actual = items.iter().filter(|i| i.status == status).count() as u64;
        prop_assert_eq!(counted, actual, "the count of {}", status);
    }
    Ok(())
}

fn run_steps(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let path = dir.path().join("queue.redb");
    let open = |path: &std::path::Path| {
        Store::open(path).map_err(|e| TestCaseError::fail(format!("open: {e}")))
    };
    let mut store = open(&path)?;
    let mut model = Model::default();
    for step in steps {
        match step {
            Step::Batch(ops) => {
                let (outcome, _) = store
                    .write(|tx| {
                        let mut outcome = Ok(());
                        for op in &ops {
                            outcome = run(tx, &mut model, op);
                            if outcome.is_err() {
                                break;
                            }
                        }
                        Ok(outcome)
                    })
                    .map_err(|e| TestCaseError::fail(format!("batch: {e}")))?;
                outcome?;
            }
            Step::Restart => {
                drop(store);
                store = open(&path)?;
                store
                    .write(|tx| operations::recover(tx, &POLICY))
                    .map_err(|e| TestCaseError::fail(format!("recover: {e}")))?;
                model.restart();
            }
        }
        check(&store, &model)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_store_follows_the_reference_model(steps in proptest::collection::vec(step(), 1..40)) {
        run_steps(steps)?;
    }
}
