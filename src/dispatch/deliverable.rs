//! What an attempt delivers, and the one rule for whether it delivered anything.
//!
//! Work is never lost and never taken on faith. When an item is first handed to an agent its
//! starting point is recorded outside the agent's reach (`{data_dir}/changes/{item id}/`, which
//! the sandbox lets no agent read or write): in git worktree mode the commit its branch starts
//! from; in folder mode a snapshot of the workspace in a private repository there. After the
//! agent exits, flightdeck commits what it left uncommitted to the item's branch (git mode,
//! run under the agent's sandbox) or snapshots the workspace again (folder mode), and records
//! that as the attempt's head. Retries keep the first starting point, so the diff is always
//! against the first hand-over.
//!
//! The rule (docs/ARCHITECTURE.md): an attempt delivers when it leaves changes (a non-empty
//! diff against the hand-over) or at least one artifact. Changes are handed back as an
//! artifact of their own (the branch in git mode, a link to the diff in folder mode), so the
//! queue's acceptance rules (criteria need an artifact; a report must meet every criterion)
//! read the same in both modes.

use super::artifacts::{self, Declared, HandedBack};
use super::diff::{self, Summary};
use super::git::Git;
use super::session::AgentSettings;
use super::snapshot::SnapshotRepo;
use super::workspace::Workspace;
use crate::model::{AcceptanceEntry, ArtifactInput, ArtifactKind, WorkItem, ARTIFACTS_MAX};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The file the agent's instructions live in; never part of its work.
pub const AGENTS_MD: &str = "AGENTS.md";
const RECORD_FILE: &str = "record.json";
const SNAPSHOT_DIR: &str = "snapshot.git";

/// The attempt whose work is being collected.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub item_id: String,
    pub title: String,
    pub number: u32,
    /// The item already carries the link to its diff (folder mode), from an earlier attempt.
    pub carries_diff_link: bool,
}

impl Attempt {
    pub fn of(item: &WorkItem, number: u32) -> Attempt {
        Attempt {
            item_id: item.id.clone(),
            title: item.title.clone(),
            number,
            carries_diff_link: item
                .artifacts
                .iter()
                .any(|a| a.kind == ArtifactKind::Link && a.path == diff_link(&item.id)),
        }
    }
}

/// Where an item's work started and where its last attempt left it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The commit the work is measured against (the first hand-over).
    pub base: String,
    /// The last finished attempt's commit; none while the first attempt runs.
    pub head: Option<String>,
    /// The repository of a git worktree; none in folder mode (the snapshot repository).
    pub repo: Option<PathBuf>,
    /// The item's branch in git mode.
    pub branch: Option<String>,
    /// Folder mode: the hand-over held nothing of the agent's (a fresh workspace), so every
    /// file of a later snapshot is an addition and the counts need no diff.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_base: bool,
}

