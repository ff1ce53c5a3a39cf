//! The config file: one typed struct, layered as defaults, then `config/flightdeck.toml` (or
//! `--config PATH` / `FLIGHTDECK_CONFIG`), then the `FLIGHTDECK_*` environment variables. A
//! missing table or key takes its default; an unknown key, a wrong type or a value out of range
//! stops start-up with a message that names the key and the line.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where the default config lives, relative to the working directory.
pub const DEFAULT_CONFIG_PATH: &str = "config/flightdeck.toml";
/// Upper bound on `pool.size`, so a typo cannot fork-bomb the machine.
pub const POOL_SIZE_MAX: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config: {key}: {message}")]
    Invalid { key: String, message: String },
}

pub(crate) fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub bind: String,
    pub data_dir: PathBuf,
    /// Empty: a token generated into `{data_dir}/token`; `"none"`: no auth (see `token.rs`).
    pub token: String,
    /// Host names the server answers to beside its bind address's own (see `api/host.rs`).
    pub allowed_hosts: Vec<String>,
    /// A WebSocket client that answers no ping for this long is dropped (see
    /// `monitor::ws_session`).
    pub websocket_silence_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "127.0.0.1:7878".into(),
            data_dir: "data".into(),
            token: String::new(),
            allowed_hosts: Vec::new(),
            websocket_silence_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    pub review: bool,
    pub review_limit: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            review: true,
            review_limit: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    pub size: usize,
    pub auto_dispatch: bool,
    pub max_attempts: u32,
    pub timeout_secs: u64,
    pub idle_timeout_secs: u64,
    pub shutdown_grace_secs: u64,
    /// First retry delay; each later attempt waits twice as long (capped at 5 minutes).
    pub retry_backoff_secs: f64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            size: 2,
            auto_dispatch: true,
            max_attempts: 3,
            timeout_secs: 3600,
            idle_timeout_secs: 900,
            shutdown_grace_secs: 30,
            retry_backoff_secs: 2.0,
        }
    }
}

/// Which agent runs, and how its output is read.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// The built-in demo agent (`flightdeck demo-agent`): needs nothing installed.
    #[default]
    Demo,
    /// Any command speaking the generic JSON-lines protocol (or plain text).
    Lines,
    /// Claude Code with `--output-format stream-json`.
    Claude,
    /// OpenAI Codex with `exec --json`.
    Codex,
    /// Google's Gemini CLI with `--output-format stream-json`.
    Gemini,
    /// An Agent Client Protocol adapter named by `agent.command`, driven over its stdio.
    Acp,
    /// Claude Code over ACP (`claude-agent-acp`).
    AcpClaude,
    /// Codex over ACP (`codex-acp`).
    AcpCodex,
    /// Gemini CLI over ACP (`gemini --acp`).
    AcpGemini,
}

