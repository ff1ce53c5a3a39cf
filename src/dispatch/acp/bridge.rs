//! `flightdeck acp-bridge`: the ACP client of one agent session, run as the session's agent
//! process (through the launcher, so inside the same sandbox and process tracking as the
//! adapter it starts).
//!
//! It starts the adapter with piped stdio and speaks ACP to it (`initialize`, `session/new`
//! or `session/load`, `session/prompt` with AGENTS.md), serves the adapter's `fs/*` and
//! `terminal/*` requests inside the session's folders, and turns `session/update`
//! notifications into progress. Towards the session it speaks the small line protocol of
//! `report`: permission requests go up and wait for a decision to come down; a prompt turn's
//! end goes up, and the session answers with the next prompt (a person's message) or
//! `finish`. It exits 0 when the last turn ended with `end_turn`.
//!
//! Why a process of its own and not code in the server: everything the adapter says is
//! attacker-controlled, and serving its file and terminal requests from inside the sandbox
//! means a mistake in a path check still cannot reach past the session folder; and the
//! session actor keeps judging an agent by its output and exit, as for every other preset.

use super::files::Files;
use super::report::{capped, Control, PermissionAsk, PermissionOption, Report, ToolCall};
use super::report::{DETAIL_MAX, TEXT_MAX};
use super::rpc::{self, Incoming, RpcError};
use super::terminals::{NewTerminal, Terminals};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The ACP protocol version flightdeck speaks.
const PROTOCOL_VERSION: u64 = 1;
/// How long the adapter has to exit after its stdin closes.
const EXIT_GRACE: Duration = Duration::from_secs(3);
/// Most tool-call titles remembered for their status updates.
const TITLES_MAX: usize = 1000;

/// What the bridge is told to run.
#[derive(Debug)]
pub struct BridgeArgs {
    pub prompt_file: PathBuf,
    pub workspace: PathBuf,
    pub artifacts: PathBuf,
    /// An ACP session to resume with `session/load`, when the adapter can.
    pub resume: Option<String>,
    pub adapter: Vec<String>,
}

/// What the main loop hears.
enum Event {
    /// A line from the adapter's stdout (None: it was longer than the cap).
    Agent(Option<String>),
    AgentClosed,
    /// A line from the session.
    Control(String),
    ControlClosed,
    /// A request answered off the main thread (a terminal's wait for exit).
    Answer(Value, Result<Value, RpcError>),
}

/// A call the bridge made and awaits.
enum Call {
    Initialize,
    NewSession,
    LoadSession(String),
    /// `session/set_mode` to the mode that asks before acting.
    SetMode,
    Prompt,
}

struct Bridge {
    args: BridgeArgs,
    to_agent: Arc<Mutex<ChildStdin>>,
    events: Sender<Event>,
    next_id: u64,
    calls: HashMap<u64, Call>,
    session: Option<String>,
    can_load: bool,
    /// Permission requests awaiting the session's decision: our id -> the adapter's.
    permissions: HashMap<u64, Value>,
    next_permission: u64,
    files: Files,
    terminals: Terminals,
    titles: HashMap<String, String>,
    /// Text of the agent's message not yet shown (chunks come a few tokens at a time).
    speech: String,
    turn_running: bool,
    last_stop: Option<String>,
    cancelling: bool,
}

/// Runs the bridge until it is told to finish or the adapter goes; returns the exit code.
pub fn run(args: BridgeArgs) -> i32 {
    let Some((program, rest)) = args.adapter.split_first() else {
        say("the ACP preset has no adapter command (agent.command is empty)");
        return 2;
    };
    let mut child = match Command::new(program)
        .args(rest)
        .current_dir(&args.workspace)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            say(&format!("the ACP adapter {program} could not start: {e}"));
            return 2;
        }
    };
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        say("the ACP adapter's pipes could not be opened");
        let _ = child.kill();
        return 2;
    };
    let (events, inbox) = channel();
    read_agent(stdout, events.clone());
    read_control(events.clone());
    let roots = [args.workspace.clone(), args.artifacts.clone()];
    let mut bridge = Bridge {
        files: Files::new(&roots),
        terminals: Terminals::new(&roots, &args.workspace),
        args,
        to_agent: Arc::new(Mutex::new(stdin)),
        events,
        next_id: 1,
        calls: HashMap::new(),
        session: None,
        can_load: false,
        permissions: HashMap::new(),
        next_permission: 1,
        titles: HashMap::new(),
        speech: String::new(),
        turn_running: false,
        last_stop: None,
        cancelling: false,
    };
    bridge.call(
        Call::Initialize,
        "initialize",
        json!({
            "protocolVersion": PROTOCOL_VERSION,
            "clientCapabilities": {
                "fs": {"readTextFile": true, "writeTextFile": true},
                "terminal": true
            },
            "clientInfo": {"name": "flightdeck", "version": env!("CARGO_PKG_VERSION")}
        }),
    );
    let code = bridge.serve(&inbox, &mut child);
    bridge.terminals.kill_all();
    stop_adapter(bridge.to_agent, child);
    code
}

