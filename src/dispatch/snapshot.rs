//! Folder-mode snapshots, written by flightdeck itself as git objects.
//!
//! In folder mode each item has a private bare repository (`{data_dir}/changes/{id}/snapshot.git`)
//! holding the workspace as handed over and as each attempt left it (see `deliverable`).
//! Running git for that (`init`, `add`, `write-tree`, `commit-tree`, then `diff` for the counts:
//! nine processes per item) cost three quarters of the CPU of dispatching short agents, far more
//! than the agents themselves. So flightdeck writes the objects in-process: standard loose git
//! objects (zlib-deflated, named by SHA-1) in a standard bare repository, which `git diff` reads
//! for the diff API like any other.
//!
//! What is stored is what `git add --all --force` stores: regular files (mode 100755 when the
//! owner may execute them, else 100644) and symbolic links as links (their target, never
//! followed); no empty folders, no FIFOs, sockets or devices, nothing named `.git`, and not the
//! top-level AGENTS.md (flightdeck's, not the agent's work). The workspace is the agent's: every
//! file is opened without following links and without blocking, and read only if it is a
//! regular file; a file that changes length while it is read fails the snapshot rather than
//! storing something torn. Large files stream through a bounded buffer.

use flate2::write::ZlibEncoder;
use flate2::Compression;
use sha1::{Digest, Sha1};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::deliverable::AGENTS_MD;

/// Folders nested deeper than this fail the snapshot (a hostile agent's endless chain).
const DEPTH_MAX: usize = 256;
/// Files and links past this many fail the snapshot: the list of them is held in memory.
const FILES_MAX: usize = 1_000_000;
/// Bytes git looks at to call a file binary (a NUL among them), as `git diff --numstat` does.
const BINARY_PROBE: u64 = 8000;
/// Git calls any file larger than this binary (`core.bigFileThreshold`).
const BIG_FILE: u64 = 512 << 20;
/// Files up to this size are read whole, hashed, and written only if the object is new.
const IN_MEMORY_MAX: u64 = 1 << 20;
/// The author and committer of every snapshot.
const IDENTITY: &str = "flightdeck <flightdeck@localhost>";

/// A bare git repository that flightdeck writes objects into.
pub struct SnapshotRepo {
    dir: PathBuf,
}

/// One file of a snapshot, with what `git diff --numstat` would count were it added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapFile {
    /// The path inside the workspace, `/`-separated.
    pub path: Vec<u8>,
    /// Lines in the file; None for a binary file.
    pub lines: Option<u64>,
}

/// A commit of a workspace.
#[derive(Debug)]
pub struct Snapshot {
    pub commit: String,
    /// The tree is git's empty tree: the workspace held nothing of the agent's.
    pub empty: bool,
    pub files: Vec<SnapFile>,
}

/// A tree entry being built: mode, name, object id.
struct Entry {
    mode: &'static str,
    name: Vec<u8>,
    id: [u8; 20],
}

