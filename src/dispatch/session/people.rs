//! Where people reach a running ACP session: its permission requests (answered by the
//! `[approvals]` policy, or put on the desk for a person, and refused when nobody answers in
//! time), follow-up messages (the next prompt turn, queued while a turn runs), and the end of
//! each turn (the next message, or `finish`).
//!
//! Everything goes to the bridge as a [`Control`] line on its stdin, written by a thread of
//! its own so that a bridge that stops reading never blocks the session.

use super::AgentSession;
use crate::dispatch::acp::{
    Approval, Control, Decide, Delivery, DeskError, PermissionAsk, Report, Ruling, Say,
};
use crate::queue::{PersonAnswered, PersonAsked};
use actix::prelude::*;
use chrono::Utc;
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::mpsc::{sync_channel, SyncSender};

/// Most follow-up messages queued behind a running turn.
const QUEUED_MAX: usize = 20;
/// Most permission requests of one session waiting for a person; past it more are refused.
const WAITING_MAX: usize = 20;
/// Most policy decisions of one session recorded as events; later ones are in its log only,
/// so an agent asking in a loop cannot fill the event store.
const POLICY_EVENTS_MAX: usize = 100;

/// The session's side of its bridge.
pub(super) struct Bridge {
    to_bridge: SyncSender<Control>,
    /// A prompt turn is running.
    turn: bool,
    /// No more turns: the bridge was told to finish or cancel.
    closed: bool,
    queued: VecDeque<String>,
    /// Approval id -> the bridge's request id, for requests waiting on a person.
    waiting: HashMap<String, u64>,
    /// Policy decisions recorded as events so far.
    policy_events: usize,
    /// The ACP session the adapter opened, and whether it can resume it later.
    pub(super) acp_session: Option<(String, bool)>,
}

impl Bridge {
    /// Starts the thread that writes to the bridge's stdin.
    pub(super) fn new(
        stdin: std::process::ChildStdin,
        session_id: &str,
    ) -> std::io::Result<Bridge> {
        let (to_bridge, inbox) = sync_channel::<Control>(64);
        let name = session_id.to_string();
        std::thread::Builder::new()
            .name("acp-control-writer".into())
            .spawn(move || {
                let mut stdin = stdin;
                for control in inbox {
                    let written = stdin
                        .write_all(control.line().as_bytes())
                        .and_then(|_| stdin.flush());
                    if let Err(e) = written {
                        log::debug!("session {name}: the ACP bridge no longer reads: {e}");
                        return;
                    }
                }
            })?;
        Ok(Bridge {
            to_bridge,
            turn: true,
            closed: false,
            queued: VecDeque::new(),
            waiting: HashMap::new(),
            policy_events: 0,
            acp_session: None,
        })
    }

    /// The first prompt once a resumed session is loaded (the reviewer's feedback).
    pub(super) fn after_load(&mut self, text: String) {
        self.queued.push_back(text);
    }

    fn send(&self, control: Control) {
        if self.to_bridge.try_send(control).is_err() {
            log::warn!("an ACP bridge is not reading its instructions; one was dropped");
        }
    }
}

impl AgentSession {
    /// A report of the bridge beyond progress and tokens.
    pub(super) fn on_acp(&mut self, ctx: &mut Context<Self>, report: Report) {
        match report {
            Report::Permission(ask) => self.on_permission(ctx, ask),
            Report::TurnEnded { stop_reason } => self.on_turn_ended(&stop_reason),
            Report::Session {
                session_id,
                can_load,
            } => {
                if let Some(bridge) = &mut self.bridge {
                    bridge.acp_session = Some((session_id.clone(), can_load));
                }
                self.note(&format!(
                    "ACP session {session_id} open{}",
                    if can_load {
                        " (the adapter can resume it)"
                    } else {
                        ""
                    }
                ))
            }
            Report::Progress { .. } | Report::Tokens { .. } => {}
        }
    }

    fn on_turn_ended(&mut self, stop_reason: &str) {
        let Some(bridge) = &mut self.bridge else {
            return;
        };
        bridge.turn = false;
        if bridge.closed {
            return;
        }
        match bridge.queued.pop_front() {
            Some(text) if stop_reason == "end_turn" || stop_reason == "loaded" => {
                bridge.turn = true;
                bridge.send(Control::Prompt { text });
            }
            _ => {
                bridge.closed = true;
                bridge.send(Control::Finish);
            }
        }
    }

