//! The HTTP edge as an attacker meets it: every spelling of a protected path, foreign host
//! names and origins, cross-site form posts, sloppy JSON, and the token's own trail (the
//! generated file, the sign-in URL, the process environment, the access log, the CLI, and an
//! agent that goes for the API). Requests that must arrive byte for byte go over a raw TCP
//! connection, since HTTP clients tidy paths up before sending them.

mod common;
use base64::Engine;
use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/* ------------------------------------------------------------------ a raw HTTP client */

/// `http://127.0.0.1:PORT` -> `127.0.0.1:PORT`.
fn authority(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

fn port_of(url: &str) -> u16 {
    authority(url).rsplit(':').next().unwrap().parse().unwrap()
}

/// A request as written: `target` and `host` go out exactly as given.
fn http_request(
    method: &str,
    target: &str,
    host: &str,
    headers: &[&str],
    body: Option<&str>,
) -> String {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    let body = body.unwrap_or("");
    out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    out
}

/// A WebSocket handshake for `target`.
fn upgrade_request(target: &str, host: &str, headers: &[&str]) -> String {
    let mut out = format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    );
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Sends `request` on a fresh connection to `addr`; the status and the body (the head for a
/// 101, which keeps the connection open).
fn raw(addr: &str, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request.as_bytes()).expect("send");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        let n = stream.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = find(&buf, b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        if head.starts_with("http/1.1 101") {
            break;
        }
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        if length.is_some_and(|len| buf.len() >= end + 4 + len) {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer to {request:?}: {text:?}"));
    let body = match text.split_once("\r\n\r\n") {
        Some((head, _)) if status == 101 => head.to_string(),
        Some((_, body)) => body.to_string(),
        None => String::new(),
    };
    (status, body)
}

/// Ways of writing `path` (which starts with `/api` or `/ws`) that a router, a proxy or a
/// careless prefix check might read differently, the plain one first.
fn spellings(path: &str, host: &str) -> Vec<String> {
    let rest = &path[1..];
    let (first, tail) = match rest.split_once('/') {
        Some((first, tail)) => (first, format!("/{tail}")),
        None => (rest, String::new()),
    };
    let hex = |b: u8| format!("%{b:02X}");
    let encoded_first = format!("{}{}", hex(first.as_bytes()[0]), &first[1..]);
    let encoded_all: String = first.bytes().map(hex).collect();
    let mut upper_first = first.to_string();
    upper_first[..1].make_ascii_uppercase();
    let mut out = vec![
        path.to_string(),
        format!("/{encoded_first}{tail}"),
        format!("/{}{tail}", encoded_first.to_lowercase()),
        format!("/{encoded_all}{tail}"),
        format!(
            "/%25{}{}{tail}",
            &hex(first.as_bytes()[0])[1..],
            &first[1..]
        ),
        format!("/%2F{first}{tail}"),
        format!("//{first}{tail}"),
        format!("/x/../{first}{tail}"),
        format!("/x/%2E%2E/{first}{tail}"),
        format!("/./{first}{tail}"),
        format!("/{}{tail}", first.to_uppercase()),
        format!("/{upper_first}{tail}"),
        format!("/{first};x{tail}"),
        format!("{path}/"),
        format!("http://{host}{path}"),
        format!("http://{host}/{encoded_first}{tail}"),
    ];
    if !tail.is_empty() {
        out.push(format!("/{first}%2F{}", &tail[1..]));
        out.push(format!("/{first}%2f{}", &tail[1..]));
        out.push(format!("/{first}/{tail}"));
        out.push(format!("/{first}/.{tail}"));
        out.push(format!("/{first}/x/..{tail}"));
        out.push(format!("/{encoded_first}%2F{}", &tail[1..]));
    }
    out
}

/* ------------------------------------------------------------------ the binary by hand */

/// The binary started by hand, for what `TestServer` hides: its stdout, its log (stderr, in a
/// file) and its process.
struct Spawned {
    child: Child,
    url: String,
    lines: mpsc::Receiver<String>,
    log: PathBuf,
}

fn write_config(dir: &Path, server_extra: &str) -> PathBuf {
    let config = dir.join("config.toml");
    let text = format!(
        "[server]\nbind = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{server_extra}\n[pool]\nsize = 0\n",
        dir.join("data").display()
    );
    std::fs::write(&config, text).unwrap();
    config
}

impl Spawned {
    /// Starts `serve` on a config in `dir`; Err(its log) when it exits before listening.
    fn start(dir: &Path, server_extra: &str, env: &[(&str, &str)]) -> Result<Spawned, String> {
        let config = write_config(dir, server_extra);
        let log = dir.join(format!("server-{}.log", std::process::id()));
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--config"])
            .arg(&config)
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .env_remove("FLIGHTDECK_TOKEN")
            .env_remove("FLIGHTDECK_BIND")
            .env_remove("FLIGHTDECK_DATA_DIR")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start flightdeck");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let first = lines.recv_timeout(Duration::from_secs(60));
        let Ok(first) = first else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::fs::read_to_string(&log).unwrap_or_default());
        };
        let url = first
            .strip_prefix("flightdeck listening on ")
            .unwrap_or_else(|| panic!("the first line says where it listens: {first:?}"))
            .to_string();
        Ok(Spawned {
            child,
            url,
            lines,
            log,
        })
    }

    /// The next line on stdout (waits for it).
    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(60))
            .expect("another line on stdout")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the server; every line it printed after the ones already read, and its log.
    fn stop(mut self) -> (Vec<String>, String) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let rest = self.lines.iter().collect();
        (rest, self.log())
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(url: &str, token: Option<&str>) -> u16 {
    let req = ureq::get(url);
    let req = match token {
        Some(t) => req.set("Authorization", &format!("Bearer {t}")),
        None => req,
    };
    match req.call() {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("transport error: {e}"),
    }
}

fn error_message(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("a JSON error: {body}"));
    v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/* ------------------------------------------------------------------ the guards */

#[test]
fn no_spelling_of_a_protected_path_answers_without_the_token() {
    let s = TestServer::start("[pool]\nsize = 1\nauto_dispatch = false\n");
    let token = s.token().expect("the server generated a token");
    let host = authority(&s.url);
    let item = s.create(json!({"title": "keep me", "status": "ready"}));
    let id = item["id"].as_str().unwrap().to_string();
    let unchanged = || {
        (
            s.events_since(0),
            s.item(&id),
            s.get("/api/pool").1,
            s.get("/api/agents").1,
        )
    };
    let before = unchanged();

    let session = "00000000-0000-0000-0000-000000000000";
    let routes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/api/status".into(), None),
        ("GET", "/api/openapi.json".into(), None),
        ("GET", "/api/events".into(), None),
        (
            "POST",
            "/api/claim".into(),
            Some(json!({"agentId": "intruder", "sessionKey": "k"})),
        ),
        ("POST", "/api/dispatch".into(), None),
        ("GET", "/api/pool".into(), None),
        ("PUT", "/api/pool".into(), Some(json!({"size": 0}))),
        ("GET", "/api/agents".into(), None),
        ("GET", format!("/api/agents/{session}"), None),
        ("POST", format!("/api/agents/{session}/cancel"), None),
        ("GET", "/api/items".into(), None),
        (
            "POST",
            "/api/items".into(),
            Some(json!({"title": "planted", "status": "ready"})),
        ),
        ("GET", format!("/api/items/{id}"), None),
        (
            "PATCH",
            format!("/api/items/{id}"),
            Some(json!({"title": "changed"})),
        ),
        ("DELETE", format!("/api/items/{id}"), None),
        (
            "POST",
            format!("/api/items/{id}/move"),
            Some(json!({"status": "blocked"})),
        ),
        ("POST", format!("/api/items/{id}/complete"), Some(json!({}))),
        (
            "POST",
            format!("/api/items/{id}/artifacts"),
            Some(json!({"type": "link", "path": "https://example.com"})),
        ),
        ("GET", format!("/api/items/{id}/artifacts/{session}"), None),
        ("GET", format!("/api/items/{id}/history"), None),
        ("GET", format!("/api/items/{id}/log"), None),
    ];
    let mut tried = 0;
    for (method, path, body) in &routes {
        let body = body.as_ref().map(Value::to_string);
        for target in spellings(path, &host) {
            // JSON and the client header: only the token may stop these.
            let headers = ["Content-Type: application/json", "X-Flightdeck: 1"];
            let (status, answer) = raw(
                &host,
                &http_request(method, &target, &host, &headers, body.as_deref()),
            );
            assert!(
                matches!(status, 401 | 403 | 404),
                "{method} {target} answered {status} without the token: {answer}"
            );
            tried += 1;
        }
    }
    let own_origin = format!("Origin: {}", s.url);
    for target in spellings("/ws", &host) {
        for origin in [
            None,
            Some("Origin: http://evil.example"),
            Some(&*own_origin),
        ] {
            let headers: Vec<&str> = origin.into_iter().collect();
            let (status, answer) = raw(&host, &upgrade_request(&target, &host, &headers));
            assert!(
                matches!(status, 401 | 403 | 404),
                "a WebSocket on {target} ({origin:?}) answered {status} without the token: {answer}"
            );
            tried += 1;
        }
    }
    assert!(tried > 400, "{tried} requests tried");

    // The plain spellings are refused by the token check itself...
    let plain = raw(&host, &http_request("GET", "/api/items", &host, &[], None));
    assert_eq!(plain.0, 401, "{}", plain.1);
    assert!(error_message(&plain.1).contains("Authorization: Bearer"));
    assert_eq!(raw(&host, &upgrade_request("/ws", &host, &[])).0, 401);
    // ...and this same client with the token gets through, whatever the spelling.
    let auth = format!("Authorization: Bearer {token}");
    let encoded = raw(
        &host,
        &http_request("GET", "/%61pi/items", &host, &[&auth], None),
    );
    assert_eq!(encoded.0, 200, "{}", encoded.1);
    assert_eq!(
        raw(&host, &upgrade_request("/%77s", &host, &[&auth])).0,
        101
    );

    assert_eq!(unchanged(), before, "nothing changed");
}

