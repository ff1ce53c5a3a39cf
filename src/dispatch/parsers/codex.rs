//! OpenAI Codex's `codex exec --json` events.
//!
//! Current Codex prints thread events (`thread.started`, `turn.*`, `item.*`) where each item
//! is a message, a reasoning summary, a shell command, a file change or a tool call; the
//! turn's token usage arrives with `turn.completed`. Older releases printed `{"id","msg"}`
//! protocol events instead, and agents pinned to those still exist, so both are read.
//! Codex signals success only through its exit status; a failed turn is its one verdict.

use super::classify::{self, Agent};
use super::{
    cap, count, first_line, parse_object, progress, raw, str_field, tokens, AgentOutput,
    OutputParser,
};
use serde_json::Value;

/// Parser for the `codex` preset.
pub struct CodexParser;

impl OutputParser for CodexParser {
    fn parse_line(&mut self, line: &str) -> Vec<AgentOutput> {
        let Some(event) = parse_object(line) else {
            return raw(line);
        };
        let parsed = match (event.get("type"), event.get("msg")) {
            (Some(Value::String(kind)), _) => thread_event(kind, &event),
            (None, Some(msg)) => legacy_event(msg),
            _ => None,
        };
        parsed.unwrap_or_else(|| raw(line))
    }
}

/// A current-format event; `None` when it is unknown or malformed.
fn thread_event(kind: &str, event: &Value) -> Option<Vec<AgentOutput>> {
    let item = || {
        event
            .get("item")
            .filter(|item| str_field(item, "type").is_some())
    };
    let out = match kind {
        "thread.started" => progress("thread started"),
        "turn.started" | "item.updated" => None,
        "item.started" => item_started(item()?),
        "item.completed" => item_completed(item()?),
        "turn.completed" => event
            .get("usage")
            .and_then(|usage| tokens(count(usage, "input_tokens"), count(usage, "output_tokens"))),
        "turn.failed" => return Some(turn_failed(event.get("error"))),
        "error" => return Some(error_event(str_field(event, "message"))),
        _ => return None,
    };
    Some(out.into_iter().collect())
}

/// `label: first line of text`, or the label alone.
fn labelled(label: &str, text: Option<&str>) -> String {
    match text.and_then(first_line) {
        Some(line) => format!("{label}: {line}"),
        None => label.to_string(),
    }
}

/// Only commands are worth announcing before they finish.
fn item_started(item: &Value) -> Option<AgentOutput> {
    match str_field(item, "type")? {
        "command_execution" => progress(&format!("running: {}", command_of(item)?)),
        _ => None,
    }
}

fn item_completed(item: &Value) -> Option<AgentOutput> {
    let text = str_field(item, "text");
    let message = match str_field(item, "type")? {
        "agent_message" => text.and_then(first_line)?.to_string(),
        "reasoning" => labelled("thinking", text),
        "command_execution" => command_completed(item)?,
        "file_change" => file_change(item),
        "mcp_tool_call" => labelled("mcp_tool_call", mcp_tool(item).as_deref()),
        "web_search" => labelled("web_search", str_field(item, "query")),
        "todo_list" => todo_list(item),
        "error" => labelled("error", str_field(item, "message")),
        other => other.to_string(),
    };
    progress(&message)
}

/// `ran: cargo test (exit 101)`; a command that never ran shows its status instead.
fn command_completed(item: &Value) -> Option<String> {
    let command = command_of(item)?;
    let outcome = match (
        item.get("exit_code").and_then(Value::as_i64),
        str_field(item, "status"),
    ) {
        (Some(code), _) => format!(" (exit {code})"),
        (None, Some(status)) if status != "completed" => format!(" ({status})"),
        _ => String::new(),
    };
    Some(format!("ran: {command}{outcome}"))
}

/// The command an item ran, without the `bash -lc` wrapper Codex adds.
fn command_of(item: &Value) -> Option<&str> {
    first_line(unwrap_shell(str_field(item, "command")?))
}

