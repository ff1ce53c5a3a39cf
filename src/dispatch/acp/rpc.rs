//! JSON-RPC 2.0 as ACP uses it, one message per line: reading a capped line, telling
//! requests, notifications and responses apart, and writing them.
//!
//! A small typed layer of our own rather than the `agent-client-protocol` crate: the bridge
//! is a plain blocking program (a few threads and a channel), and the crate's async
//! connection wants its own executor; what the bridge needs of the schema is a handful of
//! fields, read straight from `serde_json` values so that an adapter's newer fields never
//! break it.

use serde_json::{json, Value};
use std::io::{BufRead, Read};

/// Longest message read from an adapter, in bytes; longer ones are skipped.
pub const LINE_MAX: usize = 8 << 20;

/// One message from the adapter.
#[derive(Debug)]
pub enum Incoming {
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
        params: Value,
    },
    /// An answer to one of the bridge's calls (its ids are numbers).
    Response {
        id: u64,
        result: Result<Value, RpcError>,
    },
}

/// A JSON-RPC error: its code and a sentence.
#[derive(Debug, Clone)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl RpcError {
    pub fn method_not_found(message: String) -> RpcError {
        RpcError {
            code: -32601,
            message,
        }
    }

    /// A request flightdeck will not serve (a path outside the session, a size cap).
    pub fn refused(message: String) -> RpcError {
        RpcError {
            code: -32602,
            message,
        }
    }
}

/// Reads one line: None at the end of the stream, `Some(None)` for a line over
/// [`LINE_MAX`] (skipped whole).
pub fn read_line<R: BufRead>(reader: &mut R) -> std::io::Result<Option<Option<String>>> {
    let mut buf = Vec::new();
    let read = Read::by_ref(reader)
        .take(LINE_MAX as u64 + 1)
        .read_until(b'\n', &mut buf)?;
    if read == 0 {
        return Ok(None);
    }
    if buf.len() > LINE_MAX && buf.last() != Some(&b'\n') {
        loop {
            let (used, found) = {
                let chunk = reader.fill_buf()?;
                if chunk.is_empty() {
                    break;
                }
                match chunk.iter().position(|b| *b == b'\n') {
                    Some(i) => (i + 1, true),
                    None => (chunk.len(), false),
                }
            };
            reader.consume(used);
            if found {
                break;
            }
        }
        return Ok(Some(None));
    }
    Ok(Some(Some(String::from_utf8_lossy(&buf).trim().to_string())))
}

/// Tells what a line is, or says why it is not JSON-RPC.
pub fn parse(line: &str) -> Result<Incoming, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    if !value.is_object() {
        return Err("not a JSON object".into());
    }
    let id = value.get("id").cloned().filter(|id| !id.is_null());
    match (value.get("method").and_then(Value::as_str), id) {
        (Some(method), Some(id)) => Ok(Incoming::Request {
            id,
            method: method.to_string(),
            params: value.get("params").cloned().unwrap_or(Value::Null),
        }),
        (Some(method), None) => Ok(Incoming::Notification {
            method: method.to_string(),
            params: value.get("params").cloned().unwrap_or(Value::Null),
        }),
        (None, Some(id)) => {
            let id = id
                .as_u64()
                .ok_or("a response to an id flightdeck never used")?;
            let result = match value.get("error") {
                Some(error) => Err(RpcError {
                    code: error["code"].as_i64().unwrap_or(0),
                    message: error["message"]
                        .as_str()
                        .unwrap_or("an error without a message")
                        .to_string(),
                }),
                None => Ok(value.get("result").cloned().unwrap_or(Value::Null)),
            };
            Ok(Incoming::Response { id, result })
        }
        (None, None) => Err("neither a method nor an id".into()),
    }
}

pub fn request(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

pub fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

pub fn response(id: Value, result: Result<Value, RpcError>) -> Value {
    match result {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(e) => json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {"code": e.code, "message": e.message}
        }),
    }
}