#[test]
fn requests_naming_another_host_are_refused_with_the_fix() {
    let s = TestServer::start(
        "allowed_hosts = [\"flightdeck.test\", \"box.lan:9000\"]\n[pool]\nsize = 0\n",
    );
    let token = s.token().unwrap();
    let host = authority(&s.url);
    let port = port_of(&s.url);
    let auth = format!("Authorization: Bearer {token}");
    for name in [
        host.clone(),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        "flightdeck.test".into(),
        "FlightDeck.test:8443".into(),
        "box.lan:9000".into(),
    ] {
        let (status, body) = raw(
            &host,
            &http_request("GET", "/api/items", &name, &[&auth], None),
        );
        assert_eq!(status, 200, "Host: {name}: {body}");
    }
    for name in [
        format!("evil.example:{port}"),
        "evil.example".into(),
        format!("localhost.evil.example:{port}"),
        format!("127.0.0.1:{}", port.wrapping_add(1)),
        "box.lan:9001".into(),
    ] {
        for path in ["/api/items", "/healthz", "/"] {
            let (status, body) = raw(&host, &http_request("GET", path, &name, &[&auth], None));
            assert_eq!(status, 421, "Host: {name} {path}: {body}");
            let message = error_message(&body);
            assert!(
                message.contains(&name) && message.contains("server.allowed_hosts"),
                "the message names the host and the fix: {message}"
            );
        }
    }
    // An absolute request target names its host too.
    let (status, body) = raw(
        &host,
        &http_request(
            "GET",
            "http://evil.example/api/items",
            &host,
            &[&auth],
            None,
        ),
    );
    assert_eq!(status, 421, "{body}");
}

