//! `fs/read_text_file` and `fs/write_text_file`, served for an ACP agent inside its session's
//! workspace and artifacts folders only.
//!
//! The agent names any path it likes, so every path is checked before it is touched: it must
//! be absolute, without `..`, inside one of the folders, and reached without following a
//! link (the canonical path must be the path as written, and the file is opened with
//! `O_NOFOLLOW`). Reads and writes are capped. A refusal is an error whose message says why,
//! which the bridge sends back as the JSON-RPC error. The bridge runs in the agent's Landlock
//! sandbox too, so a mistake here still cannot reach past the session folder.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// Largest file read or written, in bytes.
pub const FILE_MAX: u64 = 4 << 20;

/// The folders an agent's file requests may reach.
pub struct Files {
    roots: Vec<PathBuf>,
}

impl Files {
    /// Folders that do not exist are left out.
    pub fn new(roots: &[PathBuf]) -> Files {
        Files {
            roots: roots
                .iter()
                .filter_map(|r| std::fs::canonicalize(r).ok())
                .collect(),
        }
    }

    /// The text of `path`, from 1-based `line` on, at most `limit` lines.
    pub fn read(
        &self,
        path: &str,
        line: Option<u64>,
        limit: Option<u64>,
    ) -> Result<String, String> {
        let path = self.inside(path)?;
        let real = std::fs::canonicalize(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if real != path {
            return Err(format!(
                "{} is reached through a link; flightdeck serves only files inside the session's folders",
                path.display()
            ));
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let meta = file
            .metadata()
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!("{} is not a regular file", path.display()));
        }
        if meta.len() > FILE_MAX {
            return Err(format!(
                "{} is {} bytes, more than the {} bytes flightdeck reads for an agent",
                path.display(),
                meta.len(),
                FILE_MAX
            ));
        }
        let mut bytes = Vec::new();
        file.take(FILE_MAX)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| format!("{} is not UTF-8 text", path.display()))?;
        let skip = line.unwrap_or(1).saturating_sub(1) as usize;
        Ok(match (skip, limit) {
            (0, None) => text,
            (skip, limit) => {
                let take = limit.map_or(usize::MAX, |l| l as usize);
                let lines: Vec<&str> = text.split_inclusive('\n').skip(skip).take(take).collect();
                lines.concat()
            }
        })
    }

    /// Writes `content` to `path` (creating it and its folders inside a root).
    pub fn write(&self, path: &str, content: &str) -> Result<(), String> {
        if content.len() as u64 > FILE_MAX {
            return Err(format!(
                "the content is {} bytes, more than the {} bytes flightdeck writes for an agent",
                content.len(),
                FILE_MAX
            ));
        }
        let path = self.inside(path)?;
        let parent = path
            .parent()
            .ok_or_else(|| format!("{} has no folder", path.display()))?;
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot make the folder of {}: {e}", path.display()))?;
        let real_parent = std::fs::canonicalize(parent)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        if real_parent != parent {
            return Err(format!(
                "{} is reached through a link; flightdeck serves only files inside the session's folders",
                path.display()
            ));
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => format!(
                    "{} is a link; flightdeck writes only files inside the session's folders",
                    path.display()
                ),
                _ => format!("cannot write {}: {e}", path.display()),
            })?;
        file.write_all(content.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// `path` as an absolute path without `..` inside one of the roots.
    fn inside(&self, path: &str) -> Result<PathBuf, String> {
        let p = Path::new(path);
        if !p.is_absolute() {
            return Err(format!("{path} is not an absolute path"));
        }
        if p.components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        {
            return Err(format!("{path} contains \"..\" or \".\""));
        }
        if self.roots.iter().any(|r| p.starts_with(r) && p != r) {
            Ok(p.to_path_buf())
        } else {
            Err(format!(
                "{path} is outside the session's workspace and artifacts folders"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_or_through_links_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("workspace");
        std::fs::create_dir_all(&ws).unwrap();
        std::os::unix::fs::symlink("/etc", ws.join("etc")).unwrap();
        let files = Files::new(std::slice::from_ref(&ws));
        let ws = std::fs::canonicalize(&ws).unwrap();
        let err = files.read("/etc/passwd", None, None).unwrap_err();
        assert!(err.contains("outside"), "{err}");
        let err = files
            .read(&format!("{}/etc/passwd", ws.display()), None, None)
            .unwrap_err();
        assert!(err.contains("link"), "{err}");
        let err = files
            .write(&format!("{}/../x", ws.display()), "x")
            .unwrap_err();
        assert!(err.contains(".."), "{err}");
        let err = files.write("relative.txt", "x").unwrap_err();
        assert!(err.contains("absolute"), "{err}");
        let err = files
            .write(&format!("{}/etc/evil", ws.display()), "x")
            .unwrap_err();
        assert!(err.contains("link"), "{err}");
        let target = format!("{}/sub/a.txt", ws.display());
        files.write(&target, "one\ntwo\nthree\n").unwrap();
        assert_eq!(files.read(&target, Some(2), Some(1)).unwrap(), "two\n");
    }
}
