//! An item's diff: what its attempts changed against the first hand-over, file by file with
//! line counts, and as one unified diff bounded in size.
//!
//! Both ends are commits recorded by `deliverable`, so the diff is computed from git's object
//! store alone: no file of the workspace is read, and no link the agent planted is followed.
//! Git runs hardened (see `git`): no external diff, no textconv, no pager.

use super::deliverable::Record;
use super::git::{Git, GitError};
use serde::Serialize;
use std::path::Path;

/// The largest unified diff served; longer ones are cut and flagged.
pub const PATCH_MAX: usize = 1 << 20;
/// The most files listed; more are flagged.
pub const FILES_MAX: usize = 5_000;
const DIFF: &[&str] = &[
    "diff",
    "--no-ext-diff",
    "--no-textconv",
    "--no-renames",
    "--no-color",
];

/// One changed file.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FileChange {
    pub path: String,
    /// Lines added (0 for a binary file).
    pub added: u64,
    pub removed: u64,
    /// added, modified, deleted, type_changed (a file became a link, say)
    pub status: &'static str,
    pub binary: bool,
}

/// `GET /api/items/{id}/diff`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Diff {
    /// The commit of the first hand-over; null until an attempt on the item has finished.
    pub base: Option<String>,
    /// The commit the last finished attempt left; null until then.
    pub head: Option<String>,
    pub files: Vec<FileChange>,
    /// The unified diff, at most [`PATCH_MAX`] bytes.
    pub patch: String,
    /// The patch or the file list was cut at its limit.
    pub truncated: bool,
}

/// How much changed, for the artifact that carries the changes and the rule.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub files: usize,
    pub added: u64,
    pub removed: u64,
}

impl Summary {
    pub fn in_words(&self) -> String {
        let files = match self.files {
            1 => "1 file".to_string(),
            n => format!("{n} files"),
        };
        format!("{files} changed, +{} -{}", self.added, self.removed)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("no attempt on this item has finished yet, so it has no changes to show")]
    NothingYet,
    #[error("the item's changes could not be read: {0}")]
    Unreadable(String),
}

impl From<GitError> for DiffError {
    fn from(e: GitError) -> Self {
        DiffError::Unreadable(e.to_string())
    }
}

impl Diff {
    /// The diff of an item no attempt has finished on: nothing changed yet.
    pub fn nothing_yet() -> Diff {
        Diff {
            base: None,
            head: None,
            files: Vec::new(),
            patch: String::new(),
            truncated: false,
        }
    }
}

/// The diff of `item_id`'s work against its first hand-over.
pub fn for_item(data_dir: &Path, item_id: &str) -> Result<Diff, DiffError> {
    let record = Record::load(data_dir, item_id)
        .map_err(|e| DiffError::Unreadable(e.to_string()))?
        .ok_or(DiffError::NothingYet)?;
    let head = record.head.clone().ok_or(DiffError::NothingYet)?;
    let git = || {
        record
            .git(data_dir, item_id)
            .map_err(|e| DiffError::Unreadable(e.to_string()))
    };
    let (files, cut) = files(git()?, &record.base, &head)?;
    let mut args: Vec<&str> = DIFF.to_vec();
    args.extend([record.base.as_str(), head.as_str(), "--"]);
    let patch = git()?.limit(PATCH_MAX).run(&args)?;
    Ok(Diff {
        base: Some(record.base),
        head: Some(head),
        files,
        truncated: cut || patch.truncated,
        patch: String::from_utf8_lossy(&patch.stdout).into_owned(),
    })
}

/// The counts of the diff between two commits.
pub fn summary(git: Git, base: &str, head: &str) -> Result<Summary, GitError> {
    let (files, _) = files(git, base, head)?;
    Ok(Summary {
        files: files.len(),
        added: files.iter().map(|f| f.added).sum(),
        removed: files.iter().map(|f| f.removed).sum(),
    })
}

/// The changed files with their counts and status (from `--raw --numstat -z`, one run).
fn files(git: Git, base: &str, head: &str) -> Result<(Vec<FileChange>, bool), GitError> {
    let mut args: Vec<&str> = DIFF.to_vec();
    args.extend(["--raw", "--numstat", "-z", base, head, "--"]);
    let out = git.limit(8 << 20).run(&args)?;
    let mut fields = out
        .stdout
        .split(|b| *b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned());
    let mut files: Vec<FileChange> = Vec::new();
    let mut by_path = std::collections::HashMap::new();
    let mut cut = out.truncated;
    // --raw entries come first: ":mode mode sha sha S\0path\0"; then numstat: "a\tr\tpath\0".
    while let Some(field) = fields.next() {
        if let Some(raw) = field.strip_prefix(':') {
            let Some(path) = fields.next() else { break };
            let status = match raw.rsplit(' ').next().unwrap_or("") {
                "A" => "added",
                "D" => "deleted",
                "T" => "type_changed",
                _ => "modified",
            };
            if files.len() >= FILES_MAX {
                cut = true;
                continue;
            }
            by_path.insert(path.clone(), files.len());
            files.push(FileChange {
                path,
                added: 0,
                removed: 0,
                status,
                binary: false,
            });
        } else if let Some((counts, path)) = field.split_once('\t').and_then(|(a, rest)| {
            let (r, path) = rest.split_once('\t')?;
            Some(((a.to_string(), r.to_string()), path.to_string()))
        }) {
            if let Some(file) = by_path.get(&path).and_then(|i| files.get_mut(*i)) {
                match (counts.0.parse(), counts.1.parse()) {
                    (Ok(a), Ok(r)) => (file.added, file.removed) = (a, r),
                    _ => file.binary = true,
                }
            }
        }
    }
    Ok((files, cut))
}
