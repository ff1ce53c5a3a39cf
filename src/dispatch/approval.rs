//! Approving an item's work in git worktree mode: `workspace.on_approve = "keep"` leaves the
//! item's branch for people to merge; `"merge"` brings it into the base branch (the one
//! checked out in `workspace.git_repo`, or `workspace.base_branch`) by a fast-forward or a
//! merge commit.
//!
//! The merge is worked out first without touching any working tree (`git merge-tree`), so a
//! conflict changes nothing and is answered with the files it is in; the item stays in Review.
//! Only a clean result moves the base branch: with `merge --ff-only` when the base is checked
//! out in the repository (which also refuses to overwrite local changes there), with a
//! compare-and-swap of the ref otherwise. The branch is never deleted.

use super::deliverable::Record;
use super::git::{Git, GitError};
use crate::config::{OnApprove, WorkspaceConfig};
use std::path::{Path, PathBuf};

/// What approving does, from the config.
#[derive(Debug, Clone)]
pub struct Approval {
    pub repo: Option<PathBuf>,
    pub on_approve: OnApprove,
    pub base_branch: Option<String>,
}

impl Approval {
    pub fn from_config(workspace: &WorkspaceConfig) -> Approval {
        Approval {
            repo: (!workspace.git_repo.is_empty()).then(|| PathBuf::from(&workspace.git_repo)),
            on_approve: workspace.on_approve,
            base_branch: (!workspace.base_branch.is_empty()).then(|| workspace.base_branch.clone()),
        }
    }

    /// Whether approving needs [`merge`] to run first.
    pub fn merges(&self) -> bool {
        self.repo.is_some() && self.on_approve == OnApprove::Merge
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    #[error("{0}")]
    Conflict(String),
    #[error("the work of {title:?} could not be merged: {why}")]
    Failed { title: String, why: String },
}

/// Merges `item_id`'s branch into the base branch. Returns a sentence saying what happened.
pub fn merge(
    approval: &Approval,
    data_dir: &Path,
    item_id: &str,
    title: &str,
) -> Result<String, ApproveError> {
    let failed = |why: String| ApproveError::Failed {
        title: title.to_string(),
        why,
    };
    let Some(repo) = &approval.repo else {
        return Ok("kept".into());
    };
    let record = Record::load(data_dir, item_id)
        .map_err(|e| failed(e.to_string()))?
        .filter(|r| r.repo.is_some())
        .ok_or_else(|| failed("no agent has worked on it in a git worktree".into()))?;
    let branch = record
        .branch
        .clone()
        .ok_or_else(|| failed("its branch is not recorded".into()))?;
    let git = || Git::at(repo);
    let err = |e: GitError| failed(e.to_string());
    let checked_out = git()
        .answer(&["symbolic-ref", "--quiet", "--short", "HEAD"])
        .map_err(err)?;
    let checked_out = (checked_out.0 == 0).then(|| checked_out.1.line());
    let base = match (&approval.base_branch, &checked_out) {
        (Some(base), _) => base.clone(),
        (None, Some(current)) => current.clone(),
        (None, None) => {
            return Err(failed(format!(
                "{} has no branch checked out; set workspace.base_branch",
                repo.display()
            )))
        }
    };
    let base_ref = format!("refs/heads/{base}");
    let branch_ref = format!("refs/heads/{branch}");
    let base_at = git()
        .run(&["rev-parse", "--verify", &format!("{base_ref}^{{commit}}")])
        .map_err(|_| failed(format!("the base branch {base} does not exist")))?
        .line();
    let branch_at = git()
        .run(&["rev-parse", "--verify", &format!("{branch_ref}^{{commit}}")])
        .map_err(|_| failed(format!("its branch {branch} does not exist any more")))?
        .line();
    let (ancestor, _) = git()
        .answer(&["merge-base", "--is-ancestor", &base_at, &branch_at])
        .map_err(err)?;
    let target = if ancestor == 0 {
        branch_at.clone()
    } else {
        let (clean, out) = git()
            .answer(&[
                "merge-tree",
                "--write-tree",
                "--name-only",
                "--no-messages",
                "-z",
                &base_at,
                &branch_at,
            ])
            .map_err(err)?;
        let mut fields = out
            .stdout
            .split(|b| *b == 0)
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .filter(|f| !f.is_empty());
        let tree = fields.next().unwrap_or_default();
        if clean == 1 {
            let files: Vec<String> = fields.take(20).collect();
            return Err(ApproveError::Conflict(format!(
                "the work of {title:?} on {branch} conflicts with {base} in {}; it stays in review: merge {branch} into {base} by hand, or reject the item so an agent redoes it on top of {base}",
                files.join(", ")
            )));
        }
        if clean != 0 || tree.is_empty() {
            return Err(failed("git merge-tree could not merge the branches".into()));
        }
        let message = format!("Merge {branch}: {title}\n\nApproved in flightdeck.");
        git()
            .run(&[
                "commit-tree",
                &tree,
                "-p",
                &base_at,
                "-p",
                &branch_at,
                "-m",
                &message,
            ])
            .map_err(err)?
            .line()
    };
    if checked_out.as_deref() == Some(base.as_str()) {
        git()
            .run(&["merge", "--ff-only", "--quiet", &target])
            .map_err(|e| {
                ApproveError::Conflict(format!(
                    "the work of {title:?} could not be merged into {base}, which is checked out in {} with changes of its own in the way; it stays in review ({e})",
                    repo.display()
                ))
            })?;
    } else {
        git()
            .run(&[
                "update-ref",
                "-m",
                "flightdeck: approve",
                &base_ref,
                &target,
                &base_at,
            ])
            .map_err(err)?;
    }
    Ok(if target == branch_at {
        format!("{branch} fast-forwarded into {base}")
    } else {
        format!("{branch} merged into {base}")
    })
}
