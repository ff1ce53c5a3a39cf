//! A minimal HTTP/1.1 keep-alive client over a raw TCP stream: one connection per worker
//! thread, requests written in one `write`, responses read by Content-Length (or chunked).
//! Small enough that the client costs far less CPU than the server it measures.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::Duration;

pub struct Conn {
    addr: String,
    /// `Authorization: Bearer ...\r\n` for the server at `addr`, or empty.
    auth: String,
    stream: TcpStream,
    buf: Vec<u8>,
}

/// The API token of each server started, by address: servers generate theirs at start (see
/// `server.rs`), and every connection to one sends it.
static TOKENS: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

/// Records the token of the server at `url`.
pub fn remember_token(url: &str, token: &str) {
    if let Ok(mut tokens) = TOKENS.lock() {
        tokens.insert(host_of(url), token.to_string());
    }
}

/// The token of the server at `addr` (`127.0.0.1:PORT`), if one was recorded.
pub fn token_of(addr: &str) -> Option<String> {
    TOKENS.lock().ok().and_then(|t| t.get(addr).cloned())
}

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// `http://127.0.0.1:PORT[/...]` -> `127.0.0.1:PORT`.
pub fn host_of(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    rest.split('/').next().unwrap_or(rest).to_string()
}

impl Conn {
    pub fn open(url: &str) -> io::Result<Conn> {
        let addr = host_of(url);
        let stream = TcpStream::connect(&addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        let auth = token_of(&addr)
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        Ok(Conn {
            addr,
            auth,
            stream,
            buf: Vec::with_capacity(16 << 10),
        })
    }

    /// A connection that sends `token` (a runner token, say) instead of the server's own.
    pub fn open_with_token(url: &str, token: &str) -> io::Result<Conn> {
        let mut conn = Conn::open(url)?;
        conn.auth = format!("Authorization: Bearer {token}\r\n");
        Ok(conn)
    }

    fn reconnect(&mut self) -> io::Result<()> {
        let stream = TcpStream::connect(&self.addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        self.stream = stream;
        self.buf.clear();
        Ok(())
    }

    /// Sends one request; retries once on a fresh connection if the kept-alive one was closed
    /// before anything came back.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> io::Result<Response> {
        match self.try_request(method, path, body) {
            Ok(r) => Ok(r),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::UnexpectedEof
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::BrokenPipe
                ) =>
            {
                self.reconnect()?;
                self.try_request(method, path, body)
            }
            Err(e) => Err(e),
        }
    }

    fn try_request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> io::Result<Response> {
        let mut req = String::with_capacity(160 + body.map_or(0, str::len));
        req.push_str(method);
        req.push(' ');
        req.push_str(path);
        req.push_str(" HTTP/1.1\r\nHost: ");
        req.push_str(&self.addr);
        req.push_str("\r\n");
        req.push_str(&self.auth);
        match body {
            Some(b) => {
                req.push_str("Content-Type: application/json\r\nContent-Length: ");
                req.push_str(&b.len().to_string());
                req.push_str("\r\n\r\n");
                req.push_str(b);
            }
            None => req.push_str("\r\n"),
        }
        self.stream.write_all(req.as_bytes())?;
        self.read_response()
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 16 << 10];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    fn read_response(&mut self) -> io::Result<Response> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            self.fill()?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line in {head:?}")))?;
        let mut length: Option<usize> = None;
        let mut chunked = false;
        let mut close = false;
        for line in lines {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.parse().ok(),
                "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                "connection" => close = v.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        self.buf.drain(..head_end + 4);
        let body = if chunked {
            self.read_chunked()?
        } else {
            let n = if status == 204 || status == 304 {
                0
            } else {
                length.unwrap_or(0)
            };
            while self.buf.len() < n {
                self.fill()?;
            }
            self.buf.drain(..n).collect()
        };
        if close {
            self.reconnect()?;
        }
        Ok(Response { status, body })
    }

    fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(&self.buf, b"\r\n") {
                    break i;
                }
                self.fill()?;
            };
            let size_text = String::from_utf8_lossy(&self.buf[..line_end]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| io::Error::other("bad chunk size"))?;
            self.buf.drain(..line_end + 2);
            while self.buf.len() < size + 2 {
                self.fill()?;
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
            if size == 0 {
                return Ok(body);
            }
        }
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
