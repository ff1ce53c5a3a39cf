//! The generic JSON-lines protocol, spoken by the demo agent and by any script.
//!
//! It is the smallest contract that lets an agent report everything flightdeck tracks
//! while staying writable with `echo`: one JSON object per line, told apart by `type`,
//! and plain text for everything else. A malformed event is shown as-is rather than
//! dropped, so an agent author sees what went wrong on the board.
//!
//! An `error` event classifies a problem the way the presets' parsers do from a real CLI's
//! output, so any agent (and the tests) can report bad credentials or a rate limit.

use super::{cap, parse_object, raw, str_field, AgentOutput, OutputParser, Problem, ProblemKind};
use crate::model::{AcceptanceEntry, ArtifactInput, ArtifactKind};
use serde::Deserialize;
use serde_json::Value;

/// Parser for the generic protocol (presets `demo` and `lines`).
pub struct LinesParser;

impl OutputParser for LinesParser {
    fn parse_line(&mut self, line: &str) -> Vec<AgentOutput> {
        let Some(event) = parse_object(line) else {
            return raw(line);
        };
        let parsed = match str_field(&event, "type") {
            Some("progress") => progress(&event),
            Some("tokens") => tokens(&event),
            Some("artifact") => artifact(&event).map(|a| vec![AgentOutput::Artifact(a)]),
            Some("acceptance") => acceptance(&event).map(|r| vec![AgentOutput::Acceptance(r)]),
            Some("error") => problem(&event).map(|p| vec![AgentOutput::Problem(p)]),
            _ => None,
        };
        parsed.unwrap_or_else(|| raw(line))
    }
}

/// `{"type":"progress","message":"..."}`; a blank message reports nothing.
fn progress(event: &Value) -> Option<Vec<AgentOutput>> {
    let message = event.get("message")?.as_str()?.trim();
    Some(if message.is_empty() {
        Vec::new()
    } else {
        vec![AgentOutput::Progress(cap(message))]
    })
}

/// `{"type":"tokens","input":N,"output":N}`; a missing side is zero, a bad one rejects the line.
fn tokens(event: &Value) -> Option<Vec<AgentOutput>> {
    let side = |key: &str| match event.get(key) {
        None | Some(Value::Null) => Some(0),
        Some(n) => n.as_u64(),
    };
    let (input, output) = (side("input")?, side("output")?);
    Some(super::tokens(input, output).into_iter().collect())
}

/// `{"type":"artifact","path":"..","kind":"file","description":".."}`; kind defaults to file.
fn artifact(event: &Value) -> Option<ArtifactInput> {
    let path = event.get("path")?.as_str()?.trim();
    if path.is_empty() {
        return None;
    }
    let kind = match event.get("kind") {
        None | Some(Value::Null) => ArtifactKind::File,
        Some(kind) => ArtifactKind::deserialize(kind).ok()?,
    };
    let description = match event.get("description") {
        None | Some(Value::Null) => "",
        Some(d) => d.as_str()?,
    };
    Some(ArtifactInput {
        kind,
        path: path.to_string(),
        description: description.to_string(),
    })
}

/// Longest `retryAfter` taken as given (a week); the session bounds the pause further.
const RETRY_AFTER_MAX_SECS: f64 = 7.0 * 24.0 * 3600.0;

/// `{"type":"error","kind":"auth"|"rate_limit"|"other","message":"..","retryAfter":secs}`;
/// kind defaults to other, `retryAfter` (seconds, only for rate_limit) is optional.
fn problem(event: &Value) -> Option<Problem> {
    let message = event.get("message")?.as_str()?.trim();
    if message.is_empty() {
        return None;
    }
    let retry_after = match event.get("retryAfter") {
        None | Some(Value::Null) => None,
        Some(secs) => Some(secs.as_f64().filter(|s| *s >= 0.0)?),
    };
    let kind = match event.get("kind") {
        None | Some(Value::Null) => ProblemKind::Other,
        Some(kind) => match kind.as_str()? {
            "auth" => ProblemKind::Auth,
            "rate_limit" => ProblemKind::RateLimit {
                until: retry_after.map(|secs| {
                    let ms = (secs.min(RETRY_AFTER_MAX_SECS) * 1000.0) as i64;
                    chrono::Utc::now() + chrono::Duration::milliseconds(ms)
                }),
            },
            "other" => ProblemKind::Other,
            _ => return None,
        },
    };
    Some(Problem {
        kind,
        message: cap(message),
    })
}

