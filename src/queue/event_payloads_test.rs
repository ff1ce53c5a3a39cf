//! The exact JSON text of every event's data, as the board, webhooks, the CLI and runners read
//! it: a run of queue operations through the real store (items, claims, progress, budgets,
//! completions, deletes, runners, approvals and the dispatcher's announcements), each event
//! written as `type data` and compared byte for byte with `event_payloads.golden`. Ids and
//! times vary between runs, so item ids are named (`<A>`, ...), other UUIDs become `<uuid>`
//! and timestamps `<t>`; everything else must match. A change to how payloads are built that
//! changes a byte of what clients receive fails here.

use super::approvals::{person_answered, person_asked, PersonAnswered, PersonAsked};
use super::operations::{self, Completion, QueuePolicy, TokenUsage};
use super::runners::{self, RegisterRunner};
use super::store::{Store, Tx};
use super::writes::{Announce, WriteOp};
use super::QueueError;
use crate::dispatch::acp::{Approval, PermissionOption, ToolCall};
use crate::model::{
    AgentSession, BudgetExceeded, EventData, Labels, NewWorkItem, SharedEvent, Status,
};

const POLICY: QueuePolicy = QueuePolicy {
    review: true,
    max_attempts: 3,
    retry_backoff_secs: 0.0,
    item_tokens: 0,
    price: crate::config::Price {
        input_per_mtok: 3.0,
        output_per_mtok: 15.0,
    },
    lease_secs: 30,
};

struct Run {
    store: Store,
    /// Item ids and the names they are written as.
    names: Vec<(String, String)>,
    lines: Vec<String>,
}

impl Run {
    fn write<T>(&mut self, f: impl FnOnce(&mut Tx) -> Result<T, QueueError>) -> T {
        let (value, events) = self.store.write(f).unwrap();
        self.record(&events);
        value
    }

    fn create(&mut self, name: &str, new: serde_json::Value) -> String {
        let new: NewWorkItem = serde_json::from_value(new).unwrap();
        let item = self.write(|tx| operations::create(tx, new));
        self.names.push((item.id.clone(), format!("<{name}>")));
        item.id
    }

    fn record(&mut self, events: &[SharedEvent]) {
        for e in events {
            let kind = serde_json::to_string(&e.event.kind).unwrap();
            let line = format!("{} {}", kind.trim_matches('"'), e.event.data.get());
            self.lines.push(line);
        }
    }

    /// The events, one `type data` line each, ids named and times hidden.
    fn text(&self) -> String {
        let mut text = self.lines.join("\n") + "\n";
        for (id, name) in &self.names {
            text = text.replace(id.as_str(), name);
        }
        normalize(&text)
    }
}

/// `text` with every quoted UUID written `<uuid>` and every quoted RFC 3339 time `<t>`.
fn normalize(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('"') {
        out.push_str(&rest[..=start]);
        rest = &rest[start + 1..];
        let Some(end) = rest.find('"') else { break };
        let s = &rest[..end];
        let is_uuid = s.len() == 36
            && s.char_indices().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == '-',
                _ => c.is_ascii_hexdigit(),
            });
        let b = s.as_bytes();
        let is_time = s.len() >= 20
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[4] == b'-'
            && b[10] == b'T'
            && s.ends_with('Z');
        if is_uuid {
            out.push_str("<uuid>");
        } else if is_time {
            out.push_str("<t>");
        } else {
            out.push_str(s);
        }
        out.push('"');
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn session(id: &str, item_id: &str, status: &str) -> AgentSession {
    serde_json::from_value(serde_json::json!({
        "id": id, "sessionKey": format!("key-{id}"), "status": status,
        "workspaceDir": "/w", "dataDir": "/d", "currentWorkItemId": item_id,
        "startedAt": "2026-01-01T00:00:00Z", "lastActivityAt": "2026-01-01T00:00:00Z",
        "tokensUsed": 0, "attempt": 1, "workItemId": item_id,
    }))
    .unwrap()
}

