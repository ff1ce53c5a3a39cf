//! Memory is bounded in total, not per client: an agent printing as fast as it can makes a
//! bounded number of progress events, a replay answers at most its byte budget and says where
//! to go on, the WebSocket clients that leave the most unread are dropped first (and told
//! why) while a reader keeps receiving, and no field weighs more than its limit says, a
//! control character counting as the 6 bytes its JSON escape takes.
//!
//! Nothing here measures memory or time: `bench/run` measures the server's peak memory under
//! the same floods.

mod common;
use common::*;
use serde_json::{json, Value};
use std::net::TcpStream;
use std::time::Duration;
use tungstenite::client::IntoClientRequest;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

const T: Duration = Duration::from_secs(120);
/// No agent ever starts.
const MANUAL: &str = "[pool]\nsize = 0\n";
/// The most bytes of events one `GET /api/events` answers with (docs/LIMITS.md).
const EVENTS_PAGE_BYTES: usize = 1 << 20;

fn id_of(item: &Value) -> String {
    item["id"].as_str().expect("item id").to_string()
}

/// `GET path` with the harness's token: the body, and the `Link` header if any.
fn get_with_link(s: &TestServer, path: &str) -> (String, Option<String>) {
    let mut req = ureq::get(&format!("{}{path}", s.url));
    if let Some(token) = s.token() {
        req = req.set("Authorization", &format!("Bearer {token}"));
    }
    let resp = req.call().unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let link = resp.header("Link").map(str::to_string);
    (resp.into_string().expect("body"), link)
}

/// Every retained event, page after page, the way a client catching up reads them.
fn all_events(s: &TestServer) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut path = "/api/events?since=0&limit=20000".to_string();
    loop {
        let (body, link) = get_with_link(s, &path);
        let page: Vec<Value> = serde_json::from_str(&body).expect("a JSON array of events");
        out.extend(page);
        match link {
            Some(link) => {
                let next = link
                    .strip_prefix('<')
                    .and_then(|l| l.split_once('>'))
                    .map(|(url, _)| url.to_string())
                    .expect("Link: <url>; rel=\"next\"");
                path = format!("{next}&limit=20000");
            }
            None => return out,
        }
    }
}

fn open(s: &TestServer) -> Socket {
    let mut req = format!("{}/ws", s.url.replace("http://", "ws://"))
        .into_client_request()
        .expect("ws request");
    if let Some(token) = s.token() {
        let value = format!("Bearer {token}").parse().expect("header value");
        req.headers_mut().insert("Authorization", value);
    }
    let (socket, _) = tungstenite::connect(req).expect("websocket connects");
    socket
}

fn set_read_timeout(socket: &Socket, timeout: Duration) {
    if let MaybeTlsStream::Plain(tcp) = socket.get_ref() {
        tcp.set_read_timeout(Some(timeout)).expect("read timeout");
    }
}

