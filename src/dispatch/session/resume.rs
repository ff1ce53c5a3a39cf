//! A later attempt at an item picks up where the last one stopped (see `dispatch::recap`).
//!
//! Where the last attempt ran in an ACP session its adapter can resume (`loadSession`), the
//! bridge is started with `--resume` and the reviewer's feedback is the first prompt after the
//! session is loaded: the agent hears it in the conversation it had. Everywhere else, and as
//! well in that case (a load can still fail, and the bridge then opens a new session with
//! AGENTS.md), AGENTS.md carries the recap of the last attempt.

use super::AgentSession;
use crate::dispatch::recap::{self, Recap};

impl AgentSession {
    /// AGENTS.md for this attempt: `base`, with the previous attempt's recap when there is
    /// one. Decides whether this attempt resumes the previous ACP session.
    pub(super) fn agents_md(&mut self, base: String) -> String {
        if self.item.attempts < 2 {
            return base;
        }
        let data_dir = &self.settings.data_dir;
        let Some(recap) = Recap::load(data_dir, &self.item.id) else {
            return base;
        };
        if self.settings.preset.is_acp() {
            self.resume = recap.resumable().map(String::from);
        }
        let files = recap::changed_files(data_dir, &self.item.id);
        let section = recap.markdown(self.item.status_reason.as_deref(), &files);
        // The recap goes before the "Reporting" section, beside the previous attempt's reason.
        match base.find("## Reporting") {
            Some(at) => format!("{}{section}{}", &base[..at], &base[at..]),
            None => format!("{base}\n{section}"),
        }
    }

    /// The bridge's argv, told to resume the previous ACP session when this attempt does.
    pub(super) fn resuming(&self, mut argv: Vec<String>) -> Vec<String> {
        if let Some(session) = &self.resume {
            if let Some(at) = argv.iter().position(|a| a == "acp-bridge") {
                argv.splice(at + 1..at + 1, ["--resume".to_string(), session.clone()]);
            }
        }
        argv
    }

    /// The first prompt of a resumed session: the reviewer's feedback.
    pub(super) fn feedback_prompt(&self) -> Option<String> {
        self.resume.as_ref()?;
        let feedback = self
            .item
            .status_reason
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty());
        Some(match feedback {
            Some(feedback) => format!(
                "The reviewer rejected this work with this feedback:\n\n{feedback}\n\n\
                 Change the work accordingly, then end your turn. The task and a recap of the \
                 previous attempt are in AGENTS.md in your working folder."
            ),
            None => "The reviewer rejected this work without saying why. Look at it again, \
                     finish what is missing, then end your turn. The task is in AGENTS.md in your \
                     working folder."
                .to_string(),
        })
    }

    /// Keeps the recap of this attempt for the next one.
    pub(super) fn keep_recap(&self, outcome: &str) {
        let (acp_session, can_load) = self
            .bridge
            .as_ref()
            .and_then(|b| b.acp_session.clone())
            .map_or((None, false), |(id, load)| (Some(id), load));
        Recap {
            attempt: self.item.attempts,
            outcome: format!("ended with \"{outcome}\""),
            said: self.said.lines(),
            acp_session,
            can_load,
        }
        .save(&self.settings.data_dir, &self.item.id);
    }
}