#[test]
fn every_event_payload_is_the_exact_json_clients_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("q.redb")).unwrap();
    let mut run = Run {
        store,
        names: Vec::new(),
        lines: Vec::new(),
    };

    // Items: create, edit, move, claim, progress, complete (accepted and not), artifacts.
    let a = run.create(
        "A",
        serde_json::json!({"title": "Build \"login\" page", "description": "d",
            "acceptanceCriteria": ["works"], "priority": "high", "status": "ready"}),
    );
    let b = run.create(
        "B",
        serde_json::json!({"title": "B", "blockedBy": [a], "maxTokens": 500}),
    );
    run.write(|tx| {
        let patch = serde_json::from_value(serde_json::json!({"title": "B2"})).unwrap();
        operations::update(tx, &b, patch)
    });
    run.write(|tx| operations::move_item(tx, &b, Status::Planning, Some("plan it".into())));
    run.write(|tx| operations::claim(tx, "s1", "key-s1", &Labels::default()));
    run.write(|tx| operations::session_started(tx, &session("s1", &a, "working")));
    run.write(|tx| {
        let usage = TokenUsage {
            input: 1000,
            output: 200,
        };
        let lines = ["hello".to_string(), "wörld \u{1b}".to_string()];
        operations::progress(tx, &POLICY, &a, "s1", &lines, usage)
    });
    run.write(|tx| {
        operations::progress(
            tx,
            &POLICY,
            &a,
            "gone",
            &["x".into()],
            TokenUsage::default(),
        )
    });
    run.write(|tx| {
        let work = Completion {
            artifacts: vec![serde_json::from_value(
                serde_json::json!({"type": "link", "path": "https://example.invalid/pr/1"}),
            )
            .unwrap()],
            acceptance: Some(vec![serde_json::from_value(
                serde_json::json!({"criterion": "works", "met": true, "evidence": "ran it"}),
            )
            .unwrap()]),
            summary: Some("done".into()),
            session_key: Some("key-s1".into()),
            unmet: Vec::new(),
            session: Some(session("s1", &a, "working")),
        };
        operations::complete(tx, &POLICY, &a, work)
    });
    let c = run.create(
        "C",
        serde_json::json!({"title": "C", "acceptanceCriteria": ["x"], "status": "ready"}),
    );
    run.write(|tx| operations::claim(tx, "s2", "key-s2", &Labels::default()));
    run.write(|tx| {
        let work = Completion {
            unmet: vec!["verify failed".into()],
            ..Completion::default()
        };
        operations::complete(tx, &POLICY, &c, work)
    });
    run.write(|tx| {
        let link = serde_json::from_value(
            serde_json::json!({"type": "link", "path": "https://example.invalid/2", "description": "more"}),
        )
        .unwrap();
        operations::add_artifacts(tx, &a, vec![link])
    });

    // A budget reached, a session's status change, a delete with a neighbour.
    run.write(|tx| operations::move_item(tx, &b, Status::Ready, None));
    run.write(|tx| operations::move_item(tx, &c, Status::Blocked, Some("later".into())));
    run.write(|tx| operations::move_item(tx, &a, Status::Done, Some("approved".into())));
    run.write(|tx| operations::claim(tx, "s3", "key-s3", &Labels::default()));
    run.write(|tx| operations::session_started(tx, &session("s3", &b, "working")));
    run.write(|tx| {
        let usage = TokenUsage {
            input: 400,
            output: 150,
        };
        operations::progress(tx, &POLICY, &b, "s3", &["spent".into()], usage)
    });
    run.write(|tx| {
        let mut s = tx.session("s3")?.unwrap();
        s.status = crate::model::AgentStatus::Failed;
        operations::session_changed(tx, &POLICY, &s, None)
    });
    run.write(|tx| operations::delete(tx, &b));

    // Runners.
    let register = || RegisterRunner {
        id: "r1".into(),
        name: "gpu-box".into(),
        labels: Labels::parse(&["gpu"]).unwrap(),
        slots: 2,
        version: "0.1.0".into(),
        token_id: None,
    };
    run.write(|tx| runners::register(tx, register()));
    run.write(|tx| runners::drain(tx, "r1"));
    let lapsed = QueuePolicy {
        lease_secs: 0,
        ..POLICY
    };
    run.write(|tx| runners::sweep(tx, &lapsed));
    run.write(|tx| runners::heartbeat(tx, &POLICY, "r1", &[]));
    run.write(|tx| runners::sweep(tx, &lapsed));
    run.write(|tx| runners::register(tx, register()));

    // Approvals, on an item in flight.
    let d = run.create("D", serde_json::json!({"title": "D", "status": "ready"}));
    run.write(|tx| operations::claim(tx, "s4", "key-s4", &Labels::default()));
    let approval = Approval {
        id: "ap1".into(),
        item_id: d.clone(),
        item_title: "D".into(),
        session_id: "s4".into(),
        tool: ToolCall {
            title: "Run cargo test".into(),
            kind: "execute".into(),
            command: Some("cargo test".into()),
            input: None,
            diff: None,
        },
        options: vec![PermissionOption {
            option_id: "allow".into(),
            name: "Allow once".into(),
            kind: "allow_once".into(),
        }],
        requested_at: "2026-01-01T00:00:00Z".parse().unwrap(),
        expires_at: "2026-01-01T00:05:00Z".parse().unwrap(),
    };
    run.write(|tx| person_asked(tx, &PersonAsked { approval }));
    let answer = |option_id: Option<&str>, decided_by: &'static str| PersonAnswered {
        item_id: d.clone(),
        approval_id: "ap1".into(),
        option_id: option_id.map(String::from),
        message: "allowed".into(),
        still_waiting: false,
        decided_by,
    };
    run.write(|tx| person_answered(tx, &answer(Some("allow"), "person")));
    run.write(|tx| person_answered(tx, &answer(None, "policy")));

    // The dispatcher's announcements.
    run.write(|tx| {
        let data = EventData::PoolResized { size: 3 };
        Announce { data }.run(tx, &POLICY)
    });
    run.write(|tx| {
        let data = EventData::BudgetExceeded(BudgetExceeded::Daily {
            day: "2026-01-01".into(),
            used: 1200,
            limit: 1000,
        });
        Announce { data }.run(tx, &POLICY)
    });

    let got = run.text();
    let want = include_str!("event_payloads.golden");
    for (n, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(g, w, "event {} differs", n + 1);
    }
    assert_eq!(got, want, "the number of events differs:\n{got}");
}
