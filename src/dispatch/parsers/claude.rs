//! Claude Code's `--output-format stream-json --verbose` events.
//!
//! Claude Code prints one JSON event per line: the session start, each assistant message
//! (text, tool calls, thinking), each tool result, and a final `result` carrying the
//! verdict, the cost and the session's token usage. Assistant messages repeat cumulative
//! usage, so tokens are taken from the final result only, to count each token once.

use super::classify::{self, Agent};
use super::{
    cap, count, first_line, parse_object, progress, raw, str_field, tokens, AgentOutput,
    OutputParser,
};
use serde_json::Value;

/// Input fields that best describe a tool call, most telling first (`Grep` and `Glob` take
/// both a pattern and a path; the pattern says more).
const TOOL_DETAIL_FIELDS: [&str; 8] = [
    "command",
    "file_path",
    "notebook_path",
    "pattern",
    "path",
    "url",
    "query",
    "description",
];

/// Parser for the `claude` preset.
pub struct ClaudeParser;

impl OutputParser for ClaudeParser {
    fn parse_line(&mut self, line: &str) -> Vec<AgentOutput> {
        let Some(event) = parse_object(line) else {
            return raw(line);
        };
        let parsed = match str_field(&event, "type") {
            Some("system") => Some(system(&event)),
            Some("assistant") => assistant(&event),
            Some("user") => user(&event),
            Some("result") => Some(result(&event)),
            // Partial-message deltas (`--include-partial-messages`) repeat the full messages.
            Some("stream_event") => Some(Vec::new()),
            _ => None,
        };
        parsed.unwrap_or_else(|| raw(line))
    }
}

/// `{"type":"system","subtype":"init","model":...}`: the session started.
fn system(event: &Value) -> Vec<AgentOutput> {
    let text = match str_field(event, "subtype") {
        Some("init") => match str_field(event, "model") {
            Some(model) => format!("session started (model {model})"),
            None => "session started".to_string(),
        },
        Some("compact_boundary") => "context compacted".to_string(),
        Some("api_retry") => return api_retry(event),
        _ => return Vec::new(),
    };
    progress(&text).into_iter().collect()
}

/// `{"subtype":"api_retry","attempt":1,"max_retries":10,"retry_delay_ms":500,
/// "error_status":401,"error":"authentication_failed"}`: Claude Code's API call failed and it
/// will try again. Reported at once, so bad credentials need not wait out its retry loop.
fn api_retry(event: &Value) -> Vec<AgentOutput> {
    let status = event.get("error_status").and_then(Value::as_u64);
    let error = str_field(event, "error").unwrap_or("");
    let delay = event
        .get("retry_delay_ms")
        .and_then(Value::as_u64)
        .map(std::time::Duration::from_millis);
    let attempt = match (count(event, "attempt"), count(event, "max_retries")) {
        (0, _) => String::new(),
        (n, 0) => format!("retry {n}"),
        (n, max) => format!("retry {n} of {max}"),
    };
    let detail = [error.replace('_', " "), attempt]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ");
    let mut out: Vec<AgentOutput> = match classify::problem(Agent::Claude, status, error, delay) {
        Some(problem) => vec![AgentOutput::Problem(problem)],
        None => progress(&format!("the model API failed, retrying ({detail})"))
            .into_iter()
            .collect(),
    };
    out.extend(delay.map(AgentOutput::Retrying));
    out
}

/// An assistant message: one progress line per text block and per tool call.
fn assistant(event: &Value) -> Option<Vec<AgentOutput>> {
    match event.get("message")?.get("content")? {
        Value::Array(blocks) => Some(blocks.iter().filter_map(assistant_block).collect()),
        Value::String(text) => Some(first_line(text).and_then(progress).into_iter().collect()),
        _ => None,
    }
}

fn assistant_block(block: &Value) -> Option<AgentOutput> {
    match str_field(block, "type")? {
        "text" => progress(first_line(str_field(block, "text")?)?),
        "tool_use" => progress(&tool_call(block)),
        _ => None,
    }
}

