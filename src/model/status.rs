//! The lifecycle of a work item as a state machine.
//!
//! Every status change in flightdeck goes through [`Status::can_move_to`], so the rules live in
//! one place: `inbox -> planning -> ready`, `ready -> in_flight` only through a claim,
//! `in_flight -> review | done | blocked | ready`, `review -> done | ready`, any status but
//! `done -> blocked`, and `blocked -> ready | inbox`. `done` is final.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a work item is in its lifecycle; one kanban column each.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    PartialOrd,
    Ord,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Inbox,
    Planning,
    Ready,
    InFlight,
    Review,
    Done,
    Blocked,
}

/// How a status change was asked for: by a person or tool (`Manual`), or by the queue's own
/// claim operation, the only way into `in_flight`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Manual,
    Claim,
}

impl Status {
    /// Every status, in board (lifecycle) order.
    pub const ALL: [Status; 7] = [
        Status::Inbox,
        Status::Planning,
        Status::Ready,
        Status::InFlight,
        Status::Review,
        Status::Done,
        Status::Blocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Inbox => "inbox",
            Status::Planning => "planning",
            Status::Ready => "ready",
            Status::InFlight => "in_flight",
            Status::Review => "review",
            Status::Done => "done",
            Status::Blocked => "blocked",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The statuses a person may move an item to from this one (claims excluded).
    pub fn manual_moves(self) -> &'static [Status] {
        use Status::*;
        match self {
            Inbox => &[Planning, Blocked],
            Planning => &[Ready, Blocked],
            Ready => &[Blocked],
            InFlight => &[Review, Done, Blocked, Ready],
            Review => &[Done, Ready, Blocked],
            Done => &[],
            Blocked => &[Ready, Inbox],
        }
    }

    pub fn can_move_to(self, to: Status, how: Transition) -> bool {
        match how {
            Transition::Claim => self == Status::Ready && to == Status::InFlight,
            Transition::Manual => self.manual_moves().contains(&to),
        }
    }

    /// Human sentence naming the allowed moves, used in 409 errors.
    pub fn describe_moves(self) -> String {
        let moves = self.manual_moves();
        if moves.is_empty() {
            return format!("{self} is final: no moves are allowed from it");
        }
        let names: Vec<&str> = moves.iter().map(|s| s.as_str()).collect();
        let mut text = format!("allowed moves from {self}: {}", names.join(", "));
        if self == Status::Ready {
            text.push_str(" (ready -> in_flight happens only through a claim)");
        }
        text
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    #[test]
    fn the_happy_path_is_allowed() {
        assert!(Inbox.can_move_to(Planning, Transition::Manual));
        assert!(Planning.can_move_to(Ready, Transition::Manual));
        assert!(Ready.can_move_to(InFlight, Transition::Claim));
        assert!(InFlight.can_move_to(Review, Transition::Manual));
        assert!(Review.can_move_to(Done, Transition::Manual));
    }

    #[test]
    fn in_flight_is_reached_only_by_a_claim() {
        for from in Status::ALL {
            assert!(!from.can_move_to(InFlight, Transition::Manual), "{from}");
        }
        for from in Status::ALL {
            assert_eq!(from.can_move_to(InFlight, Transition::Claim), from == Ready);
        }
    }

    #[test]
    fn every_status_but_done_can_be_blocked() {
        for from in Status::ALL {
            let expected = from != Done && from != Blocked;
            assert_eq!(
                from.can_move_to(Blocked, Transition::Manual),
                expected,
                "{from}"
            );
        }
    }

    #[test]
    fn done_is_final_and_says_so() {
        for to in Status::ALL {
            assert!(!Done.can_move_to(to, Transition::Manual));
        }
        assert!(Done.describe_moves().contains("final"));
    }

    #[test]
    fn review_rejects_back_to_ready_and_blocked_reopens() {
        assert!(Review.can_move_to(Ready, Transition::Manual));
        assert!(Blocked.can_move_to(Ready, Transition::Manual));
        assert!(Blocked.can_move_to(Inbox, Transition::Manual));
        assert!(!Inbox.can_move_to(Ready, Transition::Manual));
        assert!(!Inbox.can_move_to(Done, Transition::Manual));
    }

    #[test]
    fn names_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("flying"), None);
    }
}
