//! What the server and its launch server (see `launch_server`) say to each other: one
//! datagram per message on a `SOCK_SEQPACKET` socket pair, so a message never arrives in
//! pieces and no framing is needed. Fields are length-prefixed bytes (argv, environment and
//! paths need not be UTF-8 to travel); the agent's stdin, stdout and stderr, and the Landlock
//! port ruleset when there is one, travel as file descriptors (`SCM_RIGHTS`).

use super::launcher::Tracker;
use crate::sandbox::{PortRulesFd, SandboxPlan};
use std::ffi::OsString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

/// The longest message either side accepts (the kernel's default socket buffer is ~208 KiB,
/// so a longer one could not be sent anyway).
pub const MAX_MESSAGE: usize = 256 * 1024;
/// The most descriptors one message carries: stdin, stdout, stderr, port rules.
const MAX_FDS: usize = 4;

/// Start one agent: run `argv` in `cwd` with exactly `env` (`KEY=VALUE`), tracked by
/// `tracker`, inside `sandbox` when given. The fds are stdin, stdout, stderr, then the port
/// ruleset when `sandbox` has one.
pub struct Request {
    pub id: u64,
    pub argv: Vec<String>,
    pub env: Vec<OsString>,
    pub cwd: PathBuf,
    pub tracker: Option<Tracker>,
    /// The tracker's cgroup was never killed, so the child may be started in it directly
    /// (see `cgroup::fork_into`).
    pub fresh_cgroup: bool,
    pub sandbox: Option<SandboxPlan>,
}

/// What the launch server answers: a request's outcome, or the exit of an agent it started.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Started {
        id: u64,
        pid: u32,
    },
    Refused {
        id: u64,
        why: String,
    },
    /// `status` is the raw wait status, so a signal stays distinguishable from an exit code.
    Exited {
        pid: u32,
        status: i32,
    },
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Out(Vec::new());
        out.u64(self.id);
        out.list(self.argv.iter().map(|a| a.as_bytes()));
        out.list(self.env.iter().map(|v| v.as_bytes()));
        out.bytes(self.cwd.as_os_str().as_bytes());
        match &self.tracker {
            None => out.u8(0),
            Some(Tracker::Cgroup(path)) => {
                out.u8(if self.fresh_cgroup { 3 } else { 1 });
                out.bytes(path.as_os_str().as_bytes());
            }
            Some(Tracker::Reaper) => out.u8(2),
        }
        match &self.sandbox {
            None => out.u8(0),
            Some(plan) => {
                out.u8(1 + u8::from(matches!(plan.port_rules.fd(), Ok(Some(_)))));
                out.list(plan.writable.iter().map(|p| p.as_os_str().as_bytes()));
                out.list(plan.denied.iter().map(|p| p.as_os_str().as_bytes()));
            }
        }
        out.0
    }

    /// Reads a request and takes its descriptors: stdin, stdout, stderr, and the port ruleset
    /// (placed in the plan) when the plan says one came.
    pub fn decode(data: &[u8], fds: Vec<OwnedFd>) -> Result<(Request, [OwnedFd; 3]), String> {
        let mut input = In(data);
        let bad = || "a malformed launch request".to_string();
        let id = input.u64().ok_or_else(bad)?;
        let argv = input
            .list()
            .ok_or_else(bad)?
            .into_iter()
            .map(|a| String::from_utf8(a).map_err(|_| "the agent's argv is not UTF-8".to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let env = input.list().ok_or_else(bad)?;
        let env = env.into_iter().map(OsString::from_vec).collect();
        let cwd = path(input.bytes().ok_or_else(bad)?);
        let kind = input.u8().ok_or_else(bad)?;
        let tracker = match kind {
            0 => None,
            1 | 3 => Some(Tracker::Cgroup(path(input.bytes().ok_or_else(bad)?))),
            2 => Some(Tracker::Reaper),
            _ => return Err(bad()),
        };
        let fresh_cgroup = kind == 3;
        let sandbox = match input.u8().ok_or_else(bad)? {
            0 => None,
            kind @ (1 | 2) => Some((
                kind == 2,
                SandboxPlan {
                    writable: paths(input.list().ok_or_else(bad)?),
                    denied: paths(input.list().ok_or_else(bad)?),
                    port_rules: PortRulesFd::default(),
                    api_fenced_by_cgroup: false,
                },
            )),
            _ => return Err(bad()),
        };
        let wanted = 3 + usize::from(matches!(sandbox, Some((true, _))));
        if fds.len() != wanted {
            return Err(format!(
                "a launch request came with {} file descriptors instead of {wanted}",
                fds.len()
            ));
        }
        let mut fds = fds.into_iter();
        let mut next = || fds.next().ok_or_else(bad);
        let stdio = [next()?, next()?, next()?];
        let sandbox = match sandbox {
            Some((true, mut plan)) => {
                plan.port_rules =
                    PortRulesFd::ready(Some(std::os::fd::IntoRawFd::into_raw_fd(next()?)));
                Some(plan)
            }
            other => other.map(|(_, plan)| plan),
        };
        let request = Request {
            id,
            argv,
            env,
            cwd,
            tracker,
            fresh_cgroup,
            sandbox,
        };
        Ok((request, stdio))
    }
}

impl Reply {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Out(Vec::new());
        match self {
            Reply::Started { id, pid } => {
                out.u8(b'S');
                out.u64(*id);
                out.u64(u64::from(*pid));
            }
            Reply::Refused { id, why } => {
                out.u8(b'R');
                out.u64(*id);
                out.bytes(why.as_bytes());
            }
            Reply::Exited { pid, status } => {
                out.u8(b'X');
                out.u64(u64::from(*pid));
                out.u64(u64::from(*status as u32));
            }
        }
        out.0
    }

    pub fn decode(data: &[u8]) -> Option<Reply> {
        let mut input = In(data);
        let reply = match input.u8()? {
            b'S' => Reply::Started {
                id: input.u64()?,
                pid: u32::try_from(input.u64()?).ok()?,
            },
            b'R' => Reply::Refused {
                id: input.u64()?,
                why: String::from_utf8_lossy(&input.bytes()?).into_owned(),
            },
            b'X' => Reply::Exited {
                pid: u32::try_from(input.u64()?).ok()?,
                status: u32::try_from(input.u64()?).ok()? as i32,
            },
            _ => return None,
        };
        Some(reply)
    }
}

