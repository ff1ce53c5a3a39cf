//! A file the agent could have touched.
//!
//! Everything in a session folder (`agents/<sessionId>/`: session.log, acceptance.json, the
//! artifacts, the workspace) is the agent's to change, during its run and, through anything it
//! left running, after. It may have become a symlink (to the config, the store, `/dev/zero`),
//! a FIFO that blocks its reader, a device, a hard link to a file of the server's, or a file of
//! any size. So the server never opens such a path by name: it walks from the data dir one
//! component at a time with `openat(O_NOFOLLOW)`, so no link is followed and no parent folder
//! can be swapped for a link midway; it opens the last component (`O_NONBLOCK`, so nothing
//! waits on it) only after `lstat` said it is a regular file, checks what it opened with
//! `fstat` (the same file, regular, with one name), and reads at most a cap. Callers run this
//! off the HTTP workers (`web::block`, or the collection thread): even a regular file takes
//! disk time.
//!
//! The same module says which files of the data dir an item's artifacts may name: files under
//! the `artifacts/` and `workspace/` folders of that item's own sessions, and nothing else (not
//! the store, the token, the config, nor another item's sessions).

use rustix::fs::{openat, statat, AtFlags, Dir, FileType, Mode, OFlags, Stat, CWD};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// The most of an acceptance.json read; a bigger one fails the attempt.
pub const ACCEPTANCE_MAX_BYTES: u64 = 1 << 20;
/// The most of one attempt's session.log served by `GET /api/items/{id}/log`. The server
/// itself keeps 32 MiB of agent output there plus its own notes; only a log the agent rewrote
/// is longer, and the rest of it is not served.
pub const LOG_SERVED_MAX_BYTES: u64 = 33 << 20;
/// The largest artifact file served for download.
pub const ARTIFACT_MAX_BYTES: u64 = 1 << 30;