/// Reads until `count` `work:added` events arrived (their seqs, in order), or the server
/// closed the socket (its reason).
fn read_added(socket: &mut Socket, count: usize) -> Result<Vec<u64>, String> {
    set_read_timeout(socket, T);
    let mut seqs = Vec::new();
    while seqs.len() < count {
        match socket.read() {
            Ok(Message::Text(text)) => {
                let event: Value = serde_json::from_str(text.as_str()).expect("event JSON");
                if event["type"] == "work:added" {
                    seqs.push(event["seq"].as_u64().expect("seq"));
                }
            }
            Ok(Message::Close(frame)) => {
                return Err(frame.map(|f| f.reason.to_string()).unwrap_or_default())
            }
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(seqs)
}

/// A client that did not read until now reads what was sent to it: the reason it was
/// dropped, or None if the stream just went quiet.
fn close_reason(mut socket: Socket) -> Option<String> {
    set_read_timeout(&socket, Duration::from_secs(3));
    loop {
        match socket.read() {
            Ok(Message::Close(frame)) => {
                return Some(frame.map(|f| f.reason.to_string()).unwrap_or_default())
            }
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

#[test]
fn an_agent_printing_200k_lines_makes_a_bounded_number_of_progress_events() {
    let lines = 200_000u64;
    let argv = [
        "/bin/sh".to_string(),
        fixture("agents/flood.sh"),
        "lines".into(),
        lines.to_string(),
    ];
    let s = TestServer::start(&format!(
        "[pool]\nsize = 1\n[agent]\npreset = \"lines\"\ncommand = {}\n",
        serde_json::to_string(&argv).expect("argv")
    ));
    let id = id_of(&s.create_ready("print 200,000 lines"));
    s.wait_for("the flood to finish", T, || {
        let item = s.item(&id);
        ["review", "done"]
            .contains(&item["status"].as_str().unwrap_or(""))
            .then_some(())
    });
    let messages: Vec<String> = all_events(&s)
        .into_iter()
        .filter(|e| e["type"] == "work:progress" && e["data"]["itemId"] == id.as_str())
        .map(|e| e["data"]["message"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        messages.len() <= 2_000,
        "{} progress events for {lines} lines: not coalesced",
        messages.len()
    );
    // Every line is accounted for, in order: shown, or counted in a summary.
    let (mut shown, mut summed, mut last) = (0u64, 0u64, 0u64);
    for m in &messages {
        match m
            .strip_prefix('(')
            .and_then(|m| m.strip_suffix(" more lines, see the log)"))
        {
            Some(n) => summed += n.replace(',', "").parse::<u64>().expect("a count"),
            None => {
                let n: u64 = m.parse().unwrap_or_else(|_| panic!("a line number: {m:?}"));
                assert!(n > last, "lines out of order: {n} after {last}");
                last = n;
                shown += 1;
            }
        }
    }
    assert!(summed > 0, "no summary among {} messages", messages.len());
    assert_eq!(shown + summed, lines, "{shown} shown + {summed} summed up");
    assert_eq!(last, lines, "the last line is shown");
}

#[test]
fn a_replay_answers_at_most_its_byte_budget_and_links_the_next_page() {
    let s = TestServer::start(MANUAL);
    let description = "d".repeat(19_000);
    let n = 120;
    for i in 0..n {
        s.create(json!({"title": format!("big {i}"), "description": description}));
    }
    let (body, link) = get_with_link(&s, "/api/events?since=0&limit=20000");
    assert!(
        body.len() <= EVENTS_PAGE_BYTES,
        "one answer of {} bytes",
        body.len()
    );
    let page: Vec<Value> = serde_json::from_str(&body).expect("a JSON array of events");
    assert!(!page.is_empty() && page.len() < n, "{} events", page.len());
    let last = page.last().and_then(|e| e["seq"].as_u64()).expect("seq");
    assert_eq!(
        link.as_deref(),
        Some(format!("</api/events?since={last}>; rel=\"next\"").as_str())
    );
    // Following the links gives every event once, in order, and the last page has no link.
    let seqs: Vec<u64> = all_events(&s)
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, (1..=n as u64).collect::<Vec<_>>());
    let (_, link) = get_with_link(&s, &format!("/api/events?since={}", n - 1));
    assert_eq!(link, None);
}

#[test]
fn the_clients_with_the_most_unread_are_dropped_first_while_a_reader_keeps_receiving() {
    // Clients that read nothing answer no pings: only the send budget may drop them here.
    let s = TestServer::start(&format!("websocket_silence_secs = 600\n{MANUAL}"));
    let n = 60;
    // 400 clients that read nothing until the flood is over: each has its whole window
    // (256 KiB) written and not yet read, and together they pass the 64 MiB budget, however
    // fast or slow this machine makes the flood.
    let clients = 400;
    let flood_over = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slow: Vec<_> = (0..clients)
        .map(|_| {
            let mut socket = open(&s);
            let flood_over = flood_over.clone();
            std::thread::spawn(move || {
                while !flood_over.load(std::sync::atomic::Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                set_read_timeout(&socket, T);
                let mut added = 0;
                while added < n {
                    match socket.read() {
                        Ok(Message::Text(t)) if t.contains("\"work:added\"") => added += 1,
                        Ok(Message::Close(frame)) => {
                            return Some(frame.map(|f| f.reason.to_string()).unwrap_or_default())
                        }
                        Ok(_) => {}
                        Err(e) => return Some(e.to_string()),
                    }
                }
                None
            })
        })
        .collect();
    let mut reader = open(&s);
    let reading = std::thread::spawn(move || read_added(&mut reader, n));
    let description = "x".repeat(19_000);
    for i in 0..n {
        s.create(json!({"title": format!("flood {i}"), "description": description}));
    }
    let seqs = reading
        .join()
        .expect("reader")
        .expect("the reader is never dropped");
    flood_over.store(true, std::sync::atomic::Ordering::Release);
    assert_eq!(seqs, (1..=n as u64).collect::<Vec<_>>(), "none missed");
    let reasons: Vec<String> = slow
        .into_iter()
        .filter_map(|t| t.join().expect("slow reader"))
        .collect();
    assert!(!reasons.is_empty(), "no slow client was dropped");
    // A dropped client that reads within the close grace gets the reason; one that reads
    // later finds the connection gone.
    assert!(
        reasons.iter().any(|r| r.contains("send budget"))
            && reasons
                .iter()
                .all(|r| r.contains("send budget") || r.contains("reset by peer")),
        "told why: {reasons:?}"
    );
    assert!(
        reasons.len() < clients,
        "only the ones with the most unread"
    );
}

#[test]
fn a_client_that_falls_out_of_the_replay_window_is_told_why() {
    // The stalled client answers no pings either: on a loaded machine the flood may take
    // longer than the default 30 s of silence, which would drop it for that first.
    let s = TestServer::start(&format!("websocket_silence_secs = 600\n{MANUAL}"));
    let stalled = open(&s);
    let mut reader = open(&s);
    // 400 events of about 45 KB: more than the 16 MiB the journal keeps.
    let n = 400;
    let reading = std::thread::spawn(move || read_added(&mut reader, n));
    let item = json!({
        "title": "flood",
        "description": "x".repeat(20_000),
        "acceptanceCriteria": (0..50).map(|i| format!("{i:03}{}", "c".repeat(497))).collect::<Vec<_>>(),
    });
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..n / 8 {
                    s.create(item.clone());
                }
            });
        }
    });
    let seqs = reading
        .join()
        .expect("reader")
        .expect("the reader is never dropped");
    assert_eq!(seqs.len(), n);
    // The stalled client reads now: what was written to it, then why it was dropped.
    let reason = close_reason(stalled).expect("the stalled client is dropped");
    assert!(reason.contains("replay window"), "{reason}");
    assert!(reason.contains("?since="), "{reason}");
}

#[test]
fn no_field_weighs_more_than_its_limit_in_json() {
    let s = TestServer::start(MANUAL);
    let control = |n: usize| "\u{1}".repeat(n);
    let cases = [
        (json!({"title": control(200)}), "title"),
        (
            json!({"title": "t", "description": control(20_000)}),
            "description",
        ),
        (
            json!({"title": "t", "acceptanceCriteria": [control(500)]}),
            "acceptanceCriteria[0]",
        ),
        (
            json!({"title": "t", "createdBy": control(200)}),
            "createdBy",
        ),
    ];
    for (body, field) in cases {
        let (status, err) = s.post("/api/items", body);
        assert_eq!(status, 400, "{field}: {err}");
        assert_eq!(err["error"]["field"], field, "{err}");
        let message = err["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains("bytes as JSON"), "{message}");
    }
    // The heaviest item a client can make stays under the documented ceiling.
    let heavy = |n: usize| "😀".repeat(n);
    let item = s.create(json!({
        "title": heavy(200),
        "description": heavy(20_000),
        "acceptanceCriteria": (0..50).map(|_| heavy(500)).collect::<Vec<_>>(),
        "createdBy": heavy(200),
    }));
    let id = id_of(&item);
    let (body, _) = get_with_link(&s, &format!("/api/items/{id}"));
    let ceiling = flightdeck::model::ITEM_TEXT_MAX_BYTES + 1_000;
    assert!(body.len() <= ceiling, "{} bytes > {ceiling}", body.len());
    let (status, err) = s.post(
        &format!("/api/items/{id}/move"),
        json!({"status": "ready", "reason": control(2_000)}),
    );
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["field"], "reason");
    let (_, items) = s.get("/api/items");
    assert_eq!(
        items.as_array().map(Vec::len),
        Some(1),
        "only the valid item"
    );
}