impl SnapshotRepo {
    /// Creates the bare repository at `dir`: what `git init --bare --template=` makes, and
    /// nothing else. One left by a hand-over that crashed before its record was saved is
    /// started afresh.
    pub fn create(dir: &Path) -> io::Result<SnapshotRepo> {
        match fs::remove_dir_all(dir) {
            Ok(()) => log::info!("starting the snapshot repository {} afresh", dir.display()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::create_dir(dir)?;
        for sub in ["objects", "refs", "refs/heads", "refs/tags"] {
            fs::create_dir(dir.join(sub))?;
        }
        fs::write(dir.join("HEAD"), "ref: refs/heads/main\n")?;
        fs::write(
            dir.join("config"),
            "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n",
        )?;
        Ok(SnapshotRepo::at(dir))
    }

    pub fn at(dir: &Path) -> SnapshotRepo {
        SnapshotRepo {
            dir: dir.to_path_buf(),
        }
    }

    /// Commits the tree of `workspace` (see the module doc for what is stored), with `parent`.
    pub fn commit_workspace(
        &self,
        workspace: &Path,
        parent: Option<&str>,
        message: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> io::Result<Snapshot> {
        let top = fs::symlink_metadata(workspace)?;
        if !top.is_dir() {
            return Err(io::Error::other(format!(
                "{} is not a real folder (the agent replaced it?)",
                workspace.display()
            )));
        }
        let mut files = Vec::new();
        let tree = self.write_folder(workspace, &mut Vec::new(), 0, &mut files)?;
        let empty = tree.is_none();
        let tree = match tree {
            Some(id) => id,
            None => self.write_object("tree", &[])?,
        };
        let mut text = format!("tree {}\n", hex(&tree));
        if let Some(parent) = parent {
            text.push_str(&format!("parent {parent}\n"));
        }
        let stamp = format!("{} +0000", at.timestamp());
        text.push_str(&format!(
            "author {IDENTITY} {stamp}\ncommitter {IDENTITY} {stamp}\n\n"
        ));
        text.push_str(message);
        text.push('\n');
        let commit = hex(&self.write_object("commit", text.as_bytes())?);
        Ok(Snapshot {
            commit,
            empty,
            files,
        })
    }

    /// Writes the tree of one folder; None when nothing in it is stored (git keeps no empty
    /// trees). `prefix` is the folder's path inside the workspace.
    fn write_folder(
        &self,
        folder: &Path,
        prefix: &mut Vec<u8>,
        depth: usize,
        files: &mut Vec<SnapFile>,
    ) -> io::Result<Option<[u8; 20]>> {
        if depth > DEPTH_MAX {
            return Err(io::Error::other(format!(
                "the workspace nests folders deeper than {DEPTH_MAX} levels"
            )));
        }
        let mut entries = Vec::new();
        for dirent in fs::read_dir(folder)? {
            let dirent = dirent?;
            if files.len() >= FILES_MAX {
                return Err(io::Error::other(format!(
                    "the workspace holds more than {FILES_MAX} files and links"
                )));
            }
            let name = dirent.file_name();
            if name == OsStr::new(".git") || (depth == 0 && name == OsStr::new(AGENTS_MD)) {
                continue;
            }
            let path = dirent.path();
            // The entry's own type, links not followed (no stat on most file systems).
            let kind = dirent.file_type()?;
            let name = name.as_bytes().to_vec();
            let base = prefix.len();
            if !prefix.is_empty() {
                prefix.push(b'/');
            }
            prefix.extend_from_slice(&name);
            let entry = if kind.is_dir() {
                self.write_folder(&path, prefix, depth + 1, files)?
                    .map(|id| Entry {
                        mode: "40000",
                        name,
                        id,
                    })
            } else if kind.is_symlink() {
                let target = fs::read_link(&path)?;
                let target = target.as_os_str().as_bytes();
                files.push(SnapFile {
                    path: prefix.clone(),
                    lines: LineCount::of(target),
                });
                Some(Entry {
                    mode: "120000",
                    name,
                    id: self.write_object("blob", target)?,
                })
            } else if kind.is_file() {
                let (id, lines, mode) = self.write_file(&path)?;
                files.push(SnapFile {
                    path: prefix.clone(),
                    lines,
                });
                Some(Entry { mode, name, id })
            } else {
                None
            };
            prefix.truncate(base);
            entries.extend(entry);
        }
        if entries.is_empty() {
            return Ok(None);
        }
        // Git orders a tree's entries by name, a folder's name as if it ended in '/'.
        entries.sort_by_cached_key(sort_key);
        let mut body = Vec::new();
        for e in &entries {
            body.extend_from_slice(e.mode.as_bytes());
            body.push(b' ');
            body.extend_from_slice(&e.name);
            body.push(0);
            body.extend_from_slice(&e.id);
        }
        self.write_object("tree", &body).map(Some)
    }

    /// Stores one regular file of the workspace as a blob: its id, its line count, and its
    /// mode as git records it (100755 when the owner may execute it), from the opened file.
    fn write_file(&self, path: &Path) -> io::Result<([u8; 20], Option<u64>, &'static str)> {
        let mut file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::other(format!(
                "{} stopped being a regular file while it was stored",
                path.display()
            )));
        }
        let mode = if meta.mode() & 0o100 != 0 {
            "100755"
        } else {
            "100644"
        };
        let len = meta.len();
        if len <= IN_MEMORY_MAX {
            let mut bytes = Vec::with_capacity(len as usize);
            (&mut file).take(len + 1).read_to_end(&mut bytes)?;
            if bytes.len() as u64 != len {
                return Err(changed_while_read(path));
            }
            let lines = LineCount::of(&bytes);
            return Ok((self.write_object("blob", &bytes)?, lines, mode));
        }
        let (id, lines) = self.stream_blob(path, &mut file, len)?;
        Ok((id, lines, mode))
    }

    /// A large file: hashed and deflated in one pass into a temporary file, which becomes the
    /// object unless an identical one is already stored.
    fn stream_blob(
        &self,
        path: &Path,
        file: &mut File,
        len: u64,
    ) -> io::Result<([u8; 20], Option<u64>)> {
        let header = format!("blob {len}\0");
        let mut hasher = Sha1::new();
        hasher.update(header.as_bytes());
        let (tmp, lines) = self.deflate_to_temp(|out| {
            out.write_all(header.as_bytes())?;
            let mut buf = vec![0u8; 64 * 1024];
            let (mut seen, mut count) = (0u64, LineCount::new(len));
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                seen += n as u64;
                if seen > len {
                    return Err(changed_while_read(path));
                }
                count.feed(&buf[..n]);
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n])?;
            }
            if seen != len {
                return Err(changed_while_read(path));
            }
            Ok(count.lines())
        })?;
        let id: [u8; 20] = hasher.finalize().into();
        self.place(&tmp, &id)?;
        Ok((id, lines))
    }

    /// Writes one object (`kind` is blob, tree or commit) unless it is already stored.
    fn write_object(&self, kind: &str, body: &[u8]) -> io::Result<[u8; 20]> {
        let header = format!("{kind} {}\0", body.len());
        let mut hasher = Sha1::new();
        hasher.update(header.as_bytes());
        hasher.update(body);
        let id: [u8; 20] = hasher.finalize().into();
        if self.object_path(&id).exists() {
            return Ok(id);
        }
        let (tmp, ()) = self.deflate_to_temp(|out| {
            out.write_all(header.as_bytes())?;
            out.write_all(body)
        })?;
        self.place(&tmp, &id)?;
        Ok(id)
    }

    /// Runs `write` into a new temporary file of the object folder through zlib, and returns
    /// the finished file; on any error the file is removed.
    fn deflate_to_temp<T>(
        &self,
        write: impl FnOnce(&mut ZlibEncoder<File>) -> io::Result<T>,
    ) -> io::Result<(PathBuf, T)> {
        let tmp = self
            .dir
            .join("objects")
            .join(format!("incoming-{}", uuid::Uuid::new_v4().simple()));
        let written = File::create(&tmp).and_then(|file| {
            let mut out = ZlibEncoder::new(file, Compression::fast());
            let value = write(&mut out)?;
            out.finish()?;
            Ok(value)
        });
        match written {
            Ok(value) => Ok((tmp, value)),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Moves a finished temporary object to its name (`objects/ab/cdef…`); loose objects are
    /// read-only, as git leaves them.
    fn place(&self, tmp: &Path, id: &[u8; 20]) -> io::Result<()> {
        let target = self.object_path(id);
        if target.exists() {
            return fs::remove_file(tmp);
        }
        if let Some(folder) = target.parent() {
            fs::create_dir_all(folder)?;
        }
        fs::set_permissions(tmp, std::os::unix::fs::PermissionsExt::from_mode(0o444))?;
        fs::rename(tmp, target)
    }

    fn object_path(&self, id: &[u8; 20]) -> PathBuf {
        let name = hex(id);
        self.dir.join("objects").join(&name[..2]).join(&name[2..])
    }
}

/// A file of a stored tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    /// The path inside the workspace, `/`-separated.
    pub path: Vec<u8>,
    /// `100644`, `100755` or `120000`.
    pub mode: String,
    pub blob: String,
}