#[test]
fn the_socket_compares_origin_with_the_servers_names_not_with_host() {
    let s = TestServer::start("allowed_hosts = [\"flightdeck.test\"]\n[pool]\nsize = 0\n");
    let token = s.token().unwrap();
    let host = authority(&s.url);
    let port = port_of(&s.url);
    let auth = format!("Authorization: Bearer {token}");
    let socket = |host_header: &str, origin: &str| {
        let origin = format!("Origin: {origin}");
        raw(
            &host,
            &upgrade_request("/ws", host_header, &[&auth, &origin]),
        )
    };
    // DNS rebinding: the page's own name, pointed at 127.0.0.1, in both Host and Origin.
    let rebound = format!("evil.example:{port}");
    let (status, body) = socket(&rebound, &format!("http://{rebound}"));
    assert_eq!(status, 421, "{body}");
    // Pages of other local origins, and sandboxed ones.
    for origin in [
        format!("http://127.0.0.1:{}", port.wrapping_add(1)),
        format!("http://localhost:{}", port.wrapping_add(1)),
        "http://evil.example".into(),
        "null".into(),
    ] {
        let (status, body) = socket(&host, &origin);
        assert_eq!(status, 403, "Origin: {origin}: {body}");
        assert!(error_message(&body).contains(&origin), "{body}");
    }
    // The board's own pages, under any of the server's names; a proxy may rewrite Host.
    for origin in [
        s.url.clone(),
        format!("http://localhost:{port}"),
        format!("http://[::1]:{port}"),
        "https://flightdeck.test".into(),
    ] {
        let (status, head) = socket(&host, &origin);
        assert_eq!(status, 101, "Origin: {origin}: {head}");
    }
}

