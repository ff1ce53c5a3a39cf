//! The `flightdeck` command: `serve` runs the server; the other commands are HTTP clients of a
//! running server; `demo-agent`, `exec-agent` and `launch-server` are run by the server
//! itself.

use clap::{CommandFactory, Parser, Subcommand};
use flightdeck::cli::{
    for_stderr, item_table, print_item, Client, ClientError, Exit, Output, EXIT_CODES_HELP,
};
use flightdeck::config::Config;
use flightdeck::token::{self, TokenSetting};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc: the queue's writer thread allocates and frees a great deal per item (JSON, redb
/// pages); the system allocator was about a sixth of its time in profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "flightdeck",
    version,
    about = "A self-hosted orchestrator for AI coding agents",
    after_help = EXIT_CODES_HELP
)]
struct Cli {
    /// Config file (default: config/flightdeck.toml when present).
    #[arg(long, global = true, env = "FLIGHTDECK_CONFIG")]
    config: Option<PathBuf>,
    /// Server URL for client commands (default: from the config's server.bind).
    #[arg(long, global = true, env = "FLIGHTDECK_URL")]
    server: Option<String>,
    /// Print text from the server (titles, reasons, agent logs) byte for byte, control
    /// characters included. Without it they show as visible text (`\x1b`) when stdout is a
    /// terminal, so escape sequences an agent wrote cannot act on it; pipes and files always
    /// get the bytes unchanged.
    #[arg(long, global = true)]
    raw: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: queue, agents, board and API.
    Serve,
    /// Check that the configured agent can run here: its CLI and version, a dry start under
    /// the sandbox, its login, Landlock, the data dir and the token file.
    Doctor,
    /// Add a work item.
    Add {
        title: String,
        #[arg(long, short)]
        description: Option<String>,
        #[arg(long, short, default_value = "medium")]
        priority: String,
        #[arg(long, short = 'x', default_value = "m")]
        complexity: String,
        /// An acceptance criterion (repeat for more).
        #[arg(long = "criterion", short = 'c')]
        criteria: Vec<String>,
        /// An item this one waits for (id or unique prefix; repeat for more).
        #[arg(long = "blocked-by", short = 'b')]
        blocked_by: Vec<String>,
        /// Initial status: inbox, planning or ready.
        #[arg(long, short, default_value = "inbox")]
        status: String,
        #[arg(long)]
        json: bool,
    },
    /// List work items.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        priority: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one item.
    Show {
        /// Item id, or a unique prefix of one (4+ characters).
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Move an item to another status.
    Move {
        /// Item id, or a unique prefix of one (4+ characters).
        id: String,
        status: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Start an agent on the next ready item now (one free slot).
    Dispatch {
        #[arg(long)]
        json: bool,
    },
    /// Counts per status, the pool, uptime.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Print an item's agent log (all attempts); --follow keeps printing new output.
    Logs {
        /// Item id, or a unique prefix of one (4+ characters).
        id: String,
        #[arg(long, short)]
        follow: bool,
        /// Print `{"item": ID, "log": TEXT}` instead of the text.
        #[arg(long, conflicts_with = "follow")]
        json: bool,
    },
    /// List the permission requests of running ACP agents that wait for a person.
    Approvals {
        #[arg(long)]
        json: bool,
    },
    /// Answer a permission request: OPTION is an option id or kind (allow_once, reject_once).
    Approve { id: String, option: String },
    /// Send a running ACP agent a message: its next prompt turn.
    Say {
        /// Item id, or a unique prefix of one (4+ characters).
        id: String,
        text: String,
    },
    /// Print a shell completion script: `flightdeck completions bash > /etc/bash_completion.d/flightdeck`.
    Completions {
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Run a runner: register with the server (--server URL), claim work for free slots
    /// under leases, and run it here with this host's [agent] and [workspace] settings (from
    /// --config; its state, a stable runner id included, is kept in that config's data_dir).
    Runner {
        /// A runner token (`flightdeck runner-token create NAME` on the server's host).
        #[arg(long, env = "FLIGHTDECK_RUNNER_TOKEN", hide_env_values = true)]
        token: String,
        /// How many items to run at once.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
        slots: u32,
        /// Labels this host offers (items may require them), comma-separated.
        #[arg(long, value_delimiter = ',')]
        labels: Vec<String>,
        /// What the board calls this runner (default: its id).
        #[arg(long)]
        name: Option<String>,
    },
    /// Exit 0 when the runner keeping its state in --state-dir (default: the config's
    /// data_dir) heard from its server within one lease, 1 otherwise: a readiness probe.
    RunnerReady {
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Make, list and revoke runner tokens (with the admin token).
    RunnerToken {
        #[command(subcommand)]
        action: flightdeck::cli::runners::TokenAction,
    },
    /// The built-in demo agent (run by the server).
    #[command(hide = true)]
    DemoAgent { agents_md: Option<PathBuf> },
    /// Drive an ACP adapter for one session (run by the server, as the session's agent).
    #[command(hide = true)]
    AcpBridge {
        #[arg(long)]
        prompt_file: PathBuf,
        #[arg(long)]
        workspace: PathBuf,
        #[arg(long)]
        artifacts: PathBuf,
        /// An ACP session to resume with session/load, when the adapter can.
        #[arg(long)]
        resume: Option<String>,
        /// The adapter's argv.
        #[arg(last = true, required = true)]
        adapter: Vec<String>,
    },
    /// Start an agent: tie it to the server, track it, sandbox it, exec it (run by the server).
    #[command(hide = true)]
    ExecAgent {
        /// The server's pid: the agent dies with it.
        #[arg(long)]
        parent: Option<u32>,
        /// Join this cgroup (the session's) before running the agent.
        #[arg(long, conflicts_with = "reaper")]
        cgroup: Option<PathBuf>,
        /// Stay as the subreaper of everything the agent starts, and kill it all at the end.
        #[arg(long)]
        reaper: bool,
        /// Apply the Landlock sandbox described by --rw, --deny and --port-rules-fd.
        #[arg(long)]
        sandbox: bool,
        #[arg(long)]
        rw: Vec<PathBuf>,
        #[arg(long)]
        deny: Vec<PathBuf>,
        /// An inherited Landlock ruleset that forbids connecting to the server's port.
        #[arg(long)]
        port_rules_fd: Option<i32>,
        /// Only check that the kernel enforces Landlock.
        #[arg(long)]
        probe: bool,
        #[arg(last = true)]
        argv: Vec<String>,
    },
    /// Start agents for the server, one fork each (run by the server, once).
    #[command(hide = true)]
    LaunchServer {
        /// The server's pid: the launch server dies with it.
        #[arg(long)]
        parent: u32,
    },
}

/// The shells `flightdeck completions` writes scripts for.
#[derive(Clone, Copy, clap::ValueEnum)]
enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server's logger waits for its config (`log.format`); other commands log as text.
    if !matches!(cli.command, Command::Serve) {
        flightdeck::logging::init(flightdeck::config::LogFormat::Text);
    }
    match run(cli) {
        Ok(()) => Exit::Ok.into(),
        Err(Failure(exit, message)) => {
            eprintln!("flightdeck: {}", for_stderr(&message));
            exit.into()
        }
    }
}

/// A command that failed: its exit code and what to tell the user.
struct Failure(Exit, String);

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure(Exit::Other, message)
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Failure {
        Failure(Exit::Other, message.to_string())
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        Failure(Exit::from(&e), e.to_string())
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Serve => {
            // mimalloc's arenas would otherwise be backed by transparent huge pages, which
            // doubles the idle footprint (a fresh 2 MiB page per thread heap). Agents get the
            // setting back before they run (see dispatch::launcher).
            // SAFETY: prctl with integer arguments only.
            unsafe {
                libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
            }
            let config = Config::load(cli.config.as_deref()).map_err(|e| e.to_string())?;
            flightdeck::logging::init(config.log.format);
            // The config has read it; now, while this is the only thread, wipe the token
            // from the environment so agents of this user cannot read it from /proc.
            flightdeck::token::scrub_from_environment("FLIGHTDECK_TOKEN");
            actix_web::rt::System::new()
                .block_on(flightdeck::server::serve(config))
                .map_err(|e| Failure::from(e.to_string()))
        }
        Command::Doctor => {
            let config = Config::load(cli.config.as_deref()).map_err(|e| e.to_string())?;
            let exe =
                std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
            match flightdeck::doctor::run(&config, &exe) {
                0 => Ok(()),
                1 => Err("doctor: 1 check failed (see its fix above)".into()),
                n => Err(format!("doctor: {n} checks failed (see their fixes above)").into()),
            }
        }
        Command::DemoAgent { agents_md } => {
            Ok(flightdeck::dispatch::demo_agent::run(agents_md.as_deref())?)
        }
        Command::Runner {
            token,
            slots,
            labels,
            name,
        } => {
            let config = Config::load(cli.config.as_deref()).map_err(|e| e.to_string())?;
            flightdeck::token::scrub_from_environment("FLIGHTDECK_RUNNER_TOKEN");
            let server = cli
                .server
                .ok_or("flightdeck runner needs --server URL (the server to pull work from)")?;
            let labels = flightdeck::model::Labels::parse(&labels)?;
            Ok(flightdeck::runners::agent::run(
                flightdeck::runners::agent::RunnerOptions {
                    server,
                    token,
                    slots,
                    labels,
                    name,
                    config,
                },
            )?)
        }
        Command::RunnerReady { state_dir } => {
            let state_dir = match state_dir {
                Some(dir) => dir,
                None => {
                    Config::load(cli.config.as_deref())
                        .map_err(|e| e.to_string())?
                        .server
                        .data_dir
                }
            };
            let ready = flightdeck::runners::ready::check(&state_dir)?;
            println!("{ready}");
            Ok(())
        }
        Command::AcpBridge {
            prompt_file,
            workspace,
            artifacts,
            resume,
            adapter,
        } => {
            let code = flightdeck::dispatch::acp::bridge::run(
                flightdeck::dispatch::acp::bridge::BridgeArgs {
                    prompt_file,
                    workspace,
                    artifacts,
                    resume,
                    adapter,
                },
            );
            std::process::exit(code)
        }
        Command::Completions { shell } => {
            let shell = match shell {
                CompletionShell::Bash => clap_complete::Shell::Bash,
                CompletionShell::Zsh => clap_complete::Shell::Zsh,
                CompletionShell::Fish => clap_complete::Shell::Fish,
            };
            // Into a buffer first: clap_complete panics when it cannot write, and a closed
            // pipe (`flightdeck completions bash | head`) is no reason to.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "flightdeck", &mut script);
            let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), &script);
            Ok(())
        }
        Command::ExecAgent {
            parent,
            cgroup,
            reaper,
            sandbox,
            rw,
            deny,
            port_rules_fd,
            probe,
            argv,
        } => {
            let plan = flightdeck::sandbox::SandboxPlan {
                writable: rw,
                denied: deny,
                port_rules: flightdeck::sandbox::PortRulesFd::ready(port_rules_fd),
                api_fenced_by_cgroup: false,
            };
            if probe {
                return match flightdeck::sandbox::restrict_self(&plan)? {
                    true => Ok(()),
                    false => Err("Landlock is not enforced by this kernel".into()),
                };
            }
            use flightdeck::dispatch::launcher::{self, Tracker};
            let tracker = match (cgroup, reaper) {
                (Some(path), _) => Some(Tracker::Cgroup(path)),
                (None, true) => Some(Tracker::Reaper),
                (None, false) => None,
            };
            let code = launcher::run(parent, tracker.as_ref(), sandbox.then_some(&plan), &argv)?;
            std::process::exit(code)
        }
        Command::LaunchServer { parent } => Ok(flightdeck::dispatch::launch_server::serve(parent)?),
        command => {
            let (client, _) = client(cli.config, cli.server)?;
            Ok(client_command(
                &client,
                &mut Output::stdout(cli.raw),
                command,
            )?)
        }
    }
}

