//! `flightdeck runner`: the process on another machine. It registers under the stable id in
//! its state dir (the runner config's `server.data_dir`), claims items for its free slots,
//! runs each with the same AgentSession, workspace, sandbox, presets and verify as the
//! server's pool (the `[agent]`, `[workspace]` and `[pool]` settings of its own config file),
//! heartbeats every third of the lease, and stops any session whose lease the server no
//! longer lists. It keeps no queue state: everything it knows of the work comes with the claim.

use super::http::{encode, Http, HttpError};
use super::ready;
use super::reporter::{self, RemoteReporter};
use crate::config::Config;
use crate::dispatch::session::{AgentSession, Cancel, SessionEnded};
use crate::dispatch::{process::Tracking, settings, workspace, AgentSettings};
use crate::model::{AgentSession as SessionRecord, AgentStatus, Labels, WorkItem};
use crate::sandbox::PortRulesFd;
use actix::prelude::*;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `flightdeck runner` options.
pub struct RunnerOptions {
    pub server: String,
    pub token: String,
    pub slots: u32,
    pub labels: Labels,
    pub name: Option<String>,
    pub config: Config,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Registered {
    lease_secs: u64,
    heartbeat_secs: u64,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct LeaseView {
    item_id: String,
    fence: u64,
    session_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Claim {
    item: WorkItem,
    lease: LeaseView,
    session_key: String,
}

#[derive(Deserialize)]
struct Claims {
    claims: Vec<Claim>,
}

#[derive(Deserialize)]
struct HeartbeatAnswer {
    leases: Vec<LeaseView>,
    draining: bool,
}

/// The runner's id: made once and kept in its state dir, so a restart resumes under it.
pub fn stable_id(state_dir: &Path) -> std::io::Result<String> {
    let path = state_dir.join("runner-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
        _ => {
            std::fs::create_dir_all(state_dir)?;
            let id = format!("r-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
            std::fs::write(&path, &id)?;
            Ok(id)
        }
    }
}

/// How agents run here: the server's rules, from this host's own config.
fn agent_settings(config: &Config, data_dir: &Path, exe: &Path) -> Result<AgentSettings, String> {
    let sandboxed = settings::sandbox_enforced(config, exe).map_err(|e| e.to_string())?;
    let plan = sandboxed.then(|| settings::sandbox_plan(config, data_dir, PortRulesFd::default()));
    Ok(settings::agent_settings(
        config,
        data_dir,
        exe,
        plan,
        Tracking::detect(),
        crate::dispatch::acp::Desk::default(),
    ))
}

/// Runs the runner until it is drained and idle, or stopped by a signal.
pub fn run(options: RunnerOptions) -> Result<(), String> {
    let data_dir = &options.config.server.data_dir;
    std::fs::create_dir_all(data_dir.join("agents"))
        .map_err(|e| format!("state dir {}: {e}", data_dir.display()))?;
    let data_dir = data_dir
        .canonicalize()
        .map_err(|e| format!("state dir {}: {e}", data_dir.display()))?;
    let id =
        stable_id(&data_dir).map_err(|e| format!("runner id in {}: {e}", data_dir.display()))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let settings = Arc::new(agent_settings(&options.config, &data_dir, &exe)?);
    let name = options.name.clone().unwrap_or_else(|| id.clone());
    let http = Http::new(&options.server, &options.token);
    let body = json!({
        "id": id, "name": name, "labels": options.labels, "slots": options.slots,
        "version": env!("CARGO_PKG_VERSION"),
    });
    // A readiness record left by an earlier process says nothing about this one.
    ready::clear(&data_dir);
    // The server may not be up yet (or be restarting): wait for it.
    let registered: Registered = loop {
        match http.post("/api/runners/register", &body) {
            Ok(r) => break r,
            Err(HttpError::Transport(e)) => {
                log::warn!("{e}; registering again in 2s");
                std::thread::sleep(Duration::from_secs(2));
            }
            Err(e) => return Err(format!("the server refused to register this runner: {e}")),
        }
    };
    println!(
        "runner {name} ({id}) registered with {}: {} slots, lease {}s",
        options.server, options.slots, registered.lease_secs
    );
    let lease = Duration::from_secs(registered.lease_secs.max(1));
    if let Err(e) = ready::mark(&data_dir, lease) {
        log::warn!("cannot record readiness in {}: {e}", data_dir.display());
    }
    let state_dir = data_dir.clone();
    let system = System::new();
    system.block_on(async move {
        Runner {
            http,
            id,
            slots: options.slots,
            settings,
            data_dir,
            heartbeat: Duration::from_secs(registered.heartbeat_secs.max(1)),
            lease,
            answered_at: Instant::now(),
            running: HashMap::new(),
            claiming: false,
            draining: false,
        }
        .start();
    });
    let ran = system.run().map_err(|e| e.to_string());
    ready::clear(&state_dir);
    ran
}

struct Running {
    addr: Addr<AgentSession>,
    fence: u64,
}

struct Runner {
    http: Http,
    id: String,
    slots: u32,
    settings: Arc<AgentSettings>,
    data_dir: PathBuf,
    heartbeat: Duration,
    /// How long a lease lasts without a heartbeat.
    lease: Duration,
    /// When the server last answered a heartbeat (or the registration).
    answered_at: Instant,
    running: HashMap<String, Running>,
    claiming: bool,
    draining: bool,
}

/// Claims come back from the claiming thread.
#[derive(Message)]
#[rtype(result = "()")]
struct Claimed(Result<Vec<Claim>, String>);

/// A heartbeat's answer, with the items it named: only those can have been lost (an item
/// claimed while the heartbeat was on its way is not in it).
#[derive(Message)]
#[rtype(result = "()")]
struct Beat(Vec<String>, Result<HeartbeatAnswer, String>);

impl Runner {
    fn tick(&mut self, ctx: &mut Context<Self>) {
        let free = self.slots.saturating_sub(self.running.len() as u32);
        if self.claiming || self.draining || free == 0 {
            return;
        }
        self.claiming = true;
        let http = self.http.clone();
        let path = format!("/api/runners/{}/claim", encode(&self.id));
        let addr = ctx.address();
        std::thread::spawn(move || {
            let result = http
                .post::<Claims>(&path, &json!({ "free": free }))
                .map(|c| c.claims)
                .map_err(|e| e.to_string());
            addr.do_send(Claimed(result));
        });
    }

    fn beat(&mut self, ctx: &mut Context<Self>) {
        let http = self.http.clone();
        let path = format!("/api/runners/{}/heartbeat", encode(&self.id));
        let addr = ctx.address();
        let running: Vec<String> = self.running.keys().cloned().collect();
        let body = json!({ "running": running });
        std::thread::spawn(move || {
            let result = http.post::<HeartbeatAnswer>(&path, &body);
            addr.do_send(Beat(running, result.map_err(|e| e.to_string())));
        });
    }

    fn launch(&mut self, ctx: &mut Context<Self>, claim: Claim) {
        let item_id = claim.item.id.clone();
        let session_id = claim.lease.session_id.clone();
        let ws = match workspace::prepare(
            &self.data_dir,
            &session_id,
            &item_id,
            None,
            self.settings.git_repo.as_deref(),
        ) {
            Ok(ws) => ws,
            Err(e) => {
                log::error!("cannot prepare a workspace for {item_id}: {e}");
                let http = self.http.clone();
                let path = format!(
                    "/api/runners/{}/items/{}/fail",
                    encode(&self.id),
                    encode(&item_id)
                );
                let body = json!({"fence": claim.lease.fence, "reason": format!("the runner could not prepare a workspace: {e}"), "verdict": "retry"});
                std::thread::spawn(move || http.post::<Value>(&path, &body));
                return;
            }
        };
        let reporter = RemoteReporter::start(
            self.http.clone(),
            reporter::Lease {
                runner_id: self.id.clone(),
                item_id: item_id.clone(),
                fence: claim.lease.fence,
                data_dir: self.data_dir.clone(),
                log: ws.log.clone(),
            },
        );
        let reporter = match reporter {
            Ok(r) => r,
            Err(e) => {
                log::error!("cannot start reporting for {item_id}: {e}");
                return;
            }
        };
        let now = chrono::Utc::now();
        let record = SessionRecord {
            id: session_id.clone(),
            session_key: claim.session_key,
            status: AgentStatus::Working,
            workspace_dir: ws.workspace.display().to_string(),
            data_dir: ws.root.display().to_string(),
            current_work_item_id: Some(item_id.clone()),
            started_at: now,
            last_activity_at: now,
            tokens_used: 0,
            input_tokens: 0,
            output_tokens: 0,
            attempt: claim.item.attempts,
            work_item_id: item_id.clone(),
            finished_at: None,
            outcome: None,
            pid: None,
        };
        log::info!(
            "running {:?} ({item_id}) under fence {}",
            claim.item.title,
            claim.lease.fence
        );
        let session = AgentSession::new(
            record,
            claim.item,
            ws,
            self.settings.clone(),
            Arc::new(reporter),
            ctx.address().recipient(),
        );
        let addr = session.start();
        self.running.insert(
            item_id,
            Running {
                addr,
                fence: claim.lease.fence,
            },
        );
    }
}

impl Actor for Runner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.tick(ctx);
        ctx.run_interval(Duration::from_millis(500), |act, ctx| act.tick(ctx));
        let every = self.heartbeat;
        ctx.run_interval(every, |act, ctx| act.beat(ctx));
    }
}

impl Handler<Claimed> for Runner {
    type Result = ();

    fn handle(&mut self, m: Claimed, ctx: &mut Context<Self>) {
        self.claiming = false;
        match m.0 {
            Ok(claims) => {
                let got = !claims.is_empty();
                for claim in claims {
                    self.launch(ctx, claim);
                }
                if got {
                    self.tick(ctx);
                }
            }
            Err(e) => log::warn!("claim failed: {e}"),
        }
    }
}

impl Handler<Beat> for Runner {
    type Result = ();

    fn handle(&mut self, m: Beat, _: &mut Context<Self>) {
        let Beat(named, answer) = m;
        match answer {
            Ok(answer) => {
                self.answered_at = Instant::now();
                if let Err(e) = ready::mark(&self.data_dir, self.lease) {
                    log::warn!(
                        "cannot record readiness in {}: {e}",
                        self.data_dir.display()
                    );
                }
                for (item_id, running) in &self.running {
                    if !named.contains(item_id) {
                        continue;
                    }
                    let held = answer
                        .leases
                        .iter()
                        .any(|l| &l.item_id == item_id && l.fence == running.fence);
                    if !held {
                        log::warn!("the lease on {item_id} is gone: stopping its agent");
                        running.addr.do_send(Cancel {
                            reason: "the server no longer leases this item to this runner".into(),
                        });
                    }
                }
                if answer.draining && !self.draining {
                    log::info!(
                        "draining: finishing {} items, taking no more",
                        self.running.len()
                    );
                }
                self.draining = answer.draining;
                if self.draining && self.running.is_empty() {
                    println!("runner drained: nothing runs, stopping");
                    System::current().stop();
                }
            }
            Err(e) => {
                log::warn!("heartbeat failed: {e}");
                if self.answered_at.elapsed() >= self.lease {
                    // The server has taken this runner's items back by now: not ready.
                    ready::clear(&self.data_dir);
                }
            }
        }
    }
}

impl Handler<SessionEnded> for Runner {
    type Result = ();

    fn handle(&mut self, m: SessionEnded, ctx: &mut Context<Self>) {
        self.running.remove(&m.item_id);
        if self.draining && self.running.is_empty() {
            println!("runner drained: nothing runs, stopping");
            System::current().stop();
        }
        self.tick(ctx);
    }
}
