//! An agent session's folders: `{data_dir}/agents/{sessionId}/workspace/` (the agent's working
//! directory, AGENTS.md at its root), `.../artifacts/` (what it hands back) and `.../session.log`
//! (everything it printed). A retry takes over the previous attempt's workspace, so no work is
//! thrown away. With `workspace.git_repo` set, the workspace is a git worktree of that repo on
//! the branch `flightdeck/<short item id>`; AGENTS.md is kept out of git there (the
//! repository's `info/exclude` names `/AGENTS.md`, and a tracked AGENTS.md of the project is
//! marked skip-worktree in the worktree), so neither the agent's `git add -A` nor flightdeck's
//! commit takes it. Every hand-over is recorded (see `deliverable`), so the work can be
//! measured against it.
//!
//! The previous attempt's agent had the run of its session folder: its workspace may now be a
//! symlink to anywhere. It is taken over only if it is a real folder of the data dir's agents
//! folder (checked without following links), and AGENTS.md is written through
//! [`session_files::replace`], so neither the move nor the write can land outside.

use super::deliverable::{self, AGENTS_MD};
use super::git::Git;
use super::session_files;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

pub fn session_dir(data_dir: &Path, session_id: &str) -> PathBuf {
    data_dir.join("agents").join(session_id)
}

/// The folders of one session.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub session_id: String,
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
    let previous = previous.filter(|p| taken_over(data_dir, p));
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
            let exists = git_run(
                repo,
                &[
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    &format!("refs/heads/{name}"),
                ],
            )
            .is_ok();
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
    let ws = Workspace {
        session_id: session_id.to_string(),
        agents_md: workspace.join(AGENTS_MD),
        log: root.join("session.log"),
        root,
        workspace,
        artifacts,
        branch,
    };
    if git_repo.is_some() {
        keep_agents_md_out_of_git(&ws.workspace)?;
    }
    deliverable::hand_over(data_dir, item_id, &ws, git_repo)?;
    Ok(ws)
}

/// Makes git overlook AGENTS.md in the worktree: untracked, it is excluded (git reads
/// `info/exclude` from the repository's common folder only, so the line is shared with its
/// other worktrees, where it hides only an untracked top-level AGENTS.md); tracked by the
/// project, it is marked skip-worktree in this worktree's own index, so flightdeck's version of
/// it is never staged.
fn keep_agents_md_out_of_git(workspace: &Path) -> io::Result<()> {
    let common = git_run(workspace, &["rev-parse", "--git-common-dir"])?;
    let common = workspace.join(common.trim());
    let info = common.join("info");
    fs::create_dir_all(&info)?;
    let exclude = info.join("exclude");
    let line = format!("/{AGENTS_MD}");
    let current = match fs::read_to_string(&exclude) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    if !current.lines().any(|l| l.trim() == line) {
        let mut text = current;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&line);
        text.push('\n');
        fs::write(&exclude, text)?;
    }
    if git_run(workspace, &["ls-files", "--error-unmatch", "--", AGENTS_MD]).is_ok() {
        git(
            workspace,
            &["update-index", "--skip-worktree", "--", AGENTS_MD],
        )?;
    }
    Ok(())
}

/// Whether the previous attempt's workspace may be taken over: a real folder (not a link) at
/// `agents/<sessionId>/workspace` of the data dir.
fn taken_over(data_dir: &Path, previous: &Path) -> bool {
    let Ok(rel) = previous.strip_prefix(data_dir) else {
        log::warn!(
            "previous workspace {} is outside the data dir: not taken over",
            previous.display()
        );
        return false;
    };
    let parts: Vec<Component> = rel.components().collect();
    let shaped = matches!(
        parts.as_slice(),
        [Component::Normal(agents), Component::Normal(_), Component::Normal(name)]
            if *agents == "agents" && *name == "workspace"
    );
    let real = shaped && session_files::is_real_folder(data_dir, rel);
    if !real {
        log::warn!(
            "previous workspace {} is not a real folder of a session (the agent replaced it?): the new attempt starts afresh",
            previous.display()
        );
    }
    real
}

impl Workspace {
    /// Writes AGENTS.md at the workspace's root as a new file, replacing whatever the previous
    /// attempt left under that name (a symlink included), never following a link.
    pub fn write_agents_md(&self, data_dir: &Path, text: &str) -> io::Result<()> {
        let rel = Path::new("agents")
            .join(&self.session_id)
            .join("workspace")
            .join("AGENTS.md");
        session_files::replace(data_dir, &rel, text.as_bytes()).map_err(io::Error::other)
    }
}

fn path_arg(p: &Path) -> io::Result<String> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| io::Error::other(format!("path is not UTF-8: {}", p.display())))
}

fn git(repo: &Path, args: &[&str]) -> io::Result<()> {
    git_run(repo, args).map(|_| ())
}

fn git_run(dir: &Path, args: &[&str]) -> io::Result<String> {
    Git::at(dir)
        .run(args)
        .map(|out| out.line())
        .map_err(io::Error::other)
}

/// Removes a finished item's worktree once nothing in it can be lost: git refuses while it
/// holds uncommitted changes or untracked files, and it is kept while its commit is on no
/// branch (an agent that detached HEAD). The branch always stays. A workspace the agent
/// replaced with a link is left alone.
pub fn remove_worktree(repo: &Path, workspace: &Path) -> io::Result<()> {
    if !fs::symlink_metadata(workspace).is_ok_and(|m| m.is_dir()) {
        return Err(io::Error::other(format!(
            "{} is not a real folder",
            workspace.display()
        )));
    }
    let head = git_run(workspace, &["rev-parse", "--verify", "HEAD^{commit}"])?;
    let holders = git_run(repo, &["for-each-ref", "--contains", &head, "refs/heads/"])?;
    if holders.is_empty() {
        return Err(io::Error::other(format!(
            "its commit {head} is on no branch; the worktree {} is kept",
            workspace.display()
        )));
    }
    git(repo, &["worktree", "remove", &path_arg(workspace)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_previous_workspace_that_is_a_link_is_not_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let outside = dir.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        let first = prepare(&data, "s1", "item", None, None).unwrap();
        fs::write(first.workspace.join("notes.txt"), "kept").unwrap();
        let second = prepare(&data, "s2", "item", Some(&first.workspace), None).unwrap();
        assert!(second.workspace.join("notes.txt").exists(), "a real one is");
        fs::rename(&second.workspace, second.root.join("moved")).unwrap();
        std::os::unix::fs::symlink(&outside, &second.workspace).unwrap();
        let third = prepare(&data, "s3", "item", Some(&second.workspace), None).unwrap();
        third.write_agents_md(&data, "# the item").unwrap();
        assert!(!outside.join("AGENTS.md").exists());
        assert!(fs::symlink_metadata(&third.workspace).unwrap().is_dir());
        assert!(!third.workspace.join("notes.txt").exists(), "a fresh start");
        // A link planted where AGENTS.md goes is replaced, not followed.
        fs::remove_file(&third.agents_md).unwrap();
        std::os::unix::fs::symlink(outside.join("AGENTS.md"), &third.agents_md).unwrap();
        third.write_agents_md(&data, "# again").unwrap();
        assert!(!outside.join("AGENTS.md").exists());
        assert_eq!(fs::read_to_string(&third.agents_md).unwrap(), "# again");
    }
}
