//! `[approvals]`: which permission requests of an ACP agent a person must answer.
//!
//! An ACP agent asks before it uses a tool, naming the tool's kind (`read`, `edit`, `execute`,
//! `fetch`, ...) and, for a shell command, the command. The policy answers at once what it
//! can: a command matching `deny_commands` is refused, one matching `allow_commands` is
//! allowed, a kind in `auto_allow` is allowed; everything else (a kind in `ask`, and any kind
//! the config does not name) waits for a person, at most `timeout_secs`, then is refused.
//! Deny wins over allow, and command patterns win over kinds, so `allow_commands =
//! ["cargo test*"]` lets tests run without a person while other commands still ask.

use crate::config::{invalid, ConfigError};
use serde::Deserialize;
use std::time::Duration;

/// The tool kinds ACP names.
const KINDS: &[&str] = &[
    "read",
    "edit",
    "delete",
    "move",
    "search",
    "execute",
    "think",
    "fetch",
    "switch_mode",
    "other",
];

/// The `[approvals]` config section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalsConfig {
    /// Tool kinds allowed without asking.
    pub auto_allow: Vec<String>,
    /// Tool kinds a person must allow (kinds named nowhere ask too).
    pub ask: Vec<String>,
    /// Shell commands always allowed: patterns where `*` matches any text.
    pub allow_commands: Vec<String>,
    /// Shell commands always refused (wins over `allow_commands`).
    pub deny_commands: Vec<String>,
    /// How long a request waits for a person before it is refused.
    pub timeout_secs: u64,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        ApprovalsConfig {
            auto_allow: vec![
                "read".into(),
                "edit".into(),
                "search".into(),
                "think".into(),
            ],
            ask: vec!["execute".into(), "fetch".into()],
            allow_commands: Vec::new(),
            deny_commands: Vec::new(),
            timeout_secs: 600,
        }
    }
}

impl ApprovalsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, list) in [
            ("approvals.auto_allow", &self.auto_allow),
            ("approvals.ask", &self.ask),
        ] {
            if let Some(kind) = list.iter().find(|k| !KINDS.contains(&k.as_str())) {
                return Err(invalid(
                    key,
                    format!(
                        "\"{kind}\" is not a tool kind; the kinds are {}",
                        KINDS.join(", ")
                    ),
                ));
            }
        }
        if let Some(kind) = self.auto_allow.iter().find(|k| self.ask.contains(k)) {
            return Err(invalid(
                "approvals.ask",
                format!("\"{kind}\" is also in approvals.auto_allow: name each kind once"),
            ));
        }
        if self.timeout_secs == 0 {
            return Err(invalid("approvals.timeout_secs", "must be at least 1"));
        }
        Ok(())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// What the policy says about a tool call of `kind` (running `command`, for a shell).
    pub fn decide(&self, kind: &str, command: Option<&str>) -> Ruling {
        if let Some(command) = command {
            if let Some(p) = self.deny_commands.iter().find(|p| matches(p, command)) {
                return Ruling::Deny(format!(
                    "the command matches \"{p}\" (approvals.deny_commands)"
                ));
            }
            if let Some(p) = self.allow_commands.iter().find(|p| matches(p, command)) {
                return Ruling::Allow(format!(
                    "the command matches \"{p}\" (approvals.allow_commands)"
                ));
            }
        }
        if self.auto_allow.iter().any(|k| k == kind) {
            return Ruling::Allow(format!("{kind} is in approvals.auto_allow"));
        }
        Ruling::Ask
    }
}

/// The policy's answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Ruling {
    /// Allowed, and why (in words).
    Allow(String),
    /// Refused, and why (in words).
    Deny(String),
    /// A person decides.
    Ask,
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (none too) and
/// every other character itself.
fn matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = match parts.split_first() {
        Some(split) => split,
        None => return text.is_empty(),
    };
    let Some(mut left) = text.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return left.is_empty();
    };
    for part in middle {
        match left.find(part) {
            Some(at) => left = &left[at + part.len()..],
            None => return false,
        }
    }
    left.len() >= last.len() && left.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_patterns_match_like_a_person_reads_them() {
        assert!(matches("cargo test*", "cargo test --lib"));
        assert!(matches("cargo test*", "cargo test"));
        assert!(!matches("cargo test*", "rm -rf / ; cargo test"));
        assert!(matches("*push*", "git push origin"));
        assert!(matches("ls", "ls"));
        assert!(!matches("ls", "ls -la"));
        assert!(matches("a*b*c", "a-b-c"));
        assert!(!matches("a*b*c", "a-c"));
        assert!(!matches("ab*ba", "aba"));
    }

    #[test]
    fn deny_wins_then_commands_then_kinds() {
        let policy = ApprovalsConfig {
            allow_commands: vec!["cargo test*".into(), "git *".into()],
            deny_commands: vec!["git push*".into()],
            ..ApprovalsConfig::default()
        };
        assert!(matches!(
            policy.decide("execute", Some("git push origin")),
            Ruling::Deny(_)
        ));
        assert!(matches!(
            policy.decide("execute", Some("cargo test --lib")),
            Ruling::Allow(_)
        ));
        assert_eq!(policy.decide("execute", Some("rm -rf target")), Ruling::Ask);
        assert!(matches!(policy.decide("read", None), Ruling::Allow(_)));
        assert_eq!(policy.decide("fetch", None), Ruling::Ask);
        assert_eq!(policy.decide("delete", None), Ruling::Ask);
    }

    #[test]
    fn an_unknown_kind_is_named_in_the_error() {
        let policy = ApprovalsConfig {
            ask: vec!["exec".into()],
            ..ApprovalsConfig::default()
        };
        let err = policy.validate().unwrap_err().to_string();
        assert!(err.contains("\"exec\" is not a tool kind"), "{err}");
    }
}
