//! `flightdeck serve`: builds the whole application from a [`Config`] and runs it until a
//! signal. Start-up opens the store, recovers what a dead previous run left in flight (and
//! kills any of its agents still alive), then starts the Monitor, QueueManager, Dispatcher and
//! the HTTP server. On SIGTERM/SIGINT it stops taking requests, stops dispatching, gives
//! running agents `pool.shutdown_grace_secs` to finish, then stops them (their items are
//! recovered at the next start); a second signal stops at once.
//!
//! Start-up also settles the API token (see `token.rs`): with none configured it uses the
//! generated one and prints the board's sign-in URL on stdout, right after the line saying
//! where the server listens.

use crate::api::{self, AppState, HostPolicy, TokenGuard};
use crate::config::{Config, SandboxMode};
use crate::dispatch::api_fence::ApiFence;
use crate::dispatch::{process::Tracking, settings, Dispatcher, ShutdownPool};
use crate::monitor::Monitor;
use crate::queue::{self, QueuePolicy, Recover, Store};
use crate::sandbox::{self, PortRulesFd};
use crate::token::{self, TokenSetting};
use crate::webhooks::Webhooks;
use actix::Actor;
use actix_web::{middleware, web, App, HttpServer};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The listening socket's backlog (actix's own default).
const LISTEN_BACKLOG: libc::c_int = 2048;

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
    #[error("{0}")]
    Token(#[from] token::TokenError),
    #[error("{0}")]
    SandboxRequired(#[from] settings::SandboxRequired),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Where a browser on this machine reaches a server bound to `bound`: a wildcard bind is
/// reached over loopback.
fn reachable(bound: SocketAddr) -> SocketAddr {
    match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), bound.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), bound.port())
        }
        _ => bound,
    }
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

    let setting = TokenSetting::from_config(&config.server.token);
    let api_token = match &setting {
        TokenSetting::Generated => {
            let (token, created) = token::load_or_create(&data_dir)?;
            if created {
                log::info!(
                    "generated the API token in {}",
                    token::path_in(&data_dir).display()
                );
            }
            Some(token)
        }
        TokenSetting::Fixed(token) => Some(token.clone()),
        TokenSetting::Open => {
            let reach = if addr.ip().is_loopback() {
                "every process on this machine, agents included,".to_string()
            } else {
                format!("anyone who can reach {addr}")
            };
            log::warn!(
                "!!! server.token = \"none\": the API has NO token: {reach} can read and change the queue and run agents. Leave server.token empty for a generated token. !!!"
            );
            None
        }
    };

    let sandboxed = settings::sandbox_enforced(&config, &exe)?;
    if config.agent.sandbox == SandboxMode::Auto && !sandboxed {
        log::warn!(
            "this kernel does not enforce Landlock: agents run without a sandbox (GET /api/status says \"sandbox\": \"none\")"
        );
    }

    crate::metrics::prepare(config.agent.preset.as_str());
    let tracking = Tracking::detect();
    log::info!(
        "agents: Landlock ABI {}{}, processes tracked by {}",
        sandbox::kernel_abi(),
        if sandboxed { "" } else { " (not used)" },
        tracking.describe()
    );

    let webhooks = Webhooks::from_config(&config.webhooks, &config.webhook_delivery)?;
    let mut store = Store::open(&data_dir.join("flightdeck.redb")).map_err(ServeError::Store)?;
    store.set_outbox(webhooks.outbox());
    let last_seq = store.last_seq();
    let recent = store
        .recent_events(crate::monitor::REPLAY_WINDOW, crate::monitor::REPLAY_BYTES)
        .map_err(ServeError::Store)?;
    let monitor = Monitor::new(last_seq, recent).start();
    let policy = QueuePolicy {
        review: config.queue.review,
        max_attempts: config.pool.max_attempts,
        retry_backoff_secs: config.pool.retry_backoff_secs,
        item_tokens: config.budgets.item_tokens,
        price: config.budgets.prices.of(config.agent.preset),
        lease_secs: config.runners.lease_secs,
    };
    let reader = queue::ReadPool::start(store.reader())?;
    let runner_tokens = store
        .read(|snap| snap.runner_tokens())
        .map_err(ServeError::Store)?;
    let runner_tokens = web::Data::new(crate::runners::tokens::RunnerTokens::load(&runner_tokens));
    let runner_settings =
        web::Data::new(crate::runners::RunnerSettings::from_config(&config.runners));
    let (queue, queue_system) = queue::start(store, policy, monitor.clone())?;
    webhooks.start(queue.clone()).await?;

    let interrupted = queue
        .send(Recover)
        .await
        .map_err(|e| ServeError::Store(queue::QueueError::Storage(e.to_string())))?
        .map_err(ServeError::Store)?;
    if !interrupted.is_empty() {
        let ids: Vec<String> = interrupted.iter().map(|s| s.id.clone()).collect();
        let killed = tracking.kill_leftovers(&ids);
        log::warn!(
            "recovered {} sessions interrupted by the last stop ({killed} leftover processes killed)",
            ids.len()
        );
    }

    // Bound now, so the sandbox knows the port agents may not connect to (even with port 0).
    let listener =
        std::net::TcpListener::bind(addr).map_err(|e| ServeError::Bind(addr.to_string(), e))?;
    // SAFETY: listen(2) on the socket just bound; std's backlog (128) is raised to actix's.
    unsafe {
        libc::listen(listener.as_raw_fd(), LISTEN_BACKLOG);
    }
    let port = listener.local_addr()?.port();

    let port_rules = match sandboxed {
        true => PortRulesFd::build_in_background(port)?,
        false => PortRulesFd::default(),
    };
    let fence = match (sandboxed, &tracking) {
        (true, Tracking::Cgroups(root)) => match ApiFence::detect(root) {
            Ok(fence) => {
                log::info!("agents are kept off the API by their sessions' cgroups: the server refuses connections made from one");
                Some(fence)
            }
            Err(why) => {
                log::info!("agents are kept off the API by Landlock port rules: the server cannot tell which cgroup made a connection ({why})");
                None
            }
        },
        _ => None,
    };
    let plan = sandboxed.then(|| {
        let mut plan = settings::sandbox_plan(&config, &data_dir, port_rules);
        plan.api_fenced_by_cgroup = fence.is_some();
        plan
    });
    let desk = crate::dispatch::acp::Desk::default();
    let settings = settings::agent_settings(&config, &data_dir, &exe, plan, tracking, desk.clone());
    let dispatcher = Dispatcher::new(&config, settings, queue.clone(), monitor.clone()).start();
    queue::LeaseSweeper {
        queue: queue.clone(),
    }
    .start();

    let state = web::Data::new(AppState {
        queue,
        reader,
        dispatcher: dispatcher.clone(),
        monitor,
        data_dir,
        started: Instant::now(),
        sandbox: if sandboxed { "landlock" } else { "none" },
        approval: crate::dispatch::approval::Approval::from_config(&config.workspace),
        desk,
        preset: config.agent.preset,
        websocket_silence: std::time::Duration::from_secs(config.server.websocket_silence_secs),
    });
    let guard = web::Data::new(TokenGuard::new(api_token.clone()));
    let hosts = web::Data::new(HostPolicy::new(&config.server.allowed_hosts));
    let metrics_access = web::Data::new(api::MetricsAccess {
        public: config.metrics.public,
    });

    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(guard.clone())
            .app_data(runner_tokens.clone())
            .app_data(runner_settings.clone())
            .app_data(web::PayloadConfig::new(api::MAX_BODY))
            .app_data(hosts.clone())
            .app_data(metrics_access.clone())
            .wrap(middleware::from_fn(api::check_host))
            .wrap(
                middleware::DefaultHeaders::new()
                    .add((
                        "Content-Security-Policy",
                        "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'",
                    ))
                    .add(("X-Content-Type-Options", "nosniff")),
            )
            .wrap(middleware::from_fn(api::fence::refuse_agents))
            .wrap(middleware::from_fn(crate::logging::access_log))
            .configure(api::routes)
            .configure(crate::static_files::routes)
    })
    .on_connect(move |conn, ext| {
        if let Some(fence) = &fence {
            api::fence::on_connect(fence, conn, ext);
        }
    })
    .shutdown_timeout(2)
    .listen(listener)
    .map_err(|e| ServeError::Bind(addr.to_string(), e))?;
    // The server's own signal handlers are installed only once it runs: a SIGTERM sent as soon
    // as the listening line is out would otherwise end the process at once, leaving the store
    // open, and the next start repairs it (in time proportional to its size). These handlers
    // are in place before the line is printed and stop the server the usual, clean way.
    let early_stop = early_stop_signals()?;
    let addrs = server.addrs();
    let server = server.run();
    actix_rt::spawn(stop_on(early_stop, server.handle()));
    for bound in &addrs {
        println!("flightdeck listening on http://{bound}");
    }
    if let (TokenSetting::Generated, Some(token), Some(bound)) =
        (&setting, &api_token, addrs.first())
    {
        println!("sign in: http://{}/#token={token}", reachable(*bound));
    }
    std::io::stdout().flush()?;
    server.await?;

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

/// SIGTERM and SIGINT, listened for from now on (see [`stop_on`]).
fn early_stop_signals() -> std::io::Result<(
    actix_rt::signal::unix::Signal,
    actix_rt::signal::unix::Signal,
)> {
    use actix_rt::signal::unix::{signal, SignalKind};
    Ok((
        signal(SignalKind::terminate())?,
        signal(SignalKind::interrupt())?,
    ))
}

/// Stops the HTTP server gracefully at the first SIGTERM or SIGINT (one that came before its
/// own handlers were installed included).
async fn stop_on(
    (mut term, mut int): (
        actix_rt::signal::unix::Signal,
        actix_rt::signal::unix::Signal,
    ),
    server: actix_web::dev::ServerHandle,
) {
    futures_util::future::select(Box::pin(term.recv()), Box::pin(int.recv())).await;
    server.stop(true).await;
}