#[test]
fn state_changing_requests_need_json_or_the_client_header() {
    let s = TestServer::start("token = \"none\"\n[pool]\nsize = 1\nauto_dispatch = false\n");
    assert_eq!(s.token(), None, "the API is open");
    let host = authority(&s.url);
    let item = s.create(json!({"title": "stays ready", "status": "ready"}));
    let id = item["id"].as_str().unwrap();
    let forged = [
        // A cross-site form with enctype="text/plain" and nothing in it.
        ("POST", "/api/dispatch".to_string(), Some("text/plain"), ""),
        (
            "POST",
            "/api/dispatch".into(),
            Some("application/x-www-form-urlencoded"),
            "a=b",
        ),
        ("POST", "/api/dispatch".into(), None, ""),
        (
            "POST",
            "/api/items".into(),
            Some("text/plain"),
            r#"{"title":"forged","status":"ready"}"#,
        ),
        (
            "POST",
            format!("/api/items/{id}/move"),
            Some("multipart/form-data; boundary=x"),
            "--x--",
        ),
        (
            "PUT",
            "/api/pool".into(),
            Some("text/plain"),
            r#"{"size":0}"#,
        ),
        ("DELETE", format!("/api/items/{id}"), None, ""),
    ];
    for (method, path, content_type, body) in &forged {
        let header = content_type.map(|ct| format!("Content-Type: {ct}"));
        let headers: Vec<&str> = header.iter().map(String::as_str).collect();
        let (status, answer) = raw(
            &host,
            &http_request(method, path, &host, &headers, Some(body)),
        );
        assert_eq!(status, 415, "{method} {path} ({content_type:?}): {answer}");
        let message = error_message(&answer);
        assert!(
            message.contains("application/json") && message.contains("X-Flightdeck: 1"),
            "the message says what is needed: {message}"
        );
    }
    assert_eq!(s.item(id)["status"], "ready", "nothing was dispatched");
    assert_eq!(s.get("/api/agents").1, json!([]));
    assert_eq!(s.get("/api/pool").1["size"], 1);
    assert_eq!(s.get("/api/items").1.as_array().unwrap().len(), 1);

    // A client of the API says so with the header when it has no body to send.
    let (status, answer) = raw(
        &host,
        &http_request("POST", "/api/dispatch", &host, &["X-Flightdeck: 1"], None),
    );
    assert_eq!(status, 200, "{answer}");
    let started: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(started["started"][0]["workItemId"], id);
}