/// Why a file of a session folder was not read (or not written).
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("{path} does not exist")]
    Missing { path: String },
    #[error("{path} is {kind}, not a regular file: refused (flightdeck follows no link and reads no special file in a session folder)")]
    NotRegular { path: String, kind: &'static str },
    #[error("{path} is refused: {at} is {kind}, not a folder (flightdeck follows no link in a session folder)")]
    NotFolder {
        path: String,
        at: String,
        kind: &'static str,
    },
    #[error("{path} is refused: it has more than one name (hard links), so it could be another file of the server's")]
    HardLinked { path: String },
    #[error("{path} is refused: it is {size} bytes, over the {limit} bytes flightdeck reads")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("{path} is refused: {why}")]
    BadPath { path: String, why: &'static str },
    #[error("{path} cannot be read: {source}")]
    Io { path: String, source: io::Error },
}

/// An open regular file of a session folder, and its size when it was opened.
#[derive(Debug)]
pub struct SessionFile {
    pub file: File,
    pub len: u64,
}

/// Opens the regular file at `rel` (relative to the data dir) without following any link
/// and without blocking; see the module docs.
pub fn open(data_dir: &Path, rel: &Path) -> Result<SessionFile, Refused> {
    let shown = rel.display().to_string();
    let (dir, name) = parent_of(data_dir, rel, &shown)?;
    let before = lstat_at(&dir, name, &shown)?;
    regular(&before, &shown)?;
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
    let fd = openat(&dir, name, flags | OFlags::CLOEXEC, Mode::empty()).map_err(|e| {
        if e == Errno::LOOP {
            Refused::NotRegular {
                path: shown.clone(),
                kind: "a symbolic link",
            }
        } else {
            io_error(&shown, e)
        }
    })?;
    let opened = rustix::fs::fstat(&fd).map_err(|e| io_error(&shown, e))?;
    regular(&opened, &shown)?;
    if (opened.st_dev, opened.st_ino) != (before.st_dev, before.st_ino) {
        return Err(Refused::BadPath {
            path: shown,
            why: "it was replaced while being opened",
        });
    }
    Ok(SessionFile {
        file: File::from(fd),
        len: u64::try_from(opened.st_size).unwrap_or(0),
    })
}

/// The whole content of the regular file at `rel`, refused when over `limit` bytes.
pub fn read_capped(data_dir: &Path, rel: &Path, limit: u64) -> Result<Vec<u8>, Refused> {
    let shown = rel.display().to_string();
    let opened = open(data_dir, rel)?;
    let too_large = |size| Refused::TooLarge {
        path: shown.clone(),
        size,
        limit,
    };
    if opened.len > limit {
        return Err(too_large(opened.len));
    }
    let mut bytes = Vec::new();
    opened
        .file
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| Refused::Io {
            path: shown.clone(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Writes `contents` as a new file at `rel` (relative to the data dir): whatever was there
/// (a file, or a symlink the agent planted) is removed first and the file is created with
/// `O_EXCL | O_NOFOLLOW`, in a folder reached without following links, so the write lands in
/// the session folder and nowhere else.
pub fn replace(data_dir: &Path, rel: &Path, contents: &[u8]) -> Result<(), Refused> {
    let shown = rel.display().to_string();
    let (dir, name) = parent_of(data_dir, rel, &shown)?;
    match rustix::fs::unlinkat(&dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(e) => return Err(io_error(&shown, e)),
    }
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
    let fd = openat(
        &dir,
        name,
        flags | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(|e| io_error(&shown, e))?;
    File::from(fd)
        .write_all(contents)
        .map_err(|source| Refused::Io {
            path: shown,
            source,
        })
}

/// Whether `rel` (relative to the data dir) is a real folder, reached without following links.
pub fn is_real_folder(data_dir: &Path, rel: &Path) -> bool {
    let shown = rel.display().to_string();
    parent_of(data_dir, rel, &shown)
        .and_then(|(dir, name)| lstat_at(&dir, name, &shown))
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
}

/// What a walk of a folder found, within its limits.
#[derive(Debug, Default)]
pub struct Walk {
    /// Regular files, relative to the data dir, sorted.
    pub files: Vec<String>,
    /// Entries that are neither regular files nor folders, each refused in words.
    pub refused: Vec<String>,
    /// Whether the walk stopped at its limit with entries left unseen.
    pub cut: bool,
}

/// Every regular file under the folder `rel` (relative to the data dir), at most `limit` files
/// and `limit` folders, without following links. `skip` names files to leave out, relative
/// to the data dir.
pub fn walk(data_dir: &Path, rel: &Path, limit: usize, skip: &[PathBuf]) -> Result<Walk, Refused> {
    let mut out = Walk::default();
    let mut pending = vec![rel.to_path_buf()];
    let mut folders = 0;
    while let Some(folder) = pending.pop() {
        let shown = folder.display().to_string();
        let fd = open_folder(data_dir, &folder, &shown)?;
        let listing = openat(
            &fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_error(&shown, e))?;
        let entries = Dir::new(listing).map_err(|e| io_error(&shown, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&shown, e))?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            let path = folder.join(name);
            let st = lstat_at(&fd, name, &path.display().to_string())?;
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory if folders < limit => {
                    folders += 1;
                    pending.push(path);
                }
                FileType::RegularFile if out.files.len() < limit => {
                    if !skip.contains(&path) {
                        out.files.push(path.display().to_string());
                    }
                }
                FileType::Directory | FileType::RegularFile => {
                    out.cut = true;
                    pending.clear();
                    break;
                }
                other => out.refused.push(
                    Refused::NotRegular {
                        path: path.display().to_string(),
                        kind: kind_name(other),
                    }
                    .to_string(),
                ),
            }
            if out.refused.len() >= limit {
                out.cut = true;
                pending.clear();
                break;
            }
        }
    }
    out.files.sort();
    Ok(out)
}

/// Checks that `path` (as given by a client, relative to the data dir) names a file under the
/// `artifacts/` or `workspace/` folder of one of `sessions` (the ids of the item's own
/// sessions), and returns it in normal form. Nothing is opened here: see [`open`].
pub fn own_session_file(path: &str, sessions: &[String]) -> Result<PathBuf, String> {
    let rule = "an artifact file must be under agents/<session id>/artifacts/ or \
                agents/<session id>/workspace/ of one of the item's own session folders";
    let refuse = |why: &str| Err(format!("artifact path {path:?} {why}: {rule}"));
    let mut parts = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(part) => parts.push(part),
            Component::CurDir => {}
            Component::ParentDir => return refuse("contains '..'"),
            Component::RootDir | Component::Prefix(_) => {
                return refuse("is not relative to the data dir")
            }
        }
    }
    match parts.as_slice() {
        [agents, session, folder, _, ..]
            if *agents == "agents"
                && sessions.iter().any(|s| OsStr::new(s) == *session)
                && (*folder == "artifacts" || *folder == "workspace") =>
        {
            Ok(parts.iter().collect())
        }
        [agents, session, ..]
            if *agents == "agents" && !sessions.iter().any(|s| OsStr::new(s) == *session) =>
        {
            refuse("is in the folder of a session that did not work on this item")
        }
        _ => refuse("is not in a session's artifacts or workspace folder"),
    }
}

/// Opens the folder holding the last component of `rel`, walking from the data dir without
/// following links; returns it and that last component.
fn parent_of<'a>(
    data_dir: &Path,
    rel: &'a Path,
    shown: &str,
) -> Result<(OwnedFd, &'a OsStr), Refused> {
    let bad = |why| Refused::BadPath {
        path: shown.to_string(),
        why,
    };
    let name = match rel.components().next_back() {
        Some(Component::Normal(name)) => name,
        _ => return Err(bad("it does not name a file")),
    };
    let parent = rel.parent().unwrap_or(Path::new(""));
    Ok((open_folder(data_dir, parent, shown)?, name))
}