/// Prints a report line for the session.
fn report(report: &Report) {
    if let Ok(line) = serde_json::to_string(report) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

fn say(message: &str) {
    report(&Report::Progress {
        message: message.to_string(),
    });
}

impl Bridge {
    /// The main loop; returns the exit code.
    fn serve(&mut self, inbox: &Receiver<Event>, child: &mut Child) -> i32 {
        while let Ok(event) = inbox.recv() {
            match event {
                Event::Agent(Some(line)) => {
                    self.on_agent_line(&line);
                    if self.cancelling && !self.turn_running {
                        self.show_speech();
                        say("the agent stopped its turn after session/cancel");
                        return 1;
                    }
                }
                Event::Agent(None) => say(&format!(
                    "the agent sent a message over {} bytes; flightdeck ignored it",
                    rpc::LINE_MAX
                )),
                Event::AgentClosed => {
                    self.show_speech();
                    let status = child.wait().ok();
                    say(&format!(
                        "the ACP adapter exited{} before its work was finished",
                        status.map(describe).unwrap_or_default()
                    ));
                    return 1;
                }
                Event::Control(line) => match serde_json::from_str::<Control>(&line) {
                    Ok(Control::Finish) => return self.finish(),
                    Ok(control) => self.control(control),
                    Err(e) => say(&format!(
                        "flightdeck sent the bridge a line it cannot read: {e}"
                    )),
                },
                Event::ControlClosed => return 1,
                Event::Answer(id, result) => self.answer(id, result),
            }
        }
        1
    }

    fn finish(&mut self) -> i32 {
        self.show_speech();
        match self.last_stop.as_deref() {
            Some("end_turn") => 0,
            Some(other) => {
                say(&format!("the agent's last turn ended with \"{other}\""));
                1
            }
            None => {
                say("the agent never finished a turn");
                1
            }
        }
    }

    fn control(&mut self, control: Control) {
        match control {
            Control::Decide {
                request_id,
                option_id,
            } => {
                let Some(id) = self.permissions.remove(&request_id) else {
                    return;
                };
                let outcome = match option_id {
                    Some(option) => json!({"outcome": "selected", "optionId": option}),
                    None => json!({"outcome": "cancelled"}),
                };
                self.answer(id, Ok(json!({ "outcome": outcome })));
            }
            Control::Prompt { text } => self.prompt(&text),
            Control::Cancel => {
                self.cancelling = true;
                if let Some(session) = self.session.clone() {
                    self.send(&rpc::notification(
                        "session/cancel",
                        json!({ "sessionId": session }),
                    ));
                }
                for (_, id) in std::mem::take(&mut self.permissions) {
                    self.answer(id, Ok(json!({"outcome": {"outcome": "cancelled"}})));
                }
            }
            Control::Finish => {}
        }
    }

    fn prompt(&mut self, text: &str) {
        let Some(session) = self.session.clone() else {
            say("a prompt arrived before the ACP session was open; flightdeck dropped it");
            return;
        };
        self.turn_running = true;
        self.call(
            Call::Prompt,
            "session/prompt",
            json!({"sessionId": session, "prompt": [{"type": "text", "text": text}]}),
        );
    }

    fn send(&self, message: &Value) {
        let mut line = message.to_string();
        line.push('\n');
        let mut stdin = self.to_agent.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = stdin.write_all(line.as_bytes()).and_then(|_| stdin.flush()) {
            log::debug!("cannot write to the ACP adapter: {e}");
        }
    }

    fn call(&mut self, call: Call, method: &str, params: Value) {
        let id = self.next_id;
        self.next_id += 1;
        self.calls.insert(id, call);
        self.send(&rpc::request(id, method, params));
    }

    fn answer(&self, id: Value, result: Result<Value, RpcError>) {
        self.send(&rpc::response(id, result));
    }

    fn on_agent_line(&mut self, line: &str) {
        let message = match rpc::parse(line) {
            Ok(message) => message,
            Err(why) => {
                say(&format!(
                    "the agent sent a line that is not JSON-RPC ({why}): {}",
                    capped(line, 200)
                ));
                return;
            }
        };
        match message {
            Incoming::Request { id, method, params } => self.request(id, &method, params),
            Incoming::Notification { method, params } => {
                if method == "session/update" {
                    self.update(&params["update"]);
                }
            }
            Incoming::Response { id, result } => self.response(id, result),
        }
    }

    fn response(&mut self, id: u64, result: Result<Value, RpcError>) {
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        match (call, result) {
            (Call::Initialize, Ok(init)) => {
                self.can_load = init["agentCapabilities"]["loadSession"] == true;
                let cwd = self.args.workspace.display().to_string();
                match self.args.resume.clone() {
                    Some(previous) if self.can_load => self.call(
                        Call::LoadSession(previous.clone()),
                        "session/load",
                        json!({"sessionId": previous, "cwd": cwd, "mcpServers": []}),
                    ),
                    _ => self.call(
                        Call::NewSession,
                        "session/new",
                        json!({"cwd": cwd, "mcpServers": []}),
                    ),
                }
            }
            (Call::NewSession, Ok(opened)) => {
                let Some(session) = opened["sessionId"].as_str() else {
                    say("the agent opened a session without a sessionId");
                    return;
                };
                self.opened(session.to_string());
                // An adapter may start in a mode that acts without asking (Claude Code's
                // "auto"); flightdeck's policy and people decide, so it asks for "default".
                let modes = &opened["modes"];
                let offers_default = modes["availableModes"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|m| m["id"] == "default"));
                if offers_default && modes["currentModeId"] != "default" {
                    self.call(
                        Call::SetMode,
                        "session/set_mode",
                        json!({"sessionId": session, "modeId": "default"}),
                    );
                } else {
                    self.first_prompt();
                }
            }
            (Call::SetMode, result) => {
                if let Err(e) = result {
                    say(&format!(
                        "the agent kept its own permission mode: {}",
                        capped(&e.message, TEXT_MAX)
                    ));
                }
                self.first_prompt();
            }
            (Call::LoadSession(session), Ok(_)) => {
                self.opened(session);
                self.turn_running = false;
                report(&Report::TurnEnded {
                    stop_reason: "loaded".into(),
                });
            }
            (Call::Prompt, Ok(done)) => {
                self.show_speech();
                self.turn_running = false;
                let usage = &done["usage"];
                let input = usage["inputTokens"].as_u64().unwrap_or(0);
                let output = usage["outputTokens"].as_u64().unwrap_or(0);
                if input > 0 || output > 0 {
                    report(&Report::Tokens { input, output });
                }
                let stop = done["stopReason"].as_str().unwrap_or("end_turn");
                let stop = capped(stop, 40);
                self.last_stop = Some(stop.clone());
                report(&Report::TurnEnded { stop_reason: stop });
            }
            (call, Err(e)) => {
                let what = match call {
                    Call::Initialize => "initialize",
                    Call::NewSession => "open a session",
                    Call::LoadSession(_) => "resume the previous session",
                    Call::SetMode => "change its permission mode",
                    Call::Prompt => "run the prompt turn",
                };
                say(&format!(
                    "the agent could not {what}: {}",
                    capped(&e.message, TEXT_MAX)
                ));
                if matches!(call, Call::Prompt) {
                    self.turn_running = false;
                    self.last_stop = Some("error".into());
                    report(&Report::TurnEnded {
                        stop_reason: "error".into(),
                    });
                }
            }
        }
    }

    /// The first prompt turn: AGENTS.md.
    fn first_prompt(&mut self) {
        match std::fs::read_to_string(&self.args.prompt_file) {
            Ok(text) => self.prompt(&text),
            Err(e) => say(&format!("cannot read AGENTS.md: {e}")),
        }
    }

    fn opened(&mut self, session: String) {
        report(&Report::Session {
            session_id: session.clone(),
            can_load: self.can_load,
        });
        self.session = Some(session);
    }

    fn request(&mut self, id: Value, method: &str, params: Value) {
        let result = match method {
            "session/request_permission" => return self.permission(id, &params),
            "fs/read_text_file" => match params["path"].as_str() {
                Some(path) => self
                    .files
                    .read(path, params["line"].as_u64(), params["limit"].as_u64())
                    .map(|content| json!({ "content": content })),
                None => Err("fs/read_text_file needs a path".into()),
            },
            "fs/write_text_file" => match (params["path"].as_str(), params["content"].as_str()) {
                (Some(path), Some(content)) => self.files.write(path, content).map(|_| json!({})),
                _ => Err("fs/write_text_file needs a path and its content".into()),
            },
            "terminal/create" => self.create_terminal(&params),
            "terminal/output" => self.terminal_output(&params),
            "terminal/wait_for_exit" => return self.wait_for_exit(id, &params),
            "terminal/kill" => self.terminal(&params).map(|t| {
                t.kill();
                json!({})
            }),
            "terminal/release" => match params["terminalId"].as_str() {
                Some(t) => self.terminals.release(t).map(|_| json!({})),
                None => Err("the request names no terminalId".into()),
            },
            other => {
                return self.answer(
                    id,
                    Err(RpcError::method_not_found(format!(
                        "flightdeck does not serve {}",
                        capped(other, 100)
                    ))),
                )
            }
        };
        let result = result.map_err(RpcError::refused);
        if let Err(e) = &result {
            say(&format!(
                "flightdeck refused the agent's {method}: {}",
                e.message
            ));
        }
        self.answer(id, result);
    }

    fn terminal(&self, params: &Value) -> Result<&super::terminals::Terminal, String> {
        match params["terminalId"].as_str() {
            Some(t) => self.terminals.get(t),
            None => Err("the request names no terminalId".into()),
        }
    }

    fn create_terminal(&mut self, params: &Value) -> Result<Value, String> {
        let command = params["command"]
            .as_str()
            .ok_or("terminal/create needs a command")?
            .to_string();
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .take(1000)
                        .collect()
                })
                .unwrap_or_default()
        };
        let env = params["env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| Some((e["name"].as_str()?.into(), e["value"].as_str()?.into())))
                    .filter(|(k, _): &(String, String)| !k.starts_with("FLIGHTDECK_"))
                    .take(100)
                    .collect()
            })
            .unwrap_or_default();
        let shown = capped(&command, 200);
        let id = self.terminals.create(NewTerminal {
            command,
            args: strings(&params["args"]),
            env,
            cwd: params["cwd"].as_str().map(String::from),
            output_limit: params["outputByteLimit"].as_u64(),
        })?;
        say(&format!("running: {shown}"));
        Ok(json!({ "terminalId": id }))
    }

    fn terminal_output(&self, params: &Value) -> Result<Value, String> {
        let (output, truncated, exit) = self.terminal(params)?.output();
        let mut answer = json!({"output": output, "truncated": truncated});
        if let Some(exit) = exit {
            answer["exitStatus"] = exit.json();
        }
        Ok(answer)
    }

    fn wait_for_exit(&self, id: Value, params: &Value) {
        let waiter = match self.terminal(params) {
            Ok(t) => t.waiter(),
            Err(e) => return self.answer(id, Err(RpcError::refused(e))),
        };
        let events = self.events.clone();
        let spawned = std::thread::Builder::new()
            .name("acp-terminal-exit".into())
            .spawn(move || {
                let exit = waiter();
                let _ = events.send(Event::Answer(id, Ok(exit.json())));
            });
        if let Err(e) = spawned {
            say(&format!("cannot wait for a terminal: {e}"));
        }
    }

    fn permission(&mut self, id: Value, params: &Value) {
        if self.cancelling {
            return self.answer(id, Ok(json!({"outcome": {"outcome": "cancelled"}})));
        }
        let call = &params["toolCall"];
        let options: Vec<PermissionOption> = params["options"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|o| {
                        Some(PermissionOption {
                            option_id: o["optionId"].as_str()?.to_string(),
                            name: o["name"].as_str().unwrap_or_default().to_string(),
                            kind: o["kind"].as_str().unwrap_or("allow_once").to_string(),
                        })
                    })
                    .take(super::report::OPTIONS_MAX)
                    .collect()
            })
            .unwrap_or_default();
        let call_id = call["toolCallId"].as_str().unwrap_or_default();
        let title = call["title"]
            .as_str()
            .map(String::from)
            .or_else(|| self.titles.get(call_id).cloned())
            .unwrap_or_else(|| "a tool call".into());
        let input = &call["rawInput"];
        let tool = ToolCall {
            title: capped(&title, TEXT_MAX),
            kind: call["kind"].as_str().unwrap_or("other").to_string(),
            command: command_of(input),
            input: (!input.is_null()).then(|| capped(&input.to_string(), DETAIL_MAX)),
            diff: diff_of(&call["content"]),
        };
        let request_id = self.next_permission;
        self.next_permission += 1;
        self.permissions.insert(request_id, id);
        report(&Report::Permission(PermissionAsk {
            request_id,
            tool,
            options,
        }));
    }

    /// A `session/update`, shown as progress.
    fn update(&mut self, update: &Value) {
        let kind = update["sessionUpdate"].as_str().unwrap_or_default();
        if kind != "agent_message_chunk" {
            self.show_speech();
        }
        match kind {
            "agent_message_chunk" => {
                if let Some(text) = update["content"]["text"].as_str() {
                    self.speech.push_str(text);
                    if self.speech.len() > 64 * 1024 {
                        self.show_speech();
                    }
                }
            }
            "tool_call" => {
                let id = update["toolCallId"].as_str().unwrap_or_default();
                let title = update["title"].as_str().unwrap_or("a tool call");
                if self.titles.len() < TITLES_MAX {
                    self.titles.insert(capped(id, 200), capped(title, 200));
                }
                let status = update["status"].as_str().unwrap_or("pending");
                say(&format!("tool: {} ({status})", capped(title, TEXT_MAX)));
            }
            "tool_call_update" => {
                let Some(status) = update["status"].as_str() else {
                    return;
                };
                let id = update["toolCallId"].as_str().unwrap_or_default();
                let title = update["title"]
                    .as_str()
                    .map(String::from)
                    .or_else(|| self.titles.get(id).cloned())
                    .unwrap_or_else(|| "a tool call".into());
                say(&format!("tool: {} ({status})", capped(&title, TEXT_MAX)));
            }
            "plan" => {
                let entries: Vec<String> = update["entries"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .take(20)
                    .map(|e| {
                        let mark = match e["status"].as_str() {
                            Some("completed") => "[x]",
                            Some("in_progress") => "[~]",
                            _ => "[ ]",
                        };
                        format!(
                            "{mark} {}",
                            capped(e["content"].as_str().unwrap_or(""), 100)
                        )
                    })
                    .collect();
                if !entries.is_empty() {
                    say(&format!("plan: {}", entries.join("; ")));
                }
            }
            _ => {}
        }
    }

    /// Shows what the agent said since the last time, one progress line per line.
    fn show_speech(&mut self) {
        let speech = std::mem::take(&mut self.speech);
        for line in speech.lines().map(str::trim).filter(|l| !l.is_empty()) {
            say(line);
        }
    }
}

