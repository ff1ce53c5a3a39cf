//! How much of an agent's stderr reaches the board as progress.
//!
//! stderr is where CLIs put tracing output, warnings and stack traces: hundreds of lines a
//! second that would bury the agent's real progress and flood every browser. Every stderr
//! line stays in the session's log; as progress, an attempt shows its first
//! [`STDERR_BURST`] stderr lines, then at most one per [`STDERR_EVERY`]. The last readable
//! stderr line still reaches a failure's reason (see the session), so the last words before
//! a crash are never lost.

use std::time::{Duration, Instant};

/// stderr lines of an attempt shown as progress before the rate applies.
pub const STDERR_BURST: u32 = 10;
/// After the burst, at most one stderr line per this long is shown as progress.
pub const STDERR_EVERY: Duration = Duration::from_secs(5);

/// A token bucket over one attempt's stderr: [`STDERR_BURST`] tokens, one more per
/// [`STDERR_EVERY`].
pub struct StderrGate {
    tokens: u32,
    refilled: Instant,
    /// Lines held back since the last one shown.
    held: u64,
}

impl Default for StderrGate {
    fn default() -> Self {
        StderrGate {
            tokens: STDERR_BURST,
            refilled: Instant::now(),
            held: 0,
        }
    }
}

impl StderrGate {
    /// The progress message for a stderr line, or None when it only goes to the log. A line
    /// shown after some were held back says how many.
    pub fn admit(&mut self, message: String) -> Option<String> {
        let earned = self.refilled.elapsed().as_secs() / STDERR_EVERY.as_secs().max(1);
        if earned > 0 {
            self.tokens = (self.tokens as u64 + earned).min(STDERR_BURST as u64) as u32;
            self.refilled += STDERR_EVERY * earned as u32;
        }
        if self.tokens == 0 {
            self.held += 1;
            return None;
        }
        self.tokens -= 1;
        Some(match std::mem::take(&mut self.held) {
            0 => message,
            n => format!("{message} (after {n} more stderr lines, in the log)"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_shows_only_the_burst() {
        let mut gate = StderrGate::default();
        let shown = (0..10_000)
            .filter_map(|i| gate.admit(format!("line {i}")))
            .count();
        assert_eq!(shown, STDERR_BURST as usize);
    }

    #[test]
    fn held_lines_are_counted_in_the_next_one_shown() {
        let mut gate = StderrGate {
            tokens: 0,
            refilled: Instant::now() - STDERR_EVERY,
            held: 3,
        };
        assert_eq!(
            gate.admit("panic".into()).as_deref(),
            Some("panic (after 3 more stderr lines, in the log)")
        );
    }
}