#[test]
fn a_json_body_is_one_value_and_a_wrong_type_names_the_field_and_what_is_allowed() {
    let s = TestServer::start("[pool]\nsize = 0\n");
    for body in [
        r#"{"title":"x"} xyz"#,
        r#"{"title":"x"}{"title":"y"}"#,
        r#"{"title":"x"},"#,
    ] {
        let (status, err) = s.send_raw("POST", "/api/items", "application/json", body.as_bytes());
        assert_eq!(status, 400, "{body}: {err}");
        assert_eq!(err["error"]["code"], "malformed_json", "{body}: {err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains("one JSON value"), "{message}");
    }
    let (status, _) = s.send_raw(
        "POST",
        "/api/items",
        "application/json",
        b"{\"title\":\"trailing space is fine\"} \n",
    );
    assert_eq!(status, 201);

    let cases = [
        (
            json!({"title": "t", "priority": -1}),
            "priority",
            "`urgent`",
        ),
        (json!({"title": "t", "priority": true}), "priority", "`low`"),
        (json!({"title": "t", "priority": [1]}), "priority", "`high`"),
        (json!({"title": "t", "complexity": 3}), "complexity", "`xl`"),
        (json!({"title": "t", "status": 0}), "status", "`ready`"),
    ];
    for (body, field, allowed) in cases {
        let (status, err) = s.post("/api/items", body.clone());
        assert_eq!(status, 400, "{body}: {err}");
        assert_eq!(err["error"]["field"], field, "{body}: {err}");
        assert_eq!(err["error"]["code"], "invalid", "{body}: {err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(allowed) && !message.contains("malformed"),
            "{body}: {message}"
        );
    }
    let (_, items) = s.get("/api/items");
    assert_eq!(items.as_array().unwrap().len(), 1, "only the valid one");
}

/* ------------------------------------------------------------------ the token's trail */

#[test]
fn with_no_token_configured_one_is_generated_private_reused_and_printed_as_the_sign_in_url() {
    let dir = tempfile::tempdir().unwrap();
    let server = Spawned::start(dir.path(), "", &[]).unwrap();
    assert!(
        server.url.starts_with("http://127.0.0.1:"),
        "{}",
        server.url
    );
    let sign_in = server.next_line();
    let prefix = format!("sign in: {}/#token=", server.url);
    let token = sign_in
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{sign_in:?} starts with {prefix:?}"))
        .to_string();
    assert_eq!(token.len(), 64, "{token}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");

    let file = dir.path().join("data/token");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "only its owner may read the token file");

    assert_eq!(get(&format!("{}/api/items", server.url), None), 401);
    assert_eq!(get(&format!("{}/api/items", server.url), Some(&token)), 200);
    assert_eq!(get(&format!("{}/healthz", server.url), None), 200);
    assert_eq!(get(&format!("{}/", server.url), None), 200, "the board");
    server.stop();

    let again = Spawned::start(dir.path(), "", &[]).unwrap();
    let sign_in = again.next_line();
    assert!(
        sign_in.ends_with(&format!("#token={token}")),
        "the same token at the next start: {sign_in}"
    );
}

