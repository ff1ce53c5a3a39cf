//! Gemini CLI's `--output-format stream-json` events.
//!
//! One JSON event per line: `init` (session and model), `message` (the user's prompt, then the
//! assistant's text in deltas), `tool_use` and `tool_result`, `error` (warnings and errors,
//! retries included) and a final `result` with a status and the session's token stats. Tokens
//! are taken from the result only, which totals the session.

use super::classify::{self, Agent};
use super::{
    cap, count, first_line, parse_object, progress, raw, str_field, tokens, AgentOutput,
    OutputParser,
};
use serde_json::Value;

/// Tool parameters that best describe a call, most telling first.
const TOOL_DETAIL_FIELDS: [&str; 5] = ["command", "file_path", "absolute_path", "path", "pattern"];

/// Parser for the `gemini` preset. Assistant text arrives in deltas; the first line of each
/// reply is reported once it is complete.
#[derive(Default)]
pub struct GeminiParser {
    reply: String,
    reported: bool,
}

impl OutputParser for GeminiParser {
    fn parse_line(&mut self, line: &str) -> Vec<AgentOutput> {
        let Some(event) = parse_object(line) else {
            return retry_line(line).unwrap_or_else(|| raw(line));
        };
        let parsed = match str_field(&event, "type") {
            Some("init") => Some(
                progress(&match str_field(&event, "model") {
                    Some(model) => format!("session started (model {model})"),
                    None => "session started".to_string(),
                })
                .into_iter()
                .collect(),
            ),
            Some("message") => Some(self.message(&event)),
            Some("tool_use") => {
                self.end_reply();
                Some(progress(&tool_call(&event)).into_iter().collect())
            }
            Some("tool_result") => Some(tool_result(&event)),
            Some("error") => Some(error(&event)),
            Some("result") => {
                let mut out = self.unreported_reply();
                out.extend(result(&event));
                Some(out)
            }
            _ => None,
        };
        parsed.unwrap_or_else(|| raw(line))
    }
}

impl GeminiParser {
    fn message(&mut self, event: &Value) -> Vec<AgentOutput> {
        if str_field(event, "role") != Some("assistant") {
            return Vec::new();
        }
        let text = str_field(event, "content").unwrap_or("");
        if event.get("delta").and_then(Value::as_bool) != Some(true) {
            self.end_reply();
        }
        if self.reported || self.reply.len() > 4096 {
            return Vec::new();
        }
        self.reply.push_str(text);
        match self.reply.split_once('\n') {
            Some((first, _)) if !first.trim().is_empty() => {
                self.reported = true;
                progress(first).into_iter().collect()
            }
            _ => Vec::new(),
        }
    }

    /// The first line of a reply that ended without a newline (the last one, before the
    /// result), once.
    fn unreported_reply(&mut self) -> Vec<AgentOutput> {
        let out = match self.reported {
            false => first_line(&self.reply).and_then(progress),
            true => None,
        };
        self.end_reply();
        out.into_iter().collect()
    }

    fn end_reply(&mut self) {
        self.reply.clear();
        self.reported = false;
    }
}

/// Gemini CLI's backoff before its first retry, doubling per attempt up to [`RETRY_MAX_WAIT`],
/// each wait varied by up to [`RETRY_JITTER`] either way (`retryWithBackoff` in 0.61).
const RETRY_FIRST_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
const RETRY_MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
const RETRY_JITTER: f64 = 0.3;

/// `Attempt 2 failed with status 500. Retrying with backoff... _ApiError: {...}` on stderr:
/// the model API failed and Gemini CLI tries again. It does not print the wait, so the
/// longest its backoff can take is reported, to keep a retrying agent from looking stalled.
fn retry_line(line: &str) -> Option<Vec<AgentOutput>> {
    let rest = line.trim().strip_prefix("Attempt ")?;
    let (attempt, rest) = rest.split_once(" failed")?;
    let attempt: u32 = attempt.parse().ok()?;
    let (head, detail) = rest.split_once("Retrying with backoff...")?;
    let status = head
        .trim()
        .strip_prefix("with status ")
        .and_then(|s| s.trim_end_matches('.').trim().parse::<u64>().ok());
    let detail = detail.trim().trim_start_matches("_ApiError:").trim();
    let problem = classify::problem(Agent::Gemini, status, detail, None).unwrap_or_else(|| {
        classify::describe(
            Agent::Gemini,
            super::ProblemKind::Other,
            status,
            detail,
            None,
        )
    });
    let wait = RETRY_FIRST_WAIT
        .saturating_mul(1 << attempt.saturating_sub(1).min(8))
        .min(RETRY_MAX_WAIT)
        .mul_f64(1.0 + RETRY_JITTER);
    Some(vec![
        AgentOutput::Problem(problem),
        AgentOutput::Retrying(wait),
    ])
}

/// `Bash: ls` style line for a `tool_use` event.
fn tool_call(event: &Value) -> String {
    let name = str_field(event, "tool_name").unwrap_or("tool");
    let detail = event.get("parameters").and_then(|params| {
        TOOL_DETAIL_FIELDS
            .iter()
            .find_map(|key| str_field(params, key).and_then(first_line))
    });
    match detail {
        Some(detail) => format!("{name}: {detail}"),
        None => name.to_string(),
    }
}