/// `{"type":"acceptance","criteria":[...]}` (or `report`); one bad entry rejects the line.
fn acceptance(event: &Value) -> Option<Vec<AcceptanceEntry>> {
    let entries = event.get("criteria").or_else(|| event.get("report"))?;
    entries.as_array()?.iter().map(acceptance_entry).collect()
}

/// `{"criterion":"..","met":true,"evidence":".."}`; extra fields are ignored.
fn acceptance_entry(entry: &Value) -> Option<AcceptanceEntry> {
    let criterion = entry.get("criterion")?.as_str()?.trim();
    if criterion.is_empty() {
        return None;
    }
    let evidence = match entry.get("evidence") {
        None | Some(Value::Null) => "",
        Some(e) => e.as_str()?,
    };
    Some(AcceptanceEntry {
        criterion: criterion.to_string(),
        met: entry.get("met")?.as_bool()?,
        evidence: evidence.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../../tests/fixtures/transcripts/lines.jsonl");

    fn parse(line: &str) -> Vec<AgentOutput> {
        LinesParser.parse_line(line)
    }

    fn parse_all(text: &str) -> Vec<AgentOutput> {
        let mut parser = LinesParser;
        text.lines().flat_map(|l| parser.parse_line(l)).collect()
    }

    fn progress_of(line: &str) -> Vec<AgentOutput> {
        vec![AgentOutput::Progress(line.to_string())]
    }

    #[test]
    fn fixture_transcript() {
        let out = parse_all(FIXTURE);
        let (mut input, mut output) = (0, 0);
        let mut progress = Vec::new();
        let mut artifacts = Vec::new();
        let mut reports = Vec::new();
        for o in out {
            match o {
                AgentOutput::Progress(p) => progress.push(p),
                AgentOutput::Tokens {
                    input: i,
                    output: o,
                } => {
                    input += i;
                    output += o;
                }
                AgentOutput::Artifact(a) => artifacts.push(a),
                AgentOutput::Acceptance(r) => reports.push(r),
                AgentOutput::Finished { .. }
                | AgentOutput::Problem(_)
                | AgentOutput::Retrying(_)
                | AgentOutput::Acp(_) => {
                    panic!("the fixture reports no verdict, no problem and no retry")
                }
            }
        }
        assert_eq!((input, output), (5_200, 1_350));
        assert_eq!(progress.len(), 14);
        assert_eq!(progress[0], "demo-agent 0.3.1 starting on item FD-42");
        assert!(progress.contains(&"Reading src/date.rs".to_string()));
        // A plain-text line and an unknown event are both passed on verbatim.
        assert!(progress.contains(&"error[E0308]: mismatched types".to_string()));
        assert!(progress.contains(&r#"{"type":"heartbeat","seq":3}"#.to_string()));
        assert_eq!(
            artifacts,
            vec![
                ArtifactInput {
                    kind: ArtifactKind::File,
                    path: "src/date.rs".into(),
                    description: "Leap-year check fixed".into(),
                },
                ArtifactInput {
                    kind: ArtifactKind::Pr,
                    path: "https://git.example.com/acme/cal/pulls/17".into(),
                    description: String::new(),
                },
            ]
        );
        assert_eq!(reports.len(), 1);
        assert_eq!(
            reports[0],
            vec![
                AcceptanceEntry {
                    criterion: "2000-02-29 is accepted as a valid date".into(),
                    met: true,
                    evidence: "test leap_year_2000 passes".into(),
                },
                AcceptanceEntry {
                    criterion: "1900-02-29 is rejected".into(),
                    met: true,
                    evidence: "test leap_year_1900 passes".into(),
                },
                AcceptanceEntry {
                    criterion: "Changelog updated".into(),
                    met: false,
                    evidence: String::new(),
                },
            ]
        );
    }

    #[test]
    fn events() {
        assert_eq!(
            parse(r#"{"type":"progress","message":"hi"}"#),
            progress_of("hi")
        );
        assert!(parse(r#"{"type":"progress","message":"  "}"#).is_empty());
        assert_eq!(
            parse(r#"{"type":"tokens","output":7}"#),
            vec![AgentOutput::Tokens {
                input: 0,
                output: 7
            }]
        );
        assert!(parse(r#"{"type":"tokens","input":0}"#).is_empty());
        assert_eq!(
            parse(r#"{"type":"artifact","path":"notes.md","kind":"document"}"#),
            vec![AgentOutput::Artifact(ArtifactInput {
                kind: ArtifactKind::Document,
                path: "notes.md".into(),
                description: String::new(),
            })]
        );
        assert_eq!(
            parse(r#"{"type":"acceptance","report":[{"criterion":"c","met":false,"x":1}]}"#),
            vec![AgentOutput::Acceptance(vec![AcceptanceEntry {
                criterion: "c".into(),
                met: false,
                evidence: String::new(),
            }])]
        );
    }

    #[test]
    fn error_events_are_classified_problems() {
        let problem = |line: &str| match parse(line).as_slice() {
            [AgentOutput::Problem(p)] => p.clone(),
            other => panic!("{line}: {other:?}"),
        };
        let auth = problem(r#"{"type":"error","kind":"auth","message":" Invalid API key "}"#);
        assert_eq!(auth.kind, ProblemKind::Auth);
        assert_eq!(auth.message, "Invalid API key");
        let other = problem(r#"{"type":"error","message":"upstream 502"}"#);
        assert_eq!(other.kind, ProblemKind::Other);
        let before = chrono::Utc::now();
        let limited =
            problem(r#"{"type":"error","kind":"rate_limit","message":"429","retryAfter":30}"#);
        let ProblemKind::RateLimit { until: Some(until) } = limited.kind else {
            panic!("{limited:?}");
        };
        assert!(until >= before + chrono::Duration::seconds(30));
        assert!(until <= chrono::Utc::now() + chrono::Duration::seconds(30));
        let unknown = problem(r#"{"type":"error","kind":"rate_limit","message":"429"}"#);
        assert_eq!(unknown.kind, ProblemKind::RateLimit { until: None });
        let huge =
            problem(r#"{"type":"error","kind":"rate_limit","message":"x","retryAfter":1e300}"#);
        assert!(matches!(
            huge.kind,
            ProblemKind::RateLimit { until: Some(_) }
        ));
    }

    #[test]
    fn malformed_events_are_shown_verbatim() {
        for line in [
            r#"{"type":"progress","message":5}"#,
            r#"{"type":"progress"}"#,
            r#"{"type":"tokens","input":-5,"output":3}"#,
            r#"{"type":"tokens","input":1.5}"#,
            r#"{"type":"tokens","input":"12"}"#,
            r#"{"type":"tokens","input":99999999999999999999999}"#,
            r#"{"type":"tokens","input":1e400}"#,
            r#"{"type":"artifact","path":"a.txt","kind":"folder"}"#,
            r#"{"type":"artifact","path":"a.txt","kind":3}"#,
            r#"{"type":"artifact","path":""}"#,
            r#"{"type":"artifact","path":"a.txt","description":[]}"#,
            r#"{"type":"acceptance","criteria":[{"criterion":"c"}]}"#,
            r#"{"type":"acceptance","criteria":[{"criterion":"c","met":"yes"}]}"#,
            r#"{"type":"acceptance","criteria":{"criterion":"c","met":true}}"#,
            r#"{"type":"acceptance"}"#,
            r#"{"type":"error"}"#,
            r#"{"type":"error","message":"  "}"#,
            r#"{"type":"error","message":"x","kind":"fatal"}"#,
            r#"{"type":"error","message":"x","kind":1}"#,
            r#"{"type":"error","message":"x","kind":"rate_limit","retryAfter":-1}"#,
            r#"{"type":"error","message":"x","kind":"rate_limit","retryAfter":"soon"}"#,
            r#"{"type":5}"#,
            r#"{"type":"assistant","message":7}"#,
            "{",
            "[]",
            "null",
            "42",
        ] {
            assert_eq!(parse(line), progress_of(line), "{line}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        assert!(parse("").is_empty());
        assert!(parse("   \r").is_empty());
        let huge = "x".repeat(100 * 1024);
        let out = parse(&huge);
        assert_eq!(out.len(), 1);
        let AgentOutput::Progress(p) = &out[0] else {
            panic!("expected progress, got {out:?}");
        };
        assert_eq!(p.chars().count(), 500);
        assert!(p.ends_with('…'));
        let nested = "[".repeat(10_000);
        assert_eq!(parse(&nested).len(), 1);
        let huge_json = format!(
            r#"{{"type":"progress","message":"{}"}}"#,
            "y".repeat(100 * 1024)
        );
        let AgentOutput::Progress(p) = &parse(&huge_json)[0] else {
            panic!("expected progress");
        };
        assert_eq!(p.chars().count(), 500);
    }
}