impl Record {
    /// The item's record, if an agent was ever handed the item.
    pub fn load(data_dir: &Path, item_id: &str) -> io::Result<Option<Record>> {
        let path = record_dir(data_dir, item_id)?.join(RECORD_FILE);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| io::Error::other(format!("{} is damaged: {e}", path.display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn save(&self, data_dir: &Path, item_id: &str) -> io::Result<()> {
        let dir = record_dir(data_dir, item_id)?;
        fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!("{RECORD_FILE}.tmp"));
        fs::write(&tmp, serde_json::to_vec(self).map_err(io::Error::other)?)?;
        fs::rename(tmp, dir.join(RECORD_FILE))
    }

    /// The folder-mode snapshot repository of `item_id`.
    pub fn snapshot_dir(data_dir: &Path, item_id: &str) -> io::Result<PathBuf> {
        Ok(record_dir(data_dir, item_id)?.join(SNAPSHOT_DIR))
    }

    /// Git on the repository holding both commits.
    pub fn git(&self, data_dir: &Path, item_id: &str) -> io::Result<Git> {
        Ok(match &self.repo {
            Some(repo) => Git::at(repo),
            None => Git::at(&Record::snapshot_dir(data_dir, item_id)?),
        })
    }
}

/// `{data_dir}/changes/{item id}`; ids are the queue's own (uuids), checked anyway.
pub(super) fn record_dir(data_dir: &Path, item_id: &str) -> io::Result<PathBuf> {
    if item_id.is_empty()
        || !item_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(io::Error::other(format!("{item_id:?} is not an item id")));
    }
    Ok(data_dir.join("changes").join(item_id))
}

/// The API path of an item's diff, the artifact that carries folder-mode changes.
pub fn diff_link(item_id: &str) -> String {
    format!("/api/items/{item_id}/diff")
}

/// Records where the item's work starts, on its first hand-over (later ones keep it).
pub fn hand_over(
    data_dir: &Path,
    item_id: &str,
    ws: &Workspace,
    repo: Option<&Path>,
) -> io::Result<()> {
    if Record::load(data_dir, item_id)?.is_some() {
        return Ok(());
    }
    let record = match repo {
        Some(repo) => Record {
            base: Git::at(&ws.workspace)
                .run(&["rev-parse", "--verify", "HEAD^{commit}"])
                .map_err(io::Error::other)?
                .line(),
            head: None,
            repo: Some(repo.to_path_buf()),
            branch: ws.branch.clone(),
            empty_base: false,
        },
        None => {
            let snap = SnapshotRepo::create(&Record::snapshot_dir(data_dir, item_id)?)?;
            let base = snap.commit_workspace(
                &ws.workspace,
                None,
                "the workspace as handed over",
                chrono::Utc::now(),
            )?;
            Record {
                base: base.commit,
                head: None,
                repo: None,
                branch: None,
                empty_base: base.empty,
            }
        }
    };
    record.save(data_dir, item_id)
}

/// After the agent exited 0: its artifacts and report (see `artifacts`), its changes committed
/// and recorded, and the rule applied.
pub fn collect(
    settings: &AgentSettings,
    ws: &Workspace,
    attempt: &Attempt,
    declared: Declared,
    reported: Option<Vec<AcceptanceEntry>>,
    branch: Option<ArtifactInput>,
) -> HandedBack {
    let data_dir = &settings.data_dir;
    let mut handed = artifacts::collect(
        data_dir,
        &ws.session_id,
        &ws.artifacts,
        declared,
        reported,
        None,
    );
    let changes = match record_changes(settings, ws, attempt) {
        Ok(summary) => summary,
        Err(e) => {
            handed
                .unmet
                .push(format!("the agent's changes could not be recorded: {e}"));
            return handed;
        }
    };
    let carrier = match (&ws.branch, changes.files) {
        (_, 0) => None,
        (Some(_), _) => branch.map(|mut b| {
            b.description = format!("git branch with the agent's work: {}", changes.in_words());
            b
        }),
        (None, _) if !attempt.carries_diff_link => Some(ArtifactInput {
            kind: ArtifactKind::Link,
            path: diff_link(&attempt.item_id),
            description: format!("changes to the workspace: {}", changes.in_words()),
        }),
        (None, _) => None,
    };
    if let Some(carrier) = carrier {
        handed.artifacts.insert(0, carrier);
        handed.artifacts.truncate(ARTIFACTS_MAX);
    }
    if changes.files == 0 && handed.artifacts.is_empty() {
        handed.unmet.push(match &ws.branch {
            Some(branch) => format!(
                "the agent delivered nothing: its branch {branch} has no changes beyond where it started, and it handed back no artifact"
            ),
            None => "the agent delivered nothing: it changed nothing in its workspace and handed back no artifact".into(),
        });
    }
    handed
}

/// Commits or snapshots what the agent left, records it as the head, and sums up the diff
/// against the first hand-over.
fn record_changes(
    settings: &AgentSettings,
    ws: &Workspace,
    attempt: &Attempt,
) -> Result<Summary, String> {
    let data_dir = &settings.data_dir;
    let mut record = Record::load(data_dir, &attempt.item_id)
        .map_err(|e| e.to_string())?
        .ok_or("no hand-over was recorded for this item")?;
    // The counts come free with a snapshot against an empty hand-over (every file is new);
    // otherwise git diffs the two commits.
    let (head, counted) = match &ws.branch {
        Some(branch) => (commit_leftovers(settings, ws, attempt, branch)?, None),
        None => {
            let dir =
                Record::snapshot_dir(data_dir, &attempt.item_id).map_err(|e| e.to_string())?;
            let message = format!("{} (attempt {})", attempt.title, attempt.number);
            let head = SnapshotRepo::at(&dir)
                .commit_workspace(
                    &ws.workspace,
                    Some(&record.base),
                    &message,
                    chrono::Utc::now(),
                )
                .map_err(|e| e.to_string())?;
            let counted = record.empty_base.then(|| Summary {
                files: head.files.len(),
                added: head.files.iter().filter_map(|f| f.lines).sum(),
                removed: 0,
            });
            (head.commit, counted)
        }
    };
    record.head = Some(head.clone());
    record
        .save(data_dir, &attempt.item_id)
        .map_err(|e| e.to_string())?;
    if let Some(summary) = counted {
        return Ok(summary);
    }
    let git = record
        .git(data_dir, &attempt.item_id)
        .map_err(|e| e.to_string())?;
    diff::summary(git, &record.base, &head).map_err(|e| e.to_string())
}

/// Commits what the agent left uncommitted in its worktree to the item's branch, as
/// "flightdeck", under the agent's sandbox. Returns the branch's head.
fn commit_leftovers(
    settings: &AgentSettings,
    ws: &Workspace,
    attempt: &Attempt,
    branch: &str,
) -> Result<String, String> {
    if !fs::symlink_metadata(&ws.workspace).is_ok_and(|m| m.is_dir()) {
        return Err("the worktree is not a real folder any more (the agent replaced it?)".into());
    }
    let plan = settings.sandbox.clone().map(|mut plan| {
        plan.writable.push(ws.root.clone());
        plan
    });
    let git = || Git::at(&ws.workspace).sandboxed(&settings.exe, plan.clone());
    let on = git()
        .answer(&["symbolic-ref", "--quiet", "HEAD"])
        .map_err(|e| e.to_string())?;
    let expected = format!("refs/heads/{branch}");
    if on.0 != 0 || on.1.line() != expected {
        return Err(format!(
            "the agent left its worktree on {} instead of the item's branch {branch}",
            if on.0 == 0 {
                on.1.line()
            } else {
                "a detached HEAD".into()
            }
        ));
    }
    git().run(&["add", "--all"]).map_err(|e| e.to_string())?;
    let (staged, _) = git()
        .answer(&["diff", "--cached", "--quiet", "--no-ext-diff"])
        .map_err(|e| e.to_string())?;
    if staged != 0 {
        let message = format!(
            "{} (attempt {}): work the agent left uncommitted\n\nCommitted by flightdeck after the agent exited.",
            attempt.title, attempt.number
        );
        git()
            .run(&["commit", "--quiet", "--no-verify", "-m", &message])
            .map_err(|e| e.to_string())?;
    }
    Ok(git()
        .run(&["rev-parse", "--verify", &expected])
        .map_err(|e| e.to_string())?
        .line())
}
