//! Crash safety: concurrent writers, SIGKILL at a random moment, several times in a row, on the
//! same data dir. Every write acknowledged before the kill is there after it, nothing is half
//! written, `blocks` mirrors `blockedBy`, nothing stays in flight (an interrupted claim is back
//! in ready, saying it was interrupted), and `seq` never repeats. The kill times come from a
//! seed that the test prints; `FLIGHTDECK_CRASH_SEED=<seed>` replays them.
//! Also: SIGTERM lets a running agent finish within the grace period, then exits cleanly; and
//! a store file that is not a store (empty, garbage, truncated) is refused at start-up.

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What writers were told succeeded: created ids, and items whose claim was acknowledged.
#[derive(Default)]
struct Acknowledged {
    created: HashSet<String>,
    claimed: HashSet<String>,
    completed: HashSet<String>,
    /// Claims of this round left in flight on purpose: the kill interrupts each of them.
    kept: HashSet<String>,
}

fn writer(s_url: &str, token: &str, w: usize, stop: &AtomicBool, ack: &Mutex<Acknowledged>) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    let bearer = format!("Bearer {token}");
    let post = |path: &str| {
        agent
            .post(&format!("{s_url}{path}"))
            .set("Authorization", &bearer)
    };
    let mut last: Option<String> = None;
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let mut body = json!({"title": format!("w{w} #{i}"), "status": "ready"});
        if let Some(prev) = &last {
            if i % 3 == 0 {
                body["blockedBy"] = json!([prev]);
            }
        }
        match post("/api/items").send_json(body) {
            Ok(r) if r.status() == 201 => {
                let v: Value = r.into_json().unwrap();
                let id = v["id"].as_str().unwrap().to_string();
                ack.lock().unwrap().created.insert(id.clone());
                last = Some(id);
            }
            _ => break,
        }
        if i % 2 == 0 {
            // Every fourth item stays claimed: in flight when the kill comes.
            let keep_in_flight = i % 4 == 0;
            let claim = post("/api/claim")
                .send_json(json!({"agentId": format!("w{w}"), "sessionKey": format!("k{w}-{i}")}));
            if let Ok(r) = claim {
                if r.status() == 200 {
                    let v: Value = r.into_json().unwrap();
                    let id = v["item"]["id"].as_str().unwrap().to_string();
                    let mut acked = ack.lock().unwrap();
                    acked.claimed.insert(id.clone());
                    if keep_in_flight {
                        acked.kept.insert(id);
                        continue;
                    }
                    drop(acked);
                    let done = post(&format!("/api/items/{id}/complete")).send_json(json!({}));
                    if matches!(done, Ok(ref r) if r.status() == 200) {
                        ack.lock().unwrap().completed.insert(id);
                    }
                }
            }
        }
    }
}

fn check_invariants(s: &TestServer, ack: &Acknowledged, last_seq: &mut u64) {
    let (status, items) = s.get("/api/items");
    assert_eq!(status, 200);
    let items: HashMap<String, Value> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].as_str().unwrap().to_string(), i.clone()))
        .collect();
    for id in &ack.created {
        assert!(items.contains_key(id), "acknowledged item {id} lost");
    }
    for id in &ack.completed {
        let st = items[id]["status"].as_str().unwrap();
        assert!(st == "review", "acknowledged completion of {id} lost: {st}");
    }
    // A claim whose completion was not acknowledged was interrupted by a kill: after the
    // restart it is claimable again (or blocked, its attempts used up), saying why; or its
    // completion did commit and only the answer was lost. A claim left in flight on purpose
    // has no such excuse.
    for id in ack.claimed.difference(&ack.completed) {
        let item = &items[id];
        let reason = item["statusReason"].as_str().unwrap_or("");
        match item["status"].as_str().unwrap() {
            "ready" | "blocked" => assert!(
                reason.contains("interrupted"),
                "interrupted claim {id} has no reason saying so: {item}"
            ),
            "review" if !ack.kept.contains(id) => {}
            other => panic!("interrupted claim {id} is {other}: {item}"),
        }
    }
    println!(
        "{} claims interrupted in flight are back in ready or blocked, with a reason",
        ack.kept.len()
    );
    for (id, item) in &items {
        assert_ne!(item["status"], "in_flight", "{id} left in flight");
        for b in item["blockedBy"].as_array().unwrap() {
            let blocker = &items[b.as_str().unwrap()];
            assert!(
                blocker["blocks"].as_array().unwrap().contains(&json!(id)),
                "blocks mirrors blockedBy"
            );
        }
        for d in item["blocks"].as_array().unwrap() {
            let dependent = &items[d.as_str().unwrap()];
            assert!(dependent["blockedBy"]
                .as_array()
                .unwrap()
                .contains(&json!(id)));
        }
    }
    let events = s.events_since(0);
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "seq increases by one"
    );
    let newest = *seqs.last().unwrap_or(&0);
    assert!(
        newest >= *last_seq,
        "seq never goes backwards ({newest} < {last_seq})"
    );
    *last_seq = newest;
}

/// Kill times: a seed from the kernel's random source (or `FLIGHTDECK_CRASH_SEED`), printed
/// so that a failing run can be replayed, stretched by splitmix64.
struct KillTimes(u64);

