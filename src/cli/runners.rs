//! The CLI's view of runners: `flightdeck runner-token create|list|revoke` and the runner lines
//! of `flightdeck status`.

use super::{Client, ClientError, Output};
use serde_json::{json, Value};

/// What `flightdeck runner-token` does.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum TokenAction {
    /// Make a runner token (printed once; the server keeps only its hash).
    Create {
        /// What it is for (the host it goes to).
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List runner tokens (names and ids, never the tokens).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a runner token: runners using it are refused from now on.
    Revoke { id: String },
}

pub fn token_command(
    client: &Client,
    out: &mut Output,
    action: TokenAction,
) -> Result<(), ClientError> {
    match action {
        TokenAction::Create { name, json } => {
            let (_, made) = client.send("POST", "/api/runner-tokens", &json!({ "name": name }))?;
            if json {
                out.json(&made);
            } else {
                out.line(&format!(
                    "runner token {} ({}): {}",
                    made["id"].as_str().unwrap_or(""),
                    made["name"].as_str().unwrap_or(""),
                    made["token"].as_str().unwrap_or("")
                ));
                out.line("It is shown only now: give it to the runner with --token or FLIGHTDECK_RUNNER_TOKEN.");
            }
        }
        TokenAction::List { json } => {
            let tokens = client.get("/api/runner-tokens")?;
            if json {
                out.json(&tokens);
            } else {
                for t in tokens.as_array().into_iter().flatten() {
                    out.line(&format!(
                        "{}  {}  made {}",
                        t["id"].as_str().unwrap_or(""),
                        t["name"].as_str().unwrap_or(""),
                        t["createdAt"].as_str().unwrap_or("")
                    ));
                }
            }
        }
        TokenAction::Revoke { id } => {
            let path = format!(
                "/api/runner-tokens/{}",
                form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
            );
            client.send("DELETE", &path, &Value::Null)?;
            out.line(&format!("revoked runner token {id}"));
        }
    }
    Ok(())
}

/// The runner lines of `flightdeck status`: one per runner, then the items none can take.
pub fn status_lines(overview: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    let runners = overview["runners"].as_array().cloned().unwrap_or_default();
    if runners.is_empty() {
        return lines;
    }
    lines.push(format!("runners   {}", runners.len()));
    for r in runners {
        let state = match (r["online"].as_bool(), r["draining"].as_bool()) {
            (Some(true), Some(true)) => "online, draining",
            (Some(true), _) => "online",
            (_, Some(true)) => "offline, draining",
            _ => "offline",
        };
        let labels: Vec<&str> = r["labels"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        lines.push(format!(
            "  {} [{}] {}: {} of {} slots used, version {}, last heartbeat {}",
            r["name"].as_str().unwrap_or(""),
            if labels.is_empty() {
                "no labels".to_string()
            } else {
                labels.join(", ")
            },
            state,
            r["slotsUsed"].as_u64().unwrap_or(0),
            r["slots"].as_u64().unwrap_or(0),
            r["version"].as_str().unwrap_or(""),
            r["lastHeartbeat"].as_str().unwrap_or("")
        ));
    }
    for u in overview["unroutable"].as_array().into_iter().flatten() {
        lines.push(format!("  waiting: {}", u["reason"].as_str().unwrap_or("")));
    }
    lines
}
