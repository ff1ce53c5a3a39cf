//! Webhooks against a real receiver each test runs on loopback: signed bodies, retries of a
//! failing or silent receiver with the same delivery id, order per item, nothing lost to a
//! kill -9, redelivery through the API, and Slack's readable lines.

mod common;

use common::TestServer;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

/// What the receiver does with the n-th request (counting from 0).
#[derive(Clone, Copy, PartialEq)]
enum Answer {
    Status(u16),
    /// Read on and never answer, until the sender gives up on the connection.
    Silence,
}

/// One request as the receiver got it.
#[derive(Clone, Debug)]
struct Received {
    headers: HashMap<String, String>,
    body: Vec<u8>,
    answered: Option<u16>,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
            .unwrap_or("")
    }

    fn delivery(&self) -> &str {
        self.header("X-Flightdeck-Delivery")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// A webhook receiver on a free loopback port, answering as `answer` says.
struct Receiver {
    url: String,
    log: Arc<(Mutex<Vec<Received>>, Condvar)>,
}

impl Receiver {
    fn start(answer: impl Fn(usize) -> Answer + Send + Sync + 'static) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        let url = format!(
            "http://{}/hook/secret-token-part",
            listener.local_addr().unwrap()
        );
        let log: Arc<(Mutex<Vec<Received>>, Condvar)> = Arc::default();
        let answer = Arc::new(answer);
        let count = Arc::new(AtomicUsize::new(0));
        let shared = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (log, answer, count) = (shared.clone(), answer.clone(), count.clone());
                std::thread::spawn(move || serve(stream, &log, &*answer, &count));
            }
        });
        Receiver { url, log }
    }

    /// Waits until `done` holds for the requests so far; returns them.
    fn wait(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + WAIT;
        let mut got = self.log.0.lock().unwrap();
        while !done(&got) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {what}; got {got:#?}"
            );
            got = self.log.1.wait_timeout(got, left).unwrap().0;
        }
        got.clone()
    }

    /// The requests answered 2xx, in the order they arrived.
    fn delivered(requests: &[Received]) -> Vec<Received> {
        requests
            .iter()
            .filter(|r| r.answered.is_some_and(|c| (200..300).contains(&c)))
            .cloned()
            .collect()
    }
}

fn serve(
    stream: TcpStream,
    log: &(Mutex<Vec<Received>>, Condvar),
    answer: &(dyn Fn(usize) -> Answer + Send + Sync),
    count: &AtomicUsize,
) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let n = count.fetch_add(1, Ordering::SeqCst);
        let how = answer(n);
        let answered = match how {
            Answer::Status(code) => Some(code),
            Answer::Silence => None,
        };
        {
            let mut got = log.0.lock().unwrap();
            got.push(Received {
                headers,
                body,
                answered,
            });
            log.1.notify_all();
        }
        match how {
            Answer::Status(code) => {
                let reply = format!("HTTP/1.1 {code} Whatever\r\nContent-Length: 2\r\n\r\nok");
                if writer.write_all(reply.as_bytes()).is_err() {
                    return;
                }
            }
            Answer::Silence => {
                // Hold the connection until the sender drops it.
                let _ = std::io::copy(&mut reader, &mut std::io::sink());
                return;
            }
        }
    }
}

fn webhook_config(receiver: &Receiver, extra: &str) -> String {
    format!(
        "[pool]\nauto_dispatch = false\n\n[webhook_delivery]\nbackoff_ms = 20\nmax_backoff_secs = 1\ntimeout_ms = 500\n\n[[webhooks]]\nname = \"ops\"\nurl = \"{}\"\nsecret = \"s3cret\"\n{extra}\n",
        receiver.url
    )
}

fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

fn delivery_log(server: &TestServer) -> Vec<Value> {
    let (status, page) = server.get("/api/webhooks/deliveries");
    assert_eq!(status, 200, "{page}");
    page["deliveries"].as_array().cloned().unwrap_or_default()
}

fn delivery(server: &TestServer, id: &str) -> Value {
    delivery_log(server)
        .into_iter()
        .find(|d| d["id"] == id)
        .unwrap_or_else(|| panic!("delivery {id} is not in the log"))
}