fn path(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(OsString::from_vec(bytes))
}

fn paths(list: Vec<Vec<u8>>) -> Vec<PathBuf> {
    list.into_iter().map(path).collect()
}

struct Out(Vec<u8>);

impl Out {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn list<'a>(&mut self, items: impl ExactSizeIterator<Item = &'a [u8]>) {
        self.u64(items.len() as u64);
        for item in items {
            self.bytes(item);
        }
    }
}

struct In<'a>(&'a [u8]);

impl In<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = usize::try_from(self.u64()?).ok()?;
        self.take(n).map(<[u8]>::to_vec)
    }
    fn list(&mut self) -> Option<Vec<Vec<u8>>> {
        let n = usize::try_from(self.u64()?).ok()?;
        // Each item takes at least its 8-byte length, so a count beyond that is a lie.
        if n > self.0.len() / 8 {
            return None;
        }
        (0..n).map(|_| self.bytes()).collect()
    }
}

/// Sends one message with `fds` attached.
pub fn send(sock: RawFd, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let fd_bytes = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
    let mut control = vec![0u64; space.div_ceil(8)];
    // SAFETY: an all-zero msghdr is a valid empty one.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: the control buffer is `space` bytes, aligned, and room for one header with
        // `fds.len()` descriptors, which is what is written into it.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(cmsg),
                fd_bytes,
            );
        }
    }
    loop {
        // SAFETY: msg points at live buffers for the duration of the call.
        if unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) } >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Receives one message into `buf`, with the descriptors it carries (close-on-exec). A
/// length of 0 means the other side has closed the socket.
pub fn recv(sock: RawFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<RawFd>()) as u32) };
    let mut control = vec![0u64; (space as usize).div_ceil(8)];
    // SAFETY: an all-zero msghdr is a valid empty one.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    let n = loop {
        // SAFETY: msg points at live buffers for the duration of the call.
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    };
    let mut fds = Vec::new();
    // SAFETY: the kernel filled the control buffer; the CMSG macros walk it within
    // msg_controllen, and each SCM_RIGHTS payload holds descriptors now ours to own.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let len = (*cmsg).cmsg_len as usize - (data as usize - cmsg as usize);
                for i in 0..len / std::mem::size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
        return Err(io::Error::other(format!(
            "a message of the launch server was longer than {} bytes or carried more than {MAX_FDS} descriptors",
            buf.len()
        )));
    }
    Ok((n, fds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_reads_back_as_sent() {
        let request = Request {
            id: 7,
            argv: vec!["claude".into(), "-p".into()],
            env: vec![
                OsString::from("A=b"),
                OsString::from_vec(vec![b'X', b'=', 0xff]),
            ],
            cwd: "/w".into(),
            tracker: Some(Tracker::Cgroup("/sys/fs/cgroup/s".into())),
            fresh_cgroup: true,
            sandbox: Some(SandboxPlan {
                writable: vec!["/w".into()],
                denied: vec!["/data".into(), "/etc/fd.toml".into()],
                port_rules: PortRulesFd::default(),
                api_fenced_by_cgroup: false,
            }),
        };
        let fds = (0..3)
            .map(|_| OwnedFd::from(std::fs::File::open("/dev/null").expect("/dev/null")))
            .collect();
        let (back, _) = Request::decode(&request.encode(), fds).expect("decodes");
        assert_eq!(back.id, 7);
        assert_eq!(back.argv, request.argv);
        assert_eq!(back.env, request.env);
        assert_eq!(back.tracker, request.tracker);
        assert!(back.fresh_cgroup);
        let plan = back.sandbox.expect("a plan");
        assert_eq!(plan.denied.len(), 2);
        assert_eq!(plan.port_rules.fd(), Ok(None));
    }

    #[test]
    fn a_cut_request_or_missing_descriptors_are_refused() {
        let request = Request {
            id: 1,
            argv: vec!["true".into()],
            env: vec![],
            cwd: "/".into(),
            tracker: None,
            fresh_cgroup: false,
            sandbox: None,
        };
        let data = request.encode();
        assert!(Request::decode(&data[..data.len() - 1], vec![]).is_err());
        let err = Request::decode(&data, vec![]).err().expect("refused");
        assert!(err.contains("0 file descriptors instead of 3"), "{err}");
    }

    #[test]
    fn replies_read_back_as_sent() {
        for reply in [
            Reply::Started { id: 3, pid: 42 },
            Reply::Refused {
                id: 4,
                why: "no".into(),
            },
            Reply::Exited { pid: 42, status: 9 },
        ] {
            assert_eq!(Reply::decode(&reply.encode()), Some(reply));
        }
    }
}