impl Preset {
    /// The preset's name as the config spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Demo => "demo",
            Preset::Lines => "lines",
            Preset::Claude => "claude",
            Preset::Codex => "codex",
            Preset::Gemini => "gemini",
            Preset::Acp => "acp",
            Preset::AcpClaude => "acp-claude",
            Preset::AcpCodex => "acp-codex",
            Preset::AcpGemini => "acp-gemini",
        }
    }

    /// Whether flightdeck drives this agent over the Agent Client Protocol.
    pub fn is_acp(self) -> bool {
        matches!(
            self,
            Preset::Acp | Preset::AcpClaude | Preset::AcpCodex | Preset::AcpGemini
        )
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum SandboxMode {
    /// Use Landlock where the kernel has it; run unsandboxed (and say so) where it does not.
    #[default]
    Auto,
    /// Refuse to run agents without Landlock.
    Required,
    /// Never sandbox.
    Off,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    pub preset: Preset,
    pub command: Vec<String>,
    pub verify: Vec<String>,
    pub sandbox: SandboxMode,
    /// More folders the sandboxed agent may write, beside its session folder and the state
    /// folders its preset needs (see `dispatch::presets`).
    pub writable: Vec<PathBuf>,
    /// ACP presets: how long a cancelled agent has to end its turn after `session/cancel`
    /// before its processes are stopped.
    #[serde(default = "default_cancel_grace")]
    pub cancel_grace_secs: u64,
}

fn default_cancel_grace() -> u64 {
    5
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            preset: Preset::default(),
            command: Vec::new(),
            verify: Vec::new(),
            sandbox: SandboxMode::default(),
            writable: Vec::new(),
            cancel_grace_secs: default_cancel_grace(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct WorkspaceConfig {
    pub git_repo: String,
    pub on_approve: OnApprove,
    /// Where approved work is merged; empty: the branch checked out in `git_repo`.
    pub base_branch: String,
}

/// What approving an item does to its branch in git worktree mode.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnApprove {
    /// The branch stays for people to merge.
    #[default]
    Keep,
    /// Fast-forward or merge commit into the base branch.
    Merge,
}

/// What a million tokens cost with one preset's model, in US dollars.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

impl Price {
    /// The estimated cost of `input` and `output` tokens.
    pub fn cost(&self, input: u64, output: u64) -> f64 {
        (input as f64 * self.input_per_mtok + output as f64 * self.output_per_mtok) / 1e6
    }
}

/// The per-preset price table of `[budgets.prices.<preset>]`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Prices {
    pub demo: Price,
    pub lines: Price,
    pub claude: Price,
    pub codex: Price,
    pub gemini: Price,
    /// Every ACP preset (`acp`, `acp-claude`, `acp-codex`, `acp-gemini`).
    pub acp: Price,
}

impl Prices {
    pub fn of(&self, preset: Preset) -> Price {
        match preset {
            Preset::Demo => self.demo,
            Preset::Lines => self.lines,
            Preset::Claude => self.claude,
            Preset::Codex => self.codex,
            Preset::Gemini => self.gemini,
            Preset::Acp | Preset::AcpClaude | Preset::AcpCodex | Preset::AcpGemini => self.acp,
        }
    }
}

/// Token budgets and the prices that turn tokens into a cost estimate.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetsConfig {
    /// Budget of an item without its own `maxTokens`, over all its attempts (0 = none).
    pub item_tokens: u64,
    /// Tokens the whole pool may use per UTC day; dispatch pauses past it (0 = none).
    pub daily_tokens: u64,
    pub prices: Prices,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// true: `GET /metrics` answers without the API token.
    pub public: bool,
}

/// How the server's own log lines look on stderr.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// `[time LEVEL target] message request_id=..`, for people.
    #[default]
    Text,
    /// One JSON object per line (`ts`, `level`, `target`, `message`, `request_id`), for tools.
    Json,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
}

/// What a webhook's receiver gets.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// The event as stored (`{"seq","type","at","data"}`), for programs.
    #[default]
    Json,
    /// A Slack incoming webhook's `{"text"}`: one readable line, only for events a person acts on.
    Slack,
    /// A Discord webhook's `{"content"}`: the same line as Slack.
    Discord,
}

/// One `[[webhooks]]` entry: where matching events are POSTed.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Names the webhook in the delivery log; empty: derived from the URL.
    pub name: String,
    pub url: String,
    /// Event types (`work:status_changed`) or prefixes (`work:*`); empty: every event.
    pub events: Vec<String>,
    /// Signs every body (`X-Hub-Signature-256`); empty: bodies are not signed.
    pub secret: String,
    pub format: WebhookFormat,
}

/// How webhook deliveries are retried and how long their log is kept.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookDeliveryConfig {
    /// The first retry's delay; each later one doubles (with jitter), up to `max_backoff_secs`.
    pub backoff_ms: u64,
    pub max_backoff_secs: u64,
    /// A delivery still failing this long after it was first due is marked failed.
    pub give_up_after_secs: u64,
    /// Connect and answer timeout of one attempt.
    pub timeout_ms: u64,
    /// Finished deliveries are pruned once older than this many days, or beyond `keep_count`.
    pub keep_days: u64,
    pub keep_count: u64,
}

impl Default for WebhookDeliveryConfig {
    fn default() -> Self {
        WebhookDeliveryConfig {
            backoff_ms: 1000,
            max_backoff_secs: 3600,
            give_up_after_secs: 86_400,
            timeout_ms: 10_000,
            keep_days: 7,
            keep_count: 10_000,
        }
    }
}