    fn on_permission(&mut self, ctx: &mut Context<Self>, ask: PermissionAsk) {
        let Some(bridge) = &mut self.bridge else {
            return;
        };
        let title = ask.tool.title.clone();
        let flooded = bridge.waiting.len() >= WAITING_MAX;
        let ruling = if flooded {
            Ruling::Deny(format!("{WAITING_MAX} requests already wait for a person"))
        } else {
            self.settings
                .approvals
                .decide(&ask.tool.kind, ask.tool.command.as_deref())
        };
        let (allow, why) = match ruling {
            Ruling::Allow(why) => (true, why),
            Ruling::Deny(why) => (false, why),
            Ruling::Ask => return self.ask_a_person(ctx, ask),
        };
        let option = ask
            .options
            .iter()
            .find(|o| o.allows() == allow && o.kind.ends_with("_once"))
            .or_else(|| ask.options.iter().find(|o| o.allows() == allow))
            .map(|o| o.option_id.clone());
        bridge.send(Control::Decide {
            request_id: ask.request_id,
            option_id: option.clone(),
        });
        let still_waiting = !bridge.waiting.is_empty();
        // The agent was waiting, not stalled: its idle clock starts now.
        self.last_output = std::time::Instant::now();
        let recorded = !flooded && bridge.policy_events < POLICY_EVENTS_MAX;
        if recorded {
            bridge.policy_events += 1;
        }
        let verb = if allow { "allowed" } else { "refused" };
        let what = match &ask.tool.command {
            Some(command) => format!("`{command}`"),
            None => format!("\"{title}\""),
        };
        let line = format!(
            "flightdeck {verb} {what} on \"{}\" without asking: {why}",
            self.item.title
        );
        self.note(&line);
        self.pending.push(line.clone());
        if recorded {
            self.reports.person_answered(PersonAnswered {
                item_id: self.item.id.clone(),
                approval_id: uuid::Uuid::new_v4().to_string(),
                option_id: option,
                message: line,
                still_waiting,
                decided_by: "policy",
            });
        }
    }

    fn ask_a_person(&mut self, ctx: &mut Context<Self>, ask: PermissionAsk) {
        let timeout = self.settings.approvals.timeout();
        let now = Utc::now();
        let approval = Approval {
            id: uuid::Uuid::new_v4().to_string(),
            item_id: self.item.id.clone(),
            item_title: self.item.title.clone(),
            session_id: self.record.id.clone(),
            tool: ask.tool,
            options: ask.options,
            requested_at: now,
            expires_at: now + chrono::Duration::seconds(timeout.as_secs() as i64),
        };
        if let Some(bridge) = &mut self.bridge {
            bridge.waiting.insert(approval.id.clone(), ask.request_id);
        }
        let line = format!(
            "waiting for a person to allow \"{}\" (flightdeck approve {} OPTION)",
            approval.tool.title, approval.id
        );
        self.note(&line);
        self.pending.push(line);
        self.settings
            .desk
            .add(approval.clone(), ctx.address().recipient());
        let id = approval.id.clone();
        self.reports.person_asked(PersonAsked { approval });
        ctx.run_later(timeout, move |act, _| {
            let why = format!(
                "nobody answered within {}s (approvals.timeout_secs)",
                timeout.as_secs()
            );
            let _ = act.resolve(&id, None, why, "timeout");
        });
    }

    /// Whether the agent waits for a person to answer one of its permission requests.
    pub(super) fn waits_on_person(&self) -> bool {
        self.bridge
            .as_ref()
            .is_some_and(|bridge| !bridge.waiting.is_empty())
    }