#[test]
fn a_token_file_that_is_a_link_or_readable_by_others_stops_the_start_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::write(&elsewhere, "planted\n").unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, data.join("token")).unwrap();
    let log = Spawned::start(dir.path(), "", &[])
        .err()
        .expect("a link there stops the start");
    assert!(
        log.contains("symbolic link") && log.contains(&data.join("token").display().to_string()),
        "{log}"
    );
    assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "planted\n");

    std::fs::remove_file(data.join("token")).unwrap();
    std::fs::write(data.join("token"), "planted\n").unwrap();
    std::fs::set_permissions(data.join("token"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let log = Spawned::start(dir.path(), "", &[])
        .err()
        .expect("a token others can read stops the start");
    assert!(log.contains("chmod 600"), "{log}");
}

#[test]
fn token_none_opens_the_api_with_a_loud_warning_and_no_token_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = Spawned::start(dir.path(), "token = \"none\"", &[]).unwrap();
    assert_eq!(get(&format!("{}/api/items", server.url), None), 200);
    let (rest, log) = server.stop();
    assert!(
        log.contains("server.token = \"none\"") && log.contains("NO token"),
        "{log}"
    );
    assert!(
        !rest.iter().any(|l| l.starts_with("sign in")),
        "no sign-in URL: {rest:?}"
    );
    assert!(!dir.path().join("data/token").exists());
}

#[test]
fn a_token_from_the_environment_is_wiped_from_the_servers_environ() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "env-secret-5b1c2f9e7d";
    let server = Spawned::start(dir.path(), "", &[("FLIGHTDECK_TOKEN", secret)]).unwrap();
    assert_eq!(
        get(&format!("{}/api/items", server.url), Some(secret)),
        200,
        "the server uses the token it was given"
    );
    assert_eq!(get(&format!("{}/api/items", server.url), None), 401);
    let environ = std::fs::read(format!("/proc/{}/environ", server.child.id())).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        !environ.contains(secret),
        "/proc/<pid>/environ still shows the token"
    );
    assert!(
        environ.contains("RUST_LOG=info"),
        "the rest of the environment is still there"
    );
}

