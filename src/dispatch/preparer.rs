//! Workspaces are prepared (folders made, the previous attempt's workspace moved over, a git
//! worktree added, the hand-over snapshot taken, see `deliverable`) on threads of their own,
//! and handed back in the order they were asked for. The Dispatcher's actix thread runs every
//! session, so file-system and git work there per launch held up every running agent's
//! output; and the order is kept so items still start in the order they were claimed.
//!
//! Folder-mode workspaces are independent, so [`WORKERS`] threads prepare them side by side;
//! every workspace of a git repository is prepared by the first thread, one at a time, since
//! git locks the repository's worktree list.

use super::workspace::{self, Workspace};
use futures_channel::oneshot;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Mutex, OnceLock};

/// Threads preparing workspaces.
const WORKERS: usize = 4;

type Job = Box<dyn FnOnce() + Send>;

static JOBS: OnceLock<Result<Vec<Sender<Job>>, String>> = OnceLock::new();
static NEXT_WORKER: AtomicUsize = AtomicUsize::new(0);
/// Resolves when the newest preparation asked for has been handed back.
static LAST: Mutex<Option<oneshot::Receiver<()>>> = Mutex::new(None);

/// What `workspace::prepare` needs, owned so it can travel to a thread.
pub struct Preparation {
    pub data_dir: PathBuf,
    pub session_id: String,
    pub item_id: String,
    pub previous: Option<PathBuf>,
    pub git_repo: Option<PathBuf>,
}

/// Prepares the workspace on a preparer thread; resolves once it is done and every
/// preparation asked for before it has resolved.
pub fn prepare(p: Preparation) -> impl Future<Output = io::Result<Workspace>> {
    let (done, result) = oneshot::channel();
    let worker = match p.git_repo {
        Some(_) => 0,
        None => NEXT_WORKER.fetch_add(1, Ordering::Relaxed) % WORKERS,
    };
    let job: Job = Box::new(move || {
        let _ = done.send(workspace::prepare(
            &p.data_dir,
            &p.session_id,
            &p.item_id,
            p.previous.as_deref(),
            p.git_repo.as_deref(),
        ));
    });
    let sent = match JOBS.get_or_init(start) {
        Ok(jobs) => jobs[worker].send(job).map_err(|_| stopped()),
        Err(why) => Err(io::Error::other(why.clone())),
    };
    let (handed_back, mine) = oneshot::channel::<()>();
    let before = LAST
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .replace(mine);
    async move {
        let ws = match sent {
            Ok(()) => result.await.map_err(|_| stopped()).and_then(|ws| ws),
            Err(e) => Err(e),
        };
        if let Some(before) = before {
            // A preparation dropped before resolving (its claim was abandoned) lets the next
            // one go too.
            let _ = before.await;
        }
        let _ = handed_back.send(());
        ws
    }
}

fn stopped() -> io::Error {
    io::Error::other("the workspace preparer threads have stopped")
}

fn start() -> Result<Vec<Sender<Job>>, String> {
    (0..WORKERS)
        .map(|i| {
            let (jobs, queue) = channel::<Job>();
            std::thread::Builder::new()
                .name(format!("workspaces-{i}"))
                .spawn(move || queue.into_iter().for_each(|job| job()))
                .map_err(|e| format!("cannot start a workspace preparer thread: {e}"))?;
            Ok(jobs)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// The first workspace takes far longer to snapshot (2,000 files taken over from a
    /// previous attempt) than the next ones, prepared meanwhile by the other threads; all
    /// are still handed back first to last.
    #[test]
    fn workspaces_are_handed_back_in_the_order_asked_for() {
        let data = tempfile::tempdir().expect("temp dir");
        let data_dir = data.path().canonicalize().expect("canonical");
        let previous = data_dir.join("agents").join("old").join("workspace");
        std::fs::create_dir_all(&previous).expect("previous workspace");
        for i in 0..2000 {
            std::fs::write(previous.join(format!("f{i}")), i.to_string()).expect("file");
        }
        let order = Arc::new(Mutex::new(Vec::new()));
        let futures: Vec<_> = (0..6)
            .map(|i| {
                let ws = prepare(Preparation {
                    data_dir: data_dir.clone(),
                    session_id: format!("s{i}"),
                    item_id: format!("item-{i}"),
                    previous: (i == 0).then(|| previous.clone()),
                    git_repo: None,
                });
                let order = order.clone();
                async move {
                    let ws = ws.await;
                    order.lock().expect("order").push(i);
                    ws
                }
            })
            .collect();
        let prepared = actix_rt::System::new().block_on(futures_util::future::join_all(futures));
        for ws in prepared {
            ws.expect("prepared");
        }
        assert_eq!(*order.lock().expect("order"), vec![0, 1, 2, 3, 4, 5]);
    }
}