#[test]
fn every_event_arrives_signed_with_its_type_and_delivery_id() {
    let receiver = Receiver::start(|_| Answer::Status(200));
    let server = TestServer::start(&webhook_config(&receiver, "events = [\"work:*\"]"));
    let item = server.create(json!({"title": "Build login page"}));
    let got = receiver.wait("the work:added delivery", |r| !r.is_empty());
    let hook = &got[0];
    assert_eq!(hook.header("X-Flightdeck-Event"), "work:added");
    assert_eq!(
        hook.header("X-Hub-Signature-256"),
        signature("s3cret", &hook.body),
        "the signature is an HMAC-SHA256 of the exact body with the secret"
    );
    assert_ne!(
        hook.header("X-Hub-Signature-256"),
        signature("other", &hook.body)
    );
    let event = hook.json();
    assert_eq!(event["type"], "work:added");
    assert_eq!(event["data"]["item"]["id"], item["id"]);
    assert_eq!(hook.delivery(), format!("{}-ops", event["seq"]));

    let logged = server.wait_for("the delivery to be logged as delivered", WAIT, || {
        let d = delivery(&server, hook.delivery());
        (d["status"] == "delivered").then_some(d)
    });
    assert_eq!(logged["attempts"], 1);
    assert_eq!(logged["lastResponseCode"], 200);
    assert_eq!(
        logged["target"],
        receiver.url.split("/hook").next().unwrap()
    );
    assert!(
        !logged.to_string().contains("secret-token-part"),
        "the log shows no token part of the URL: {logged}"
    );
}

#[test]
fn a_failing_receiver_gets_the_same_delivery_again_and_items_stay_in_order() {
    let healthy = Arc::new(AtomicBool::new(false));
    let flag = healthy.clone();
    let receiver = Receiver::start(move |_| match flag.load(Ordering::SeqCst) {
        true => Answer::Status(200),
        false => Answer::Status(500),
    });
    let server = TestServer::start(&webhook_config(&receiver, ""));
    let item = server.create(json!({"title": "Build login page"}));
    let id = item["id"].as_str().unwrap();
    assert_eq!(server.move_to(id, "planning").0, 200);
    assert_eq!(server.move_to(id, "ready").0, 200);

    let failed = receiver.wait("two failed attempts", |r| r.len() >= 2);
    assert_eq!(
        failed[0].delivery(),
        failed[1].delivery(),
        "a retry carries the same delivery id"
    );
    assert_eq!(failed[0].body, failed[1].body);
    let first = failed[0].delivery().to_string();
    let pending = server.wait_for("the failure to be logged", WAIT, || {
        let d = delivery(&server, &first);
        (d["attempts"].as_u64() >= Some(1)).then_some(d)
    });
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["lastResponseCode"], 500);
    assert!(
        pending["lastError"]
            .as_str()
            .unwrap()
            .contains("answered 500"),
        "{pending}"
    );
    assert!(pending["nextTryAt"].is_string(), "{pending}");

    healthy.store(true, Ordering::SeqCst);
    let all = receiver.wait("three events delivered", |r| {
        Receiver::delivered(r).len() >= 3
    });
    let seqs: Vec<u64> = all
        .iter()
        .map(|r| r.json()["seq"].as_u64().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] <= w[1]),
        "no later event of the item was sent before an earlier one was delivered: {seqs:?}"
    );
    let delivered: Vec<String> = Receiver::delivered(&all)
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        delivered,
        ["work:added", "work:status_changed", "work:status_changed"]
    );
    let logged = server.wait_for("the first delivery to be logged as delivered", WAIT, || {
        let d = delivery(&server, &first);
        (d["status"] == "delivered").then_some(d)
    });
    assert!(logged["attempts"].as_u64().unwrap() >= 3, "{logged}");
}

#[test]
fn a_receiver_that_never_answers_is_retried_while_the_server_stays_responsive() {
    let receiver = Receiver::start(|n| match n {
        0 => Answer::Silence,
        _ => Answer::Status(204),
    });
    let server = TestServer::start(&webhook_config(&receiver, ""));
    server.create(json!({"title": "Build login page"}));
    let silent = receiver.wait("the first attempt", |r| !r.is_empty());
    // The attempt is still waiting for its answer: the API answers all the same.
    let (status, _) = server.get("/api/status");
    assert_eq!(status, 200);
    let all = receiver.wait("the retry", |r| !Receiver::delivered(r).is_empty());
    assert_eq!(all[1].delivery(), silent[0].delivery());
    let logged = server.wait_for("the delivery to be logged", WAIT, || {
        let d = delivery(&server, silent[0].delivery());
        (d["status"] == "delivered").then_some(d)
    });
    assert_eq!(logged["attempts"], 2);
}

