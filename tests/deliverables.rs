//! Work is never lost: what an agent leaves is committed (git worktree mode) or measured
//! against the workspace as it was handed over (folder mode), an attempt that delivers nothing
//! fails, every item carries its diff, and approving keeps or merges the branch without ever
//! deleting unmerged work. Real server, real `sh` agents (tests/fixtures/agents/deliver.sh),
//! real git repositories made by the tests.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn agent(mode: &str) -> String {
    let argv = ["/bin/sh", &fixture("agents/deliver.sh"), mode];
    format!(
        "[agent]\npreset = \"lines\"\ncommand = {}\n",
        serde_json::to_string(&argv).unwrap()
    )
}

fn git(repo: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .expect("git runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn git_ok(repo: &Path, args: &[&str]) -> String {
    let (ok, out) = git(repo, args);
    assert!(ok, "git {args:?}: {out}");
    out
}

/// A repository on `main` with one commit, made by the test.
fn repo(dir: &Path) -> std::path::PathBuf {
    let repo = dir.join("project");
    std::fs::create_dir_all(&repo).unwrap();
    git_ok(&repo, &["init", "-q", "-b", "main"]);
    git_ok(&repo, &["config", "user.name", "test"]);
    git_ok(&repo, &["config", "user.email", "test@example.invalid"]);
    std::fs::write(repo.join("README"), "the project\n").unwrap();
    git_ok(&repo, &["add", "README"]);
    git_ok(&repo, &["commit", "-q", "-m", "start"]);
    repo
}

fn git_mode(repo: &Path, on_approve: &str, mode: &str) -> String {
    format!(
        "[pool]\nsize = 1\nmax_attempts = 1\n[workspace]\ngit_repo = \"{}\"\non_approve = \"{on_approve}\"\n{}",
        repo.display(),
        agent(mode)
    )
}

/// Waits until the item's attempt has ended (it is neither ready nor in flight), and checks it
/// ended in `status`, showing the item otherwise.
fn settled(s: &TestServer, id: &str, status: &str) -> Value {
    let item = s.wait_for(&format!("item {id} to settle"), T, || {
        let item = s.item(id);
        (item["status"] != "ready" && item["status"] != "in_flight").then_some(item)
    });
    assert_eq!(item["status"], status, "{item}");
    item
}

fn id_of(item: &Value) -> String {
    item["id"].as_str().expect("item id").to_string()
}

fn branch_of(id: &str) -> String {
    format!("flightdeck/{}", &id[..8])
}

fn workspace_of(s: &TestServer, id: &str) -> std::path::PathBuf {
    let (status, sessions) = s.get(&format!("/api/agents?item={id}"));
    assert_eq!(status, 200, "{sessions}");
    let dir = sessions
        .as_array()
        .and_then(|a| a.iter().find(|x| x["workItemId"] == id))
        .and_then(|x| x["workspaceDir"].as_str())
        .expect("a session of the item")
        .to_string();
    dir.into()
}

#[test]
fn git_mode_commits_what_the_agent_left_keeps_agents_md_out_and_merges_on_approve() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    let s = TestServer::start(&git_mode(&repo, "merge", "commit"));
    let id = id_of(&s.create_ready("Write the greeting"));
    let item = settled(&s, &id, "review");
    let branch = branch_of(&id);

    let log = git_ok(
        &repo,
        &["log", "--format=%an|%s", &format!("main..{branch}")],
    );
    assert!(log.contains("agent|the agent's own commit"), "{log}");
    assert!(
        log.lines()
            .any(|l| l.starts_with("flightdeck|Write the greeting (attempt 1)")),
        "flightdeck committed the leftovers: {log}"
    );
    let files = git_ok(&repo, &["log", "--format=", "--name-only", &branch]);
    assert!(
        files.contains("later.txt") && files.contains("first.txt"),
        "{files}"
    );
    assert!(
        !files.contains("AGENTS.md"),
        "AGENTS.md entered a commit: {files}"
    );
    let carrier = &item["artifacts"][0];
    assert_eq!(carrier["path"], branch.as_str(), "{item}");
    assert!(
        carrier["description"]
            .as_str()
            .unwrap()
            .contains("2 files changed, +2 -0"),
        "{carrier}"
    );

    let (status, diff) = s.get(&format!("/api/items/{id}/diff"));
    assert_eq!(status, 200, "{diff}");
    let listed: Vec<(String, u64, u64, String)> = diff["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["added"].as_u64().unwrap(),
                f["removed"].as_u64().unwrap(),
                f["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            ("first.txt".into(), 1, 0, "added".into()),
            ("later.txt".into(), 1, 0, "added".into())
        ]
    );
    let patch = diff["patch"].as_str().unwrap();
    assert!(
        patch.contains("+++ b/later.txt") && patch.contains("+later"),
        "{patch}"
    );
    assert_eq!(diff["truncated"], false);
    assert_eq!(diff["base"].as_str().map(str::len), Some(40), "{diff}");

    let workspace = workspace_of(&s, &id);
    assert!(workspace.is_dir());
    let (status, moved) = s.move_to(&id, "done");
    assert_eq!(status, 200, "{moved}");
    assert_eq!(
        std::fs::read_to_string(repo.join("later.txt")).unwrap(),
        "later\n",
        "main, checked out in the repository, has the work"
    );
    git_ok(&repo, &["merge-base", "--is-ancestor", &branch, "main"]);
    s.wait_for("the worktree to be removed", T, || {
        (!workspace.exists()).then_some(())
    });
    assert!(
        git(&repo, &["rev-parse", "--verify", &branch]).0,
        "the branch stays"
    );
}