/// `Bash: ls`, `Edit: src/main.rs`, or the tool name alone.
fn tool_call(block: &Value) -> String {
    let name = str_field(block, "name").unwrap_or("tool");
    let detail = block.get("input").and_then(|input| {
        TOOL_DETAIL_FIELDS
            .iter()
            .filter_map(|key| str_field(input, key).and_then(first_line))
            .next()
    });
    match detail {
        Some(detail) => format!("{name}: {detail}"),
        None => name.to_string(),
    }
}

/// A user message: the results of the tool calls, so a reader sees each call with what it
/// gave back (the first line; the whole result stays in the raw log).
fn user(event: &Value) -> Option<Vec<AgentOutput>> {
    let blocks = match event.get("message")?.get("content")? {
        Value::String(_) => return Some(Vec::new()),
        Value::Array(blocks) => blocks,
        _ => return None,
    };
    Some(blocks.iter().filter_map(tool_result).collect())
}

fn tool_result(block: &Value) -> Option<AgentOutput> {
    if str_field(block, "type")? != "tool_result" {
        return None;
    }
    let failed = block.get("is_error") == Some(&Value::Bool(true));
    let text = match block.get("content") {
        Some(Value::String(text)) => text.as_str(),
        Some(Value::Array(parts)) => parts
            .iter()
            .find_map(|p| str_field(p, "text"))
            .unwrap_or(""),
        _ => "",
    };
    let text = text
        .trim()
        .trim_start_matches("<tool_use_error>")
        .trim_end_matches("</tool_use_error>");
    let message = match (failed, first_line(text)) {
        (true, Some(line)) => format!("tool error: {line}"),
        (true, None) => "tool error".to_string(),
        (false, Some(line)) => format!("tool result: {line}"),
        (false, None) => "tool result: (no output)".to_string(),
    };
    progress(&message)
}