/// `changed: src/a.rs, src/b.rs` from `changes: [{path, kind}]`.
fn file_change(item: &Value) -> String {
    let paths: Vec<&str> = item
        .get("changes")
        .and_then(Value::as_array)
        .map(|changes| {
            changes
                .iter()
                .filter_map(|c| str_field(c, "path"))
                .collect()
        })
        .unwrap_or_default();
    let label = match str_field(item, "status") {
        Some("failed") => "failed to change",
        _ => "changed",
    };
    labelled(label, Some(&paths.join(", ")))
}

/// `server/tool` of an MCP tool call.
fn mcp_tool(item: &Value) -> Option<String> {
    match (str_field(item, "server"), str_field(item, "tool")) {
        (Some(server), Some(tool)) => Some(format!("{server}/{tool}")),
        (server, tool) => server.or(tool).map(str::to_string),
    }
}

/// `plan: 2/3 done` from `items: [{text, completed}]`.
fn todo_list(item: &Value) -> String {
    let Some(items) = item.get("items").and_then(Value::as_array) else {
        return "plan".to_string();
    };
    let done = items
        .iter()
        .filter(|i| i.get("completed").and_then(Value::as_bool) == Some(true))
        .count();
    format!("plan: {done}/{} done", items.len())
}

/// `{"type":"error","message":".."}`: an API error Codex reports, also while it retries
/// ("Reconnecting... 2/5 (unexpected status 401 Unauthorized: ...)").
fn error_event(message: Option<&str>) -> Vec<AgentOutput> {
    match problem_in(message) {
        Some(problem) => vec![AgentOutput::Problem(problem)],
        None => progress(&labelled("error", message)).into_iter().collect(),
    }
}

/// The classified problem Codex's words describe, if they say what it is.
fn problem_in(message: Option<&str>) -> Option<super::Problem> {
    let text = first_line(message?)?;
    let status = codex_status(text);
    classify::problem(Agent::Codex, status, text, None)
}

