//! Telling what kind of trouble an agent's API error is, from the HTTP status or the words the
//! agent printed, and saying it in a sentence that names the fix.
//!
//! The three real CLIs report the same few failures in their own shapes (Claude Code's
//! `api_retry` lines and error results, Codex's error events, Gemini CLI's error results),
//! so each parser extracts a status and a message and leaves the judgement to this one place.

use super::{cap, Problem, ProblemKind};
use chrono::{DateTime, Duration, Utc};

/// Which agent said it, for the sentence and the fix.
#[derive(Debug, Clone, Copy)]
pub enum Agent {
    Claude,
    Codex,
    Gemini,
}

impl Agent {
    fn name(self) -> &'static str {
        match self {
            Agent::Claude => "Claude Code",
            Agent::Codex => "Codex",
            Agent::Gemini => "Gemini CLI",
        }
    }

    fn login_fix(self) -> &'static str {
        match self {
            Agent::Claude => {
                "set ANTHROPIC_API_KEY where flightdeck runs, or run `claude` and /login"
            }
            Agent::Codex => "run `codex login`, or set the API key its model provider names",
            Agent::Gemini => "set GEMINI_API_KEY where flightdeck runs, or run `gemini` and log in",
        }
    }
}

/// The kind of an HTTP status: 401/403 bad credentials, 429/529 a limit, 5xx other.
pub fn kind_of_status(status: u64) -> Option<ProblemKind> {
    match status {
        401 | 403 => Some(ProblemKind::Auth),
        429 | 529 => Some(ProblemKind::RateLimit { until: None }),
        500..=599 => Some(ProblemKind::Other),
        _ => None,
    }
}

/// The kind of an error from its words, when they say it plainly.
pub fn kind_of_text(text: &str) -> Option<ProblemKind> {
    let lower = text.to_ascii_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    if any(&[
        "invalid api key",
        "invalid x-api-key",
        "api key not valid",
        "incorrect api key",
        "authentication_error",
        "authentication_failed",
        "unauthorized",
        "not logged in",
        "please run /login",
        "permission_denied",
    ]) {
        return Some(ProblemKind::Auth);
    }
    if any(&[
        "rate limit",
        "rate_limit",
        "usage limit",
        "usage_limit",
        "overloaded",
        "resource_exhausted",
        "quota",
        "too many requests",
    ]) {
        return Some(ProblemKind::RateLimit { until: None });
    }
    status_in_text(&lower).and_then(kind_of_status)
}

/// An HTTP status the words name after "api error", "status" or "status code".
fn status_in_text(lower: &str) -> Option<u64> {
    ["api error:", "status code", "status:", "status"]
        .iter()
        .find_map(|lead| {
            let rest = &lower[lower.find(lead)? + lead.len()..];
            let digits: String = rest
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            (digits.len() == 3).then(|| digits.parse().ok()).flatten()
        })
}

/// A problem from a status and/or the agent's words; `None` when neither says what it is.
/// `retry_in` is the wait the agent announced, which dates a rate limit's end.
pub fn problem(
    agent: Agent,
    status: Option<u64>,
    text: &str,
    retry_in: Option<std::time::Duration>,
) -> Option<Problem> {
    let kind = status
        .and_then(kind_of_status)
        .or_else(|| kind_of_text(text))?;
    Some(describe(agent, kind, status, text, retry_in))
}

/// The sentence for a problem of a known kind.
pub fn describe(
    agent: Agent,
    kind: ProblemKind,
    status: Option<u64>,
    text: &str,
    retry_in: Option<std::time::Duration>,
) -> Problem {
    let name = agent.name();
    let status = status.map(|s| format!(" (HTTP {s})")).unwrap_or_default();
    let detail = plain(text);
    let detail = detail.trim();
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    };
    let (kind, message) = match kind {
        ProblemKind::Auth => (
            ProblemKind::Auth,
            format!(
                "{name} was refused by its model API for bad credentials{status}{detail}. To fix it, {}.",
                agent.login_fix()
            ),
        ),
        ProblemKind::RateLimit { until } => {
            let until = until.or_else(|| {
                retry_in.and_then(|d| Duration::from_std(d).ok().map(|d| Utc::now() + d))
            });
            let when = match until {
                Some(at) => format!("; it lifts at {}", at.format("%H:%M:%S UTC")),
                None => String::new(),
            };
            (
                ProblemKind::RateLimit { until },
                format!("{name} hit a rate or usage limit of its model API{status}{detail}{when}."),
            )
        }
        ProblemKind::Other => (
            ProblemKind::Other,
            format!("{name} got an error from its model API{status}{detail}."),
        ),
    };
    Problem {
        kind,
        message: cap(&message),
    }
}