/// The shell command a tool call's input names, if it names one.
fn command_of(input: &Value) -> Option<String> {
    let command = match &input["command"] {
        Value::String(c) => c.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        _ => input["cmd"].as_str()?.to_string(),
    };
    Some(capped(&command, DETAIL_MAX))
}

/// A tool call's change as a unified diff, from its `diff` content blocks.
fn diff_of(content: &Value) -> Option<String> {
    let mut out = String::new();
    for block in content.as_array().into_iter().flatten() {
        if block["type"] != "diff" {
            continue;
        }
        let path = block["path"].as_str().unwrap_or("file");
        let old = block["oldText"].as_str().unwrap_or("");
        let new = block["newText"].as_str().unwrap_or("");
        out.push_str(&format!("--- {path}\n+++ {path}\n"));
        for line in old.lines() {
            out.push_str(&format!("-{line}\n"));
        }
        for line in new.lines() {
            out.push_str(&format!("+{line}\n"));
        }
        if out.len() > DETAIL_MAX {
            break;
        }
    }
    (!out.is_empty()).then(|| capped(&out, DETAIL_MAX))
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!(" with code {code}"),
        (None, Some(signal)) => format!(" on signal {signal}"),
        _ => String::new(),
    }
}

/// Closes the adapter's stdin, gives it [`EXIT_GRACE`] to exit, then kills it.
fn stop_adapter(stdin: Arc<Mutex<ChildStdin>>, mut child: Child) {
    drop(stdin);
    let deadline = std::time::Instant::now() + EXIT_GRACE;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn read_agent(stdout: std::process::ChildStdout, events: Sender<Event>) {
    let spawned = std::thread::Builder::new()
        .name("acp-agent-out".into())
        .spawn(move || {
            let mut reader = BufReader::new(stdout);
            while let Ok(Some(line)) = rpc::read_line(&mut reader) {
                if events.send(Event::Agent(line)).is_err() {
                    return;
                }
            }
            let _ = events.send(Event::AgentClosed);
        });
    if let Err(e) = spawned {
        say(&format!("cannot read the ACP adapter: {e}"));
    }
}

fn read_control(events: Sender<Event>) {
    let spawned = std::thread::Builder::new()
        .name("acp-control".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                let Ok(line) = line else { break };
                if events.send(Event::Control(line)).is_err() {
                    return;
                }
            }
            let _ = events.send(Event::ControlClosed);
        });
    if let Err(e) = spawned {
        say(&format!("cannot read flightdeck's instructions: {e}"));
    }
}
