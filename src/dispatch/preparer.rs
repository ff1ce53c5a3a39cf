//! Workspaces are prepared (folders made, the previous attempt's workspace moved over, a git
//! worktree added) on a thread of their own, one at a time in the order they are asked for.
//! The Dispatcher's actix thread runs every session, so file-system and git work there per
//! launch held up every running agent's output; and one thread in order, not a pool, so
//! items still start in the order they were claimed.

use super::workspace::{self, Workspace};
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Sender};
use std::sync::OnceLock;

type Job = Box<dyn FnOnce() + Send>;

static JOBS: OnceLock<Result<Sender<Job>, String>> = OnceLock::new();

/// What `workspace::prepare` needs, owned so it can travel to the thread.
pub struct Preparation {
    pub data_dir: PathBuf,
    pub session_id: String,
    pub item_id: String,
    pub previous: Option<PathBuf>,
    pub git_repo: Option<PathBuf>,
}

/// Prepares the workspace on the preparer thread; resolves once it is done.
pub fn prepare(p: Preparation) -> impl Future<Output = io::Result<Workspace>> {
    let (done, result) = futures_channel::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = done.send(workspace::prepare(
            &p.data_dir,
            &p.session_id,
            &p.item_id,
            p.previous.as_deref(),
            p.git_repo.as_deref(),
        ));
    });
    let sent = match jobs() {
        Ok(jobs) => jobs
            .send(job)
            .map_err(|_| io::Error::other("the workspace preparer thread has stopped")),
        Err(why) => Err(io::Error::other(why)),
    };
    async move {
        sent?;
        result
            .await
            .map_err(|_| io::Error::other("the workspace preparer thread has stopped"))?
    }
}

fn jobs() -> Result<&'static Sender<Job>, String> {
    JOBS.get_or_init(|| {
        let (jobs, queue) = channel::<Job>();
        std::thread::Builder::new()
            .name("workspaces".into())
            .spawn(move || queue.into_iter().for_each(|job| job()))
            .map_err(|e| format!("cannot start the workspace preparer thread: {e}"))?;
        Ok(jobs)
    })
    .as_ref()
    .map_err(Clone::clone)
}
