//! The two line protocols between an ACP agent's session and its bridge: what the bridge
//! reports on its stdout (one JSON object a line: progress, tokens, the ACP session, a
//! permission request, the end of a prompt turn) and what the session tells it on its stdin
//! (a decision, the next prompt, cancel, finish).
//!
//! The bridge runs inside the agent's sandbox, so its reports are as untrusted as any agent
//! output: [`AcpParser`] never fails, caps every text, and passes what it cannot read on as
//! plain progress.

use crate::dispatch::parsers::{AgentOutput, OutputParser};
use serde::{Deserialize, Serialize};

/// Longest title, command or option name kept, in characters.
pub const TEXT_MAX: usize = 500;
/// Longest tool input or diff kept, in characters.
pub const DETAIL_MAX: usize = 16 * 1024;
/// Most options one permission request may offer.
pub const OPTIONS_MAX: usize = 8;

/// What the bridge reports to its session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Report {
    Progress {
        message: String,
    },
    Tokens {
        input: u64,
        output: u64,
    },
    /// The ACP session is open; `can_load`: the adapter can resume it with `session/load`.
    Session {
        session_id: String,
        can_load: bool,
    },
    /// The agent asks before it uses a tool.
    Permission(PermissionAsk),
    /// A prompt turn ended (`end_turn`, `cancelled`, `refusal`, ...).
    TurnEnded {
        stop_reason: String,
    },
}

/// A permission request as the bridge reports it: its own id, the tool call and the options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionAsk {
    pub request_id: u64,
    pub tool: ToolCall,
    pub options: Vec<PermissionOption>,
}

/// The tool call a permission request is about, in words a person reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolCall {
    /// What the agent says the call does ("Run cargo test").
    pub title: String,
    /// The ACP tool kind: read, edit, delete, move, search, execute, think, fetch, other.
    pub kind: String,
    /// The shell command, for a call that runs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The call's arguments as the agent sent them (JSON text, capped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// The change the call makes, as a unified diff, for an edit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// One answer a person may give.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PermissionOption {
    /// What to send back to choose it.
    pub option_id: String,
    /// How the agent names it ("Allow once").
    pub name: String,
    /// allow_once, allow_always, reject_once or reject_always.
    pub kind: String,
}

impl PermissionOption {
    pub fn allows(&self) -> bool {
        self.kind.starts_with("allow")
    }
}

/// What a session tells its bridge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Control {
    /// Answer permission request `request_id` with this option; none: the request is
    /// cancelled (ACP's answer when the agent offered no way to refuse).
    Decide {
        request_id: u64,
        option_id: Option<String>,
    },
    /// The next prompt turn.
    Prompt { text: String },
    /// `session/cancel`, then end once the turn has.
    Cancel,
    /// No more turns: stop the adapter and exit (0 when the last turn ended well).
    Finish,
}

impl Control {
    pub fn line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_else(|_| "{}".into());
        line.push('\n');
        line
    }
}

/// Shortens `text` to `max` characters, marking the cut.
pub fn capped(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

impl ToolCall {
    /// The same call with every text within its cap.
    fn capped(self) -> ToolCall {
        ToolCall {
            title: capped(&self.title, TEXT_MAX),
            kind: capped(&self.kind, 40),
            command: self.command.map(|c| capped(&c, DETAIL_MAX)),
            input: self.input.map(|c| capped(&c, DETAIL_MAX)),
            diff: self.diff.map(|c| capped(&c, DETAIL_MAX)),
        }
    }
}

/// Reads the bridge's reports: progress and tokens become what every agent reports, the rest
/// goes to the session as [`AgentOutput::Acp`].
pub struct AcpParser;

impl OutputParser for AcpParser {
    fn parse_line(&mut self, line: &str) -> Vec<AgentOutput> {
        let line = line.trim();
        if line.is_empty() {
            return Vec::new();
        }
        let Ok(report) = serde_json::from_str::<Report>(line) else {
            return vec![AgentOutput::Progress(capped(line, TEXT_MAX))];
        };
        match report {
            Report::Progress { message } => {
                let message = message.trim();
                if message.is_empty() {
                    Vec::new()
                } else {
                    vec![AgentOutput::Progress(capped(message, TEXT_MAX))]
                }
            }
            Report::Tokens { input, output } => vec![AgentOutput::Tokens { input, output }],
            Report::Permission(mut ask) => {
                ask.tool = ask.tool.capped();
                ask.options.truncate(OPTIONS_MAX);
                for option in &mut ask.options {
                    option.option_id = capped(&option.option_id, TEXT_MAX);
                    option.name = capped(&option.name, TEXT_MAX);
                    option.kind = capped(&option.kind, 40);
                }
                vec![AgentOutput::Acp(Report::Permission(ask))]
            }
            Report::Session {
                session_id,
                can_load,
            } => vec![AgentOutput::Acp(Report::Session {
                session_id: capped(&session_id, TEXT_MAX),
                can_load,
            })],
            Report::TurnEnded { stop_reason } => vec![AgentOutput::Acp(Report::TurnEnded {
                stop_reason: capped(&stop_reason, 40),
            })],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forged_or_broken_report_is_only_progress() {
        let mut p = AcpParser;
        assert_eq!(
            p.parse_line("{\"type\":\"decide\",\"requestId\":1}"),
            vec![AgentOutput::Progress(
                "{\"type\":\"decide\",\"requestId\":1}".into()
            )]
        );
        let long = format!(
            "{{\"type\":\"permission\",\"requestId\":1,\"tool\":{{\"title\":\"{}\",\"kind\":\"execute\"}},\"options\":[]}}",
            "x".repeat(5000)
        );
        match p.parse_line(&long).as_slice() {
            [AgentOutput::Acp(Report::Permission(ask))] => {
                assert!(ask.tool.title.chars().count() <= TEXT_MAX + 1)
            }
            other => panic!("{other:?}"),
        }
    }
}
