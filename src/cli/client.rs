//! A small blocking HTTP client for the CLI. When no server answers it says so in one line,
//! with how to start one; an error answer keeps its status, which picks the exit code.

use serde_json::Value;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no flightdeck server answers at {0}: start one with `flightdeck serve` (or pass --server URL)")]
    Unreachable(String),
    /// The server wants a token this client did not have (or had wrong).
    #[error("{0}: the CLI takes the token from FLIGHTDECK_TOKEN, else the config's server.token, else the file `token` the server wrote in the config's data_dir (run the CLI as the server's user, with the server's --config)")]
    Unauthorized(String),
    /// The server answered with an error: its status and message.
    #[error("{message}")]
    Api { status: u16, message: String },
    /// The answer could not be read.
    #[error("{0}")]
    Answer(String),
}

pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Self {
        Client {
            base: base.trim_end_matches('/').to_string(),
            token: token.filter(|t| !t.is_empty()),
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(3))
                .timeout_read(Duration::from_secs(60))
                .build(),
        }
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        // Marks the request as an API client's, as the server's CSRF rule asks of writes.
        let req = self
            .agent
            .request(method, &format!("{}{path}", self.base))
            .set("X-Flightdeck", "1");
        match &self.token {
            Some(t) => req.set("Authorization", &format!("Bearer {t}")),
            None => req,
        }
    }

    fn finish(
        &self,
        result: Result<ureq::Response, ureq::Error>,
    ) -> Result<(u16, String), ClientError> {
        match result {
            Ok(resp) => {
                let status = resp.status();
                let body = resp.into_string().unwrap_or_default();
                Ok((status, body))
            }
            Err(ureq::Error::Status(code, resp)) => {
                let body = resp.into_string().unwrap_or_default();
                let message = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                    .unwrap_or(body);
                let message = format!("error {code}: {message}");
                Err(match code {
                    401 => ClientError::Unauthorized(message),
                    _ => ClientError::Api {
                        status: code,
                        message,
                    },
                })
            }
            Err(ureq::Error::Transport(_)) => Err(ClientError::Unreachable(self.base.clone())),
        }
    }

    /// GET returning the body's bytes as they are (an agent log need not be UTF-8, nor under
    /// the 10 MB that `into_string` allows).
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        match self.request("GET", path).call() {
            Ok(resp) => {
                let mut body = Vec::new();
                std::io::Read::read_to_end(&mut resp.into_reader(), &mut body)
                    .map_err(|e| ClientError::Answer(format!("reading the answer: {e}")))?;
                Ok(body)
            }
            Err(e) => self.finish(Err(e)).map(|(_, b)| b.into_bytes()),
        }
    }

    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        let (_, text) = self.finish(self.request("GET", path).call())?;
        serde_json::from_str(&text).map_err(|e| ClientError::Answer(format!("bad answer: {e}")))
    }

    /// Every item of a paged list (`GET /api/items`), following `X-Next-Cursor` from page to
    /// page; `query` holds the filters, if any.
    pub fn get_all_pages(&self, path: &str, query: &[String]) -> Result<Vec<Value>, ClientError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut params = query.to_vec();
            if let Some(c) = &cursor {
                params.push(format!("cursor={c}"));
            }
            let result = self
                .request("GET", &format!("{path}?{}", params.join("&")))
                .call();
            let next = match &result {
                Ok(resp) => resp.header("X-Next-Cursor").map(str::to_string),
                Err(_) => None,
            };
            let (_, text) = self.finish(result)?;
            let page: Vec<Value> = serde_json::from_str(&text)
                .map_err(|e| ClientError::Answer(format!("bad answer: {e}")))?;
            all.extend(page);
            match next {
                // The cursor is URL-safe base64: it goes into the query as it is.
                Some(next) if cursor.as_deref() != Some(next.as_str()) => cursor = Some(next),
                _ => return Ok(all),
            }
        }
    }

    /// Sends JSON; returns the status and parsed body (Null when empty).
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: &Value,
    ) -> Result<(u16, Value), ClientError> {
        let (status, text) = self.finish(self.request(method, path).send_json(body))?;
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .map_err(|e| ClientError::Answer(format!("bad answer: {e}")))?
        };
        Ok((status, value))
    }
}
