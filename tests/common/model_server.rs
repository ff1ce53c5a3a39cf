//! A scripted model API on loopback, for driving the real agent CLIs in tests: it speaks
//! Anthropic Messages, OpenAI Responses and Gemini streamGenerateContent, each as SSE, and
//! answers every conversation from one script.
//!
//! The script is a list of shell commands, then a final message. The server is stateless
//! per conversation: the turn to play is the number of tool results the request already
//! carries, so any CLI's own retries replay the same turn. Each command is sent through the
//! shell tool the CLI offers (found by name in the request's tools), so writing files in the
//! workspace and the artifacts folder exercises the agent's real tool path under the sandbox.
//! Requests without tools (titles, quota checks) get a short text answer.
//!
//! A person's follow-up message that says `also run: COMMAND` (Anthropic protocol) is answered
//! with that command, once, before the script goes on: so a test can show that a message sent
//! to a running agent changes what it does.
//!
//! A [`Fault`] makes the first requests fail (401, 429 with retry-after, 5xx) or hang.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// What goes wrong, per test.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    None,
    /// Every model request is answered with this status (401: bad key, 500: broken).
    Always(u16),
    /// The first `times` model requests get a 429 with `Retry-After: retry_after` seconds.
    RateLimited {
        times: usize,
        retry_after: u64,
    },
    /// Model requests are accepted and never answered.
    Hang,
}

/// A request the server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

struct State {
    script: Vec<String>,
    final_message: String,
    fault: Fault,
    faults_given: usize,
    seen: Vec<Seen>,
    escalate: bool,
}

pub struct ModelServer {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl ModelServer {
    /// Serves `commands` (one shell command per turn), then `final_message`.
    pub fn start(commands: &[&str], final_message: &str, fault: Fault) -> ModelServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the model server");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let state = Arc::new(Mutex::new(State {
            script: commands.iter().map(|c| c.to_string()).collect(),
            final_message: final_message.to_string(),
            fault,
            faults_given: 0,
            seen: Vec::new(),
            escalate: false,
        }));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &state);
                });
            }
        });
        ModelServer { url, state }
    }

    /// Asks for every shell command to run outside the CLI's own sandbox where its shell
    /// tool offers that (Codex's `sandbox_permissions: "require_escalated"`), as its model
    /// does when that sandbox cannot start (inside flightdeck's): the CLI asks permission.
    pub fn escalate_shell(&self) {
        self.state.lock().unwrap().escalate = true;
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// The requests that asked the model for a turn.
    pub fn model_requests(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| protocol(&s.path).is_some())
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Protocol {
    Anthropic,
    OpenAi,
    Gemini,
}

fn protocol(path: &str) -> Option<Protocol> {
    let path = path.split('?').next().unwrap_or("");
    if path.ends_with("/messages") && !path.ends_with("count_tokens") {
        Some(Protocol::Anthropic)
    } else if path.ends_with("/responses") {
        Some(Protocol::OpenAi)
    } else if path.contains(":streamGenerateContent") || path.contains(":generateContent") {
        Some(Protocol::Gemini)
    } else {
        None
    }
}

fn serve(mut stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let seen = read_request(&mut stream)?;
    let proto = protocol(&seen.path);
    let fault = {
        let mut s = state.lock().unwrap();
        s.seen.push(seen.clone());
        match (proto, s.fault) {
            (None, _) => None,
            (Some(_), Fault::RateLimited { times, .. }) if s.faults_given >= times => None,
            (Some(_), Fault::None) => None,
            (Some(_), fault) => {
                s.faults_given += 1;
                Some(fault)
            }
        }
    };
    let Some(proto) = proto else {
        return respond(&mut stream, 404, &[], "{\"error\":\"not found\"}");
    };
    match fault {
        Some(Fault::Hang) => {
            // Hold the connection open until the client gives up.
            let mut sink = [0u8; 1024];
            while stream.read(&mut sink)? > 0 {}
            Ok(())
        }
        Some(Fault::Always(code)) => respond(&mut stream, code, &[], &error_body(proto, code)),
        Some(Fault::RateLimited { retry_after, .. }) => respond(
            &mut stream,
            429,
            &[("retry-after", retry_after.to_string())],
            &error_body(proto, 429),
        ),
        _ => {
            let turn = turn(&seen.body, proto, state);
            let events = match proto {
                Protocol::Anthropic => anthropic(&turn, &seen.body),
                Protocol::OpenAi => openai(&turn, &seen.body),
                Protocol::Gemini => gemini(&turn, &seen.body),
            };
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n";
            stream.write_all(head.as_bytes())?;
            stream.write_all(events.as_bytes())?;
            stream.flush()
        }
    }
}

fn read_request(stream: &mut TcpStream) -> std::io::Result<Seen> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(len) = header("content-length").and_then(|v| v.parse().ok()) {
        body = vec![0; len];
        reader.read_exact(&mut body)?;
    }
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok(Seen {
        method,
        path,
        headers,
        body,
    })
}

