//! Token budgets, the dispatch side. An agent must not spend without limit while nobody
//! watches, so there are two budgets (see `[budgets]` in the config):
//!
//! - an item's (`maxTokens`, else `budgets.item_tokens`): the queue counts each session's
//!   tokens into its item as progress arrives and blocks the item when it reaches its budget
//!   (`queue/operations.rs`, `account_tokens`); the Dispatcher then stops the agent;
//! - the pool's per UTC day (`budgets.daily_tokens`): the queue keeps the day's total in the
//!   store, so a restart does not reset it; here the Dispatcher checks it before each claim
//!   and holds dispatch while it is spent, until the next UTC day or until a person raises
//!   the budget (config edit or `PUT /api/budgets`). Running agents finish their work.
//!
//! A session counts its agent's tokens through [`count_tokens`], input and output apart, so
//! the cost estimate can price them apart.

use crate::config::Preset;
use crate::model::AgentSession as SessionRecord;
use crate::queue::TokenUsage;
use chrono::Utc;

/// Adds an agent's reported tokens to its session (the total and each side) and to the
/// metrics.
pub fn count_tokens(record: &mut SessionRecord, preset: Preset, input: u64, output: u64) {
    record.input_tokens = record.input_tokens.saturating_add(input);
    record.output_tokens = record.output_tokens.saturating_add(output);
    record.tokens_used = record
        .tokens_used
        .saturating_add(input)
        .saturating_add(output);
    crate::metrics::tokens(preset.as_str(), input, output);
}

/// What a session has used so far, as progress reports it.
pub fn usage(record: &SessionRecord) -> TokenUsage {
    TokenUsage {
        input: record.input_tokens,
        output: record.output_tokens,
    }
}

/// The pool's daily budget as the Dispatcher sees it.
#[derive(Debug, Clone)]
pub struct DailyBudget {
    /// Tokens allowed per UTC day (0 = none).
    pub limit: u64,
    /// Tokens used today, as last read from the store.
    pub used: u64,
    /// The (day, limit) whose exhaustion was last announced, so each is announced once.
    announced: Option<(String, u64)>,
}

impl DailyBudget {
    pub fn new(limit: u64) -> DailyBudget {
        DailyBudget {
            limit,
            used: 0,
            announced: None,
        }
    }

    /// The UTC day now, as the store keys token totals.
    pub fn today() -> String {
        crate::queue::token_day(Utc::now())
    }

    /// Whether `used` tokens spend the budget.
    pub fn spent_by(&self, used: u64) -> bool {
        self.limit > 0 && used >= self.limit
    }

    /// Why dispatch is held, in words, while the budget is spent.
    pub fn held_reason(&self) -> String {
        format!(
            "the daily token budget is spent ({} of {} tokens used today, UTC): no new agent starts until midnight UTC, or raise budgets.daily_tokens in the config or with PUT /api/budgets",
            self.used, self.limit
        )
    }

    /// True the first time the budget of `day` is found spent (at this limit): the moment to
    /// announce `budget:exceeded`.
    pub fn first_exhaustion(&mut self, day: &str) -> bool {
        let key = (day.to_string(), self.limit);
        if self.announced.as_ref() == Some(&key) {
            return false;
        }
        self.announced = Some(key);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_budget_is_announced_once_per_day_and_limit() {
        let mut budget = DailyBudget::new(100);
        assert!(!budget.spent_by(99));
        assert!(budget.spent_by(100));
        assert!(budget.first_exhaustion("2026-11-24"));
        assert!(!budget.first_exhaustion("2026-11-24"));
        assert!(budget.first_exhaustion("2026-11-25"));
        budget.limit = 200;
        assert!(budget.first_exhaustion("2026-11-25"));
        assert!(!DailyBudget::new(0).spent_by(u64::MAX), "0 means no budget");
    }
}