fn client(config: Option<PathBuf>, server: Option<String>) -> Result<(Client, Config), String> {
    let config = Config::load(config.as_deref()).map_err(|e| e.to_string())?;
    let base = server.unwrap_or_else(|| {
        let bind = config
            .server
            .bind
            .replace("0.0.0.0", "127.0.0.1")
            .replace("[::]", "[::1]");
        format!("http://{bind}")
    });
    let token = match TokenSetting::from_config(&config.server.token) {
        TokenSetting::Fixed(token) => Some(token),
        TokenSetting::Open => None,
        // The server's generated token, when this user can read it; without it the server
        // answers 401 and the client says where the token is.
        TokenSetting::Generated => token::read(&config.server.data_dir).unwrap_or_else(|e| {
            log::warn!("{e}");
            None
        }),
    };
    Ok((Client::new(&base, token), config))
}

fn client_command(client: &Client, out: &mut Output, command: Command) -> Result<(), ClientError> {
    match command {
        Command::Add {
            title,
            description,
            priority,
            complexity,
            criteria,
            blocked_by,
            status,
            json,
        } => {
            let mut blockers = Vec::new();
            for b in blocked_by {
                let item = client.get(&format!("/api/items/{}", encode(&b)))?;
                blockers.push(item["id"].clone());
            }
            let body = json!({
                "title": title,
                "description": description.unwrap_or_default(),
                "priority": priority,
                "complexity": complexity,
                "acceptanceCriteria": criteria,
                "blockedBy": blockers,
                "status": status,
                "createdBy": "cli",
            });
            let (_, item) = client.send("POST", "/api/items", &body)?;
            if json {
                out.json(&item);
            } else {
                out.line(&format!(
                    "added {} [{}] {}",
                    short_id(&item["id"]),
                    item["status"].as_str().unwrap_or(""),
                    item["title"].as_str().unwrap_or("")
                ));
            }
        }
        Command::List {
            status,
            priority,
            json,
        } => {
            let mut query = Vec::new();
            if let Some(s) = status {
                query.push(format!("status={}", encode(&s)));
            }
            if let Some(p) = priority {
                query.push(format!("priority={}", encode(&p)));
            }
            let items = client.get_all_pages("/api/items", &query)?;
            if json {
                out.json(&serde_json::Value::Array(items));
            } else {
                out.print(&item_table(&items));
            }
        }
        Command::Show { id, json } => {
            let item = client.get(&format!("/api/items/{}", encode(&id)))?;
            if json {
                out.json(&item);
            } else {
                out.print(&print_item(&item));
            }
        }
        Command::Move {
            id,
            status,
            reason,
            json,
        } => {
            let (_, item) = client.send(
                "POST",
                &format!("/api/items/{}/move", encode(&id)),
                &json!({"status": status, "reason": reason}),
            )?;
            if json {
                out.json(&item);
            } else {
                out.line(&format!(
                    "moved {} to {}",
                    short_id(&item["id"]),
                    item["status"].as_str().unwrap_or("")
                ));
            }
        }
        Command::Dispatch { json } => {
            let (_, answer) = client.send("POST", "/api/dispatch", &json!({}))?;
            if json {
                out.json(&answer);
            } else {
                match answer["started"].as_array().filter(|s| !s.is_empty()) {
                    Some(started) => {
                        for s in started {
                            out.line(&format!(
                                "started session {} on item {}",
                                s["id"].as_str().unwrap_or(""),
                                short_id(&s["workItemId"])
                            ));
                        }
                    }
                    None => out.line(
                        "nothing started: no free slot, no claimable item, or dispatch is paused (see `flightdeck status`)",
                    ),
                }
            }
        }
        Command::Status { json } => {
            let status = client.get("/api/status")?;
            if json {
                out.json(&status);
            } else {
                for s in flightdeck::model::Status::ALL {
                    let n = status["counts"][s.as_str()].as_u64().unwrap_or(0);
                    out.line(&format!("{:<10}{n}", s.as_str()));
                }
                for line in flightdeck::cli::status::lines(&status) {
                    out.line(&line);
                }
                if let Ok(runners) = client.get("/api/runners") {
                    for line in flightdeck::cli::runners::status_lines(&runners) {
                        out.line(&line);
                    }
                }
            }
        }
        Command::RunnerToken { action } => {
            flightdeck::cli::runners::token_command(client, out, action)?
        }
        Command::Approvals { json } => {
            let approvals = client.get("/api/approvals")?;
            if json {
                out.json(&approvals);
            } else {
                for line in flightdeck::cli::approvals::lines(&approvals) {
                    out.line(&line);
                }
            }
        }
        Command::Approve { id, option } => {
            let (_, answer) = client.send(
                "POST",
                &format!("/api/approvals/{}", encode(&id)),
                &json!({ "option": option }),
            )?;
            out.line(answer["message"].as_str().unwrap_or("answered"));
        }
        Command::Say { id, text } => {
            let (_, answer) = client.send(
                "POST",
                &format!("/api/items/{}/messages", encode(&id)),
                &json!({ "text": text }),
            )?;
            out.line(match answer["delivery"].as_str() {
                Some("queued") => "Queued: the agent reads it when its current turn ends.",
                _ => "Sent: it is the agent's next prompt turn.",
            });
        }
        Command::Logs { id, follow, json } => {
            let path = format!("/api/items/{}/log", encode(&id));
            let mut shown = client.get_bytes(&path)?;
            if json {
                let item = client.get(&format!("/api/items/{}", encode(&id)))?;
                out.json(&json!({
                    "item": item["id"],
                    "log": String::from_utf8_lossy(&shown),
                }));
                return Ok(());
            }
            out.stream(&shown);
            if !follow {
                return Ok(());
            }
            loop {
                std::thread::sleep(std::time::Duration::from_millis(500));
                let now = client.get_bytes(&path)?;
                match now.strip_prefix(shown.as_slice()) {
                    Some(rest) => out.stream(rest),
                    None => out.stream(&now),
                }
                shown = now;
            }
        }
        Command::Serve
        | Command::Runner { .. }
        | Command::RunnerReady { .. }
        | Command::Doctor
        | Command::DemoAgent { .. }
        | Command::AcpBridge { .. }
        | Command::ExecAgent { .. }
        | Command::LaunchServer { .. }
        | Command::Completions { .. } => {}
    }
    Ok(())
}

/// An id as tables show it: the first 8 characters, a prefix every command accepts.
fn short_id(id: &serde_json::Value) -> &str {
    let id = id.as_str().unwrap_or("");
    id.get(..8).unwrap_or(id)
}

/// Percent-encodes a path segment or query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