impl SnapshotRepo {
    /// Every file of `commit`'s tree in git's order (depth first, entries by name), at most
    /// `most` of them (and whether there were more); None when an object it needs is not stored
    /// loose here (a repository git has packed: ask git instead).
    pub fn files_of(&self, commit: &str, most: usize) -> io::Result<Option<(Vec<TreeFile>, bool)>> {
        let Some(body) = self.read_small("commit", commit)? else {
            return Ok(None);
        };
        let tree = body
            .strip_prefix(b"tree ")
            .and_then(|rest| rest.get(..40))
            .and_then(|id| std::str::from_utf8(id).ok())
            .ok_or_else(|| io::Error::other(format!("commit {commit} names no tree")))?
            .to_string();
        let mut files = Vec::new();
        let mut cut = false;
        if self.collect_tree(&tree, &mut Vec::new(), 0, most, &mut files, &mut cut)? {
            Ok(Some((files, cut)))
        } else {
            Ok(None)
        }
    }

    /// Adds the files under tree `id` to `files`; false when an object is not stored loose.
    fn collect_tree(
        &self,
        id: &str,
        prefix: &mut Vec<u8>,
        depth: usize,
        most: usize,
        files: &mut Vec<TreeFile>,
        cut: &mut bool,
    ) -> io::Result<bool> {
        if depth > DEPTH_MAX {
            return Err(io::Error::other(format!("tree {id} nests too deep")));
        }
        let Some(body) = self.read_small("tree", id)? else {
            return Ok(false);
        };
        let mut rest = &body[..];
        while !rest.is_empty() {
            let damaged = || io::Error::other(format!("tree {id} is damaged"));
            let space = rest.iter().position(|b| *b == b' ').ok_or_else(damaged)?;
            let nul = rest.iter().position(|b| *b == 0).ok_or_else(damaged)?;
            if nul < space || rest.len() < nul + 21 {
                return Err(damaged());
            }
            let mode = String::from_utf8_lossy(&rest[..space]).into_owned();
            let name = &rest[space + 1..nul];
            let mut child = [0u8; 20];
            child.copy_from_slice(&rest[nul + 1..nul + 21]);
            rest = &rest[nul + 21..];
            let base = prefix.len();
            if !prefix.is_empty() {
                prefix.push(b'/');
            }
            prefix.extend_from_slice(name);
            if mode == "40000" {
                if !self.collect_tree(&hex(&child), prefix, depth + 1, most, files, cut)? {
                    return Ok(false);
                }
            } else if files.len() >= most {
                *cut = true;
            } else {
                files.push(TreeFile {
                    path: prefix.clone(),
                    mode,
                    blob: hex(&child),
                });
            }
            prefix.truncate(base);
        }
        Ok(true)
    }