/// Opens the folder `rel` (relative to the data dir) one component at a time, following no
/// link; the data dir itself is the operator's and is opened as configured.
fn open_folder(data_dir: &Path, rel: &Path, shown: &str) -> Result<OwnedFd, Refused> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut dir = openat(CWD, data_dir, flags, Mode::empty()).map_err(|e| io_error(shown, e))?;
    let mut walked = PathBuf::new();
    for c in rel.components() {
        let name = match c {
            Component::Normal(name) => name,
            Component::CurDir => continue,
            _ => {
                return Err(Refused::BadPath {
                    path: shown.to_string(),
                    why: "it is not a plain path inside the data dir",
                })
            }
        };
        walked.push(name);
        dir = match openat(&dir, name, flags | OFlags::NOFOLLOW, Mode::empty()) {
            Ok(next) => next,
            Err(Errno::NOTDIR) | Err(Errno::LOOP) => {
                let st = lstat_at(&dir, name, shown)?;
                return Err(Refused::NotFolder {
                    path: shown.to_string(),
                    at: walked.display().to_string(),
                    kind: kind_name(FileType::from_raw_mode(st.st_mode)),
                });
            }
            Err(Errno::NOENT) => {
                return Err(Refused::Missing {
                    path: shown.to_string(),
                })
            }
            Err(e) => return Err(io_error(shown, e)),
        };
    }
    Ok(dir)
}

fn lstat_at(dir: &OwnedFd, name: &OsStr, shown: &str) -> Result<Stat, Refused> {
    statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| match e {
        Errno::NOENT => Refused::Missing {
            path: shown.to_string(),
        },
        e => io_error(shown, e),
    })
}

fn regular(st: &Stat, shown: &str) -> Result<(), Refused> {
    let kind = FileType::from_raw_mode(st.st_mode);
    if kind != FileType::RegularFile {
        return Err(Refused::NotRegular {
            path: shown.to_string(),
            kind: kind_name(kind),
        });
    }
    if st.st_nlink > 1 {
        return Err(Refused::HardLinked {
            path: shown.to_string(),
        });
    }
    Ok(())
}

fn kind_name(kind: FileType) -> &'static str {
    match kind {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a folder",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO (named pipe)",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Unknown => "of an unknown kind",
    }
}

