//! Leases and fencing: the rules that let runners on other machines hold work without ever
//! letting two of them finish the same attempt.
//!
//! A runner's claim of an item is a [`Lease`]: it names the runner and the attempt's session,
//! and carries a *fence*, a number that grows with every claim of that item (the last one
//! given out is kept per item, for good). A lease lasts `runners.lease_secs` from the
//! runner's last heartbeat; once it runs out the item goes back to ready and the next claim
//! gets a higher fence. Every write a runner makes about an item (progress, its log, files,
//! completion, failure) names the fence it holds and is admitted only while that is still the
//! item's live lease: a runner cut off by the network, or stopped past its lease, finds its
//! late writes refused, however they arrive.
//!
//! This module is the rules alone, with no I/O: the store (`runner_tables.rs`) applies them to
//! what it keeps in redb, and [`LeaseBook`] applies them to memory, which is what the
//! property test drives through random claims, heartbeats, expiries, completions and restarts.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One runner's hold on one item's current attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    /// Unique per claim.
    pub id: String,
    pub item_id: String,
    pub runner_id: String,
    /// The attempt's session (its id on the server and on the runner).
    pub session_id: String,
    /// Grows with every claim of the item.
    pub fence: u64,
    /// When it runs out without a heartbeat (ms since the epoch).
    pub expires_at_ms: i64,
    /// The last report (by the runner's per-session sequence number) applied: a resent report
    /// with a number at or below it is acknowledged and not applied twice.
    pub seq: u64,
}

/// Why a runner's write about an item is refused; each is a 409 with its sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Nobody holds the item now (it was finished, or its lease ran out and it went back).
    NotLeased,
    /// Another claim holds it now (a later fence).
    Superseded { current: u64 },
    /// The lease named is held by another runner (a fence from someone else).
    OtherRunner,
    /// The lease ran out and the sweeper has not yet sent the item back.
    Expired,
}

impl Refusal {
    /// The refusal in words, naming the item, for the runner's log and the person reading it.
    pub fn sentence(&self, title: &str, fence: u64) -> String {
        match self {
            Refusal::NotLeased => format!(
                "{title:?} is no longer leased to this runner (fence {fence}): its lease ran out or the attempt was finished, so this write is refused"
            ),
            Refusal::Superseded { current } => format!(
                "{title:?} has been claimed again since this runner's claim (fence {fence}, now {current}): the newer claim's result counts, so this write is refused"
            ),
            Refusal::OtherRunner => format!(
                "{title:?} (fence {fence}) is leased to another runner: this write is refused"
            ),
            Refusal::Expired => format!(
                "the lease on {title:?} (fence {fence}) ran out before this write arrived: the item goes back to ready, so this write is refused"
            ),
        }
    }
}

/// The next fence of an item whose last claim had `last` (0: never claimed by a runner).
pub fn next_fence(last: u64) -> u64 {
    last.saturating_add(1)
}

/// A new lease, the item's fence moved on from `last_fence`.
pub fn grant(
    id: String,
    item_id: &str,
    runner_id: &str,
    session_id: &str,
    last_fence: u64,
    now_ms: i64,
    lease_ms: i64,
) -> Lease {
    Lease {
        id,
        item_id: item_id.to_string(),
        runner_id: runner_id.to_string(),
        session_id: session_id.to_string(),
        fence: next_fence(last_fence),
        expires_at_ms: now_ms.saturating_add(lease_ms),
        seq: 0,
    }
}

pub fn expired(lease: &Lease, now_ms: i64) -> bool {
    now_ms >= lease.expires_at_ms
}

/// Whether `runner_id`, holding `fence`, may write about the item whose live lease is
/// `current`.
pub fn admit(
    current: Option<&Lease>,
    runner_id: &str,
    fence: u64,
    now_ms: i64,
) -> Result<(), Refusal> {
    let Some(lease) = current else {
        return Err(Refusal::NotLeased);
    };
    if lease.fence != fence {
        return Err(if fence < lease.fence {
            Refusal::Superseded {
                current: lease.fence,
            }
        } else {
            Refusal::NotLeased
        });
    }
    if lease.runner_id != runner_id {
        return Err(Refusal::OtherRunner);
    }
    if expired(lease, now_ms) {
        return Err(Refusal::Expired);
    }
    Ok(())
}