    /// A blob's content as a stream; None when it is not stored loose here.
    pub fn open_blob(&self, id: &str) -> io::Result<Option<(u64, impl Read)>> {
        let Some(mut reader) = self.open_object(id)? else {
            return Ok(None);
        };
        let (kind, len) = read_header(&mut reader, id)?;
        if kind != "blob" {
            return Err(io::Error::other(format!("{id} is a {kind}, not a blob")));
        }
        Ok(Some((len, reader.take(len))))
    }

    /// The shortest prefix of `id`, at least 7 digits, that no other loose object here shares:
    /// what git prints on a diff's `index` line in a repository of this size.
    pub fn abbrev(&self, id: &str) -> io::Result<String> {
        let mut len = 7;
        if let Some(folder) = id.get(..2) {
            for entry in fs::read_dir(self.dir.join("objects").join(folder))? {
                let name = entry?.file_name();
                let other = name.as_bytes();
                let ours = &id.as_bytes()[2..];
                if other == ours {
                    continue;
                }
                let shared = other.iter().zip(ours).take_while(|(a, b)| a == b).count();
                len = len.max(shared + 2 + 1);
            }
        }
        Ok(id[..len.min(id.len())].to_string())
    }

    /// A commit's or tree's body (bounded: 64 MiB); None when it is not stored loose here.
    fn read_small(&self, want: &str, id: &str) -> io::Result<Option<Vec<u8>>> {
        let Some(mut reader) = self.open_object(id)? else {
            return Ok(None);
        };
        let (kind, len) = read_header(&mut reader, id)?;
        if kind != want || len > 64 << 20 {
            return Err(io::Error::other(format!(
                "{id} is not a {want} this store can read"
            )));
        }
        let mut body = Vec::with_capacity(len as usize);
        reader.take(len).read_to_end(&mut body)?;
        Ok(Some(body))
    }