/// The final `result`: session tokens, a summary line and the verdict.
fn result(event: &Value) -> Vec<AgentOutput> {
    let subtype = str_field(event, "subtype").unwrap_or("unknown");
    let is_error = event
        .get("is_error")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let success = !is_error && subtype == "success";
    let mut out = Vec::new();
    if let Some(usage) = event.get("usage") {
        let input = [
            "input_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        ]
        .iter()
        .fold(0u64, |sum, key| sum.saturating_add(count(usage, key)));
        out.extend(tokens(input, count(usage, "output_tokens")));
    }
    let verdict = if is_error && subtype == "success" {
        "error"
    } else {
        subtype
    };
    let mut line = format!("finished: {verdict}");
    if let Some(turns) = event.get("num_turns").and_then(Value::as_u64) {
        line.push_str(&format!(", {turns} turns"));
    }
    if let Some(cost) = event.get("total_cost_usd").and_then(Value::as_f64) {
        if cost.is_finite() && cost >= 0.0 {
            line.push_str(&format!(", ${cost:.4}"));
        }
    }
    out.push(AgentOutput::Progress(cap(&line)));
    if !success {
        out.extend(result_problem(event));
    }
    let summary = match str_field(event, "result").map(str::trim) {
        Some(text) if !text.is_empty() => cap(text),
        _ => verdict.to_string(),
    };
    out.push(AgentOutput::Finished { success, summary });
    out
}

/// What a failed result's words say went wrong: "Invalid API key · Please run /login",
/// "API Error: 529 ...", "Claude AI usage limit reached|1700000000".
fn result_problem(event: &Value) -> Option<AgentOutput> {
    let text = str_field(event, "result")
        .or_else(|| {
            event
                .get("errors")
                .and_then(Value::as_array)
                .and_then(|e| e.first())
                .and_then(Value::as_str)
        })
        .unwrap_or("")
        .trim();
    let (words, reset) = match text.split_once('|') {
        Some((words, secs)) => (words, secs.trim().parse().ok().and_then(classify::at_unix)),
        None => (text, None),
    };
    let words = first_line(words).unwrap_or("");
    let kind = classify::kind_of_text(words)?;
    let kind = match (kind, reset) {
        (super::ProblemKind::RateLimit { .. }, Some(at)) => {
            super::ProblemKind::RateLimit { until: Some(at) }
        }
        (kind, _) => kind,
    };
    Some(AgentOutput::Problem(classify::describe(
        Agent::Claude,
        kind,
        None,
        words,
        None,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../../tests/fixtures/transcripts/claude-stream.jsonl");

    fn parse(line: &str) -> Vec<AgentOutput> {
        ClaudeParser.parse_line(line)
    }

    fn progress_of(text: &str) -> Vec<AgentOutput> {
        vec![AgentOutput::Progress(text.to_string())]
    }

    #[test]
    fn fixture_transcript() {
        let mut parser = ClaudeParser;
        let out: Vec<AgentOutput> = FIXTURE.lines().flat_map(|l| parser.parse_line(l)).collect();
        let tokens: Vec<_> = out
            .iter()
            .filter(|o| matches!(o, AgentOutput::Tokens { .. }))
            .collect();
        assert_eq!(
            tokens,
            vec![&AgentOutput::Tokens {
                input: 38 + 21_874 + 204_416,
                output: 3_127
            }]
        );
        let progress: Vec<&str> = out
            .iter()
            .filter_map(|o| match o {
                AgentOutput::Progress(p) => Some(p.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            progress,
            vec![
                "session started (model claude-sonnet-4-5-20250929)",
                "I'll start by finding the leap-year logic.",
                "Grep: fn is_leap",
                "tool result: /work/cal/src/date.rs:1:pub fn is_leap(year: i32) -> bool {",
                "Read: /work/cal/src/date.rs",
                "tool result: 1\tpub fn is_leap(year: i32) -> bool {",
                "The bug: `is_leap` treats every century as a non-leap year, ignoring the 400-year rule.",
                "Edit: /work/cal/src/date.rs",
                "tool error: String to replace not found in file.",
                "Read: /work/cal/src/date.rs",
                "tool result: 1\tpub fn is_leap(year: i32) -> bool {",
                "Edit: /work/cal/src/date.rs",
                "tool result: The file /work/cal/src/date.rs has been updated. Here's the result of running `cat -n` on a snippet of the edited file:",
                "Now I'll add regression tests for 2000 and 1900.",
                "Edit: /work/cal/tests/date.rs",
                "tool result: The file /work/cal/tests/date.rs has been updated.",
                "Bash: cargo test --quiet",
                "tool error: Exit code 101",
                "The test file needs the `cal::date` import.",
                "Edit: /work/cal/tests/date.rs",
                "tool result: The file /work/cal/tests/date.rs has been updated.",
                "Bash: cargo test --quiet",
                "tool result: running 5 tests",
                "TodoWrite",
                "tool result: Todos have been modified successfully. Ensure that you continue to use the todo list to track your progress.",
                "Fixed `is_leap` in src/date.rs: years divisible by 400 are leap years again.",
                "finished: success, 14 turns, $0.1873",
            ]
        );
        assert_eq!(
            out.last(),
            Some(&AgentOutput::Finished {
                success: true,
                summary: "Fixed `is_leap` in src/date.rs: years divisible by 400 are leap years again.\n\nAdded regression tests `leap_year_2000` and `leap_year_1900`; `cargo test` passes (14 tests).".into()
            })
        );
    }

    #[test]
    fn failed_results_are_not_successes() {
        let out = parse(
            r#"{"type":"result","subtype":"error_max_turns","is_error":false,"num_turns":30,"total_cost_usd":0.5,"usage":{"input_tokens":10,"output_tokens":5}}"#,
        );
        assert_eq!(
            out,
            vec![
                AgentOutput::Tokens {
                    input: 10,
                    output: 5
                },
                AgentOutput::Progress("finished: error_max_turns, 30 turns, $0.5000".into()),
                AgentOutput::Finished {
                    success: false,
                    summary: "error_max_turns".into()
                },
            ]
        );
        let out = parse(
            r#"{"type":"result","subtype":"success","is_error":true,"result":"API Error: 529 Overloaded"}"#,
        );
        assert_eq!(
            out,
            vec![
                AgentOutput::Progress("finished: error".into()),
                AgentOutput::Problem(classify::describe(
                    Agent::Claude,
                    super::super::ProblemKind::RateLimit { until: None },
                    None,
                    "API Error: 529 Overloaded",
                    None
                )),
                AgentOutput::Finished {
                    success: false,
                    summary: "API Error: 529 Overloaded".into()
                },
            ]
        );
        let out = parse(
            r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":10,"retry_delay_ms":512,"error_status":401,"error":"authentication_failed"}"#,
        );
        let [AgentOutput::Problem(problem), AgentOutput::Retrying(wait)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(*wait, std::time::Duration::from_millis(512));
        assert_eq!(problem.kind, super::super::ProblemKind::Auth);
        assert!(
            problem.message.contains("ANTHROPIC_API_KEY"),
            "{}",
            problem.message
        );
    }

    #[test]
    fn assistant_usage_is_not_counted() {
        let line = r#"{"type":"assistant","message":{"content":[{"type":"thinking","thinking":"hmm"}],"usage":{"input_tokens":900,"output_tokens":80}}}"#;
        assert!(parse(line).is_empty());
    }

    #[test]
    fn malformed_lines_are_shown_verbatim() {
        for line in [
            "{",
            "[]",
            "null",
            "\"text\"",
            r#"{"type":5}"#,
            r#"{"no_type":true}"#,
            r#"{"type":"assistant","message":7}"#,
            r#"{"type":"assistant","message":{"content":{"type":"text"}}}"#,
            r#"{"type":"assistant"}"#,
            r#"{"type":"user","message":[]}"#,
            r#"{"type":"future_event","data":1}"#,
        ] {
            assert_eq!(parse(line), progress_of(line), "{line}");
        }
        assert!(parse("").is_empty());
    }

    #[test]
    fn odd_but_valid_events_never_panic() {
        let block_garbage = r#"{"type":"assistant","message":{"content":[7,null,{"type":"text","text":5},{"type":"tool_use","name":"Bash","input":{"command":["ls"]}},{"type":"tool_use"}]}}"#;
        assert_eq!(
            parse(block_garbage),
            vec![
                AgentOutput::Progress("Bash".into()),
                AgentOutput::Progress("tool".into())
            ]
        );
        let huge_numbers = r#"{"type":"result","subtype":"success","is_error":false,"num_turns":-3,"total_cost_usd":-1,"usage":{"input_tokens":18446744073709551615,"cache_read_input_tokens":18446744073709551615,"output_tokens":-7}}"#;
        assert_eq!(
            parse(huge_numbers),
            vec![
                AgentOutput::Tokens {
                    input: u64::MAX,
                    output: 0
                },
                AgentOutput::Progress("finished: success".into()),
                AgentOutput::Finished {
                    success: true,
                    summary: "success".into()
                },
            ]
        );
        let too_big = r#"{"type":"result","usage":{"input_tokens":1e400}}"#;
        assert_eq!(parse(too_big), progress_of(too_big));
        let huge_text = format!(
            r#"{{"type":"assistant","message":{{"content":[{{"type":"text","text":"{}"}}]}}}}"#,
            "z".repeat(100 * 1024)
        );
        let out = parse(&huge_text);
        assert!(matches!(&out[..], [AgentOutput::Progress(p)] if p.chars().count() == 500));
        let huge_line = "q".repeat(100 * 1024);
        assert!(matches!(&parse(&huge_line)[..], [AgentOutput::Progress(p)] if p.ends_with('…')));
        let tool_error = r#"{"type":"user","message":{"content":[{"type":"tool_result","is_error":true,"content":[{"type":"text","text":"<tool_use_error>denied</tool_use_error>"}]},{"type":"tool_result","is_error":false,"content":"ok"}]}}"#;
        assert_eq!(
            parse(tool_error),
            vec![
                AgentOutput::Progress("tool error: denied".into()),
                AgentOutput::Progress("tool result: ok".into())
            ]
        );
    }
}