/// A heartbeat: the lease lasts another `lease_ms` from now. A lease that has run out stays
/// out (its item is on its way back to ready); returns whether it was renewed.
pub fn renew(lease: &mut Lease, now_ms: i64, lease_ms: i64) -> bool {
    if expired(lease, now_ms) {
        return false;
    }
    lease.expires_at_ms = now_ms.saturating_add(lease_ms);
    true
}

/// After a server restart: every runner gets one whole lease period to heartbeat before its
/// leases can run out, since it could not reach the server while it was down.
pub fn after_restart(lease: &mut Lease, now_ms: i64, lease_ms: i64) {
    lease.expires_at_ms = lease.expires_at_ms.max(now_ms.saturating_add(lease_ms));
}

/// Leases in memory, kept by the same rules as the store: what the property test drives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeaseBook {
    pub leases: BTreeMap<String, Lease>,
    pub fences: BTreeMap<String, u64>,
    next_id: u64,
}

impl LeaseBook {
    /// `runner_id` claims `item_id` (the caller has checked the item is claimable).
    pub fn claim(&mut self, item_id: &str, runner_id: &str, now_ms: i64, lease_ms: i64) -> Lease {
        self.next_id += 1;
        let last = self.fences.get(item_id).copied().unwrap_or(0);
        let lease = grant(
            format!("lease-{}", self.next_id),
            item_id,
            runner_id,
            &format!("session-{}", self.next_id),
            last,
            now_ms,
            lease_ms,
        );
        self.fences.insert(item_id.to_string(), lease.fence);
        self.leases.insert(item_id.to_string(), lease.clone());
        lease
    }

    pub fn heartbeat(&mut self, runner_id: &str, now_ms: i64, lease_ms: i64) -> Vec<String> {
        let mut renewed = Vec::new();
        for lease in self.leases.values_mut() {
            if lease.runner_id == runner_id && renew(lease, now_ms, lease_ms) {
                renewed.push(lease.item_id.clone());
            }
        }
        renewed
    }

    /// The sweeper: leases that ran out go, and their items with them back to ready.
    pub fn sweep(&mut self, now_ms: i64) -> Vec<Lease> {
        let gone: Vec<String> = self
            .leases
            .values()
            .filter(|l| expired(l, now_ms))
            .map(|l| l.item_id.clone())
            .collect();
        gone.iter()
            .filter_map(|id| self.leases.remove(id))
            .collect()
    }

    /// A completion (or failure) from `runner_id` with `fence`: admitted at most once.
    pub fn finish(
        &mut self,
        item_id: &str,
        runner_id: &str,
        fence: u64,
        now_ms: i64,
    ) -> Result<Lease, Refusal> {
        admit(self.leases.get(item_id), runner_id, fence, now_ms)?;
        self.leases.remove(item_id).ok_or(Refusal::NotLeased)
    }

