//! The API token: where it comes from and where it must never stay.
//!
//! `server.token` (or `FLIGHTDECK_TOKEN`) picks one of three settings: a token of the
//! operator's choosing, `"none"` (the old open mode, for a machine where every process is
//! trusted), or, by default, empty: a token generated at the first start into
//! `{data_dir}/token`. That file is what makes the default safe: it is readable by its owner
//! only and lies inside the data dir, which the sandbox keeps every agent out of, while the
//! CLI of the same user reads it from there and the board gets it through the sign-in URL
//! printed at start. The file is never followed through a link and never trusted when others
//! could read it, so nobody can plant one or point it elsewhere.
//!
//! A token given in the environment would stay readable in `/proc/<pid>/environ` by any
//! process of the same user (agents included, since Landlock does not cover `/proc`), so the
//! server wipes it from its environment once read: see [`scrub_from_environment`].

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The value of `server.token` that turns auth off.
pub const OPEN: &str = "none";
/// The token file's name inside the data dir.
pub const FILE_NAME: &str = "token";
/// Random bytes in a generated token (written as twice as many hex digits).
const RANDOM_BYTES: usize = 32;
/// The longest token file read; a token is a line, not a document.
const MAX_LEN: u64 = 4096;

/// What `server.token` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSetting {
    /// Empty: the generated token in `{data_dir}/token`.
    Generated,
    /// `"none"`: no auth at all.
    Open,
    /// A token the operator chose.
    Fixed(String),
}

impl TokenSetting {
    pub fn from_config(value: &str) -> TokenSetting {
        match value.trim() {
            "" => TokenSetting::Generated,
            OPEN => TokenSetting::Open,
            token => TokenSetting::Fixed(token.to_string()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token file {0} is a symbolic link; flightdeck never follows one there. Delete it (a new token is generated at the next start) or set server.token")]
    Symlink(PathBuf),
    #[error("the token file {0} is not a regular file; delete it (a new token is generated at the next start) or set server.token")]
    NotAFile(PathBuf),
    #[error("the token file {path} can be read by other users (mode {mode:03o}); run `chmod 600 {path}` or delete it (a new token is generated at the next start)")]
    Readable { path: PathBuf, mode: u32 },
    #[error("the token file {0} belongs to another user; delete it (a new token is generated at the next start) or run flightdeck as its owner")]
    NotOwned(PathBuf),
    #[error("the token file {0} holds no usable token (it must be one line of visible ASCII, at most 4096 bytes); delete it (a new token is generated at the next start)")]
    Malformed(PathBuf),
    #[error("the token file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `{data_dir}/token`.
pub fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// The generated token: read from `{data_dir}/token`, or created there (mode 0600) when there
/// is none yet. Returns the token and whether it was just created.
pub fn load_or_create(data_dir: &Path) -> Result<(String, bool), TokenError> {
    let path = path_in(data_dir);
    if let Some(token) = read(data_dir)? {
        return Ok((token, false));
    }
    let token = generate().map_err(|source| TokenError::Io {
        path: path.clone(),
        source,
    })?;
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path);
    let mut file = match created {
        Ok(file) => file,
        // Another process made it between our look and our create: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return read(data_dir)?
                .map(|token| (token, false))
                .ok_or(TokenError::Malformed(path));
        }
        Err(source) => return Err(TokenError::Io { path, source }),
    };
    file.write_all(format!("{token}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| TokenError::Io {
            path: path.clone(),
            source,
        })?;
    Ok((token, true))
}

/// The token in `{data_dir}/token`, or None when there is no such file. Refuses a link, a
/// non-file, a file others can read or that another user owns, and anything not a token.
pub fn read(data_dir: &Path) -> Result<Option<String>, TokenError> {
    let path = path_in(data_dir);
    let opened = std::fs::OpenOptions::new()
        .read(true)
        // O_NONBLOCK: a FIFO planted here must not hang the start-up.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(TokenError::Symlink(path)),
        Err(source) => return Err(TokenError::Io { path, source }),
    };
    let meta = file.metadata().map_err(|source| TokenError::Io {
        path: path.clone(),
        source,
    })?;
    if !meta.is_file() {
        return Err(TokenError::NotAFile(path));
    }
    // SAFETY: geteuid has no preconditions.
    if meta.uid() != unsafe { libc::geteuid() } {
        return Err(TokenError::NotOwned(path));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TokenError::Readable { path, mode });
    }
    let mut text = String::new();
    file.take(MAX_LEN + 1)
        .read_to_string(&mut text)
        .map_err(|_| TokenError::Malformed(path.clone()))?;
    let token = text.trim();
    let usable = !token.is_empty()
        && text.len() as u64 <= MAX_LEN
        && token.bytes().all(|b| b.is_ascii_graphic());
    if !usable {
        return Err(TokenError::Malformed(path));
    }
    Ok(Some(token.to_string()))
}

/// 32 bytes from the kernel's random source, as 64 hex digits.
fn generate() -> std::io::Result<String> {
    let mut bytes = [0u8; RANDOM_BYTES];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Removes `name` from this process's environment so that `/proc/<pid>/environ` no longer
/// shows its value. `std::env::remove_var` alone is not enough: it only drops the entry from
/// the `environ` array, while `/proc/<pid>/environ` shows the original block the kernel
/// placed on the stack at exec. So the value's bytes are overwritten where `getenv` finds
/// them (in that block) before the entry is removed.
///
/// Must run while the process has one thread: `getenv`/`unsetenv` are not thread-safe, and no
/// other thread may hold a pointer into the environment.
pub fn scrub_from_environment(name: &str) {
    let Ok(c_name) = CString::new(name) else {
        return;
    };
    // SAFETY: single-threaded (see above); getenv returns null or a pointer to the
    // NUL-terminated value inside the environment, which is writable memory of this process
    // (the exec-time block on the stack, or a heap copy made by setenv), and exactly
    // strlen(value) bytes are overwritten, keeping its terminating NUL.
    unsafe {
        let value = libc::getenv(c_name.as_ptr());
        if !value.is_null() {
            let len = libc::strlen(value);
            std::ptr::write_bytes(value, 0, len);
        }
    }
    std::env::remove_var(name);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn settings_from_the_config_value() {
        assert_eq!(TokenSetting::from_config(""), TokenSetting::Generated);
        assert_eq!(TokenSetting::from_config("none"), TokenSetting::Open);
        assert_eq!(
            TokenSetting::from_config("s3cret"),
            TokenSetting::Fixed("s3cret".into())
        );
    }

    #[test]
    fn a_generated_token_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (token, created) = load_or_create(dir.path()).unwrap();
        assert!(created);
        assert_eq!(token.len(), 64);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        let meta = std::fs::metadata(path_in(dir.path())).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(load_or_create(dir.path()).unwrap(), (token, false));
    }

    #[test]
    fn links_readable_files_and_junk_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, "abc\n").unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        assert!(matches!(read(dir.path()), Err(TokenError::Symlink(_))));
        assert!(matches!(
            load_or_create(dir.path()),
            Err(TokenError::Symlink(_))
        ));
        std::fs::remove_file(&path).unwrap();

        std::fs::write(&path, "abc\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read(dir.path()).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read(dir.path()).unwrap().as_deref(), Some("abc"));

        std::fs::write(&path, "two words\n").unwrap();
        assert!(matches!(read(dir.path()), Err(TokenError::Malformed(_))));
        std::fs::write(&path, "").unwrap();
        assert!(matches!(read(dir.path()), Err(TokenError::Malformed(_))));
    }
}