#[test]
fn a_kill_during_delivery_loses_no_acknowledged_event() {
    // The first request is left unanswered: it is in flight when the server dies.
    let receiver = Receiver::start(|n| match n {
        0 => Answer::Silence,
        _ => Answer::Status(200),
    });
    let config = webhook_config(&receiver, "events = [\"work:added\"]")
        .replace("timeout_ms = 500", "timeout_ms = 60000");
    let mut server = TestServer::start(&config);
    let ids: Vec<String> = (0..5)
        .map(|n| {
            let item = server.create(json!({"title": format!("item {n}")}));
            item["id"].as_str().unwrap().to_string()
        })
        .collect();
    let in_flight = receiver.wait("a delivery in flight", |r| !r.is_empty());
    server.kill_for_status();
    server.boot();

    let all = receiver.wait("every acknowledged event delivered", |r| {
        let delivered = Receiver::delivered(r);
        ids.iter().all(|id| {
            delivered
                .iter()
                .any(|d| d.json()["data"]["item"]["id"] == id.as_str())
        })
    });
    let mut bodies: HashMap<String, Vec<u8>> = HashMap::new();
    for request in &all {
        let body = bodies
            .entry(request.delivery().to_string())
            .or_insert_with(|| request.body.clone());
        assert_eq!(
            *body, request.body,
            "a duplicate carries the same delivery id and the same body"
        );
    }
    assert_eq!(bodies.len(), 5, "one delivery id per event");
    let repeats = all
        .iter()
        .filter(|r| r.delivery() == in_flight[0].delivery())
        .count();
    assert!(repeats >= 2, "the interrupted delivery was sent again");
}

#[test]
fn redelivery_sends_the_same_delivery_id_again() {
    let receiver = Receiver::start(|_| Answer::Status(200));
    let server = TestServer::start(&webhook_config(&receiver, ""));
    server.create(json!({"title": "Build login page"}));
    let first = receiver.wait("the delivery", |r| !r.is_empty())[0].clone();
    let id = first.delivery().to_string();
    server.wait_for("the delivery to be logged", WAIT, || {
        (delivery(&server, &id)["status"] == "delivered").then_some(())
    });

    let (status, answer) = server.post(
        &format!("/api/webhooks/deliveries/{id}/redeliver"),
        json!({}),
    );
    assert_eq!(status, 202, "{answer}");
    let again = receiver.wait("the redelivery", |r| r.len() >= 2);
    assert_eq!(again[1].delivery(), id);
    assert_eq!(again[1].body, first.body);

    let (status, answer) = server.post("/api/webhooks/deliveries/999999-ops/redeliver", json!({}));
    assert_eq!(status, 404, "{answer}");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("webhook delivery"));
    let (status, answer) = server.get("/api/webhooks/deliveries?before=nonsense");
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["field"], "before");
}

#[test]
fn slack_gets_one_readable_line_per_thing_a_person_acts_on() {
    let receiver = Receiver::start(|_| Answer::Status(200));
    let config = webhook_config(&receiver, "format = \"slack\"")
        .replace("auto_dispatch = false", "auto_dispatch = true");
    let server = TestServer::start(&config);
    let item = server.create(json!({
        "title": "Build login page",
        "status": "ready",
        "acceptanceCriteria": ["a form", "a submit button", "an error message"],
    }));
    let id = item["id"].as_str().unwrap();
    server.wait_status(id, "review", WAIT);
    let got = receiver.wait("the review line", |r| !r.is_empty());
    let (_, sessions) = server.get(&format!("/api/agents?item={id}"));
    let tokens = sessions[0]["tokensUsed"].as_u64().unwrap();
    assert!(tokens >= 1000, "the demo agent reports its tokens");
    let with_commas = format!("{},{:03}", tokens / 1000, tokens % 1000);
    assert_eq!(
        got[0].json(),
        json!({"text": format!("Review: Build login page, 3 of 3 criteria met, {with_commas} tokens")})
    );

    let (status, _) = server.post(
        &format!("/api/items/{id}/move"),
        json!({"status": "blocked", "reason": "the agent could not log in"}),
    );
    assert_eq!(status, 200);
    let got = receiver.wait("the blocked line", |r| r.len() >= 2);
    assert_eq!(
        got[1].json(),
        json!({"text": "Blocked: Build login page: the agent could not log in"})
    );
    assert_eq!(
        got.len(),
        2,
        "no line for events no person acts on: {got:#?}"
    );
}
