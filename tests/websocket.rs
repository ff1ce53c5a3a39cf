//! The live event stream on `/ws`: replay from `since`, order under concurrent writers, and a
//! client that stops reading is dropped without holding up anyone else.

mod common;
use common::*;
use serde_json::{json, Value};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{connect, Message, WebSocket};

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

fn open(s: &TestServer, since: Option<u64>) -> Socket {
    use tungstenite::client::IntoClientRequest;
    let base = s.url.replace("http://", "ws://");
    let url = match since {
        Some(n) => format!("{base}/ws?since={n}"),
        None => format!("{base}/ws"),
    };
    let mut req = url.into_client_request().unwrap();
    if let Some(token) = s.token() {
        req.headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    }
    let (socket, _) = connect(req).expect("websocket connects");
    if let MaybeTlsStream::Plain(tcp) = socket.get_ref() {
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    }
    socket
}

/// Reads events until `count` have arrived (control frames are skipped).
fn read_events(socket: &mut Socket, count: usize) -> Vec<Value> {
    let mut out = Vec::new();
    while out.len() < count {
        match socket.read().expect("event frame") {
            Message::Text(text) => out.push(serde_json::from_str(text.as_str()).unwrap()),
            Message::Close(frame) => panic!("closed early: {frame:?}"),
            _ => {}
        }
    }
    out
}

fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

#[test]
fn replays_after_since_then_streams_live() {
    let s = TestServer::start("[pool]\nsize = 0\n");
    for i in 0..5 {
        s.create(json!({"title": format!("item {i}")}));
    }
    let mut ws = open(&s, Some(2));
    let replayed = read_events(&mut ws, 3);
    assert_eq!(seqs(&replayed), [3, 4, 5]);
    assert_eq!(replayed[0]["type"], "work:added");
    assert_eq!(replayed[2]["data"]["item"]["title"], "item 4");
    let id = s.create(json!({"title": "live one"}))["id"].clone();
    let live = read_events(&mut ws, 1);
    assert_eq!(live[0]["seq"], 6);
    assert_eq!(live[0]["data"]["item"]["id"], id);
}

#[test]
fn live_events_arrive_in_order_under_concurrent_writes() {
    let s = TestServer::start("[pool]\nsize = 0\n");
    let mut ws = open(&s, Some(0));
    std::thread::scope(|scope| {
        for w in 0..6 {
            let s = &s;
            scope.spawn(move || {
                for i in 0..40 {
                    let item = s.create(json!({"title": format!("w{w} #{i}"), "status": "ready"}));
                    if i % 4 == 0 {
                        s.move_to(item["id"].as_str().unwrap(), "blocked");
                    }
                }
            });
        }
    });
    let stored = s.events_since(0);
    assert_eq!(stored.len(), 240 + 60);
    let received = read_events(&mut ws, stored.len());
    assert_eq!(
        seqs(&received),
        (1..=300).collect::<Vec<u64>>(),
        "none skipped or doubled"
    );
    assert_eq!(received, stored, "the stream and the log agree");
}

#[test]
fn a_client_that_stops_reading_is_dropped_without_slowing_others() {
    let s = TestServer::start("[pool]\nsize = 0\n");
    let mut slow = open(&s, Some(0));
    let mut fast = open(&s, Some(0));
    let description = "x".repeat(19_000);
    let total = 1200;
    let fast_reader = std::thread::spawn(move || {
        let events = read_events(&mut fast, total);
        (seqs(&events), fast)
    });
    std::thread::scope(|scope| {
        for w in 0..8 {
            let s = &s;
            let description = &description;
            scope.spawn(move || {
                for i in 0..total / 8 {
                    s.create(json!({"title": format!("bulk {w}/{i}"), "description": description}));
                }
            });
        }
    });
    let (fast_seqs, _fast) = fast_reader.join().unwrap();
    assert_eq!(fast_seqs, (1..=total as u64).collect::<Vec<u64>>());
    // The slow client now reads: it finds its connection closed before the end of the stream.
    let start = Instant::now();
    let mut got = 0usize;
    let closed = loop {
        match slow.read() {
            Ok(Message::Text(_)) => got += 1,
            Ok(Message::Close(_)) | Err(_) => break true,
            Ok(_) => {}
        }
        if got >= total || start.elapsed() > Duration::from_secs(30) {
            break false;
        }
    };
    assert!(
        closed,
        "the slow client was dropped (it read {got} of {total} events)"
    );
    assert!(got < total);
}

#[test]
fn foreign_origins_and_missing_tokens_are_refused() {
    use base64::Engine;
    use tungstenite::client::IntoClientRequest;
    let s = TestServer::start("token = \"ws-secret\"\n[pool]\nsize = 0\n");
    let url = format!("{}/ws", s.url.replace("http://", "ws://"));
    let own = s.url.clone();
    let board_protocols = format!(
        "flightdeck, bearer.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("ws-secret")
    );
    // (url, Origin, Authorization, Sec-WebSocket-Protocol) -> status, and the protocol chosen.
    let attempt = |url: &str, origin: Option<&str>, auth: Option<&str>, protocols: Option<&str>| {
        let mut req = url.into_client_request().unwrap();
        let headers = req.headers_mut();
        for (name, value) in [
            ("Origin", origin),
            ("Authorization", auth),
            ("Sec-WebSocket-Protocol", protocols),
        ] {
            if let Some(v) = value {
                headers.insert(name, v.parse().unwrap());
            }
        }
        match connect(req) {
            Err(tungstenite::Error::Http(resp)) => (resp.status().as_u16(), None),
            Err(e) => panic!("unexpected error {e}"),
            Ok((_, resp)) => (
                101,
                resp.headers()
                    .get("Sec-WebSocket-Protocol")
                    .map(|p| p.to_str().unwrap().to_string()),
            ),
        }
    };
    assert_eq!(attempt(&url, None, None, None).0, 401, "no token");
    assert_eq!(attempt(&url, None, Some("Bearer wrong"), None).0, 401);
    assert_eq!(
        attempt(&format!("{url}?token=ws-secret"), None, None, None).0,
        401,
        "a token in the URL is not accepted: it would end up in logs and history"
    );
    assert_eq!(
        attempt(&url, None, None, Some("flightdeck, bearer.d3Jvbmc")).0,
        401,
        "a wrong token offered as a subprotocol"
    );
    assert_eq!(
        attempt(
            &url,
            Some("http://evil.example"),
            None,
            Some(&board_protocols)
        )
        .0,
        403,
        "another site's page"
    );
    assert_eq!(
        attempt(&url, Some(&own), None, Some(&board_protocols)),
        (101, Some("flightdeck".to_string())),
        "the board's page with the token as a subprotocol"
    );
    assert_eq!(
        attempt(&url, None, Some("Bearer ws-secret"), None),
        (101, None),
        "a program with the token in Authorization"
    );
}
