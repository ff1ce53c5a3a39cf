//! Agents driven over the Agent Client Protocol (ACP: JSON-RPC 2.0 over the adapter's
//! stdio), and the people in their loop.
//!
//! An ACP preset runs `flightdeck acp-bridge` as the session's agent process, inside the
//! sandbox, with the adapter (`claude-agent-acp`, `codex-acp`, `gemini --acp`, or
//! `agent.command`) as its child: the bridge speaks ACP and serves file and terminal requests
//! inside the session's folders (`bridge`, `rpc`, `files`, `terminals`); it reports to its
//! session in a line protocol of its own and takes decisions and prompts on its stdin
//! (`report`). The session applies the `[approvals]` policy (`policy`) and puts what a person
//! must answer on the [`Desk`], where the API finds it, and where follow-up messages find the
//! session.

pub mod bridge;
mod desk;
mod files;
mod policy;
mod report;
mod rpc;
mod terminals;

pub use desk::{Approval, Decide, Delivery, Desk, DeskError, Say};
pub use policy::{ApprovalsConfig, Ruling};
pub use report::{AcpParser, Control, PermissionAsk, PermissionOption, Report, ToolCall};

/// A person's or an agent's text shortened for one progress line.
pub fn capped_text(text: &str) -> String {
    report::capped(text, report::TEXT_MAX)
}
