//! `flightdeck doctor`: whether the configured agent can run here, checked the way the server
//! would run it, before a first item fails for a reason found only in a log.
//!
//! One line per check, each failure with its fix: the preset's CLI on the PATH and its version
//! against the one flightdeck is tested with, a dry start of it under the sandbox (through
//! `flightdeck exec-agent`, as the server starts agents), whether the CLI looks logged in
//! (by the files in its home or an API key variable: only their names are printed, never
//! their contents), Landlock, a writable data dir, and the token file's mode.

use crate::config::{Config, Preset, SandboxMode};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long `<cli> --version` may take.
const VERSION_TIMEOUT: Duration = Duration::from_secs(20);

/// A preset's CLI: its program, the version tested with, how to install it, and where it keeps
/// its login.
struct Cli {
    program: &'static str,
    tested: &'static str,
    install: &'static str,
    home_var: &'static str,
    home_dir: &'static str,
    login_files: &'static [&'static str],
    key_vars: &'static [&'static str],
    login_fix: &'static str,
}

/// Matched by the preset's name, so presets added elsewhere are found here by their name.
fn cli_for(preset: &str) -> Option<Cli> {
    Some(match preset {
        "claude" => Cli {
            program: "claude",
            tested: "2.1",
            install: "npm install -g @anthropic-ai/claude-code@2.1",
            home_var: "CLAUDE_CONFIG_DIR",
            home_dir: ".claude",
            login_files: &[".credentials.json"],
            key_vars: &["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"],
            login_fix: "run `claude` once and log in, or set ANTHROPIC_API_KEY",
        },
        "codex" => Cli {
            program: "codex",
            tested: "0.171",
            install: "npm install -g @openai/codex@0.171",
            home_var: "CODEX_HOME",
            home_dir: ".codex",
            login_files: &["auth.json"],
            key_vars: &["OPENAI_API_KEY", "CODEX_API_KEY"],
            login_fix: "run `codex login`, or set OPENAI_API_KEY",
        },
        "gemini" => Cli {
            program: "gemini",
            tested: "0.61",
            install: "npm install -g @google/gemini-cli@0.61",
            home_var: "GEMINI_CLI_HOME",
            home_dir: ".gemini",
            login_files: &["oauth_creds.json"],
            key_vars: &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
            login_fix: "run `gemini` once and log in, or set GEMINI_API_KEY",
        },
        _ => return None,
    })
}

#[derive(PartialEq)]
enum Verdict {
    Ok,
    Warn,
    Fail,
}

/// The checks' lines as they are printed, and whether any failed.
struct Report {
    failed: usize,
}

impl Report {
    fn line(&mut self, verdict: Verdict, check: &str, text: String) {
        let tag = match verdict {
            Verdict::Ok => "ok  ",
            Verdict::Warn => "warn",
            Verdict::Fail => {
                self.failed += 1;
                "FAIL"
            }
        };
        println!("{tag} {check}: {text}");
    }
}

/// Runs every check, printing one line each. Returns how many failed.
pub fn run(config: &Config, exe: &Path) -> usize {
    let mut report = Report { failed: 0 };
    let preset = format!("{:?}", config.agent.preset).to_lowercase();
    let landlock = check_landlock(&mut report, config, exe);
    let program = config.agent.command.first().cloned();
    match (config.agent.preset, cli_for(&preset)) {
        (Preset::Demo, _) if program.is_none() => report.line(
            Verdict::Ok,
            "agent",
            "the demo preset is built in and needs nothing installed".into(),
        ),
        (_, cli) => {
            let program = program.unwrap_or_else(|| cli.as_ref().map_or("", |c| c.program).into());
            check_cli(&mut report, config, exe, &program, cli.as_ref(), landlock);
            if let Some(cli) = &cli {
                check_login(&mut report, cli);
            }
        }
    }
    check_data_dir(&mut report, config);
    report.failed
}

/// Finds `program` as the server would (a path, or a name on the PATH).
fn find(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let path = PathBuf::from(program);
        return is_executable(&path).then_some(path);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| is_executable(p))
    })
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn check_cli(
    report: &mut Report,
    config: &Config,
    exe: &Path,
    program: &str,
    cli: Option<&Cli>,
    landlock: bool,
) {
    let install = cli.map_or_else(
        || "fix: install it, or set agent.command to its full path".to_string(),
        |c| format!("fix: {}", c.install),
    );
    let Some(path) = find(program) else {
        report.line(
            Verdict::Fail,
            "agent CLI",
            format!("{program} is not found on the PATH; {install}"),
        );
        return;
    };
    report.line(
        Verdict::Ok,
        "agent CLI",
        format!("{program} is {}", path.display()),
    );
    let plain = run_for_version(Command::new(&path).arg("--version"));
    match (&plain, cli) {
        (Ok(version), Some(cli)) if version.starts_with(&format!("{}.", cli.tested)) => report
            .line(
                Verdict::Ok,
                "version",
                format!("{program} {version} (tested with {}.x)", cli.tested),
            ),
        (Ok(version), Some(cli)) => report.line(
            Verdict::Warn,
            "version",
            format!(
                "{program} {version} is not the tested {}.x; it may print what flightdeck does not read; fix: {}",
                cli.tested, cli.install
            ),
        ),
        (Ok(version), None) => report.line(Verdict::Ok, "version", format!("{program} says {version}")),
        (Err(e), _) => report.line(
            Verdict::Fail,
            "version",
            format!("`{program} --version` failed: {e}; {install}"),
        ),
    }
    if !landlock {
        return;
    }
    let session = match tempfile_dir() {
        Ok(dir) => dir,
        Err(e) => {
            report.line(
                Verdict::Fail,
                "dry start",
                format!("no scratch folder: {e}"),
            );
            return;
        }
    };
    let mut dry = Command::new(exe);
    dry.args(["exec-agent", "--reaper", "--sandbox", "--rw"])
        .arg(&session)
        .arg("--deny")
        .arg(&config.server.data_dir);
    if let Some(file) = config.path.as_ref().and_then(|p| p.canonicalize().ok()) {
        dry.arg("--deny").arg(file);
    }
    if !config.workspace.git_repo.is_empty() {
        dry.arg("--rw")
            .arg(Path::new(&config.workspace.git_repo).join(".git"));
    }
    dry.arg("--")
        .arg(&path)
        .arg("--version")
        .current_dir(&session);
    dry.env("TMPDIR", &session);
    match run_for_version(&mut dry) {
        Ok(_) => report.line(
            Verdict::Ok,
            "dry start",
            format!("{program} --version runs under the sandbox"),
        ),
        Err(e) => report.line(
            Verdict::Fail,
            "dry start",
            format!("{program} --version fails under the sandbox: {e}; fix: add the folders it writes to agent.writable, or set agent.sandbox = \"off\" (agents then run unconfined)"),
        ),
    }
    let _ = std::fs::remove_dir_all(&session);
}

fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("flightdeck-doctor-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Runs a `--version` command with a time limit; its first line that holds a digit.
fn run_for_version(cmd: &mut Command) -> Result<String, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("FLIGHTDECK_TOKEN")
        .spawn()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() < VERSION_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {}s", VERSION_TIMEOUT.as_secs()));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let errors = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let last = errors
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(format!(
            "{} ({})",
            out.status,
            last.chars().take(200).collect::<String>()
        ));
    }
    let line = text
        .lines()
        .find(|l| l.chars().any(|c| c.is_ascii_digit()))
        .unwrap_or("");
    Ok(line
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .unwrap_or(line)
        .chars()
        .take(80)
        .collect())
}

fn check_login(report: &mut Report, cli: &Cli) {
    if let Some(var) = cli
        .key_vars
        .iter()
        .find(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
    {
        report.line(Verdict::Ok, "login", format!("{var} is set"));
        return;
    }
    let home = std::env::var_os(cli.home_var)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(cli.home_dir)));
    let found = home.as_ref().and_then(|home| {
        cli.login_files
            .iter()
            .map(|f| home.join(f))
            .find(|p| p.is_file())
    });
    match found {
        Some(file) => report.line(
            Verdict::Ok,
            "login",
            format!(
                "{} looks logged in ({} exists)",
                cli.program,
                file.display()
            ),
        ),
        None => report.line(
            Verdict::Fail,
            "login",
            format!(
                "{} does not look logged in: no {} in {} and none of {} set; fix: {}",
                cli.program,
                cli.login_files.join(", "),
                home.map_or("its home".into(), |h| h.display().to_string()),
                cli.key_vars.join(", "),
                cli.login_fix
            ),
        ),
    }
}

/// Returns whether agents will run sandboxed.
fn check_landlock(report: &mut Report, config: &Config, exe: &Path) -> bool {
    if config.agent.sandbox == SandboxMode::Off {
        report.line(
            Verdict::Warn,
            "sandbox",
            "agent.sandbox = \"off\": agents run unconfined; fix: set it to \"auto\"".into(),
        );
        return false;
    }
    let abi = crate::sandbox::kernel_abi();
    if abi > 0 && crate::sandbox::probe(exe) {
        report.line(
            Verdict::Ok,
            "sandbox",
            format!("Landlock ABI {abi} is enforced"),
        );
        return true;
    }
    let verdict = match config.agent.sandbox {
        SandboxMode::Required => Verdict::Fail,
        _ => Verdict::Warn,
    };
    report.line(
        verdict,
        "sandbox",
        "this kernel does not enforce Landlock, so agents run unconfined; fix: a Linux 5.13+ kernel with Landlock enabled (lsm=landlock)".into(),
    );
    false
}

fn check_data_dir(report: &mut Report, config: &Config) {
    let dir = &config.server.data_dir;
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    let written = std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::write(&probe, b"probe"))
        .and_then(|_| std::fs::remove_file(&probe));
    match written {
        Ok(()) => report.line(Verdict::Ok, "data dir", format!("{} is writable", dir.display())),
        Err(e) => report.line(
            Verdict::Fail,
            "data dir",
            format!("{} is not writable ({e}); fix: make it writable for this user, or set server.data_dir", dir.display()),
        ),
    }
    let token = dir.join("token");
    match std::fs::metadata(&token) {
        Ok(m) if m.permissions().mode() & 0o077 == 0 => report.line(
            Verdict::Ok,
            "token file",
            format!("{} is readable by its owner only", token.display()),
        ),
        Ok(m) => report.line(
            Verdict::Fail,
            "token file",
            format!(
                "{} has mode {:o}: others can read the API token; fix: chmod 600 {}",
                token.display(),
                m.permissions().mode() & 0o777,
                token.display()
            ),
        ),
        Err(_) => report.line(
            Verdict::Ok,
            "token file",
            "none yet: the server generates it (mode 600) at its first start".into(),
        ),
    }
}