impl KillTimes {
    fn seeded() -> KillTimes {
        let seed = match std::env::var("FLIGHTDECK_CRASH_SEED") {
            Ok(text) => text
                .trim()
                .parse()
                .expect("FLIGHTDECK_CRASH_SEED is a number"),
            Err(_) => {
                let mut bytes = [0u8; 8];
                let mut random = std::fs::File::open("/dev/urandom").expect("open /dev/urandom");
                std::io::Read::read_exact(&mut random, &mut bytes).expect("read /dev/urandom");
                u64::from_le_bytes(bytes)
            }
        };
        println!("crash seed {seed} (FLIGHTDECK_CRASH_SEED={seed} replays these kill times)");
        KillTimes(seed)
    }

    /// The next moment to kill at: 150 to 650 ms after the writers start.
    fn next(&mut self) -> Duration {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Duration::from_millis(150 + z % 501)
    }
}

#[test]
fn sigkill_under_concurrent_writes_loses_nothing_acknowledged() {
    let mut s = TestServer::start("[pool]\nsize = 0\n");
    let ack = Mutex::new(Acknowledged::default());
    let mut last_seq = 0;
    let mut kill_times = KillTimes::seeded();
    for round in 0..4 {
        ack.lock().unwrap().kept.clear();
        let stop = AtomicBool::new(false);
        let url = s.url.clone();
        let token = s.token().unwrap_or_default();
        std::thread::scope(|scope| {
            for w in 0..4 {
                let (url, token, stop, ack) = (&url, &token, &stop, &ack);
                scope.spawn(move || writer(url, token, w, stop, ack));
            }
            let at = kill_times.next();
            println!("round {round}: SIGKILL {} ms in", at.as_millis());
            std::thread::sleep(at);
            // On a slow machine, wait (past the moment drawn) for a claim in flight to kill.
            s.wait_for("a claim left in flight", Duration::from_secs(30), || {
                (!ack.lock().unwrap().kept.is_empty()).then_some(())
            });
            let ended = s.kill_for_status();
            stop.store(true, Ordering::Relaxed);
            assert_eq!(
                ended.signal(),
                Some(libc::SIGKILL),
                "round {round}: the server was running until the SIGKILL ended it ({ended})"
            );
        });
        s.boot();
        let ack = ack.lock().unwrap();
        assert!(!ack.created.is_empty(), "round {round} wrote something");
        check_invariants(&s, &ack, &mut last_seq);
    }
}

#[test]
fn sigterm_gives_running_agents_their_grace_then_stops() {
    let extra = "[pool]\nsize = 1\nshutdown_grace_secs = 20\n[agent]\npreset = \"lines\"\ncommand = [\"/bin/sh\", \"-c\", \"echo working; sleep 1; echo done > \\\"$FLIGHTDECK_WORKSPACE/result.txt\\\"; echo done\"]\n";
    let mut s = TestServer::start(extra);
    let id = s.create_ready("finish me")["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.wait_status(&id, "in_flight", Duration::from_secs(10));
    let started = Instant::now();
    let status = s.terminate();
    assert!(
        status.success(),
        "SIGTERM ends the server cleanly: {status}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "did not wait out the whole grace"
    );
    s.boot();
    let item = s.item(&id);
    assert_eq!(
        item["status"], "review",
        "the agent finished within the grace: {item}"
    );
}

#[test]
fn a_store_file_that_is_not_a_store_is_refused_at_start() {
    let mut s = TestServer::start("[pool]\nsize = 0\n");
    for i in 0..50 {
        s.create(json!({"title": format!("kept {i}"), "description": "x".repeat(4_000)}));
    }
    s.kill();
    let store = s.data_dir().join("flightdeck.redb");
    let whole = std::fs::read(&store).unwrap();
    let cases: [(&str, Vec<u8>); 3] = [
        ("an empty (0-byte) file", Vec::new()),
        (
            "a file that is not a redb store",
            b"not a redb store\n".repeat(100),
        ),
        (
            "a store truncated to half",
            whole[..whole.len() / 2].to_vec(),
        ),
    ];
    for (what, bytes) in cases {
        std::fs::write(&store, &bytes).unwrap();
        let (status, stderr) = serve_until_exit(&s);
        assert!(!status.success(), "started on {what}; stderr: {stderr}");
        assert!(
            stderr.contains(&store.display().to_string()) && stderr.contains(".bad"),
            "the refusal of {what} names the file and the fix: {stderr}"
        );
        assert_eq!(
            std::fs::read(&store).unwrap(),
            bytes,
            "the refusal left {what} as it was"
        );
    }
    // The real store, put back, starts with everything in it.
    std::fs::write(&store, &whole).unwrap();
    s.boot();
    let (_, items) = s.get("/api/items");
    assert_eq!(items.as_array().map(Vec::len), Some(50));
}

/// Runs `flightdeck serve` on the server's config until it exits by itself; returns its exit
/// status and what it printed on stderr. A server that is still running after 20 s started
/// when it should not have: it is killed and the test fails.
fn serve_until_exit(s: &TestServer) -> (std::process::ExitStatus, String) {
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(s.config_path())
        .current_dir(s.dir.path())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start flightdeck");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("flightdeck started on a store file that is not a store");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("stderr");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