#[test]
fn git_mode_an_agent_that_changes_nothing_delivers_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    let s = TestServer::start(&git_mode(&repo, "keep", "nothing"));
    let id = id_of(&s.create_ready("Do nothing at all"));
    let item = settled(&s, &id, "blocked");
    let reason = item["statusReason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("delivered nothing") && reason.contains(&branch_of(&id)),
        "{reason}"
    );
    assert!(item["artifacts"].as_array().unwrap().is_empty(), "{item}");
}

#[test]
fn git_mode_a_conflicting_approve_stays_in_review_and_keep_leaves_the_branch() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    let s = TestServer::start(&git_mode(&repo, "merge", "shared"));
    let id = id_of(&s.create_ready("Say it in shared.txt"));
    settled(&s, &id, "review");
    std::fs::write(repo.join("shared.txt"), "a person's line\n").unwrap();
    git_ok(&repo, &["add", "shared.txt"]);
    git_ok(&repo, &["commit", "-q", "-m", "a person got there first"]);

    let (status, answer) = s.move_to(&id, "done");
    assert_eq!(status, 409, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("shared.txt") && message.contains("Say it in shared.txt"),
        "{message}"
    );
    assert_eq!(s.item(&id)["status"], "review");
    assert_eq!(
        std::fs::read_to_string(repo.join("shared.txt")).unwrap(),
        "a person's line\n",
        "nothing changed in the repository"
    );
    assert!(git_ok(&repo, &["status", "--porcelain"]).is_empty());
    drop(s);

    // keep: approving leaves the branch, with the work, after the worktree goes.
    let s = TestServer::start(&git_mode(&repo, "keep", "loose"));
    let id = id_of(&s.create_ready("Write the feature"));
    settled(&s, &id, "review");
    let workspace = workspace_of(&s, &id);
    let (status, moved) = s.move_to(&id, "done");
    assert_eq!(status, 200, "{moved}");
    s.wait_for("the worktree to be removed", T, || {
        (!workspace.exists()).then_some(())
    });
    let branch = branch_of(&id);
    let kept = git_ok(&repo, &["show", &format!("{branch}:src/feature.txt")]);
    assert_eq!(kept, "one\ntwo\n");
    assert!(!repo.join("src").exists(), "keep merges nothing");
}

#[test]
fn folder_mode_diffs_against_the_hand_over_and_a_met_report_with_changes_reaches_review() {
    let s = TestServer::start(&format!(
        "[pool]\nsize = 1\nmax_attempts = 1\n{}",
        agent("report")
    ));
    let (status, none) = s.get("/api/items/0000/diff");
    assert_eq!(status, 404, "{none}");
    let item = s.create(json!({
        "title": "Write the feature file",
        "status": "ready",
        "acceptanceCriteria": ["the feature is written"]
    }));
    let id = id_of(&item);
    let item = settled(&s, &id, "review");
    let carrier = &item["artifacts"][0];
    assert_eq!(carrier["type"], "link", "{item}");
    assert_eq!(carrier["path"], format!("/api/items/{id}/diff"));

    let (status, diff) = s.get(&format!("/api/items/{id}/diff"));
    assert_eq!(status, 200, "{diff}");
    let files = diff["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "AGENTS.md is not part of the work: {diff}");
    assert_eq!(files[0]["path"], "feature.txt");
    assert_eq!(files[0]["added"], 3);
    assert_eq!(files[0]["status"], "added");
    assert!(diff["patch"].as_str().unwrap().contains("+three"));
}

#[test]
fn folder_mode_an_agent_that_changes_nothing_delivers_nothing() {
    let s = TestServer::start(&format!(
        "[pool]\nsize = 1\nmax_attempts = 1\n{}",
        agent("nothing")
    ));
    let id = id_of(&s.create_ready("Change nothing"));
    let item = settled(&s, &id, "blocked");
    let reason = item["statusReason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("changed nothing in its workspace and handed back no artifact"),
        "{reason}"
    );
    let (status, diff) = s.get(&format!("/api/items/{id}/diff"));
    assert_eq!(status, 200, "{diff}");
    assert!(diff["files"].as_array().unwrap().is_empty());
}

#[test]
fn doctor_prints_a_line_per_check_and_fails_on_a_missing_cli() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let doctor = |command: &str| {
        std::fs::write(
            &config,
            format!(
                "[server]\ndata_dir = \"{}\"\n[agent]\npreset = \"claude\"\ncommand = {command}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .arg("doctor")
            .env("HOME", dir.path())
            .env("ANTHROPIC_API_KEY", "sk-not-a-real-key")
            .output()
            .expect("doctor runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };

    let (passed, lines) = doctor(r#"["flightdeck-test-no-such-cli", "-p"]"#);
    assert!(!passed, "a missing CLI fails the doctor:\n{lines}");
    let failed: Vec<&str> = lines.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(failed.len(), 1, "{lines}");
    assert!(
        failed[0].contains("flightdeck-test-no-such-cli is not found on the PATH")
            && failed[0].contains("fix: npm install -g @anthropic-ai/claude-code"),
        "{lines}"
    );
    for check in [
        "sandbox:",
        "login: ANTHROPIC_API_KEY is set",
        "data dir:",
        "token file:",
    ] {
        assert!(lines.contains(check), "no {check} line:\n{lines}");
    }
    assert!(!lines.contains("sk-not-a-real-key"), "a secret was printed");

    // A CLI that is there (git stands in for it) passes every check.
    let (passed, lines) = doctor(r#"["git"]"#);
    assert!(passed, "{lines}");
    assert!(lines.contains("ok   agent CLI: git is"), "{lines}");
    assert!(
        lines.lines().any(|l| l.starts_with("warn version: git")),
        "{lines}"
    );
}
