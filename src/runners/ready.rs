//! A runner's readiness, as a file a probe can check without talking to the server: `ready`
//! in the runner's state dir holds the time of its last successful heartbeat (or registration)
//! and the lease it heartbeats under. The runner writes it after registering and after every
//! heartbeat the server answers, and removes it once the server has been unreachable for a
//! whole lease (by then the server has taken its items back) and when it stops.
//! `flightdeck runner-ready --state-dir DIR` exits 0 only while the file is fresh: its time
//! is less than one lease old. A runner that is alive but cut off from its server is not ready.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

const FILE: &str = "ready";

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Readiness {
    /// When the server last answered this runner.
    heartbeat_at: DateTime<Utc>,
    /// How long that answer counts for.
    lease_secs: u64,
}

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// Records that the server answered just now (written whole, then renamed into place, so a
/// probe never reads half a file).
pub fn mark(state_dir: &Path, lease: Duration) -> std::io::Result<()> {
    let text = serde_json::to_string(&Readiness {
        heartbeat_at: Utc::now(),
        lease_secs: lease.as_secs().max(1),
    })?;
    let tmp = state_dir.join(".ready.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path(state_dir))
}

/// The runner is not ready (the server is unreachable, or it stops).
pub fn clear(state_dir: &Path) {
    match std::fs::remove_file(path(state_dir)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => log::warn!("cannot remove {}: {e}", path(state_dir).display()),
    }
}

/// Ok with a sentence when the runner in `state_dir` heard from its server within one lease;
/// Err with a sentence saying why it is not ready.
pub fn check(state_dir: &Path) -> Result<String, String> {
    let file = path(state_dir);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "not ready: {} does not exist (the runner has not registered, cannot reach its server, or stopped)",
                file.display()
            ))
        }
        Err(e) => return Err(format!("not ready: cannot read {}: {e}", file.display())),
    };
    let readiness: Readiness = serde_json::from_str(&text).map_err(|e| {
        format!(
            "not ready: {} is not a readiness record: {e}",
            file.display()
        )
    })?;
    let age = Utc::now()
        .signed_duration_since(readiness.heartbeat_at)
        .num_seconds()
        .max(0) as u64;
    if age >= readiness.lease_secs {
        return Err(format!(
            "not ready: the server last answered {age}s ago, longer than the {}s lease",
            readiness.lease_secs
        ));
    }
    Ok(format!("ready: the server answered {age}s ago"))
}
