//! Keeping agents off the server's own API by the cgroup that made their connection.
//!
//! An agent must not use the API (approve its own work, plant items), least of all when the
//! server runs with `server.token = "none"`. The first fence was Landlock's: a network rule
//! per port for every port but the server's, 65,534 of them, which the kernel copies into
//! every agent's sandbox (about 25 ms of CPU per agent, serialised on one lock: with a pool of
//! 8 it made dispatch of short agents ten times slower than spawning them).
//!
//! Where every agent runs in its session's cgroup (`dispatch::cgroup`), the server can ask
//! the kernel, for each connection it accepts, which cgroup made the other end
//! (`socket_cgroup`), and refuse a connection made from a session's cgroup (`api::fence`
//! shuts it at once and answers 403 to any request already received).
//! That holds as long as an agent cannot leave its cgroup: the sandbox forbids writing to
//! the cgroup files and `clone3` (see `sandbox`). A client that is gone before the server
//! asks (an agent can send a request and reset the connection at once) is refused when it
//! was on this machine, as is any connection whose maker the kernel cannot name: the fence
//! fails closed. Clients on other machines are not found and are served.
//!
//! The fence is checked once at start-up on a loopback connection of the server's own; where
//! the kernel does not say (before Linux 5.10) or sessions have no cgroups, agents get the
//! Landlock port rules instead, as does a session whose cgroup could not be made.

use super::cgroup::CgroupRoot;
use super::socket_cgroup;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Cgroups known not to be sessions' (the board's browser, the CLI) kept at most; past it
/// the list starts again.
const OTHERS_MAX: usize = 4096;
/// Refusals that name no session are logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The server's fence; cheap to clone (one per HTTP worker).
#[derive(Clone)]
pub struct ApiFence(Arc<Fence>);

struct Fence {
    /// Where the server makes its sessions' cgroups.
    dir: PathBuf,
    known: Mutex<Known>,
}

#[derive(Default)]
struct Known {
    /// Session cgroups by id, with their session's id, as of the last look at `dir`.
    sessions: HashMap<u64, String>,
    /// Cgroups that were no session's when a connection came from them. A cgroup id is
    /// never reused, and a cgroup cannot be renamed by an agent, so this stays true.
    others: HashSet<u64>,
    /// Sessions whose refusal was logged.
    warned: HashSet<String>,
    last_warning: Option<Instant>,
}

/// Why a connection is refused, for the person reading the log and the agent reading the
/// answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Made from the cgroup of this session.
    Agent(String),
    /// Made on this machine by a process the kernel cannot name now (`why`).
    Unknown(String),
}

impl Refusal {
    /// The sentence the refused client reads.
    pub fn sentence(&self) -> String {
        match self {
            Refusal::Agent(session) => format!(
                "This connection was made from inside the sandbox of an agent (session {session}): agents may not use the flightdeck API. An agent reports through its output and the files in its workspace."
            ),
            Refusal::Unknown(why) => format!(
                "flightdeck could not tell which process on this machine made this connection ({why}), so it refused it: agents may not use the API. Connect again."
            ),
        }
    }
}

