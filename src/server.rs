//! `flightdeck serve`: builds the whole application from a [`Config`] and runs it until a
//! signal. Start-up opens the store, recovers what a dead previous run left in flight (and
//! kills any of its agents still alive), then starts the Monitor, QueueManager, Dispatcher and
//! the HTTP server. On SIGTERM/SIGINT it stops taking requests, stops dispatching, gives
//! running agents `pool.shutdown_grace_secs` to finish, then stops them (their items are
//! recovered at the next start); a second signal stops at once.

use crate::api::{self, AppState, TokenGuard};
use crate::config::{Config, Preset, SandboxMode};
use crate::dispatch::{process, AgentSettings, Dispatcher, ShutdownPool};
use crate::monitor::Monitor;
use crate::queue::{self, QueuePolicy, Recover, Store};
use crate::sandbox::{self, SandboxPlan};
use actix::Actor;
use actix_web::{middleware, web, App, HttpServer};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("data dir {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error("cannot open the store: {0}")]
    Store(queue::QueueError),
    #[error("cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("agent.sandbox = \"required\", but this kernel does not enforce Landlock")]
    SandboxRequired,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The argv of the configured agent, from its preset when `agent.command` is empty.
fn agent_command(config: &Config, exe: &std::path::Path) -> Vec<String> {
    if !config.agent.command.is_empty() {
        return config.agent.command.clone();
    }
    let prompt = "Read AGENTS.md in the current directory and do the work it describes. Put deliverables in the artifacts folder it names.";
    let list: Vec<&str> = match config.agent.preset {
        Preset::Demo | Preset::Lines => {
            return vec![
                exe.display().to_string(),
                "demo-agent".into(),
                "{prompt_file}".into(),
            ]
        }
        Preset::Claude => vec![
            "claude",
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            prompt,
        ],
        Preset::Codex => vec!["codex", "exec", "--json", "--full-auto", prompt],
    };
    list.into_iter().map(str::to_string).collect()
}

pub async fn serve(config: Config) -> Result<(), ServeError> {
    let data_dir = &config.server.data_dir;
    std::fs::create_dir_all(config.agents_dir())
        .map_err(|e| ServeError::DataDir(data_dir.clone(), e))?;
    let data_dir = data_dir
        .canonicalize()
        .map_err(|e| ServeError::DataDir(data_dir.clone(), e))?;
    let addr = config.bind_addr()?;
    let exe = std::env::current_exe()?;

    let sandboxed = config.agent.sandbox != SandboxMode::Off && sandbox::probe(&exe);
    match (config.agent.sandbox, sandboxed) {
        (SandboxMode::Required, false) => return Err(ServeError::SandboxRequired),
        (SandboxMode::Auto, false) => log::warn!(
            "this kernel does not enforce Landlock: agents run without a sandbox (GET /api/status says \"sandbox\": \"none\")"
        ),
        _ => {}
    }

    let store = Store::open(&data_dir.join("flightdeck.redb")).map_err(ServeError::Store)?;
    let last_seq = store.last_seq();
    let recent = store
        .recent_events(crate::monitor::REPLAY_WINDOW, crate::monitor::REPLAY_BYTES)
        .map_err(ServeError::Store)?;
    let monitor = Monitor::new(last_seq, recent).start();
    let policy = QueuePolicy {
        review: config.queue.review,
        max_attempts: config.pool.max_attempts,
        retry_backoff_secs: config.pool.retry_backoff_secs,
    };
    let (queue, queue_system) = queue::start(store, policy, monitor.clone())?;

    let interrupted = queue
        .send(Recover)
        .await
        .map_err(|e| ServeError::Store(queue::QueueError::Storage(e.to_string())))?
        .map_err(ServeError::Store)?;
    if !interrupted.is_empty() {
        let ids: Vec<String> = interrupted.iter().map(|s| s.id.clone()).collect();
        let killed = process::kill_leftovers(&ids);
        log::warn!(
            "recovered {} sessions interrupted by the last stop ({killed} leftover processes killed)",
            ids.len()
        );
    }

    let command = agent_command(&config, &exe);
    let plan = sandboxed.then(|| {
        let mut denied = vec![data_dir.clone()];
        if let Some(path) = config.path.as_ref().and_then(|p| p.canonicalize().ok()) {
            denied.push(path);
        }
        let mut writable = vec![PathBuf::from("/dev")];
        if !config.workspace.git_repo.is_empty() {
            // A worktree's commits land in the repository's own .git folder.
            writable.push(PathBuf::from(&config.workspace.git_repo).join(".git"));
        }
        SandboxPlan { writable, denied }
    });
    let settings = AgentSettings {
        preset: config.agent.preset,
        command,
        verify: config.agent.verify.clone(),
        timeout: Duration::from_secs(config.pool.timeout_secs),
        idle_timeout: Duration::from_secs(config.pool.idle_timeout_secs),
        data_dir: data_dir.clone(),
        git_repo: (!config.workspace.git_repo.is_empty())
            .then(|| PathBuf::from(&config.workspace.git_repo)),
        sandbox: plan,
        exe: exe.clone(),
    };
    let dispatcher = Dispatcher::new(&config, settings, queue.clone(), monitor.clone()).start();

    let state = web::Data::new(AppState {
        queue,
        dispatcher: dispatcher.clone(),
        monitor,
        data_dir,
        started: Instant::now(),
        sandbox: if sandboxed { "landlock" } else { "none" },
    });
    let guard = web::Data::new(TokenGuard {
        token: config.server.token.clone(),
    });
    if config.server.token.is_empty() && !addr.ip().is_loopback() {
        log::warn!(
            "!!! listening on {addr} with NO API token: anyone who can reach this address can run agents on this machine. Set server.token (or FLIGHTDECK_TOKEN). !!!"
        );
    }

    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(guard.clone())
            .app_data(web::PayloadConfig::new(api::MAX_BODY))
            .wrap(middleware::from_fn(api::guard))
            .wrap(
                middleware::DefaultHeaders::new()
                    .add((
                        "Content-Security-Policy",
                        "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'",
                    ))
                    .add(("X-Content-Type-Options", "nosniff")),
            )
            .wrap(middleware::Logger::new("%r %s %Dms").log_target("flightdeck::http"))
            .configure(api::routes)
            .configure(crate::static_files::routes)
    })
    .shutdown_timeout(2)
    .bind(addr)
    .map_err(|e| ServeError::Bind(addr.to_string(), e))?;
    for bound in server.addrs() {
        println!("flightdeck listening on http://{bound}");
    }
    std::io::stdout().flush()?;
    server.run().await?;

    log::info!("stopping: no new agents start");
    let grace = Duration::from_secs(config.pool.shutdown_grace_secs);
    let drain = dispatcher.send(ShutdownPool { grace });
    let second_signal = async {
        if let Ok(mut term) =
            actix_rt::signal::unix::signal(actix_rt::signal::unix::SignalKind::terminate())
        {
            futures_util::future::select(
                Box::pin(term.recv()),
                Box::pin(actix_rt::signal::ctrl_c()),
            )
            .await;
        } else {
            let _ = actix_rt::signal::ctrl_c().await;
        }
    };
    match futures_util::future::select(Box::pin(drain), Box::pin(second_signal)).await {
        futures_util::future::Either::Left(_) => log::info!("stopped"),
        futures_util::future::Either::Right(_) => {
            log::warn!("second signal: stopping at once");
        }
    }
    queue_system.stop();
    Ok(())
}