    fn open_object(
        &self,
        id: &str,
    ) -> io::Result<Option<flate2::read::ZlibDecoder<io::BufReader<File>>>> {
        if id.len() != 40 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(io::Error::other(format!("{id:?} is not an object id")));
        }
        let path = self.dir.join("objects").join(&id[..2]).join(&id[2..]);
        match File::open(path) {
            Ok(file) => Ok(Some(flate2::read::ZlibDecoder::new(io::BufReader::new(
                file,
            )))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Reads `kind len\0` from the start of an object.
fn read_header(reader: &mut impl Read, id: &str) -> io::Result<(String, u64)> {
    let mut header = Vec::new();
    let mut byte = [0u8; 1];
    while header.len() < 32 {
        reader.read_exact(&mut byte)?;
        if byte[0] == 0 {
            let text = String::from_utf8_lossy(&header);
            let (kind, len) = text
                .split_once(' ')
                .and_then(|(k, l)| Some((k.to_string(), l.parse().ok()?)))
                .ok_or_else(|| io::Error::other(format!("object {id} is damaged")))?;
            return Ok((kind, len));
        }
        header.push(byte[0]);
    }
    Err(io::Error::other(format!("object {id} is damaged")))
}

fn sort_key(e: &Entry) -> Vec<u8> {
    let mut key = e.name.clone();
    if e.mode == "40000" {
        key.push(b'/');
    }
    key
}

fn hex(id: &[u8; 20]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// A file's lines as `git diff --numstat` counts them for an added file (a last line without
/// a newline counts too), or None for a file git calls binary: a NUL among its first
/// [`BINARY_PROBE`] bytes, or larger than [`BIG_FILE`]. Fed the file in chunks. The one place
/// for this rule: the snapshot's counts and the in-process diff both use it.
pub(super) struct LineCount {
    seen: u64,
    newlines: u64,
    last: u8,
    binary: bool,
}

impl LineCount {
    /// Counting a file of `len` bytes.
    pub(super) fn new(len: u64) -> LineCount {
        LineCount {
            seen: 0,
            newlines: 0,
            last: b'\n',
            binary: len > BIG_FILE,
        }
    }

    /// The count of a file held whole.
    pub(super) fn of(bytes: &[u8]) -> Option<u64> {
        let mut count = LineCount::new(bytes.len() as u64);
        count.feed(bytes);
        count.lines()
    }

    /// The count of a file read to its end from `reader`.
    pub(super) fn read(mut reader: impl Read, len: u64) -> io::Result<Option<u64>> {
        let mut count = LineCount::new(len);
        let mut buf = vec![0u8; 64 * 1024];
        while !count.binary {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            count.feed(&buf[..n]);
        }
        Ok(count.lines())
    }

    pub(super) fn feed(&mut self, chunk: &[u8]) {
        if self.binary || chunk.is_empty() {
            return;
        }
        if self.seen < BINARY_PROBE {
            let probe = (BINARY_PROBE - self.seen).min(chunk.len() as u64) as usize;
            self.binary = chunk[..probe].contains(&0);
        }
        self.seen += chunk.len() as u64;
        self.newlines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        self.last = chunk[chunk.len() - 1];
    }

    pub(super) fn lines(&self) -> Option<u64> {
        (!self.binary).then_some(self.newlines + u64::from(self.last != b'\n'))
    }
}

fn changed_while_read(path: &Path) -> io::Error {
    io::Error::other(format!(
        "{} changed length while it was stored",
        path.display()
    ))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::process::Command;

    fn git(dir: &Path, env: &[(&str, &Path)], args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A workspace with every kind of thing an agent leaves, named to test git's order.
    pub(in crate::dispatch) fn workspace(root: &Path) -> PathBuf {
        let ws = root.join("ws");
        fs::create_dir_all(ws.join("foo/deeper")).unwrap();
        fs::create_dir_all(ws.join("sub/.git")).unwrap();
        fs::create_dir_all(ws.join("empty/also-empty")).unwrap();
        fs::write(ws.join("AGENTS.md"), "flightdeck's, not stored\n").unwrap();
        fs::write(ws.join("foo/AGENTS.md"), "the agent's own, stored\n").unwrap();
        fs::write(ws.join("foo.txt"), "one\ntwo\n").unwrap();
        fs::write(ws.join("foo-bar"), "no newline at the end\nlast").unwrap();
        fs::write(ws.join("foo/deeper/empty"), "").unwrap();
        fs::write(ws.join("binary"), b"GIF\0\x01\x02\n\n").unwrap();
        fs::write(ws.join("sub/.git/HEAD"), "not a repository\n").unwrap();
        fs::write(ws.join("sub/kept"), "kept\n").unwrap();
        fs::write(ws.join("naïve name with spaces"), "x\n").unwrap();
        fs::write(ws.join("run.sh"), "#!/bin/sh\ntrue\n").unwrap();
        fs::set_permissions(ws.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        let big: String = (0..200_000).map(|i| format!("line {i}\n")).collect();
        fs::write(ws.join("big.log"), big).unwrap();
        symlink("/etc/passwd", ws.join("link")).unwrap();
        let fifo = std::ffi::CString::new(ws.join("fifo").as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        ws
    }

    #[test]
    fn a_snapshot_is_the_tree_git_add_would_store_and_its_counts_are_gits() {
        let dir = tempfile::tempdir().unwrap();
        let ws = workspace(dir.path());
        let ours = SnapshotRepo::create(&dir.path().join("ours.git")).unwrap();
        let at = chrono::Utc::now();
        let base = ours
            .commit_workspace(&dir.path().join("fresh"), None, "base", at)
            .err()
            .map(|_| ());
        assert!(base.is_some(), "a missing workspace is an error");
        fs::create_dir(dir.path().join("fresh")).unwrap();
        fs::write(dir.path().join("fresh/AGENTS.md"), "only this").unwrap();
        let base = ours
            .commit_workspace(&dir.path().join("fresh"), None, "base", at)
            .unwrap();
        assert!(base.empty && base.files.is_empty());
        let head = ours
            .commit_workspace(&ws, Some(&base.commit), "attempt 1", at)
            .unwrap();
        assert!(!head.empty);

        // The same workspace through git itself, into a repository of its own.
        let theirs = dir.path().join("theirs.git");
        git(
            dir.path(),
            &[],
            &["init", "-q", "--bare", theirs.to_str().unwrap()],
        );
        let env = [
            ("GIT_DIR", theirs.as_path()),
            ("GIT_WORK_TREE", ws.as_path()),
        ];
        git(
            &ws,
            &env,
            &[
                "add",
                "--all",
                "--force",
                "--",
                ".",
                ":(exclude,top)AGENTS.md",
            ],
        );
        let tree = git(&ws, &env, &["write-tree"]);
        let repo = dir.path().join("ours.git");
        let our_tree = git(
            &repo,
            &[],
            &["rev-parse", &format!("{}^{{tree}}", head.commit)],
        );
        assert_eq!(
            our_tree,
            tree,
            "{}",
            git(&repo, &[], &["ls-tree", "-r", &head.commit])
        );
        git(&repo, &[], &["fsck", "--strict", "--no-dangling"]);

        // The counts without a diff are what git's numstat says.
        let numstat = git(
            &repo,
            &[],
            &["diff", "--numstat", &base.commit, &head.commit],
        );
        let (mut added, mut files) = (0u64, 0usize);
        for line in numstat.lines() {
            files += 1;
            added += line.split('\t').next().unwrap().parse::<u64>().unwrap_or(0);
        }
        assert_eq!(head.files.len(), files, "{numstat}");
        assert_eq!(
            head.files.iter().filter_map(|f| f.lines).sum::<u64>(),
            added,
            "{numstat}"
        );
        let binary = head.files.iter().find(|f| f.path == b"binary").unwrap();
        assert_eq!(binary.lines, None);
    }

    #[test]
    fn a_workspace_replaced_by_a_link_or_nested_without_end_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let repo = SnapshotRepo::create(&dir.path().join("r.git")).unwrap();
        symlink("/etc", dir.path().join("ws")).unwrap();
        let err = repo
            .commit_workspace(&dir.path().join("ws"), None, "m", chrono::Utc::now())
            .unwrap_err();
        assert!(err.to_string().contains("not a real folder"), "{err}");
        let mut deep = dir.path().join("deep");
        for _ in 0..(DEPTH_MAX + 2) {
            deep.push("d");
        }
        fs::create_dir_all(&deep).unwrap();
        fs::write(deep.join("f"), "x").unwrap();
        let err = repo
            .commit_workspace(&dir.path().join("deep"), None, "m", chrono::Utc::now())
            .unwrap_err();
        assert!(err.to_string().contains("deeper than"), "{err}");
    }
}
