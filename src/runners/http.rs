//! The runner's HTTP client: ureq (already used for webhooks and the CLI; blocking, small, no
//! async runtime of its own), called from the runner's own threads. An answer is a status and
//! a body; a transport failure (the server is down or cut off) is told apart, since that one
//! is retried, in order, while a refusal (409: the lease moved on) is final.

use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The server could not be reached: try again later.
    #[error("the server cannot be reached: {0}")]
    Transport(String),
    /// The server answered with an error: final.
    #[error("{message}")]
    Refused { status: u16, message: String },
}

#[derive(Clone)]
pub struct Http {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Http {
    pub fn new(base: &str, token: &str) -> Http {
        Http {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(5))
                .timeout(Duration::from_secs(60))
                .build(),
        }
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        self.agent
            .request(method, &format!("{}{path}", self.base))
            .set("Authorization", &format!("Bearer {}", self.token))
            .set("X-Flightdeck", "1")
    }

    fn answer(result: Result<ureq::Response, ureq::Error>) -> Result<String, HttpError> {
        match result {
            Ok(resp) => resp
                .into_string()
                .map_err(|e| HttpError::Transport(format!("reading the answer: {e}"))),
            Err(ureq::Error::Status(status, resp)) => {
                let body = resp.into_string().unwrap_or_default();
                let message = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                    .unwrap_or(body);
                Err(HttpError::Refused { status, message })
            }
            Err(ureq::Error::Transport(t)) => Err(HttpError::Transport(t.to_string())),
        }
    }

    /// POSTs JSON and reads a JSON answer (`Value::Null` for an empty one).
    pub fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T, HttpError> {
        let text = Self::answer(self.request("POST", path).send_json(body))?;
        let text = if text.trim().is_empty() {
            "null"
        } else {
            &text
        };
        serde_json::from_str(text)
            .map_err(|e| HttpError::Transport(format!("the answer is not what was expected: {e}")))
    }

    /// PUTs bytes.
    pub fn put_bytes(&self, path: &str, content_type: &str, body: &[u8]) -> Result<(), HttpError> {
        Self::answer(
            self.request("PUT", path)
                .set("Content-Type", content_type)
                .send_bytes(body),
        )
        .map(|_| ())
    }
}

/// A path segment or query value, percent-encoded.
pub fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
