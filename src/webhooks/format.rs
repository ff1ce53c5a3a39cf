//! What a webhook's receiver gets. `json`: the event exactly as stored and replayed by
//! `/api/events`. `slack` and `discord`: one readable line for a person, and only for what a
//! person acts on (an item waiting in review, blocked, done, or an attempt that failed); every
//! other event is not sent to them at all.
//!
//! Titles and reasons come from people and agents, so the line shows them as plain text: one
//! line, no control characters, bounded length, Slack's `& < >` escaped and Discord's mentions
//! switched off, so an item title cannot ping a channel or forge a link.

use crate::config::WebhookFormat;
use crate::model::{thousands, Event, EventKind, Status, WorkItem};
use crate::queue::EventFacts;
use serde::Deserialize;
use serde_json::json;

const TITLE_CHARS: usize = 200;
const REASON_CHARS: usize = 400;

/// The body `format` sends for `event` (whose stored JSON is `json`), or None to skip it.
pub fn render(
    format: WebhookFormat,
    event: &Event,
    json: &str,
    facts: &EventFacts,
) -> Option<String> {
    match format {
        WebhookFormat::Json => Some(json.to_string()),
        WebhookFormat::Slack => {
            let line = readable_line(event, facts)?;
            let text = line
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            Some(json!({ "text": text }).to_string())
        }
        WebhookFormat::Discord => {
            let line = readable_line(event, facts)?;
            Some(json!({ "content": line, "allowed_mentions": { "parse": [] } }).to_string())
        }
    }
}

/// "Review: Build login page, 3 of 3 criteria met, 12,400 tokens", or None for an event no
/// person needs to hear about.
pub fn readable_line(event: &Event, facts: &EventFacts) -> Option<String> {
    if event.kind != EventKind::WorkStatusChanged {
        return None;
    }
    #[derive(Deserialize)]
    struct Changed {
        from: Status,
        to: Status,
        reason: Option<String>,
        item: WorkItem,
    }
    let changed: Changed = serde_json::from_str(event.data.get()).ok()?;
    let title = plain(&changed.item.title, TITLE_CHARS);
    let reason = changed
        .reason
        .as_deref()
        .map(|r| plain(r, REASON_CHARS))
        .filter(|r| !r.is_empty());
    let tokens =
        (facts.tokens_used > 0).then(|| format!(", {} tokens", thousands(facts.tokens_used)));
    let tokens = tokens.unwrap_or_default();
    let with_reason = |label: &str| match &reason {
        Some(reason) => format!("{label}: {title}: {reason}"),
        None => format!("{label}: {title}"),
    };
    match (changed.from, changed.to) {
        (_, Status::Review) => {
            let n = changed.item.acceptance_criteria.len();
            let criteria = match n {
                0 => "no acceptance criteria".to_string(),
                // An item reaches review only with every criterion met.
                n => format!("{n} of {n} criteria met"),
            };
            Some(format!("Review: {title}, {criteria}{tokens}"))
        }
        (_, Status::Done) => Some(format!("Done: {title}{tokens}")),
        (_, Status::Blocked) => Some(with_reason("Blocked")),
        (Status::InFlight, Status::Ready) if changed.item.retry_at.is_some() => {
            Some(with_reason("Attempt failed"))
        }
        _ => None,
    }
}

/// `text` on one line, without control characters, at most `max` characters.
fn plain(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (n, c) in text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .enumerate()
    {
        if n == max {
            out.push('…');
            break;
        }
        out.push(c);
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EventData;
    use chrono::Utc;

    fn status_changed(from: Status, to: Status, reason: Option<&str>, extra: &str) -> Event {
        let item = format!(
            r#"{{"id":"i1","title":"Build login page\u001b[2J","description":"","acceptanceCriteria":["a","b","c"],"status":"{to}","priority":"high","complexity":"m","createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:00Z","createdBy":"t","artifacts":[],"blockedBy":[],"blocks":[],"attempts":1{extra}}}"#
        );
        let item = serde_json::value::RawValue::from_string(item).unwrap();
        let data = EventData::WorkStatusChanged {
            item_id: "i1",
            from,
            to,
            reason,
            item: &item,
        };
        Event {
            seq: 7,
            kind: data.kind(),
            at: Utc::now(),
            data: data.encode().unwrap(),
        }
    }

    #[test]
    fn lines_a_person_reads() {
        let facts = EventFacts {
            tokens_used: 12_400,
        };
        let review = status_changed(Status::InFlight, Status::Review, Some("completed"), "");
        assert_eq!(
            readable_line(&review, &facts).unwrap(),
            "Review: Build login page [2J, 3 of 3 criteria met, 12,400 tokens"
        );
        let blocked = status_changed(
            Status::InFlight,
            Status::Blocked,
            Some("the agent could not log in"),
            "",
        );
        assert_eq!(
            readable_line(&blocked, &EventFacts::default()).unwrap(),
            "Blocked: Build login page [2J: the agent could not log in"
        );
        let retry = status_changed(
            Status::InFlight,
            Status::Ready,
            Some("exit 1"),
            r#","retryAt":"2026-01-01T00:00:02Z""#,
        );
        assert!(readable_line(&retry, &facts)
            .unwrap()
            .starts_with("Attempt failed: "));
        let planned = status_changed(Status::Inbox, Status::Planning, None, "");
        assert_eq!(readable_line(&planned, &facts), None);
        assert_eq!(render(WebhookFormat::Slack, &planned, "{}", &facts), None);
    }

    #[test]
    fn chat_bodies_cannot_ping_or_link() {
        let blocked = status_changed(
            Status::Ready,
            Status::Blocked,
            Some("<!channel> & <http://x|y>"),
            "",
        );
        let slack = render(WebhookFormat::Slack, &blocked, "", &EventFacts::default()).unwrap();
        assert!(
            slack.contains("&lt;!channel&gt; &amp; &lt;http://x|y&gt;"),
            "{slack}"
        );
        let discord = render(WebhookFormat::Discord, &blocked, "", &EventFacts::default()).unwrap();
        assert!(
            discord.contains(r#""allowed_mentions":{"parse":[]}"#),
            "{discord}"
        );
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
