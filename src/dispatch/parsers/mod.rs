//! Turning an agent's output into what flightdeck tracks.
//!
//! Every agent speaks its own output format: Claude Code prints stream-json events, Codex
//! prints `exec --json` events, and simple agents print plain text or the generic
//! JSON-lines protocol. The dispatcher should not care which, so each format gets an
//! [`OutputParser`] that reads one line at a time and reports flightdeck's own vocabulary:
//! progress, tokens used, artifacts, an acceptance report and the agent's final verdict.
//!
//! Agent output is untrusted and often messy (truncated writes, interleaved stderr, new
//! event types in newer agent versions), so a parser never fails: whatever it does not
//! recognise is passed on as a short progress message.

mod classify;
mod claude;
mod codex;
mod gemini;
mod lines;

use crate::config::Preset;
use crate::model::{AcceptanceEntry, ArtifactInput};
use serde_json::Value;

/// Longest progress message or summary, in characters (including the trailing ellipsis).
const PROGRESS_MAX: usize = 500;

/// One thing an agent reported.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentOutput {
    Progress(String),
    /// Tokens used by this step, added to the session's total.
    Tokens {
        input: u64,
        output: u64,
    },
    Artifact(ArtifactInput),
    Acceptance(Vec<AcceptanceEntry>),
    /// The agent's own final verdict (claude `result`, codex `turn.failed`): success flag and
    /// a summary. Agents that end without one are judged by their exit status.
    Finished {
        success: bool,
        summary: String,
    },
    /// A problem the agent ran into, classified from its own output (an API error it printed,
    /// its retry lines): the session decides what the attempt comes to from the kind.
    Problem(Problem),
    /// The agent said it will try its model API again after this wait (Claude Code's
    /// `api_retry` lines): it is busy, not stalled, until the wait is over.
    Retrying(std::time::Duration),
    /// What an ACP agent's bridge reports beyond progress and tokens: its session, a
    /// permission request, the end of a prompt turn.
    Acp(crate::dispatch::acp::Report),
}

/// What kind of trouble an agent reported, in the parser's judgement.
#[derive(Debug, Clone, PartialEq)]
pub enum ProblemKind {
    /// Bad or missing credentials (HTTP 401/403, an invalid key, not logged in): retrying
    /// cannot help; a person must fix the login.
    Auth,
    /// A rate or usage limit (HTTP 429, 529 overloaded, a usage-limit message): the work is
    /// fine, the agent must wait. `until` is when the limit lifts, when the agent said so.
    RateLimit {
        until: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Any other error the agent reported (a 5xx, a crash it described).
    Other,
}

/// A classified problem and a one-line description of it in words (never protocol JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub kind: ProblemKind,
    pub message: String,
}

/// Reads an agent's output line by line. Implementations must not panic on any input.
pub trait OutputParser: Send {
    fn parse_line(&mut self, line: &str) -> Vec<AgentOutput>;
}

/// The parser for an agent preset; the demo agent speaks the generic lines protocol.
pub fn parser_for(preset: Preset) -> Box<dyn OutputParser> {
    match preset {
        Preset::Demo | Preset::Lines => Box::new(lines::LinesParser),
        Preset::Claude => Box::new(claude::ClaudeParser),
        Preset::Codex => Box::new(codex::CodexParser),
        Preset::Gemini => Box::new(gemini::GeminiParser::default()),
        Preset::Acp | Preset::AcpClaude | Preset::AcpCodex | Preset::AcpGemini => {
            Box::new(crate::dispatch::acp::AcpParser)
        }
    }
}

/// Shortens `text` to at most [`PROGRESS_MAX`] characters, marking the cut with "…".
fn cap(text: &str) -> String {
    match text.char_indices().nth(PROGRESS_MAX - 1) {
        Some((cut, _)) if text[cut..].chars().nth(1).is_some() => format!("{}…", &text[..cut]),
        _ => text.to_string(),
    }
}

/// A progress message from free text; blank text reports nothing.
fn progress(text: &str) -> Option<AgentOutput> {
    let text = text.trim();
    (!text.is_empty()).then(|| AgentOutput::Progress(cap(text)))
}

/// An unrecognised line, passed on verbatim (trailing whitespace trimmed, capped).
fn raw(line: &str) -> Vec<AgentOutput> {
    let line = line.trim_end();
    if line.is_empty() {
        Vec::new()
    } else {
        vec![AgentOutput::Progress(cap(line))]
    }
}

/// The first non-blank line of `text`, trimmed.
fn first_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|l| !l.is_empty())
}

/// A token report, or nothing when no tokens were used.
fn tokens(input: u64, output: u64) -> Option<AgentOutput> {
    (input > 0 || output > 0).then_some(AgentOutput::Tokens { input, output })
}

/// The line as a JSON value, if it is a JSON object.
fn parse_object(line: &str) -> Option<Value> {
    serde_json::from_str(line).ok().filter(Value::is_object)
}