fn io_error(shown: &str, e: Errno) -> Refused {
    Refused::Io {
        path: shown.to_string(),
        source: e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn data() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("agents/s/artifacts/sub")).unwrap();
        std::fs::write(data.join("agents/s/artifacts/plan.md"), "plan").unwrap();
        std::fs::write(data.join("agents/s/artifacts/sub/notes.txt"), "notes").unwrap();
        std::fs::write(data.join("flightdeck.redb"), "store").unwrap();
        (dir, data)
    }

    #[test]
    fn regular_files_are_read_and_links_fifos_and_hard_links_are_refused() {
        let (_dir, data) = data();
        let arts = data.join("agents/s/artifacts");
        symlink(data.join("flightdeck.redb"), arts.join("link")).unwrap();
        symlink("/dev/zero", arts.join("zero")).unwrap();
        std::fs::hard_link(data.join("flightdeck.redb"), arts.join("hard")).unwrap();
        rustix::fs::mknodat(
            CWD,
            arts.join("fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let read = |p: &str| read_capped(&data, Path::new(p), 1 << 10);
        assert_eq!(read("agents/s/artifacts/plan.md").unwrap(), b"plan");
        for (p, words) in [
            ("agents/s/artifacts/link", "symbolic link"),
            ("agents/s/artifacts/zero", "symbolic link"),
            ("agents/s/artifacts/fifo", "FIFO"),
            ("agents/s/artifacts/hard", "hard links"),
            ("agents/s/artifacts/sub", "a folder"),
            ("agents/s/artifacts/none", "does not exist"),
        ] {
            let e = read(p).unwrap_err().to_string();
            assert!(e.contains(words), "{p}: {e}");
        }
        assert!(
            read_capped(&data, Path::new("agents/s/artifacts/plan.md"), 2)
                .unwrap_err()
                .to_string()
                .contains("over the 2 bytes")
        );
    }

    #[test]
    fn a_parent_folder_swapped_for_a_link_is_not_followed() {
        let (_dir, data) = data();
        let arts = data.join("agents/s/artifacts");
        std::fs::rename(arts.join("sub"), data.join("agents/s/elsewhere")).unwrap();
        symlink(data.join("agents/s/elsewhere"), arts.join("sub")).unwrap();
        let e = open(&data, Path::new("agents/s/artifacts/sub/notes.txt")).unwrap_err();
        assert!(e.to_string().contains("not a folder"), "{e}");
    }

    #[test]
    fn replace_writes_inside_even_over_a_planted_link() {
        let (dir, data) = data();
        let outside = dir.path().join("outside.md");
        symlink(&outside, data.join("agents/s/artifacts/AGENTS.md")).unwrap();
        replace(&data, Path::new("agents/s/artifacts/AGENTS.md"), b"hello").unwrap();
        assert!(!outside.exists());
        assert_eq!(
            std::fs::read(data.join("agents/s/artifacts/AGENTS.md")).unwrap(),
            b"hello"
        );
        std::fs::rename(data.join("agents/s/artifacts"), data.join("agents/s/real")).unwrap();
        symlink(dir.path(), data.join("agents/s/artifacts")).unwrap();
        assert!(replace(&data, Path::new("agents/s/artifacts/AGENTS.md"), b"x").is_err());
        assert!(!dir.path().join("AGENTS.md").exists());
        assert!(!is_real_folder(&data, Path::new("agents/s/artifacts")));
        assert!(is_real_folder(&data, Path::new("agents/s/real")));
    }

    #[test]
    fn a_walk_lists_regular_files_refuses_the_rest_and_stops_at_its_limit() {
        let (_dir, data) = data();
        let arts = data.join("agents/s/artifacts");
        symlink("/etc", arts.join("etc")).unwrap();
        std::fs::write(arts.join("acceptance.json"), "[]").unwrap();
        let skip = [PathBuf::from("agents/s/artifacts/acceptance.json")];
        let found = walk(&data, Path::new("agents/s/artifacts"), 10, &skip).unwrap();
        assert_eq!(
            found.files,
            [
                "agents/s/artifacts/plan.md",
                "agents/s/artifacts/sub/notes.txt"
            ]
        );
        assert_eq!(found.refused.len(), 1, "{:?}", found.refused);
        assert!(found.refused[0].contains("symbolic link"));
        assert!(!found.cut);
        for i in 0..20 {
            std::fs::write(arts.join(format!("f{i}")), "x").unwrap();
        }
        let found = walk(&data, Path::new("agents/s/artifacts"), 10, &skip).unwrap();
        assert_eq!(found.files.len(), 10);
        assert!(found.cut);
    }

    #[test]
    fn artifacts_name_only_files_of_the_items_own_sessions() {
        let own = ["s1".to_string(), "s2".to_string()];
        for ok in [
            "agents/s1/artifacts/plan.md",
            "./agents/s2/workspace/src/main.rs",
        ] {
            assert!(own_session_file(ok, &own).is_ok(), "{ok}");
        }
        for bad in [
            "flightdeck.redb",
            "token",
            "/etc/passwd",
            "agents/s3/artifacts/plan.md",
            "agents/s1/session.log",
            "agents/s1/artifacts",
            "agents/s1/../s3/artifacts/x",
            "agents/s1/tmp/x",
        ] {
            let e = own_session_file(bad, &own).unwrap_err();
            assert!(e.contains("own session folders"), "{bad}: {e}");
        }
    }
}
