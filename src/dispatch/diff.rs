//! An item's diff: what its attempts changed against the first hand-over, file by file with
//! line counts, and as one unified diff bounded in size.
//!
//! Both ends are commits recorded by `deliverable`, so the diff is computed from git's object
//! store alone: no file of the workspace is read, and no link the agent planted is followed.
//! Git runs hardened (see `git`): no external diff, no textconv, no pager. When the hand-over
//! was an empty folder (folder mode's usual case) every file is new, and the diff is rendered
//! from the snapshot's objects in-process instead (`against_empty`), as git would render it:
//! runners build one per item to upload, and a git process each was most of their cost.

use super::deliverable::Record;
use super::git::{Git, GitError};
use super::snapshot::{LineCount, SnapshotRepo};
use serde::Serialize;
use std::io::Read;
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
    if record.empty_base {
        let dir = Record::snapshot_dir(data_dir, item_id)
            .map_err(|e| DiffError::Unreadable(e.to_string()))?;
        let repo = SnapshotRepo::at(&dir);
        if let Some(diff) = against_empty(&repo, &record.base, &head)? {
            return Ok(diff);
        }
    }
    let git = record
        .git(data_dir, item_id)
        .map_err(|e| DiffError::Unreadable(e.to_string()))?;
    by_git(git, &record.base, &head)
}

/// The diff between two commits, from git.
fn by_git(git: Git, base: &str, head: &str) -> Result<Diff, DiffError> {
    let (files, cut) = files(git.clone(), base, head)?;
    let mut args: Vec<&str> = DIFF.to_vec();
    args.extend([base, head, "--"]);
    let patch = git.limit(PATCH_MAX).run(&args)?;
    Ok(Diff {
        base: Some(base.to_string()),
        head: Some(head.to_string()),
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

/// Trees of more files are diffed by git: in a repository with far more objects git may
/// abbreviate ids past 7 digits, which the in-process rendering does not try to match.
const IN_PROCESS_FILES_MAX: usize = 2_000;

/// The diff against an empty hand-over (folder mode, a fresh workspace), from the snapshot's
/// objects without running git: every file is new, so its counts are its lines and the patch
/// is its text, rendered as `git diff` renders a new file (checked against git by a unit
/// test). None where git must be asked instead: an object not stored loose, a path git would
/// quote, or a tree of more than [`IN_PROCESS_FILES_MAX`] files.
fn against_empty(repo: &SnapshotRepo, base: &str, head: &str) -> Result<Option<Diff>, DiffError> {
    let unreadable = |e: std::io::Error| DiffError::Unreadable(e.to_string());
    let Some((tree, cut)) = repo
        .files_of(head, IN_PROCESS_FILES_MAX + 1)
        .map_err(unreadable)?
    else {
        return Ok(None);
    };
    if cut || tree.len() > IN_PROCESS_FILES_MAX || tree.iter().any(|f| git_quotes(&f.path)) {
        return Ok(None);
    }
    let mut files = Vec::with_capacity(tree.len());
    let mut patch: Vec<u8> = Vec::new();
    for file in &tree {
        let Some((len, blob)) = repo.open_blob(&file.blob).map_err(unreadable)? else {
            return Ok(None);
        };
        let counted = LineCount::read(blob, len).map_err(unreadable)?;
        let (lines, binary) = (counted.unwrap_or(0), counted.is_none());
        let path = String::from_utf8_lossy(&file.path).into_owned();
        files.push(FileChange {
            path: path.clone(),
            added: if binary { 0 } else { lines },
            removed: 0,
            status: "added",
            binary,
        });
        if patch.len() > PATCH_MAX {
            continue;
        }
        let name = &file.path;
        let abbrev = repo.abbrev(&file.blob).map_err(unreadable)?;
        for part in [b"diff --git a/".as_slice(), name, b" b/", name, b"\n"] {
            patch.extend_from_slice(part);
        }
        patch.extend_from_slice(
            format!("new file mode {}\nindex 0000000..{abbrev}\n", file.mode).as_bytes(),
        );
        if binary {
            for part in [
                b"Binary files /dev/null and b/".as_slice(),
                name,
                b" differ\n",
            ] {
                patch.extend_from_slice(part);
            }
        } else if len > 0 {
            let tab: &[u8] = if name.contains(&b' ') { b"\t" } else { b"" };
            for part in [b"--- /dev/null\n+++ b/".as_slice(), name, tab, b"\n"] {
                patch.extend_from_slice(part);
            }
            match lines {
                1 => patch.extend_from_slice(b"@@ -0,0 +1 @@\n"),
                n => patch.extend_from_slice(format!("@@ -0,0 +1,{n} @@\n").as_bytes()),
            }
            let Some((_, blob)) = repo.open_blob(&file.blob).map_err(unreadable)? else {
                return Ok(None);
            };
            added_lines(blob, &mut patch).map_err(unreadable)?;
        }
    }
    let truncated = patch.len() > PATCH_MAX;
    patch.truncate(PATCH_MAX);
    Ok(Some(Diff {
        base: Some(base.to_string()),
        head: Some(head.to_string()),
        files,
        patch: String::from_utf8_lossy(&patch).into_owned(),
        truncated,
    }))
}

/// Whether git would write this path in quotes (with `core.quotePath=false`).
fn git_quotes(path: &[u8]) -> bool {
    path.iter()
        .any(|b| *b < 0x20 || *b == 0x7f || *b == b'"' || *b == b'\\')
}

/// Appends a new file's text as added lines (`+line`), stopping once the patch is past its
/// limit; a last line without a newline is marked as git marks it.
fn added_lines(mut blob: impl Read, patch: &mut Vec<u8>) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut at_line_start = true;
    loop {
        let n = blob.read(&mut buf)?;
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            if at_line_start {
                patch.push(b'+');
            }
            patch.push(b);
            at_line_start = b == b'\n';
        }
        if patch.len() > PATCH_MAX {
            return Ok(());
        }
    }
    if !at_line_start {
        patch.extend_from_slice(b"\n\\ No newline at end of file\n");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diff_of_an_empty_hand_over_without_git_is_gits_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let ws = super::super::snapshot::tests::workspace(dir.path());
        let fresh = dir.path().join("fresh");
        std::fs::create_dir(&fresh).unwrap();
        let repo_dir = dir.path().join("snap.git");
        let repo = SnapshotRepo::create(&repo_dir).unwrap();
        let now = chrono::Utc::now();
        let base = repo.commit_workspace(&fresh, None, "base", now).unwrap();
        // Every kind of file the fixture has; then with its big log, which cuts the patch at
        // its limit.
        let big_log = std::fs::read(ws.join("big.log")).unwrap();
        std::fs::remove_file(ws.join("big.log")).unwrap();
        let small = repo
            .commit_workspace(&ws, Some(&base.commit), "small", now)
            .unwrap();
        std::fs::write(ws.join("big.log"), big_log).unwrap();
        let big = repo
            .commit_workspace(&ws, Some(&base.commit), "big", now)
            .unwrap();
        for head in [&small.commit, &big.commit] {
            let ours = against_empty(&repo, &base.commit, head).unwrap().unwrap();
            let gits = by_git(Git::at(&repo_dir), &base.commit, head).unwrap();
            assert_eq!(ours.patch, gits.patch);
            assert_eq!(ours.truncated, gits.truncated);
            assert_eq!(
                format!("{:?}", ours.files),
                format!("{:?}", gits.files),
                "the files and their counts"
            );
        }
        assert!(
            against_empty(&repo, &base.commit, &big.commit)
                .unwrap()
                .unwrap()
                .truncated
        );
    }
}