fn respond(
    stream: &mut TcpStream,
    code: u16,
    extra: &[(&str, String)],
    body: &str,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {code} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        reason(code),
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

fn reason(code: u16) -> &'static str {
    match code {
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Each API's own error body for `code`.
fn error_body(proto: Protocol, code: u16) -> String {
    let (kind, message) = match code {
        401 => ("authentication_error", "invalid x-api-key"),
        429 => ("rate_limit_error", "rate limited, retry later"),
        _ => ("api_error", "internal server error"),
    };
    match proto {
        Protocol::Anthropic => {
            json!({"type": "error", "error": {"type": kind, "message": message}}).to_string()
        }
        Protocol::OpenAi => {
            json!({"error": {"message": message, "type": kind, "code": kind}}).to_string()
        }
        Protocol::Gemini => {
            let status = match code {
                401 => "UNAUTHENTICATED",
                429 => "RESOURCE_EXHAUSTED",
                _ => "INTERNAL",
            };
            json!({"error": {"code": code, "message": message, "status": status}}).to_string()
        }
    }
}

/// What to answer: a shell command with the tool to send it through, or the final text.
enum Turn {
    Shell { tool: String, args: Value },
    Text(String),
}

/// The turn for this request: the number of tool results it carries picks the command.
fn turn(body: &Value, proto: Protocol, state: &Mutex<State>) -> Turn {
    let s = state.lock().unwrap();
    let tools = tool_schemas(body, proto);
    if tools.is_empty() {
        return Turn::Text("ok".into());
    }
    let shell_tool = |tools: &[(String, Value)], command: &str| {
        let (tool, mut args) = shell_tool(tools, command)?;
        let schema = &tools.iter().find(|(n, _)| *n == tool)?.1;
        if s.escalate && schema["properties"].get("sandbox_permissions").is_some() {
            args["sandbox_permissions"] = json!("require_escalated");
            args["justification"] = json!("Run this step outside the sandbox?");
        }
        Some((tool, args))
    };
    if let Some(command) = follow_up(body, proto) {
        return match shell_tool(&tools, &command) {
            Some((tool, args)) => Turn::Shell { tool, args },
            None => Turn::Text(format!("no shell tool among {:?}", names(&tools))),
        };
    }
    let done = tool_results(body, proto);
    match s.script.get(done) {
        Some(command) => match shell_tool(&tools, command) {
            Some((tool, args)) => Turn::Shell { tool, args },
            None => Turn::Text(format!("no shell tool among {:?}", names(&tools))),
        },
        None => Turn::Text(s.final_message.clone()),
    }
}

fn names(tools: &[(String, Value)]) -> Vec<&str> {
    tools.iter().map(|(n, _)| n.as_str()).collect()
}

/// The tools a request offers, as (name, JSON schema of the parameters).
fn tool_schemas(body: &Value, proto: Protocol) -> Vec<(String, Value)> {
    let list: Vec<&Value> = match proto {
        Protocol::Gemini => body["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|t| t["functionDeclarations"].as_array().into_iter().flatten())
            .collect(),
        _ => body["tools"].as_array().into_iter().flatten().collect(),
    };
    list.into_iter()
        .filter_map(|t| {
            let name = t["name"].as_str()?.to_string();
            let schema = [
                &t["input_schema"],
                &t["parameters"],
                &t["parametersJsonSchema"],
            ]
            .into_iter()
            .find(|s| !s.is_null())
            .cloned()
            .unwrap_or(Value::Null);
            Some((name, schema))
        })
        .collect()
}

/// The shell tool of a CLI and its arguments for `command`.
fn shell_tool(tools: &[(String, Value)], command: &str) -> Option<(String, Value)> {
    let preferred = [
        "Bash",
        "shell_command",
        "exec_command",
        "shell",
        "run_shell_command",
    ];
    let (name, schema) = preferred
        .iter()
        .find_map(|p| tools.iter().find(|(n, _)| n == p))?;
    let props = &schema["properties"];
    let args = if props.get("cmd").is_some() {
        json!({"cmd": command})
    } else if props["command"]["type"] == "array" {
        json!({"command": ["bash", "-lc", command]})
    } else {
        json!({"command": command, "description": "run a step of the script"})
    };
    Some((name.clone(), args))
}

/// The command of the last user message that says `also run: COMMAND` (Claude Code's own
/// reminders list a skill named `run:`, so the marker is longer than that), until the conversation
/// holds a call of it (Anthropic messages; Claude Code may merge and reorder the messages of
/// a conversation, so the call is looked for by its command, not by its place).
fn follow_up(body: &Value, proto: Protocol) -> Option<String> {
    let Protocol::Anthropic = proto else {
        return None;
    };
    let blocks: Vec<&Value> = body["messages"]
        .as_array()?
        .iter()
        .flat_map(|m| m["content"].as_array().into_iter().flatten())
        .collect();
    let command = blocks.iter().rev().find_map(|b| {
        let text = b["text"].as_str()?;
        let (_, command) = text.split_once("also run: ")?;
        Some(command.lines().next()?.trim().to_string())
    })?;
    let called = blocks
        .iter()
        .any(|b| b["type"] == "tool_use" && b["input"]["command"] == command.as_str());
    (!called).then_some(command)
}

/// How many tool results the conversation already holds.
fn tool_results(body: &Value, proto: Protocol) -> usize {
    let items: Vec<&Value> = match proto {
        Protocol::Anthropic => body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|m| m["content"].as_array().into_iter().flatten())
            .collect(),
        Protocol::OpenAi => body["input"].as_array().into_iter().flatten().collect(),
        Protocol::Gemini => body["contents"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["parts"].as_array().into_iter().flatten())
            .collect(),
    };
    items
        .iter()
        .filter(|i| match proto {
            Protocol::Anthropic => i["type"] == "tool_result",
            Protocol::OpenAi => i["type"]
                .as_str()
                .is_some_and(|t| t.ends_with("call_output")),
            Protocol::Gemini => i.get("functionResponse").is_some(),
        })
        .count()
}

fn sse(event: Option<&str>, data: &Value) -> String {
    match event {
        Some(name) => format!("event: {name}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

const INPUT_TOKENS: u64 = 120;
const OUTPUT_TOKENS: u64 = 30;

fn anthropic(turn: &Turn, body: &Value) -> String {
    let model = body["model"].as_str().unwrap_or("claude-sonnet-4-5");
    let mut out = sse(
        Some("message_start"),
        &json!({"type": "message_start", "message": {"id": "msg_scripted", "type": "message",
            "role": "assistant", "model": model, "content": [], "stop_reason": null,
            "stop_sequence": null, "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": 1}}}),
    );
    let stop = match turn {
        Turn::Shell { tool, args } => {
            out += &sse(
                Some("content_block_start"),
                &json!({"type": "content_block_start", "index": 0, "content_block":
                    {"type": "tool_use", "id": format!("toolu_{}", rand_id()), "name": tool, "input": {}}}),
            );
            out += &sse(
                Some("content_block_delta"),
                &json!({"type": "content_block_delta", "index": 0, "delta":
                    {"type": "input_json_delta", "partial_json": args.to_string()}}),
            );
            "tool_use"
        }
        Turn::Text(text) => {
            out += &sse(
                Some("content_block_start"),
                &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            );
            out += &sse(
                Some("content_block_delta"),
                &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
            );
            "end_turn"
        }
    };
    out += &sse(
        Some("content_block_stop"),
        &json!({"type": "content_block_stop", "index": 0}),
    );
    out += &sse(
        Some("message_delta"),
        &json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
            "usage": {"output_tokens": OUTPUT_TOKENS}}),
    );
    out + &sse(Some("message_stop"), &json!({"type": "message_stop"}))
}

fn openai(turn: &Turn, body: &Value) -> String {
    let model = body["model"].as_str().unwrap_or("gpt-5");
    let id = format!("resp_{}", rand_id());
    let mut out = sse(
        Some("response.created"),
        &json!({"type": "response.created", "response": {"id": id, "model": model, "status": "in_progress"}}),
    );
    let item = match turn {
        Turn::Shell { tool, args } => {
            json!({"type": "function_call", "id": format!("fc_{}", rand_id()),
            "call_id": format!("call_{}", rand_id()), "name": tool, "arguments": args.to_string(), "status": "completed"})
        }
        Turn::Text(text) => {
            json!({"type": "message", "id": format!("msg_{}", rand_id()), "role": "assistant",
            "status": "completed", "content": [{"type": "output_text", "text": text, "annotations": []}]})
        }
    };
    out += &sse(
        Some("response.output_item.added"),
        &json!({"type": "response.output_item.added", "output_index": 0, "item": item}),
    );
    out += &sse(
        Some("response.output_item.done"),
        &json!({"type": "response.output_item.done", "output_index": 0, "item": item}),
    );
    out + &sse(
        Some("response.completed"),
        &json!({"type": "response.completed", "response": {"id": id, "model": model, "status": "completed",
            "output": [item],
            "usage": {"input_tokens": INPUT_TOKENS, "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": OUTPUT_TOKENS, "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS}}}),
    )
}

fn gemini(turn: &Turn, _body: &Value) -> String {
    let part = match turn {
        Turn::Shell { tool, args } => json!({"functionCall": {"name": tool, "args": args}}),
        Turn::Text(text) => json!({"text": text}),
    };
    sse(
        None,
        &json!({"candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": INPUT_TOKENS, "candidatesTokenCount": OUTPUT_TOKENS,
                "totalTokenCount": INPUT_TOKENS + OUTPUT_TOKENS},
            "modelVersion": "gemini-2.5-pro"}),
    )
}

fn rand_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{:016x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Sets up a user's home for Codex as a person pointing it at `model` would: a `config.toml`
/// with a custom provider speaking the Responses API (Codex ignores `OPENAI_BASE_URL`) and a
/// model slug it knows (without one it has no apply_patch tool). The key is read from
/// `SCRIPTED_API_KEY`.
pub fn configure_codex_home(home: &std::path::Path, model: &ModelServer) {
    let dir = home.join(".codex");
    std::fs::create_dir_all(&dir).expect("the codex home");
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "model = \"gpt-5-codex\"\nmodel_provider = \"scripted\"\n\n[model_providers.scripted]\nname = \"scripted\"\nbase_url = \"{}/v1\"\nwire_api = \"responses\"\nenv_key = \"SCRIPTED_API_KEY\"\nrequest_max_retries = 2\nstream_max_retries = 1\nstream_idle_timeout_ms = 600000\n",
            model.url
        ),
    )
    .expect("codex's config.toml");
}

/// Sets up a user's home for Gemini CLI: the API-key auth type and folder trust off (without
/// them `-p` mode fails), no update checks or telemetry. The URL and key come from
/// `GOOGLE_GEMINI_BASE_URL` and `GEMINI_API_KEY`.
pub fn configure_gemini_home(home: &std::path::Path) {
    let dir = home.join(".gemini");
    std::fs::create_dir_all(&dir).expect("the gemini home");
    std::fs::write(
        dir.join("settings.json"),
        json!({
            "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": false}},
            "general": {"disableAutoUpdate": true, "disableUpdateNag": true},
            "privacy": {"usageStatisticsEnabled": false},
            "telemetry": {"enabled": false}
        })
        .to_string(),
    )
    .expect("gemini's settings.json");
}