/// A string field of a JSON value, if present and a string.
fn str_field<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// A token count field: a non-negative integer, anything else counts as zero.
fn count(value: &Value, key: &str) -> u64 {
    value.get(key).and_then(Value::as_u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_keeps_short_text_and_cuts_long_text_on_a_char_boundary() {
        assert_eq!(cap("short"), "short");
        let exact = "é".repeat(PROGRESS_MAX);
        assert_eq!(cap(&exact), exact);
        let long = "é".repeat(PROGRESS_MAX + 1);
        let capped = cap(&long);
        assert_eq!(capped.chars().count(), PROGRESS_MAX);
        assert!(capped.ends_with("é…"));
    }

    #[test]
    fn raw_trims_trailing_whitespace_and_drops_blank_lines() {
        assert_eq!(
            raw("  hello \r\n"),
            vec![AgentOutput::Progress("  hello".into())]
        );
        assert!(raw("").is_empty());
        assert!(raw(" \t\r\n").is_empty());
    }

    #[test]
    fn first_line_skips_blank_lines() {
        assert_eq!(first_line("\n\n  Fixed it.\nDetails"), Some("Fixed it."));
        assert_eq!(first_line(" \n "), None);
    }

    /// What a parser made of a whole transcript.
    #[derive(Debug, Default)]
    struct Summary {
        progress: Vec<String>,
        tokens: (u64, u64),
        artifacts: usize,
        verdicts: Vec<(bool, String)>,
        problems: Vec<Problem>,
        retries: usize,
    }

    fn summarise(preset: Preset, transcript: &str) -> Summary {
        let mut parser = parser_for(preset);
        let mut s = Summary::default();
        for out in transcript.lines().flat_map(|l| parser.parse_line(l)) {
            match out {
                AgentOutput::Progress(p) => s.progress.push(p),
                AgentOutput::Tokens { input, output } => {
                    s.tokens = (s.tokens.0 + input, s.tokens.1 + output)
                }
                AgentOutput::Artifact(_) => s.artifacts += 1,
                AgentOutput::Acceptance(_) => {}
                AgentOutput::Finished { success, summary } => s.verdicts.push((success, summary)),
                AgentOutput::Problem(p) => s.problems.push(p),
                AgentOutput::Retrying(_) => s.retries += 1,
                AgentOutput::Acp(_) => {}
            }
        }
        s
    }

    /// The session logs of real successful runs (tests/real_agents.rs against the scripted
    /// model server, paths replaced): the scripted model's two shell steps and final message,
    /// 120 input and 30 output tokens per model turn, three turns.
    const CLAUDE_REAL: &str =
        include_str!("../../../tests/fixtures/transcripts/claude-real-success.log");
    const CODEX_REAL: &str =
        include_str!("../../../tests/fixtures/transcripts/codex-real-success.log");
    const GEMINI_REAL: &str =
        include_str!("../../../tests/fixtures/transcripts/gemini-real-success.log");

    /// The steps every real run took, as its parser reports them.
    fn assert_real_success(preset: Preset, text: &str, steps: &[&str]) -> Summary {
        let s = summarise(preset, text);
        for step in steps {
            assert!(
                s.progress.iter().any(|p| p == step),
                "{preset:?}: {step} in {s:#?}"
            );
        }
        assert!(
            s.progress
                .iter()
                .any(|p| p == "Done: wrote hello.txt and the report."),
            "{preset:?}: the final message in {s:#?}"
        );
        assert_eq!(s.tokens, (360, 90), "{preset:?}: three turns of 120 + 30");
        assert_eq!(
            s.artifacts, 0,
            "{preset:?}: artifacts are found in the folder"
        );
        assert!(s.problems.is_empty(), "{preset:?}: {:?}", s.problems);
        assert_eq!(s.retries, 0, "{preset:?}");
        s
    }

    #[test]
    fn a_real_claude_code_run() {
        let s = assert_real_success(
            Preset::Claude,
            CLAUDE_REAL,
            &[
                "session started (model claude-opus-5-5)",
                "Bash: printf 'hello from the agent\\n' > hello.txt",
                "finished: success, 3 turns, $0.0032",
            ],
        );
        assert_eq!(
            s.verdicts,
            vec![(true, "Done: wrote hello.txt and the report.".to_string())]
        );
    }

    #[test]
    fn a_real_codex_run() {
        let s = assert_real_success(
            Preset::Codex,
            CODEX_REAL,
            &[
                "thread started",
                "ran: printf 'hello from the agent\\\\n' > hello.txt (exit 0)",
            ],
        );
        assert!(s.verdicts.is_empty(), "judged by its exit status");
    }

    #[test]
    fn a_real_gemini_cli_run() {
        let s = assert_real_success(
            Preset::Gemini,
            GEMINI_REAL,
            &[
                "session started (model auto)",
                "run_shell_command: printf 'hello from the agent\\n' > hello.txt",
                "finished: success",
            ],
        );
        assert_eq!(s.verdicts, vec![(true, "finished: success".to_string())]);
    }

    /// Retry lines the real CLIs printed while their model API answered 500: each is an
    /// ordinary problem in words, and the wait before the next try keeps the agent alive.
    #[test]
    fn real_retry_lines_are_problems_with_waits() {
        let text = include_str!("../../../tests/fixtures/transcripts/real-retries-500.log");
        let mut lines = text.lines();
        for (preset, name, wait) in [
            (Preset::Claude, "Claude Code", 33_100),
            (Preset::Gemini, "Gemini CLI", 13_000),
        ] {
            let out = parser_for(preset).parse_line(lines.next().unwrap());
            let [AgentOutput::Problem(problem), AgentOutput::Retrying(waits)] = out.as_slice()
            else {
                panic!("{preset:?}: {out:?}")
            };
            assert_eq!(problem.kind, ProblemKind::Other);
            assert!(
                problem.message.starts_with(&format!(
                    "{name} got an error from its model API (HTTP 500)"
                )),
                "{}",
                problem.message
            );
            assert!(!problem.message.contains("{\""), "{}", problem.message);
            assert_eq!(waits.as_millis(), wait, "{preset:?}");
        }
    }

    #[test]
    fn every_preset_has_a_parser() {
        let line = "plain text";
        for preset in [
            Preset::Demo,
            Preset::Lines,
            Preset::Claude,
            Preset::Codex,
            Preset::Gemini,
        ] {
            let out = parser_for(preset).parse_line(line);
            assert_eq!(out, vec![AgentOutput::Progress(line.into())], "{preset:?}");
        }
    }
}
