//! Which events a webhook takes: `events = ["work:status_changed", "agent:*"]`. An entry is
//! an exact event type or a prefix ending in `:*`; `"*"` or an empty list takes every event.

use crate::model::EventKind;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact(EventKind),
    /// The part before `*`, colon included (`work:`).
    Prefix(String),
}

/// A parsed `events` list; it exists only if every entry is valid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Empty: every event.
    patterns: Vec<Pattern>,
}

/// The wire name of an event type (`work:added`).
pub fn wire_name(kind: EventKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl EventFilter {
    /// Parses the list; the error says which entry is wrong and what would be right.
    pub fn parse(entries: &[String]) -> Result<EventFilter, String> {
        let mut patterns = Vec::new();
        for entry in entries {
            if entry == "*" {
                return Ok(EventFilter::default());
            }
            if let Some(prefix) = entry.strip_suffix('*') {
                let family = prefix.strip_suffix(':').unwrap_or("");
                if family.is_empty() || !family.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                {
                    return Err(format!(
                        "{entry:?} is not a prefix: write a family of events and \":*\", like \"work:*\""
                    ));
                }
                patterns.push(Pattern::Prefix(prefix.to_string()));
                continue;
            }
            match serde_json::from_value::<EventKind>(serde_json::Value::String(entry.clone())) {
                Ok(kind) => patterns.push(Pattern::Exact(kind)),
                Err(_) => {
                    return Err(format!(
                        "{entry:?} is not an event type: use one from the README's Events table, like \"work:status_changed\", or a prefix like \"work:*\""
                    ))
                }
            }
        }
        Ok(EventFilter { patterns })
    }

    pub fn matches(&self, kind: EventKind) -> bool {
        if self.patterns.is_empty() {
            return true;
        }
        let name = wire_name(kind);
        self.patterns.iter().any(|p| match p {
            Pattern::Exact(k) => *k == kind,
            Pattern::Prefix(prefix) => name.starts_with(prefix.as_str()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(entries: &[&str]) -> Result<EventFilter, String> {
        EventFilter::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn exact_types_prefixes_and_everything() {
        let f = filter(&["work:status_changed", "agent:*"]).unwrap();
        assert!(f.matches(EventKind::WorkStatusChanged));
        assert!(f.matches(EventKind::AgentSpawned));
        assert!(!f.matches(EventKind::WorkAdded));
        assert!(filter(&[]).unwrap().matches(EventKind::PoolResized));
        assert!(filter(&["*"]).unwrap().matches(EventKind::WorkProgress));
    }

    #[test]
    fn a_wrong_entry_is_named() {
        assert!(filter(&["work:stauts_changed"])
            .unwrap_err()
            .contains("work:stauts_changed"));
        assert!(filter(&["work*"]).unwrap_err().contains("work*"));
    }
}