/// The whole configuration of a flightdeck server.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub queue: QueueConfig,
    pub pool: PoolConfig,
    pub agent: AgentConfig,
    pub workspace: WorkspaceConfig,
    pub budgets: BudgetsConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub webhooks: Vec<WebhookConfig>,
    pub webhook_delivery: WebhookDeliveryConfig,
    pub runners: crate::runners::RunnersConfig,
    /// Which permission requests of ACP agents need a person.
    pub approvals: crate::dispatch::acp::ApprovalsConfig,
    /// The file this was read from, watched for live changes of `pool.size`.
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

impl Config {
    /// Reads the config: `explicit` (from `--config` or `FLIGHTDECK_CONFIG`) must exist; without
    /// it the default path is used when present, and built-in defaults otherwise. Environment
    /// overrides are applied last, then everything is validated.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match explicit {
            Some(path) => Config::from_file(path)?,
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
                Config::from_file(Path::new(DEFAULT_CONFIG_PATH))?
            }
            None => Config::default(),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        config.validate()?;
        Ok(config)
    }

    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Config::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })?;
        config.path = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses TOML text; the error names the key and the line.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str::<Config>(text).map_err(|e| e.to_string().trim_end().to_string())
    }

    fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(bind) = var("FLIGHTDECK_BIND") {
            self.server.bind = bind;
        }
        if let Some(dir) = var("FLIGHTDECK_DATA_DIR") {
            self.server.data_dir = dir.into();
        }
        if let Some(token) = var("FLIGHTDECK_TOKEN") {
            self.server.token = token;
        }
        if let Some(size) = var("FLIGHTDECK_POOL_SIZE") {
            self.pool.size = size.trim().parse().map_err(|_| {
                invalid(
                    "FLIGHTDECK_POOL_SIZE",
                    format!("expected a whole number, got {size:?}"),
                )
            })?;
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.bind_addr()?;
        self.runners.validate()?;
        for host in &self.server.allowed_hosts {
            let plain = !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b));
            if !plain {
                return Err(invalid(
                    "server.allowed_hosts",
                    format!("{host:?} is not a host name: write it as in a URL, without scheme or path, like \"flightdeck.example.com\" or \"flightdeck.example.com:8443\""),
                ));
            }
        }
        if self.server.data_dir.as_os_str().is_empty() {
            return Err(invalid("server.data_dir", "must not be empty"));
        }
        if self.pool.size > POOL_SIZE_MAX {
            return Err(invalid(
                "pool.size",
                format!("must be at most {POOL_SIZE_MAX}, got {}", self.pool.size),
            ));
        }
        if !(5..=3600).contains(&self.server.websocket_silence_secs) {
            return Err(invalid(
                "server.websocket_silence_secs",
                format!(
                    "must be between 5 and 3600, got {}",
                    self.server.websocket_silence_secs
                ),
            ));
        }
        if self.pool.max_attempts == 0 {
            return Err(invalid("pool.max_attempts", "must be at least 1"));
        }
        if self.pool.timeout_secs == 0 {
            return Err(invalid("pool.timeout_secs", "must be at least 1"));
        }
        if self.pool.idle_timeout_secs == 0 {
            return Err(invalid("pool.idle_timeout_secs", "must be at least 1"));
        }
        if !(self.pool.retry_backoff_secs >= 0.0 && self.pool.retry_backoff_secs <= 3600.0) {
            return Err(invalid(
                "pool.retry_backoff_secs",
                "must be between 0 and 3600",
            ));
        }
        if self.agent.preset == Preset::Lines && self.agent.command.is_empty() {
            return Err(invalid(
                "agent.command",
                "the lines preset needs a command (an argv list)",
            ));
        }
        if self.agent.preset == Preset::Acp && self.agent.command.is_empty() {
            return Err(invalid(
                "agent.command",
                "the acp preset needs the adapter's command (an argv list), like [\"claude-agent-acp\"]",
            ));
        }
        self.approvals.validate()?;
        if self.agent.command.iter().any(|a| a.is_empty()) {
            return Err(invalid("agent.command", "arguments must not be empty"));
        }
        let prices = &self.budgets.prices;
        for (preset, price) in [
            ("demo", prices.demo),
            ("lines", prices.lines),
            ("claude", prices.claude),
            ("codex", prices.codex),
            ("gemini", prices.gemini),
            ("acp", prices.acp),
        ] {
            for (side, value) in [
                ("input_per_mtok", price.input_per_mtok),
                ("output_per_mtok", price.output_per_mtok),
            ] {
                if !(value.is_finite() && (0.0..=1e6).contains(&value)) {
                    return Err(invalid(
                        &format!("budgets.prices.{preset}.{side}"),
                        format!("must be a price in dollars between 0 and 1000000, got {value}"),
                    ));
                }
            }
        }
        if let Some(path) = self.agent.writable.iter().find(|p| !p.is_absolute()) {
            return Err(invalid(
                "agent.writable",
                format!(
                    "{} is not an absolute path: write the whole path, like \"/home/me/.cache/sccache\"",
                    path.display()
                ),
            ));
        }
        if !self.workspace.git_repo.is_empty() && !Path::new(&self.workspace.git_repo).is_dir() {
            return Err(invalid(
                "workspace.git_repo",
                format!("{} is not a folder", self.workspace.git_repo),
            ));
        }
        let base = &self.workspace.base_branch;
        if base.starts_with('-')
            || base.contains("..")
            || base
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c))
        {
            return Err(invalid(
                "workspace.base_branch",
                format!("{base:?} is not a branch name"),
            ));
        }
        crate::webhooks::validate(&self.webhooks, &self.webhook_delivery)
    }

    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server.bind.parse().map_err(|_| {
            invalid(
                "server.bind",
                format!(
                    "expected an address like 127.0.0.1:7878, got {:?}",
                    self.server.bind
                ),
            )
        })
    }

    /// The redb file inside the data dir.
    pub fn store_path(&self) -> PathBuf {
        self.server.data_dir.join("flightdeck.redb")
    }

    pub fn agents_dir(&self) -> PathBuf {
        self.server.data_dir.join("agents")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.server.bind, "127.0.0.1:7878");
        assert_eq!(c.pool.size, 2);
        assert!(c.queue.review);
        assert_eq!(c.agent.preset, Preset::Demo);
    }

    #[test]
    fn shipped_config_parses_and_validates() {
        let text = include_str!("../config/flightdeck.toml");
        let c = Config::parse(text).unwrap();
        c.validate().unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn errors_name_key_and_line() {
        let err = Config::parse("[pool]\nsize = \"two\"\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("size"), "{err}");
        let err = Config::parse("[pool]\nsise = 3\n").unwrap_err();
        assert!(err.contains("sise"), "{err}");
    }

    #[test]
    fn env_overrides_the_file() {
        let mut c = Config::parse("[pool]\nsize = 3\n").unwrap();
        c.apply_env(|k| match k {
            "FLIGHTDECK_POOL_SIZE" => Some("5".into()),
            "FLIGHTDECK_BIND" => Some("127.0.0.1:9999".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.pool.size, 5);
        assert_eq!(c.server.bind, "127.0.0.1:9999");
        let err = c
            .apply_env(|k| (k == "FLIGHTDECK_POOL_SIZE").then(|| "many".into()))
            .unwrap_err();
        assert!(err.to_string().contains("FLIGHTDECK_POOL_SIZE"));
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let c = Config::parse("[pool]\nmax_attempts = 0\n").unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("pool.max_attempts"));
        let c = Config::parse("[agent]\npreset = \"lines\"\n").unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("agent.command"));
        let c = Config::parse("[server]\nallowed_hosts = [\"https://x.example/\"]\n").unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("server.allowed_hosts"));
        let c = Config::parse("[budgets.prices.claude]\ninput_per_mtok = -3.0\n").unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("budgets.prices.claude.input_per_mtok"));
        let c = Config::parse("[agent]\nwritable = [\"cache\"]\n").unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("agent.writable"));
        let c = Config::parse("[[webhooks]]\nurl = \"ftp://x\"\n").unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("webhooks[0].url"));
        let c = Config::parse("[server]\nbind = \"nowhere\"\n").unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("server.bind"));
    }
}