impl ApiFence {
    /// The fence over the sessions made in `root`, once a loopback connection of the
    /// server's own is found in the server's own cgroup; `Err` says why it cannot be used.
    pub fn detect(root: &CgroupRoot) -> Result<ApiFence, String> {
        let own = std::fs::metadata(root.dir())
            .map_err(|e| format!("cannot look at {}: {e}", root.dir().display()))?
            .ino();
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("cannot open a loopback port to check it: {e}"))?;
        let server = listener
            .local_addr()
            .map_err(|e| format!("loopback check: {e}"))?;
        let _client = std::net::TcpStream::connect(server)
            .map_err(|e| format!("cannot connect to a loopback port to check it: {e}"))?;
        let (_accepted, client) = listener
            .accept()
            .map_err(|e| format!("loopback check: {e}"))?;
        match socket_cgroup::of_client(client, server) {
            Ok(Some(id)) if id == own => Ok(ApiFence(Arc::new(Fence {
                dir: root.dir().to_path_buf(),
                known: Mutex::new(Known::default()),
            }))),
            Ok(Some(id)) => Err(format!(
                "the kernel names cgroup {id} as the maker of the server's own connection, not the server's ({own})"
            )),
            Ok(None) => Err("the kernel does not find the server's own loopback connection".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Whether to serve a connection just accepted from `client` on `server` (the
    /// connection's own addresses), or why not.
    pub fn check(&self, client: SocketAddr, server: SocketAddr) -> Result<(), Refusal> {
        let refusal = match socket_cgroup::of_client(client, server) {
            Ok(Some(id)) => match self.session_of(id) {
                None => return Ok(()),
                Some(session) => Refusal::Agent(session),
            },
            Ok(None) if !on_this_machine(client.ip(), server.ip()) => return Ok(()),
            Ok(None) => {
                Refusal::Unknown("the client's end was closed before it was looked up".into())
            }
            Err(e) => Refusal::Unknown(e.to_string()),
        };
        self.log(&refusal, client);
        Err(refusal)
    }

    /// The session whose cgroup has this id, looking at the sessions' cgroups again when the
    /// id is new.
    fn session_of(&self, id: u64) -> Option<String> {
        let mut known = self.0.known.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(session) = known.sessions.get(&id) {
            return Some(session.clone());
        }
        if known.others.contains(&id) {
            return None;
        }
        known.sessions = self.sessions_now();
        if let Some(session) = known.sessions.get(&id) {
            return Some(session.clone());
        }
        if known.others.len() >= OTHERS_MAX {
            known.others.clear();
        }
        known.others.insert(id);
        None
    }

    /// The session cgroups in the server's folder now, by id.
    fn sessions_now(&self) -> HashMap<u64, String> {
        let Ok(entries) = std::fs::read_dir(&self.0.dir) else {
            return HashMap::new();
        };
        entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name();
                let session = super::cgroup::session_of(name.to_str()?)?.to_string();
                let id = entry.metadata().ok().filter(|m| m.is_dir())?.ino();
                Some((id, session))
            })
            .collect()
    }

    fn log(&self, refusal: &Refusal, client: SocketAddr) {
        let mut known = self.0.known.lock().unwrap_or_else(|p| p.into_inner());
        let first = match refusal {
            Refusal::Agent(session) => {
                if known.warned.len() >= OTHERS_MAX {
                    known.warned.clear();
                }
                known.warned.insert(session.clone())
            }
            Refusal::Unknown(_) => {
                let due = known.last_warning.is_none_or(|t| t.elapsed() >= WARN_EVERY);
                if due {
                    known.last_warning = Some(Instant::now());
                }
                due
            }
        };
        let line = match refusal {
            Refusal::Agent(session) => format!(
                "refused a connection to the API from {client}, made by the agent of session {session} (further ones from it are not logged)"
            ),
            Refusal::Unknown(why) => format!(
                "refused a connection to the API from {client} on this machine: {why}"
            ),
        };
        match first {
            true => log::warn!("{line}"),
            false => log::debug!("{line}"),
        }
    }
}

/// Whether a client at `client` whose socket is gone was on this machine: a loopback
/// address, the address it connected to, or any address of this machine's interfaces.
fn on_this_machine(client: IpAddr, server: IpAddr) -> bool {
    let client = client.to_canonical();
    client.is_loopback() || client == server.to_canonical() || local_addresses().contains(&client)
}

/// The addresses of this machine's interfaces (none if they cannot be listed, which makes
/// the caller's loopback and same-address checks the only ones).
fn local_addresses() -> Vec<IpAddr> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut at = list;
    while !at.is_null() {
        // SAFETY: `at` walks the list getifaddrs made, which lives until freeifaddrs.
        let entry = unsafe { &*at };
        if !entry.ifa_addr.is_null() {
            // SAFETY: ifa_addr points at a sockaddr whose family says its real type.
            let family = unsafe { (*entry.ifa_addr).sa_family } as i32;
            if family == libc::AF_INET {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let v4 = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in) };
                out.push(IpAddr::from(u32::from_be(v4.sin_addr.s_addr).to_be_bytes()));
            } else if family == libc::AF_INET6 {
                // SAFETY: an AF_INET6 address is a sockaddr_in6.
                let v6 = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in6) };
                out.push(IpAddr::from(v6.sin6_addr.s6_addr));
            }
        }
        at = entry.ifa_next;
    }
    // SAFETY: the list came from getifaddrs and is not used after this.
    unsafe { libc::freeifaddrs(list) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_includes_loopback_and_its_own_addresses_not_others() {
        let any: IpAddr = "192.0.2.7".parse().unwrap(); // TEST-NET-1, never local
        assert!(on_this_machine("127.0.0.1".parse().unwrap(), any));
        assert!(on_this_machine("::1".parse().unwrap(), any));
        assert!(on_this_machine("::ffff:127.0.0.1".parse().unwrap(), any));
        assert!(on_this_machine(any, any), "the address it connected to");
        assert!(!on_this_machine(any, "127.0.0.1".parse().unwrap()));
        for own in local_addresses() {
            assert!(on_this_machine(own, any), "{own}");
        }
    }

    /// A fence whose sessions' cgroups would be made in `dir`.
    fn fence_over(dir: &std::path::Path) -> ApiFence {
        ApiFence(Arc::new(Fence {
            dir: dir.to_path_buf(),
            known: Mutex::new(Known::default()),
        }))
    }

    #[test]
    fn a_local_client_of_no_session_is_served_and_one_gone_before_the_look_up_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fence = fence_over(dir.path());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(server).unwrap();
        let (_accepted, client_addr) = listener.accept().unwrap();
        assert_eq!(fence.check(client_addr, server), Ok(()));
        // The client resets the connection (SO_LINGER 0) before the server looks it up: its
        // request may be waiting in the server's socket, so it must not be served.
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt reads a linger struct of the given size.
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&client),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        drop(client);
        assert!(
            matches!(fence.check(client_addr, server), Err(Refusal::Unknown(_))),
            "a local client gone before the look-up is refused"
        );
    }

    #[test]
    fn refusals_say_what_happened_in_a_sentence() {
        let agent = Refusal::Agent("0b9c".into()).sentence();
        assert!(
            agent.contains("session 0b9c") && agent.contains("may not use"),
            "{agent}"
        );
        let unknown = Refusal::Unknown("gone".into()).sentence();
        assert!(
            unknown.contains("(gone)") && unknown.ends_with("Connect again."),
            "{unknown}"
        );
    }
}