/// Only failed tool results are worth showing.
fn tool_result(event: &Value) -> Vec<AgentOutput> {
    if str_field(event, "status") != Some("error") {
        return Vec::new();
    }
    let message = event
        .get("error")
        .and_then(|e| str_field(e, "message"))
        .and_then(first_line);
    let line = match message {
        Some(m) => format!("tool error: {m}"),
        None => "tool error".to_string(),
    };
    progress(&line).into_iter().collect()
}

/// `{"type":"error","severity":"warning","message":"..."}`: a warning, a retry or an error.
fn error(event: &Value) -> Vec<AgentOutput> {
    let message = str_field(event, "message")
        .and_then(first_line)
        .unwrap_or("");
    if let Some(problem) = classify::problem(Agent::Gemini, None, message, None) {
        return vec![AgentOutput::Problem(problem)];
    }
    let label = match str_field(event, "severity") {
        Some("warning") => "warning",
        _ => "error",
    };
    progress(&format!("{label}: {message}"))
        .into_iter()
        .collect()
}

/// The final `result`: tokens, the verdict and, on failure, what went wrong.
fn result(event: &Value) -> Vec<AgentOutput> {
    let mut out = Vec::new();
    if let Some(stats) = event.get("stats") {
        out.extend(tokens(
            count(stats, "input_tokens"),
            count(stats, "output_tokens"),
        ));
    }
    let success = str_field(event, "status") == Some("success");
    if success {
        out.push(AgentOutput::Progress("finished: success".into()));
        out.push(AgentOutput::Finished {
            success,
            summary: "finished: success".into(),
        });
        return out;
    }
    let error = event.get("error");
    let message = error
        .and_then(|e| str_field(e, "message"))
        .and_then(first_line)
        .unwrap_or("the session ended with an error");
    out.push(AgentOutput::Progress(cap(&format!("finished: {message}"))));
    let status = error.and_then(|e| e.get("code")).and_then(Value::as_u64);
    out.extend(classify::problem(Agent::Gemini, status, message, None).map(AgentOutput::Problem));
    out.push(AgentOutput::Finished {
        success,
        summary: cap(message),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::parsers::ProblemKind;

    fn parse_all(text: &str) -> Vec<AgentOutput> {
        let mut parser = GeminiParser::default();
        text.lines().flat_map(|l| parser.parse_line(l)).collect()
    }

    #[test]
    fn a_successful_session_reports_its_reply_tools_and_tokens() {
        let out = parse_all(concat!(
            "{\"type\":\"init\",\"session_id\":\"s\",\"model\":\"gemini-2.5-pro\"}\n",
            "{\"type\":\"message\",\"role\":\"user\",\"content\":\"Read AGENTS.md\"}\n",
            "{\"type\":\"message\",\"role\":\"assistant\",\"content\":\"Writing the \",\"delta\":true}\n",
            "{\"type\":\"message\",\"role\":\"assistant\",\"content\":\"file.\\nMore\",\"delta\":true}\n",
            "{\"type\":\"tool_use\",\"tool_name\":\"write_file\",\"tool_id\":\"1\",\"parameters\":{\"file_path\":\"hello.txt\",\"content\":\"hi\"}}\n",
            "{\"type\":\"tool_result\",\"tool_id\":\"1\",\"status\":\"success\",\"output\":\"ok\"}\n",
            "{\"type\":\"result\",\"status\":\"success\",\"stats\":{\"total_tokens\":30,\"input_tokens\":20,\"output_tokens\":10}}\n",
        ));
        assert_eq!(
            out,
            vec![
                AgentOutput::Progress("session started (model gemini-2.5-pro)".into()),
                AgentOutput::Progress("Writing the file.".into()),
                AgentOutput::Progress("write_file: hello.txt".into()),
                AgentOutput::Tokens {
                    input: 20,
                    output: 10
                },
                AgentOutput::Progress("finished: success".into()),
                AgentOutput::Finished {
                    success: true,
                    summary: "finished: success".into()
                },
            ]
        );
    }

    #[test]
    fn a_refused_key_is_an_auth_problem_in_words() {
        let out = parse_all("{\"type\":\"result\",\"status\":\"error\",\"error\":{\"type\":\"Error\",\"message\":\"[API Error: API key not valid. Please pass a valid API key.]\"},\"stats\":{}}");
        let problem = out
            .iter()
            .find_map(|o| match o {
                AgentOutput::Problem(p) => Some(p),
                _ => None,
            })
            .expect("a problem");
        assert_eq!(problem.kind, ProblemKind::Auth);
        assert!(
            problem.message.contains("GEMINI_API_KEY"),
            "{}",
            problem.message
        );
        assert!(matches!(
            out.last(),
            Some(AgentOutput::Finished { success: false, .. })
        ));
    }

    #[test]
    fn garbage_is_passed_on_as_progress() {
        assert_eq!(
            parse_all("not json"),
            vec![AgentOutput::Progress("not json".into())]
        );
        assert_eq!(parse_all("{\"type\":\"message\"}"), vec![]);
    }
}
