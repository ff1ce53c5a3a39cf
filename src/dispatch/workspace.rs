//! An agent session's folders: `{data_dir}/agents/{sessionId}/workspace/` (the agent's working
//! directory, AGENTS.md at its root), `.../artifacts/` (what it hands back) and `.../session.log`
//! (everything it printed). A retry takes over the previous attempt's workspace, so no work is
//! thrown away. With `workspace.git_repo` set, the workspace is a git worktree of that repo on
//! the branch `flightdeck/<short item id>`.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

pub fn session_dir(data_dir: &Path, session_id: &str) -> PathBuf {
    data_dir.join("agents").join(session_id)
}

pub fn session_log_path(data_dir: &Path, session_id: &str) -> PathBuf {
    session_dir(data_dir, session_id).join("session.log")
}

/// The folders of one session.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    pub workspace: PathBuf,
    pub artifacts: PathBuf,
    pub log: PathBuf,
    pub agents_md: PathBuf,
    /// The branch, when the workspace is a git worktree.
    pub branch: Option<String>,
}

pub fn branch_for(item_id: &str) -> String {
    format!("flightdeck/{}", &item_id[..item_id.len().min(8)])
}

/// Creates the session's folders. `previous` is the workspace of the item's last attempt, if
/// any: it is moved here so this attempt continues where that one stopped.
pub fn prepare(
    data_dir: &Path,
    session_id: &str,
    item_id: &str,
    previous: Option<&Path>,
    git_repo: Option<&Path>,
) -> io::Result<Workspace> {
    let root = session_dir(data_dir, session_id);
    let workspace = root.join("workspace");
    let artifacts = root.join("artifacts");
    fs::create_dir_all(&artifacts)?;
    let mut branch = None;
    let previous = previous.filter(|p| p.is_dir());
    match (git_repo, previous) {
        (Some(repo), Some(prev)) => {
            git(
                repo,
                &["worktree", "move", &path_arg(prev)?, &path_arg(&workspace)?],
            )?;
            branch = Some(branch_for(item_id));
        }
        (Some(repo), None) => {
            let name = branch_for(item_id);
            let exists = Command::new("git")
                .arg("-C")
                .arg(repo)
                .args(["rev-parse", "--verify", "--quiet"])
                .arg(format!("refs/heads/{name}"))
                .output()?
                .status
                .success();
            let target = path_arg(&workspace)?;
            if exists {
                git(repo, &["worktree", "add", &target, &name])?;
            } else {
                git(repo, &["worktree", "add", "-b", &name, &target])?;
            }
            branch = Some(name);
        }
        (None, Some(prev)) => fs::rename(prev, &workspace)?,
        (None, None) => fs::create_dir_all(&workspace)?,
    }
    Ok(Workspace {
        agents_md: workspace.join("AGENTS.md"),
        log: root.join("session.log"),
        root,
        workspace,
        artifacts,
        branch,
    })
}

fn path_arg(p: &Path) -> io::Result<String> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| io::Error::other(format!("path is not UTF-8: {}", p.display())))
}

fn git(repo: &Path, args: &[&str]) -> io::Result<()> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Removes a finished item's worktree; the branch stays for people to review and merge.
pub fn remove_worktree(repo: &Path, workspace: &Path) -> io::Result<()> {
    git(
        repo,
        &["worktree", "remove", "--force", &path_arg(workspace)?],
    )
}

/// Every regular file under the artifacts folder except the acceptance report, as paths
/// relative to the data dir. Symlinks are not followed, so none can point outside.
pub fn collect_files(data_dir: &Path, artifacts: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![artifacts.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() && path != artifacts.join(ACCEPTANCE_FILE) {
                if let Ok(rel) = path.strip_prefix(data_dir) {
                    if let Some(s) = rel.to_str() {
                        out.push(s.to_string());
                    }
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The acceptance report an agent may leave in its artifacts folder.
pub const ACCEPTANCE_FILE: &str = "acceptance.json";

/// Resolves an artifact path (relative to the data dir) to a file inside the data dir,
/// refusing absolute paths, `..`, and symlinks that lead outside.
pub fn resolve_artifact(data_dir: &Path, path: &str) -> Result<PathBuf, String> {
    let rel = Path::new(path);
    if rel.is_absolute() {
        return Err(format!(
            "artifact path {path:?} must be relative to the data dir"
        ));
    }
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!("artifact path {path:?} must not contain '..'"));
    }
    let base = data_dir
        .canonicalize()
        .map_err(|e| format!("data dir unavailable: {e}"))?;
    let full = base
        .join(rel)
        .canonicalize()
        .map_err(|_| format!("artifact file {path:?} does not exist"))?;
    if !full.starts_with(&base) {
        return Err(format!("artifact path {path:?} leads outside the data dir"));
    }
    if !full.is_file() {
        return Err(format!("artifact path {path:?} is not a file"));
    }
    Ok(full)
}

/// Turns a path an agent declared (relative to its artifacts folder, or absolute inside it)
/// into one relative to the data dir, refusing anything outside the artifacts folder.
pub fn declared_artifact(
    data_dir: &Path,
    artifacts: &Path,
    declared: &str,
) -> Result<String, String> {
    let candidate = if Path::new(declared).is_absolute() {
        PathBuf::from(declared)
    } else {
        artifacts.join(declared)
    };
    let full = candidate
        .canonicalize()
        .map_err(|_| format!("declared artifact {declared:?} does not exist"))?;
    let arts = artifacts
        .canonicalize()
        .map_err(|e| format!("artifacts folder unavailable: {e}"))?;
    if !full.starts_with(&arts) {
        return Err(format!(
            "declared artifact {declared:?} is outside the session's artifacts folder"
        ));
    }
    let base = data_dir
        .canonicalize()
        .map_err(|e| format!("data dir unavailable: {e}"))?;
    full.strip_prefix(&base)
        .ok()
        .and_then(|p| p.to_str())
        .map(str::to_string)
        .ok_or_else(|| format!("declared artifact {declared:?} is outside the data dir"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_paths_cannot_escape() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::create_dir_all(data.join("agents/s/artifacts")).unwrap();
        fs::write(data.join("agents/s/artifacts/plan.md"), "x").unwrap();
        fs::write(dir.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("secret"),
            data.join("agents/s/artifacts/link"),
        )
        .unwrap();
        assert!(resolve_artifact(&data, "agents/s/artifacts/plan.md").is_ok());
        assert!(resolve_artifact(&data, "../secret").is_err());
        assert!(resolve_artifact(&data, "/etc/passwd").is_err());
        assert!(resolve_artifact(&data, "agents/s/artifacts/link").is_err());
        let arts = data.join("agents/s/artifacts");
        assert_eq!(
            declared_artifact(&data, &arts, "plan.md").unwrap(),
            "agents/s/artifacts/plan.md"
        );
        assert!(declared_artifact(&data, &arts, "../../../../secret").is_err());
        assert!(declared_artifact(&data, &arts, "link").is_err());
    }
}