    pub fn restart(&mut self, now_ms: i64, lease_ms: i64) {
        for lease in self.leases.values_mut() {
            after_restart(lease, now_ms, lease_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    const LEASE_MS: i64 = 30_000;
    const ITEMS: [&str; 3] = ["a", "b", "c"];
    const RUNNERS: [&str; 3] = ["r1", "r2", "r3"];

    #[derive(Debug, Clone)]
    enum Step {
        Claim {
            item: usize,
            runner: usize,
        },
        Heartbeat {
            runner: usize,
        },
        Wait {
            ms: i64,
        },
        Sweep,
        Complete {
            item: usize,
            runner: usize,
            stale: bool,
        },
        Restart,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0..3usize, 0..3usize).prop_map(|(item, runner)| Step::Claim { item, runner }),
            (0..3usize).prop_map(|runner| Step::Heartbeat { runner }),
            (0..45_000i64).prop_map(|ms| Step::Wait { ms }),
            Just(Step::Sweep),
            (0..3usize, 0..3usize, any::<bool>()).prop_map(|(item, runner, stale)| {
                Step::Complete {
                    item,
                    runner,
                    stale,
                }
            }),
            Just(Step::Restart),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever happens: fences only grow; an item has at most one live lease; a
        /// completion is accepted only from the live lease's runner and fence, at most once per
        /// claim; a lease is never swept while its runner heartbeats in time; a restart loses
        /// no lease and gives each a whole period.
        #[test]
        fn fencing_holds_under_any_sequence(steps in proptest::collection::vec(step(), 1..80)) {
            let mut book = LeaseBook::default();
            let mut now = 1_000_000i64;
            // Every fence ever handed out per item, and the claims whose completion was accepted.
            let mut given: BTreeMap<String, Vec<u64>> = BTreeMap::new();
            let mut accepted: BTreeSet<(String, u64)> = BTreeSet::new();
            for step in steps {
                match step {
                    Step::Claim { item, runner } => {
                        let item = ITEMS[item];
                        // Only an item nobody holds is claimable (it is ready).
                        if book.leases.contains_key(item) {
                            continue;
                        }
                        let lease = book.claim(item, RUNNERS[runner], now, LEASE_MS);
                        let seen = given.entry(item.to_string()).or_default();
                        prop_assert!(seen.last().is_none_or(|&last| lease.fence > last));
                        seen.push(lease.fence);
                        prop_assert_eq!(lease.expires_at_ms, now + LEASE_MS);
                    }
                    Step::Heartbeat { runner } => {
                        let before = book.clone();
                        let renewed = book.heartbeat(RUNNERS[runner], now, LEASE_MS);
                        for (item, lease) in &book.leases {
                            let old = &before.leases[item];
                            if renewed.contains(item) {
                                prop_assert_eq!(lease.expires_at_ms, now + LEASE_MS);
                                prop_assert!(old.expires_at_ms > now);
                            } else {
                                prop_assert_eq!(lease, old);
                            }
                            prop_assert_eq!(lease.fence, old.fence);
                        }
                    }
                    Step::Wait { ms } => now += ms,
                    Step::Sweep => {
                        let live: Vec<Lease> = book.leases.values().cloned().collect();
                        let gone = book.sweep(now);
                        for lease in &gone {
                            prop_assert!(lease.expires_at_ms <= now, "swept before it ran out");
                        }
                        for lease in live {
                            let swept = gone.iter().any(|g| g.id == lease.id);
                            prop_assert_eq!(swept, lease.expires_at_ms <= now);
                        }
                    }
                    Step::Complete { item, runner, stale } => {
                        let item_id = ITEMS[item];
                        let runner_id = RUNNERS[runner];
                        let live = book.leases.get(item_id).cloned();
                        // A runner writes with the fence it was given: the latest one, or an
                        // older one it still holds after a partition.
                        let fence = match (&live, stale) {
                            (Some(l), false) => l.fence,
                            _ => given.get(item_id).and_then(|f| f.first().copied()).unwrap_or(1),
                        };
                        let result = book.finish(item_id, runner_id, fence, now);
                        let should = live.as_ref().is_some_and(|l| {
                            l.fence == fence && l.runner_id == runner_id && l.expires_at_ms > now
                        });
                        prop_assert_eq!(result.is_ok(), should, "{:?} with fence {}", live, fence);
                        if result.is_ok() {
                            prop_assert!(accepted.insert((item_id.to_string(), fence)), "accepted twice");
                            prop_assert!(!book.leases.contains_key(item_id));
                            // The same completion resent is refused now.
                            prop_assert!(book.finish(item_id, runner_id, fence, now).is_err());
                        }
                    }
                    Step::Restart => {
                        let before = book.clone();
                        book.restart(now, LEASE_MS);
                        prop_assert_eq!(before.leases.len(), book.leases.len());
                        for (item, lease) in &book.leases {
                            prop_assert!(lease.expires_at_ms >= now + LEASE_MS);
                            prop_assert_eq!(lease.fence, before.leases[item].fence);
                        }
                        prop_assert_eq!(&before.fences, &book.fences);
                    }
                }
                for (item, lease) in &book.leases {
                    prop_assert_eq!(book.fences.get(item).copied(), Some(lease.fence), "the live lease has the item's latest fence");
                }
            }
        }
    }

    #[test]
    fn a_stale_fence_is_refused_in_words() {
        let mut book = LeaseBook::default();
        let first = book.claim("a", "r1", 0, 10);
        assert_eq!(book.sweep(10).len(), 1);
        let second = book.claim("a", "r2", 11, 10);
        assert_eq!(second.fence, first.fence + 1);
        let refused = book.finish("a", "r1", first.fence, 12).unwrap_err();
        assert_eq!(refused, Refusal::Superseded { current: 2 });
        assert!(refused.sentence("Fix it", 1).contains("claimed again"));
        assert!(book.finish("a", "r2", second.fence, 12).is_ok());
    }
}