/// The status in Codex's "unexpected status 429 Too Many Requests: ..." wording.
fn codex_status(text: &str) -> Option<u64> {
    let rest = &text[text.find("status ")? + "status ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (digits.len() == 3).then(|| digits.parse().ok()).flatten()
}

/// `{"type":"turn.failed","error":{"message":".."}}`: the agent gave up.
fn turn_failed(error: Option<&Value>) -> Vec<AgentOutput> {
    let message = error.and_then(|e| e.as_str().or_else(|| str_field(e, "message")));
    let message = message.map(str::trim).filter(|m| !m.is_empty());
    let mut out: Vec<AgentOutput> = progress(&labelled("turn failed", message))
        .into_iter()
        .collect();
    // A failed turn is an error even when its words do not say which kind.
    let text = message.and_then(first_line).unwrap_or("the turn failed");
    out.push(AgentOutput::Problem(problem_in(message).unwrap_or_else(
        || classify::describe(Agent::Codex, super::ProblemKind::Other, None, text, None),
    )));
    out.push(AgentOutput::Finished {
        success: false,
        summary: cap(message.unwrap_or("turn failed")),
    });
    out
}

/// An older `{"id":"0","msg":{"type":..}}` event; `None` when it is unknown or malformed.
fn legacy_event(msg: &Value) -> Option<Vec<AgentOutput>> {
    let kind = str_field(msg, "type")?;
    let out = match kind {
        "session_configured" => progress(&match str_field(msg, "model") {
            Some(model) => format!("session started (model {model})"),
            None => "session started".to_string(),
        }),
        "agent_message" => str_field(msg, "message")
            .and_then(first_line)
            .and_then(progress),
        "agent_reasoning" => progress(&labelled("thinking", str_field(msg, "text"))),
        "token_count" => legacy_tokens(msg),
        "exec_command_begin" => {
            let argv = legacy_argv(msg.get("command")?)?;
            progress(&format!("running: {}", first_line(unwrap_shell(&argv))?))
        }
        "exec_command_end" => match msg.get("exit_code").and_then(Value::as_i64) {
            Some(code) if code != 0 => progress(&format!("command failed (exit {code})")),
            _ => None,
        },
        "patch_apply_begin" => {
            let paths: Vec<&str> = msg
                .get("changes")?
                .as_object()?
                .keys()
                .map(String::as_str)
                .collect();
            progress(&labelled("changing", Some(&paths.join(", "))))
        }
        "error" | "stream_error" => progress(&labelled("error", str_field(msg, "message"))),
        "task_started" | "task_complete" | "turn_diff" | "agent_reasoning_section_break" => None,
        delta if delta.ends_with("_delta") => None,
        _ => return None,
    };
    Some(out.into_iter().collect())
}

/// Old token counts: flat fields, or per-step usage under `info.last_token_usage`.
fn legacy_tokens(msg: &Value) -> Option<AgentOutput> {
    let usage = match msg.get("info") {
        Some(info) => info.get("last_token_usage")?,
        None => msg,
    };
    tokens(count(usage, "input_tokens"), count(usage, "output_tokens"))
}

/// A command given as an argument vector (or, leniently, a single string).
fn legacy_argv(command: &Value) -> Option<String> {
    match command {
        Value::String(command) => Some(command.clone()),
        Value::Array(args) => {
            let args: Option<Vec<&str>> = args.iter().map(Value::as_str).collect();
            Some(args?.join(" "))
        }
        _ => None,
    }
}

/// `bash -lc 'cargo test'` -> `cargo test`; other commands are returned unchanged.
fn unwrap_shell(command: &str) -> &str {
    let command = command.trim();
    let mut parts = command.splitn(3, ' ');
    let (Some(shell), Some(flag), Some(script)) = (parts.next(), parts.next(), parts.next()) else {
        return command;
    };
    let shell = shell.rsplit('/').next().unwrap_or(shell);
    if !matches!(shell, "bash" | "sh" | "zsh") || !matches!(flag, "-c" | "-lc") {
        return command;
    }
    let script = script.trim();
    ['\'', '"']
        .iter()
        .find_map(|&quote| {
            script
                .strip_prefix(quote)
                .and_then(|s| s.strip_suffix(quote))
        })
        .unwrap_or(script)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../../tests/fixtures/transcripts/codex-exec.jsonl");

    fn parse(line: &str) -> Vec<AgentOutput> {
        CodexParser.parse_line(line)
    }

    fn progress_of(text: &str) -> Vec<AgentOutput> {
        vec![AgentOutput::Progress(text.to_string())]
    }

    #[test]
    fn fixture_transcript() {
        let mut parser = CodexParser;
        let out: Vec<AgentOutput> = FIXTURE.lines().flat_map(|l| parser.parse_line(l)).collect();
        let tokens: Vec<_> = out
            .iter()
            .filter(|o| !matches!(o, AgentOutput::Progress(_)))
            .collect();
        // Cached input tokens are part of the input count; a successful turn has no verdict.
        assert_eq!(
            tokens,
            vec![&AgentOutput::Tokens {
                input: 48_213,
                output: 2_311
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
                "Reading prompt from stdin...",
                "thread started",
                "thinking: **Locating the leap-year check**",
                r#"running: rg -n "fn is_leap" src"#,
                r#"ran: rg -n "fn is_leap" src (exit 0)"#,
                "running: sed -n '1,20p' src/date.rs",
                "ran: sed -n '1,20p' src/date.rs (exit 0)",
                "`is_leap` rejects every century year, so 2000 is wrongly treated as a common year. I'll apply the 400-year rule and add tests.",
                "changed: /work/cal/src/date.rs",
                "changed: /work/cal/tests/date.rs, /work/cal/tests/leap.rs",
                "running: cargo test --quiet",
                "ran: cargo test --quiet (exit 101)",
                "error: stream error: stream disconnected before completion; retrying 1/5 in 206ms…",
                "thinking: **Fixing the missing import**",
                "changed: /work/cal/tests/leap.rs",
                "running: cargo test --quiet",
                "ran: cargo test --quiet (exit 0)",
                "plan: 3/3 done",
                "Fixed `is_leap` in `src/date.rs`: years divisible by 400 are leap years again.",
            ]
        );
    }

    #[test]
    fn a_failed_turn_is_a_verdict() {
        assert_eq!(
            parse(
                r#"{"type":"turn.failed","error":{"message":"stream disconnected before completion\nretried 5 times"}}"#
            ),
            vec![
                AgentOutput::Progress("turn failed: stream disconnected before completion".into()),
                AgentOutput::Problem(classify::describe(
                    Agent::Codex,
                    super::super::ProblemKind::Other,
                    None,
                    "stream disconnected before completion",
                    None
                )),
                AgentOutput::Finished {
                    success: false,
                    summary: "stream disconnected before completion\nretried 5 times".into()
                },
            ]
        );
        assert_eq!(
            parse(r#"{"type":"turn.failed","error":7}"#),
            vec![
                AgentOutput::Progress("turn failed".into()),
                AgentOutput::Problem(classify::describe(
                    Agent::Codex,
                    super::super::ProblemKind::Other,
                    None,
                    "the turn failed",
                    None
                )),
                AgentOutput::Finished {
                    success: false,
                    summary: "turn failed".into()
                },
            ]
        );
    }

    #[test]
    fn other_items() {
        let item = |json: &str| parse(&format!(r#"{{"type":"item.completed","item":{json}}}"#));
        assert_eq!(
            item(r#"{"type":"mcp_tool_call","server":"github","tool":"create_issue"}"#),
            progress_of("mcp_tool_call: github/create_issue")
        );
        assert_eq!(
            item(r#"{"type":"web_search","query":"rust leap year"}"#),
            progress_of("web_search: rust leap year")
        );
        assert_eq!(item(r#"{"type":"image_view"}"#), progress_of("image_view"));
        assert_eq!(
            item(r#"{"type":"command_execution","command":"ls","status":"declined"}"#),
            progress_of("ran: ls (declined)")
        );
        assert_eq!(
            item(r#"{"type":"file_change","changes":[{"path":"a.rs"}],"status":"failed"}"#),
            progress_of("failed to change: a.rs")
        );
        assert!(item(r#"{"type":"agent_message","text":"\n  \n"}"#).is_empty());
    }

    #[test]
    fn legacy_events() {
        let mut parser = CodexParser;
        let out: Vec<AgentOutput> = [
            r#"{"id":"0","msg":{"type":"session_configured","model":"codex-mini-latest","session_id":"s"}}"#,
            r#"{"id":"1","msg":{"type":"task_started"}}"#,
            r#"{"id":"1","msg":{"type":"agent_reasoning","text":"Looking at date.rs"}}"#,
            r#"{"id":"1","msg":{"type":"exec_command_begin","call_id":"c1","command":["bash","-lc","cargo test"],"cwd":"/w"}}"#,
            r#"{"id":"1","msg":{"type":"exec_command_output_delta","call_id":"c1","chunk":"aGk="}}"#,
            r#"{"id":"1","msg":{"type":"exec_command_end","call_id":"c1","exit_code":101}}"#,
            r#"{"id":"1","msg":{"type":"exec_command_end","call_id":"c2","exit_code":0}}"#,
            r#"{"id":"1","msg":{"type":"patch_apply_begin","changes":{"src/date.rs":{"update":{}}}}}"#,
            r#"{"id":"1","msg":{"type":"token_count","input_tokens":1200,"cached_input_tokens":800,"output_tokens":90}}"#,
            r#"{"id":"1","msg":{"type":"token_count","info":{"total_token_usage":{"input_tokens":9999,"output_tokens":999},"last_token_usage":{"input_tokens":300,"output_tokens":40}}}}"#,
            r#"{"id":"1","msg":{"type":"token_count","info":null}}"#,
            r#"{"id":"1","msg":{"type":"agent_message","message":"Fixed the leap-year check.\nDetails follow."}}"#,
            r#"{"id":"1","msg":{"type":"error","message":"model overloaded"}}"#,
            r#"{"id":"1","msg":{"type":"task_complete","last_agent_message":"Fixed"}}"#,
        ]
        .iter()
        .flat_map(|l| parser.parse_line(l))
        .collect();
        assert_eq!(
            out,
            vec![
                AgentOutput::Progress("session started (model codex-mini-latest)".into()),
                AgentOutput::Progress("thinking: Looking at date.rs".into()),
                AgentOutput::Progress("running: cargo test".into()),
                AgentOutput::Progress("command failed (exit 101)".into()),
                AgentOutput::Progress("changing: src/date.rs".into()),
                AgentOutput::Tokens {
                    input: 1200,
                    output: 90
                },
                AgentOutput::Tokens {
                    input: 300,
                    output: 40
                },
                AgentOutput::Progress("Fixed the leap-year check.".into()),
                AgentOutput::Progress("error: model overloaded".into()),
            ]
        );
    }

    #[test]
    fn unwrap_shell_only_strips_a_shell_wrapper() {
        assert_eq!(unwrap_shell("bash -lc 'cargo test'"), "cargo test");
        assert_eq!(unwrap_shell("/bin/sh -c \"ls -la\""), "ls -la");
        assert_eq!(unwrap_shell("bash -lc ls -la"), "ls -la");
        assert_eq!(unwrap_shell("cargo test --all"), "cargo test --all");
        assert_eq!(unwrap_shell("bash -lc '"), "'");
        assert_eq!(unwrap_shell("python -c 'print(1)'"), "python -c 'print(1)'");
    }

    #[test]
    fn malformed_lines_are_shown_verbatim() {
        for line in [
            "{",
            "[]",
            "null",
            "1e400",
            r#"{"type":5}"#,
            r#"{"type":"assistant","message":7}"#,
            r#"{"type":"item.completed"}"#,
            r#"{"type":"item.completed","item":"agent_message"}"#,
            r#"{"type":"item.completed","item":{"type":7}}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":1e400}}"#,
            r#"{"msg":7}"#,
            r#"{"msg":{"type":"exec_command_begin","command":[1,2]}}"#,
            r#"{"msg":{"type":"brand_new_event"}}"#,
            r#"{"type":"thread.archived"}"#,
        ] {
            assert_eq!(parse(line), progress_of(line), "{line}");
        }
    }

    #[test]
    fn odd_values_never_panic() {
        assert!(parse("").is_empty());
        assert!(parse(
            r#"{"type":"turn.completed","usage":{"input_tokens":-5,"output_tokens":1.5}}"#
        )
        .is_empty());
        assert_eq!(
            parse(
                r#"{"type":"turn.completed","usage":{"input_tokens":18446744073709551615,"output_tokens":3}}"#
            ),
            vec![AgentOutput::Tokens {
                input: u64::MAX,
                output: 3
            }]
        );
        assert!(parse(r#"{"type":"turn.completed","usage":[]}"#).is_empty());
        assert_eq!(
            parse(
                r#"{"type":"item.completed","item":{"type":"command_execution","command":"ls","exit_code":1e300}}"#
            ),
            progress_of("ran: ls")
        );
        assert!(
            parse(r#"{"type":"item.completed","item":{"type":"command_execution"}}"#).is_empty()
        );
        let huge = "w".repeat(100 * 1024);
        assert!(
            matches!(&parse(&huge)[..], [AgentOutput::Progress(p)] if p.chars().count() == 500)
        );
        let huge_message = format!(
            r#"{{"type":"item.completed","item":{{"type":"agent_message","text":"{huge}"}}}}"#
        );
        assert!(
            matches!(&parse(&huge_message)[..], [AgentOutput::Progress(p)] if p.ends_with('…'))
        );
    }
}