#[test]
fn no_token_reaches_the_access_log() {
    use tungstenite::client::IntoClientRequest;
    let dir = tempfile::tempdir().unwrap();
    let server = Spawned::start(dir.path(), "", &[]).unwrap();
    let token = server.next_line().rsplit('=').next().unwrap().to_string();
    let ws_url = format!("{}/ws?since=0", server.url.replace("http://", "ws://"));

    // The board's way: the token as a subprotocol, from the board's own origin.
    let mut req = ws_url.as_str().into_client_request().unwrap();
    let protocols = format!(
        "flightdeck, bearer.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&token)
    );
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", protocols.parse().unwrap());
    req.headers_mut()
        .insert("Origin", server.url.parse().unwrap());
    let (mut socket, answer) = tungstenite::connect(req).expect("the board's socket opens");
    assert_eq!(answer.headers()["Sec-WebSocket-Protocol"], "flightdeck");
    socket.close(None).unwrap();
    while socket.read().is_ok() {}

    // An old board or a careless client: the token in the URL (refused, and not logged).
    let (status, _) = raw(
        &authority(&server.url),
        &upgrade_request(
            &format!("/ws?since=0&token={token}"),
            &authority(&server.url),
            &[],
        ),
    );
    assert_eq!(status, 401);
    assert_eq!(
        get(&format!("{}/api/items?token={token}", server.url), None),
        401
    );

    let log = loop {
        let log = server.log();
        if log.matches("GET /ws").count() >= 2 && log.contains("GET /api/items") {
            break log;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!log.contains(&token), "the token is in the log:\n{log}");
    assert!(log.contains("token=[redacted]"), "{log}");
}

#[test]
fn the_cli_reads_the_generated_token_from_the_data_dir() {
    let s = TestServer::start("[pool]\nsize = 0\n");
    let cli = |token: Option<&str>, args: &[&str]| {
        let mut command = Command::new(BIN);
        command
            .args(["--server", &s.url, "--config"])
            .arg(s.config_path())
            .args(args)
            .env_remove("FLIGHTDECK_TOKEN");
        if let Some(t) = token {
            command.env("FLIGHTDECK_TOKEN", t);
        }
        let out = command.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, out, err) = cli(None, &["add", "from the command line"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("added "), "{out}");
    let (ok, _, err) = cli(Some("wrong"), &["list"]);
    assert!(!ok);
    assert!(
        err.contains("401") && err.contains("FLIGHTDECK_TOKEN") && err.lines().count() == 1,
        "one line saying where the token comes from: {err}"
    );
}

/* ------------------------------------------------------------------ agents */

/// Runs `api-intruder.sh MODE` as the agent of one item and returns the item's log.
fn intrude(mode: &str) -> (TestServer, String) {
    intrude_with("", mode)
}

/// Like [`intrude`], with `server` lines (say, `token = "none"`) in the server's table.
fn intrude_with(server: &str, mode: &str) -> (TestServer, String) {
    let extra = format!(
        "{server}[pool]\nsize = 1\n[queue]\nreview = false\n[agent]\npreset = \"lines\"\ncommand = [\"sh\", \"{}\", \"{mode}\"]\n",
        fixture("agents/api-intruder.sh")
    );
    let s = TestServer::start(&extra);
    let (_, status) = s.get("/api/status");
    assert_eq!(
        status["sandbox"], "landlock",
        "this kernel enforces Landlock"
    );
    let data = s.data_dir().canonicalize().unwrap();
    let description = format!("URL={}\nDATA={}", s.url, data.display());
    let item = s.create(json!({"title": "intrude", "status": "ready", "description": description}));
    let id = item["id"].as_str().unwrap().to_string();
    s.wait_status(&id, "done", Duration::from_secs(60));
    let (_, log) = s.get(&format!("/api/items/{id}/log"));
    let log = log.as_str().unwrap_or_default().to_string();
    (s, log)
}

#[test]
fn an_agent_gets_nothing_from_the_api() {
    for mode in ["list", "bypass", "create"] {
        let (s, log) = intrude(mode);
        let answered = log
            .lines()
            .find_map(|l| {
                l.split_once(&format!("{mode}: HTTP "))
                    .map(|(_, c)| c.trim())
            })
            .unwrap_or_else(|| panic!("{mode}: the agent reported: {log}"))
            .to_string();
        // 401; 403 where the server refuses connections from sessions' cgroups; or no
        // answer at all where the kernel keeps agents off the server's port.
        assert!(
            ["401", "403", "000"].contains(&answered.as_str()),
            "{mode}: the API answered {answered}: {log}"
        );
        let (_, items) = s.get("/api/items");
        assert_eq!(
            items.as_array().unwrap().len(),
            1,
            "{mode}: nothing planted"
        );
    }
}

#[test]
fn with_no_token_an_agent_still_gets_nothing_from_the_api() {
    // The API is open to this machine; only the fence keeps the agent out: its cgroup (the
    // connection is shut at once, no answer) or Landlock's port rules (no connection). hit-and-run sends its requests and resets
    // each connection at once, before the server could look up who made it.
    for mode in ["list", "create", "hit-and-run"] {
        let (s, log) = intrude_with("token = \"none\"\n", mode);
        let answered = log
            .lines()
            .find_map(|l| {
                l.split_once(&format!("{mode}: "))
                    .map(|(_, c)| c.trim().to_string())
            })
            .unwrap_or_else(|| panic!("{mode}: the agent reported: {log}"));
        assert!(
            ["HTTP 403", "HTTP 000", "sent"].contains(&answered.as_str()),
            "{mode}: the API answered {answered}: {log}"
        );
        let (_, items) = s.get("/api/items");
        let titles: Vec<&str> = items
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["title"].as_str())
            .collect();
        assert_eq!(titles, ["intrude"], "{mode}: nothing planted");
    }
}

#[test]
fn an_agent_cannot_read_the_token_file() {
    let (s, log) = intrude("token-file");
    let token = s.token().unwrap();
    assert!(log.contains("token-file: denied"), "{log}");
    assert!(!log.contains(&token), "the agent printed the token: {log}");
}
