//! What an attempt comes to, in words a person reads.
//!
//! The session decides from what the agent reported: bad credentials block the item at once
//! (retrying cannot help), a rate limit sends it back to ready without counting the attempt
//! and pauses dispatch until the limit lifts, anything else is an ordinary failed attempt.
//! Every reason built here quotes the agent only through [`words`], so protocol JSON, stack
//! traces and backtraces never reach a status reason; they stay in the item's log.

use crate::config::Preset;
use chrono::{DateTime, Duration, Utc};

/// How long dispatch pauses after a rate limit whose agent did not say when it lifts.
pub const RATE_LIMIT_PAUSE_SECS: i64 = 60;
/// The longest pause an agent's reset time can cause (a usage limit resets within a day).
pub const RATE_LIMIT_PAUSE_MAX_SECS: i64 = 24 * 3600;
/// Longest quote of the agent's own words in a reason.
const QUOTE_MAX: usize = 300;

/// A rate limit an agent hit: dispatch for its preset pauses until `until`.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    pub until: DateTime<Utc>,
    /// What the agent said about it, in words.
    pub message: String,
}

impl RateLimit {
    /// The pause for a limit reported at `now`: until the agent's reset time when it gave one
    /// (at most [`RATE_LIMIT_PAUSE_MAX_SECS`] away), else [`RATE_LIMIT_PAUSE_SECS`].
    pub fn new(message: &str, until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Self {
        let latest = now + Duration::seconds(RATE_LIMIT_PAUSE_MAX_SECS);
        let until = until
            .unwrap_or(now + Duration::seconds(RATE_LIMIT_PAUSE_SECS))
            .clamp(now, latest);
        RateLimit {
            until,
            message: said(message),
        }
    }

    /// The item's status reason: what happened, that no attempt was spent, when work resumes.
    pub fn item_reason(&self) -> String {
        format!(
            "the agent was rate limited: {}; the attempt does not count, and dispatch pauses until {}",
            self.message,
            self.until.format("%H:%M:%S UTC")
        )
    }
}

/// The reason for an item blocked because the agent could not log in: the problem in the
/// agent's words and the fix for the preset's CLI.
pub fn login_reason(preset: Preset, message: &str) -> String {
    format!(
        "the agent could not log in: {}; {}, then move the item back to ready",
        said(message),
        login_fix(preset)
    )
}

/// How a person fixes the login of a preset's CLI.
fn login_fix(preset: Preset) -> &'static str {
    match preset {
        Preset::Claude => {
            "run `claude login` as the user flightdeck runs as, or set ANTHROPIC_API_KEY in flightdeck's environment"
        }
        Preset::Codex => {
            "run `codex login` as the user flightdeck runs as, or set OPENAI_API_KEY in flightdeck's environment"
        }
        Preset::Gemini => {
            "run `gemini` once to sign in as the user flightdeck runs as, or set GEMINI_API_KEY in flightdeck's environment"
        }
        _ => "fix the credentials the agent command (agent.command) uses",
    }
}

/// The agent's words, or a pointer to the log when they are not words.
fn said(message: &str) -> String {
    words(message).unwrap_or_else(|| "an error it described only in its log".to_string())
}

/// `text` as something to quote to a person: trimmed, one line, at most [`QUOTE_MAX`]
/// characters; None when it is blank or looks like protocol JSON or a stack trace.
pub fn words(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    if !looks_like_words(line) {
        return None;
    }
    Some(match line.char_indices().nth(QUOTE_MAX) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    })
}

/// False for JSON (an object or array), and for the lines stack traces and backtraces are
/// made of (Rust's numbered frames and `at` lines, JavaScript's `at fn (file:1:2)`, Python's
/// `Traceback`/`File "..", line N`, Java's `at a.b.C(..)`).
fn looks_like_words(line: &str) -> bool {
    let line = line.trim();
    if line.starts_with('{') || line.starts_with('[') || line.contains("{\"") {
        return false;
    }
    let numbered_frame = line
        .split_once(": ")
        .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    let markers = [
        "<unknown>",
        "stack backtrace",
        "RUST_BACKTRACE",
        "Traceback (most recent call last)",
    ];
    !(numbered_frame
        || line.starts_with("at ")
        || line.starts_with("File \"")
        || markers.iter().any(|m| line.contains(m)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_and_protocol_or_traces_are_not() {
        assert_eq!(
            words("  Invalid API key\nmore"),
            Some("Invalid API key".into())
        );
        for not_words in [
            r#"{"type":"result","is_error":true}"#,
            "[1,2]",
            "error: {\"code\":401}",
            "  11: <unknown>",
            "   3: std::rt::lang_start",
            "    at Object.<anonymous> (/app/cli.js:10:5)",
            "stack backtrace:",
            "note: run with `RUST_BACKTRACE=1` for a backtrace",
            "Traceback (most recent call last):",
            "  File \"agent.py\", line 3, in <module>",
            "",
            "  \n ",
        ] {
            assert_eq!(words(not_words), None, "{not_words:?}");
        }
        let long = "word ".repeat(200);
        assert_eq!(words(&long).map(|w| w.chars().count()), Some(QUOTE_MAX + 1));
    }

    #[test]
    fn rate_limits_pause_for_the_agents_time_within_bounds() {
        let now = Utc::now();
        let soon = now + Duration::seconds(5);
        assert_eq!(RateLimit::new("429", Some(soon), now).until, soon);
        assert_eq!(
            RateLimit::new("429", None, now).until,
            now + Duration::seconds(RATE_LIMIT_PAUSE_SECS)
        );
        let far = now + Duration::days(400);
        assert_eq!(
            RateLimit::new("429", Some(far), now).until,
            now + Duration::seconds(RATE_LIMIT_PAUSE_MAX_SECS)
        );
        let past = now - Duration::seconds(50);
        assert_eq!(RateLimit::new("429", Some(past), now).until, now);
        let limit = RateLimit::new(r#"{"error":429}"#, None, now);
        assert!(
            !limit.item_reason().contains("{\""),
            "{}",
            limit.item_reason()
        );
    }

    #[test]
    fn a_login_reason_names_the_problem_and_the_fix() {
        let why = login_reason(Preset::Claude, "Invalid API key · Please run /login");
        assert!(why.contains("Invalid API key"), "{why}");
        assert!(why.contains("claude login"), "{why}");
        assert!(why.contains("ANTHROPIC_API_KEY"), "{why}");
        assert!(login_reason(Preset::Codex, "401").contains("codex login"));
    }
}