/// The words of an error that may carry an API's JSON error body: its `message`, or the
/// text before the JSON when it has none.
fn plain(text: &str) -> String {
    let Some(open) = text.find('{') else {
        return text.to_string();
    };
    let close = text.rfind('}').unwrap_or(text.len().saturating_sub(1));
    let body: Option<serde_json::Value> = text
        .get(open..=close)
        .and_then(|j| serde_json::from_str(j).ok());
    let message = body.as_ref().and_then(|b| {
        b.pointer("/error/message")
            .or_else(|| b.get("message"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    });
    let before = text[..open].trim_end_matches(['[', ' ', ':']);
    match message {
        Some(m) if before.is_empty() => m,
        Some(m) => format!("{}: {m}", before.trim_start_matches('[')),
        None => before.trim_start_matches('[').to_string(),
    }
}

/// A Unix time in seconds (as in Claude Code's "usage limit reached|1700000000"), if plausible.
pub fn at_unix(secs: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(secs, 0).filter(|t| *t > Utc::now() - Duration::days(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_decide_before_words() {
        assert_eq!(kind_of_status(401), Some(ProblemKind::Auth));
        assert_eq!(kind_of_status(403), Some(ProblemKind::Auth));
        assert_eq!(
            kind_of_status(529),
            Some(ProblemKind::RateLimit { until: None })
        );
        assert_eq!(kind_of_status(503), Some(ProblemKind::Other));
        assert_eq!(kind_of_status(400), None);
        let p = problem(Agent::Codex, Some(500), "rate limit words", None).unwrap();
        assert_eq!(p.kind, ProblemKind::Other);
    }

    #[test]
    fn an_auth_problem_names_the_fix() {
        let p = problem(
            Agent::Claude,
            None,
            "Invalid API key · Fix external API key",
            None,
        )
        .unwrap();
        assert_eq!(p.kind, ProblemKind::Auth);
        assert!(p.message.contains("ANTHROPIC_API_KEY"), "{}", p.message);
        assert!(!p.message.contains('{'), "{}", p.message);
    }

    #[test]
    fn a_rate_limit_is_dated_from_the_announced_wait() {
        let p = problem(
            Agent::Gemini,
            Some(429),
            "",
            Some(std::time::Duration::from_secs(60)),
        )
        .unwrap();
        let ProblemKind::RateLimit { until: Some(at) } = p.kind else {
            panic!("{:?}", p.kind)
        };
        assert!(at > Utc::now() + Duration::seconds(30));
        assert!(p.message.contains("lifts at"), "{}", p.message);
    }

    #[test]
    fn json_in_an_error_is_put_in_words() {
        let p = problem(
            Agent::Gemini,
            None,
            "[API Error: {\"error\":{\"code\":401,\"message\":\"invalid x-api-key\",\"status\":\"UNAUTHENTICATED\"}}]",
            None,
        )
        .unwrap();
        assert!(!p.message.contains('{'), "{}", p.message);
        assert!(
            p.message.contains("API Error: invalid x-api-key"),
            "{}",
            p.message
        );
    }

    #[test]
    fn ordinary_words_are_no_problem() {
        assert_eq!(kind_of_text("wrote hello.txt"), None);
        assert_eq!(kind_of_text("wrote 4013 bytes to 429.txt"), None);
        assert_eq!(
            kind_of_text("API Error: 401 {\"type\":\"error\"}"),
            Some(ProblemKind::Auth)
        );
    }
}