    /// Answers a waiting request with `option` (None: the first way to refuse it);
    /// `decided_by` is "person" or "timeout", as the `approval:resolved` event says.
    fn resolve(
        &mut self,
        approval_id: &str,
        option: Option<String>,
        why: String,
        decided_by: &'static str,
    ) -> Result<String, DeskError> {
        let Some(bridge) = &mut self.bridge else {
            return Err(DeskError::NotRunning(
                "the agent's session has ended".into(),
            ));
        };
        let Some(request_id) = bridge.waiting.remove(approval_id) else {
            return Err(DeskError::Resolved(
                "it timed out, or the session moved on".into(),
            ));
        };
        let still_waiting = !bridge.waiting.is_empty();
        let approval = self.settings.desk.get(approval_id);
        self.settings.desk.remove(approval_id);
        let options = approval
            .as_ref()
            .map(|a| a.options.clone())
            .unwrap_or_default();
        let option_id = option.or_else(|| {
            options
                .iter()
                .find(|o| !o.allows() && o.kind.ends_with("_once"))
                .or_else(|| options.iter().find(|o| !o.allows()))
                .map(|o| o.option_id.clone())
        });
        let chosen = options
            .iter()
            .find(|o| Some(&o.option_id) == option_id.as_ref())
            .map(|o| o.name.clone())
            .unwrap_or_else(|| "refused".into());
        bridge.send(Control::Decide {
            request_id,
            option_id: option_id.clone(),
        });
        // The agent was waiting for this answer, not stalled: its idle clock starts now (a
        // wait longer than pool.idle_timeout_secs otherwise stopped it the moment it resumed).
        self.last_output = std::time::Instant::now();
        let title = approval
            .as_ref()
            .map(|a| a.tool.title.clone())
            .unwrap_or_else(|| "a tool call".into());
        let message = format!("\"{title}\" on \"{}\": {chosen} ({why})", self.item.title);
        self.note(&message);
        self.pending.push(message.clone());
        self.reports.person_answered(PersonAnswered {
            item_id: self.item.id.clone(),
            approval_id: approval_id.to_string(),
            option_id,
            message: message.clone(),
            still_waiting,
            decided_by,
        });
        Ok(message)
    }

    /// Asks the agent to stop its turn (`session/cancel`); returns how long to give it before
    /// its processes are stopped.
    pub(super) fn cancel_turn(&mut self) -> std::time::Duration {
        let Some(bridge) = &mut self.bridge else {
            return std::time::Duration::ZERO;
        };
        let waiting: Vec<String> = bridge.waiting.drain().map(|(id, _)| id).collect();
        bridge.closed = true;
        bridge.send(Control::Cancel);
        for id in waiting {
            self.settings.desk.remove(&id);
        }
        self.note("asked the agent to stop (session/cancel)");
        self.settings.cancel_grace
    }

    /// The session ends: nobody can reach it any more.
    pub(super) fn close_desk(&mut self) {
        if self.settings.preset.is_acp() {
            self.settings
                .desk
                .close_session(&self.item.id, &self.record.id);
        }
        self.bridge = None;
    }
}

impl Handler<Decide> for AgentSession {
    type Result = Result<String, DeskError>;

    fn handle(&mut self, m: Decide, _: &mut Context<Self>) -> Self::Result {
        self.resolve(
            &m.approval_id,
            Some(m.option_id),
            "a person chose it".into(),
            "person",
        )
    }
}

impl Handler<Say> for AgentSession {
    type Result = Result<Delivery, DeskError>;

    fn handle(&mut self, m: Say, _: &mut Context<Self>) -> Self::Result {
        let title = self.item.title.clone();
        let Some(bridge) = &mut self.bridge else {
            return Err(DeskError::NotRunning(format!(
                "\"{title}\" has no running ACP session"
            )));
        };
        if bridge.closed {
            return Err(DeskError::NotRunning(format!(
                "the agent on \"{title}\" has finished its turns; the message was not delivered"
            )));
        }
        let delivery = if bridge.turn {
            if bridge.queued.len() >= QUEUED_MAX {
                return Err(DeskError::Full(format!(
                    "{QUEUED_MAX} messages already wait for the agent on \"{title}\"; send more once it has read them"
                )));
            }
            bridge.queued.push_back(m.text.clone());
            Delivery::Queued
        } else {
            bridge.turn = true;
            bridge.send(Control::Prompt {
                text: m.text.clone(),
            });
            Delivery::Sent
        };
        let line = format!(
            "message from a person: {}",
            crate::dispatch::acp::capped_text(&m.text)
        );
        self.note(&line);
        self.pending.push(line);
        Ok(delivery)
    }
}
