//! A remote session's log on the server: the `log` reports a runner sends, appended to the
//! session's `session.log` exactly once each, whatever crash comes between.
//!
//! A runner resends every report the server has not acknowledged, and the store skips a
//! report whose number it has already applied. The log text lives in a file, not in the store,
//! so the file keeps its own record beside it (`session.log.applied`: the last log report
//! appended, and the log's length after it), written after each append by a rename. Before
//! appending, a log longer than its record is cut back to it: that tail is the text of an
//! append the server was killed before recording, which the runner is resending now. So a
//! kill at any moment neither loses a line nor doubles one. The text is appended before the
//! reports are applied in the store, never after: a kill between the two leaves the report
//! unacknowledged, and its resend finds the text already recorded.

use std::io::Write;
use std::path::Path;

/// The record kept beside the log.
const RECORD: &str = "session.log.applied";

/// Appends each `(seq, text)` whose seq is past the last one appended, in order, to
/// `root/session.log` (making `root`).
pub fn append_once(root: &Path, logs: &[(u64, String)]) -> std::io::Result<()> {
    std::fs::create_dir_all(root)?;
    let record = root.join(RECORD);
    let (last_seq, length) = read_record(&record)?;
    let fresh: Vec<&(u64, String)> = logs.iter().filter(|(seq, _)| *seq > last_seq).collect();
    let Some((newest, _)) = fresh.last() else {
        return Ok(());
    };
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join("session.log"))?;
    if log.metadata()?.len() > length {
        log.set_len(length)?;
    }
    for (_, text) in &fresh {
        log.write_all(text.as_bytes())?;
    }
    let length = log.metadata()?.len();
    let temp = root.join(format!("{RECORD}.tmp"));
    std::fs::write(&temp, format!("{newest} {length}\n"))?;
    std::fs::rename(&temp, &record)
}

/// The last log report appended and the log's length after it; `(0, 0)` before the first.
fn read_record(record: &Path) -> std::io::Result<(u64, u64)> {
    let text = match std::fs::read_to_string(record) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(e),
    };
    let mut parts = text.split_whitespace().map(str::parse::<u64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(seq)), Some(Ok(length))) => Ok((seq, length)),
        _ => Err(std::io::Error::other(format!(
            "{} is not a log record (\"SEQ LENGTH\")",
            record.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_of(root: &Path) -> String {
        std::fs::read_to_string(root.join("session.log")).unwrap()
    }

    #[test]
    fn resends_are_appended_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("s");
        let first = vec![(1, "one\n".to_string()), (2, "two\n".to_string())];
        append_once(&root, &first).unwrap();
        append_once(&root, &first).unwrap();
        let more = vec![(2, "two\n".to_string()), (3, "three\n".to_string())];
        append_once(&root, &more).unwrap();
        assert_eq!(log_of(&root), "one\ntwo\nthree\n");
    }

    #[test]
    fn text_appended_but_not_recorded_is_replaced_by_its_resend() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("s");
        append_once(&root, &[(1, "one\n".to_string())]).unwrap();
        // A kill after the append of report 2 and before its record.
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(root.join("session.log"))
            .unwrap();
        log.write_all(b"tw").unwrap();
        append_once(&root, &[(2, "two\n".to_string())]).unwrap();
        assert_eq!(log_of(&root), "one\ntwo\n");
    }

    #[test]
    fn a_record_that_is_not_one_is_an_error_in_words() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("s");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join(RECORD), "garbage").unwrap();
        let err = append_once(&root, &[(1, "x".into())]).unwrap_err();
        assert!(err.to_string().contains("is not a log record"), "{err}");
    }
}
