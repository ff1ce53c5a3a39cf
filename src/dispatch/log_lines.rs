//! An attempt's session.log read by line, for the board's log viewer: how many lines it has, a
//! window of them with what the preset's parser makes of each, and which lines match a search.
//!
//! A log may hold a million lines. The viewer asks only for the lines it shows, so neither the
//! server nor the browser ever holds the whole log: a read keeps one line at a time (at most
//! [`LINE_PARSED_MAX`] bytes of it) plus the window it answers. Line counts are remembered per
//! session file ([`LineIndex`]), so a running attempt's new lines are read from where the last
//! read stopped, not from the start.
//!
//! session.log is the agent's to rewrite, so it is opened like every file of a session folder
//! ([`session_files::open`]: no link followed, nothing special read), at most
//! [`LOG_SERVED_MAX_BYTES`] of it is read, and a line is cut to [`LINE_SHOWN_MAX`] characters
//! for showing (the whole line stays in `GET /api/items/{id}/log`). The parser is the one every
//! output line went through when the agent ran ([`parser_for`]), so the parsed view and the
//! live progress read the same; each window starts a fresh parser, which only a parser that
//! joins several lines (Gemini's streamed reply) notices, at the window's first line.

use super::parsers::{parser_for, AgentOutput};
use super::session_files::{self, Refused, LOG_SERVED_MAX_BYTES};
use crate::config::Preset;
use serde::Serialize;
use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Most characters of one line shown; the rest is in the raw log.
pub const LINE_SHOWN_MAX: usize = 2_000;
/// Most bytes of one line handed to the parser or searched (the session's reader already cuts
/// an agent's line at 64 KiB; only a rewritten log has longer ones).
pub const LINE_PARSED_MAX: usize = 1 << 20;
/// Most matches one search answers.
pub const SEARCH_MATCHES_MAX: usize = 10_000;
/// How much of a log is read at once.
const CHUNK: usize = 64 << 10;

/// What one part of a line says, in the parsed view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Something the agent said or did (a message, a tool call), or an unrecognised line.
    Message,
    /// Tokens used by a step.
    Tokens,
    /// An artifact the agent declared.
    Artifact,
    /// The agent's acceptance report.
    Report,
    /// The agent's own final verdict.
    Verdict,
    /// A problem the agent ran into (an API error, a failed tool call).
    Error,
    /// The agent will try its model API again after a wait.
    Retry,
}

/// One part of a line in the parsed view: its kind and its text (agent-controlled, to be shown
/// as text).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Entry {
    pub kind: EntryKind,
    pub text: String,
}

/// One line of a log as the viewer shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ShownLine {
    /// The line as the agent printed it, cut to [`LINE_SHOWN_MAX`] characters.
    pub raw: String,
    /// Whether `raw` was cut.
    pub clipped: bool,
    /// What the preset's parser made of the line; empty when it shows nothing.
    pub entries: Vec<Entry>,
}

/// Where a session's log is, relative to the data dir.
pub fn log_path(session_id: &str) -> PathBuf {
    ["agents", session_id, "session.log"].iter().collect()
}

/// The number of lines of a session's log. A running session's last line counts once it is
/// complete (ends in a newline); a finished one's counts as it is.
pub fn count(data_dir: &Path, session_id: &str, finished: bool) -> Result<u64, Refused> {
    read(
        data_dir,
        session_id,
        finished,
        u64::MAX..u64::MAX,
        |_, _, _| true,
    )
}

/// The lines `from..from + limit` of a session's log with their parsed entries, and the log's
/// line count.
pub fn window(
    data_dir: &Path,
    session_id: &str,
    finished: bool,
    preset: Preset,
    from: u64,
    limit: usize,
) -> Result<(u64, Vec<ShownLine>), Refused> {
    let mut parser = parser_for(preset);
    let mut lines = Vec::with_capacity(limit.min(1024));
    let wanted = from..from.saturating_add(limit as u64);
    let total = read(data_dir, session_id, finished, wanted, |_, bytes, cut| {
        let text = String::from_utf8_lossy(bytes);
        let entries = if cut {
            Vec::new()
        } else {
            parser.parse_line(&text).into_iter().map(entry).collect()
        };
        let (raw, clipped) = clip(&text);
        lines.push(ShownLine {
            raw,
            clipped: clipped || cut,
            entries,
        });
        true
    })?;
    Ok((total, lines))
}

/// The lines of a session's log whose shown text contains `needle` (already lower-cased),
/// ignoring case: in the parsed view the entries' text, in the raw view the line. At most
/// `max` of them.
pub fn search(
    data_dir: &Path,
    session_id: &str,
    finished: bool,
    preset: Preset,
    needle: &str,
    parsed: bool,
    max: usize,
) -> Result<Vec<u64>, Refused> {
    let mut parser = parser_for(preset);
    let mut found = Vec::new();
    read(
        data_dir,
        session_id,
        finished,
        0..u64::MAX,
        |n, bytes, cut| {
            let text = String::from_utf8_lossy(bytes);
            let hit = if parsed {
                !cut && parser
                    .parse_line(&text)
                    .into_iter()
                    .any(|out| entry(out).text.to_lowercase().contains(needle))
            } else {
                text.to_lowercase().contains(needle)
            };
            if hit {
                found.push(n);
            }
            found.len() < max
        },
    )?;
    Ok(found)
}

/// What the viewer shows for one thing the parser reported.
fn entry(out: AgentOutput) -> Entry {
    let (kind, text) = match out {
        AgentOutput::Progress(text) => (EntryKind::Message, text),
        AgentOutput::Tokens { input, output } => (
            EntryKind::Tokens,
            format!("tokens: {input} in, {output} out"),
        ),
        AgentOutput::Artifact(a) => (EntryKind::Artifact, format!("artifact: {}", a.path)),
        AgentOutput::Acceptance(report) => {
            let met = report.iter().filter(|c| c.met).count();
            (
                EntryKind::Report,
                format!("acceptance report: {met} of {} criteria met", report.len()),
            )
        }
        AgentOutput::Finished { success, summary } => {
            let how = if success { "success" } else { "failed" };
            (EntryKind::Verdict, format!("finished ({how}): {summary}"))
        }
        AgentOutput::Problem(p) => (EntryKind::Error, p.message),
        AgentOutput::Retrying(wait) => (
            EntryKind::Retry,
            format!("retrying in {} s", wait.as_secs().max(1)),
        ),
        AgentOutput::Acp(report) => acp_entry(report),
    };
    Entry { kind, text }
}

/// What the viewer shows for one report of the ACP bridge.
fn acp_entry(report: crate::dispatch::acp::Report) -> (EntryKind, String) {
    use crate::dispatch::acp::Report;
    match report {
        Report::Progress { message } => (EntryKind::Message, message),
        Report::Tokens { input, output } => (
            EntryKind::Tokens,
            format!("tokens: {input} in, {output} out"),
        ),
        Report::Session { .. } => (EntryKind::Message, "the ACP session is open".into()),
        Report::Permission(ask) => (
            EntryKind::Message,
            format!("asks permission: {}", ask.tool.title),
        ),
        Report::TurnEnded { stop_reason } => (
            EntryKind::Message,
            format!("the agent's turn ended ({stop_reason})"),
        ),
    }
}

/// `text` cut to [`LINE_SHOWN_MAX`] characters, and whether it was cut.
fn clip(text: &str) -> (String, bool) {
    match text.char_indices().nth(LINE_SHOWN_MAX) {
        Some((at, _)) => (text[..at].to_string(), true),
        None => (text.to_string(), false),
    }
}

/// Where the complete lines of a log file end, as last read: its size then, its line count and
/// the byte after its last complete line.
#[derive(Clone, Copy)]
struct Mark {
    len: u64,
    lines: u64,
    end: u64,
}

/// Line counts of the logs read lately, so a growing log is read on from where the last read
/// stopped, and a finished one is counted once. Bounded: past [`INDEX_MAX`] logs it starts
/// over.
struct LineIndex(Mutex<Option<HashMap<String, Mark>>>);

const INDEX_MAX: usize = 4_096;

static INDEX: LineIndex = LineIndex(Mutex::new(None));

impl LineIndex {
    fn get(&self, session_id: &str) -> Option<Mark> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.as_ref()?.get(session_id).copied()
    }

    fn put(&self, session_id: &str, mark: Mark) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let map = map.get_or_insert_with(HashMap::new);
        if map.len() >= INDEX_MAX && !map.contains_key(session_id) {
            map.clear();
        }
        map.insert(session_id.to_string(), mark);
    }
}

/// Reads a session's log, calling `visit(line number, bytes, cut)` for each line in `wanted`
/// (`cut`: the line was longer than [`LINE_PARSED_MAX`] and `bytes` is its start) until it
/// returns false, and answers the log's line count (or the line it stopped at). A log that
/// does not exist (yet) has no lines.
fn read(
    data_dir: &Path,
    session_id: &str,
    finished: bool,
    wanted: Range<u64>,
    visit: impl FnMut(u64, &[u8], bool) -> bool,
) -> Result<u64, Refused> {
    let rel = log_path(session_id);
    let mut opened = match session_files::open(data_dir, &rel) {
        Ok(opened) => opened,
        Err(Refused::Missing { .. }) => return Ok(0),
        Err(e) => return Err(e),
    };
    let io_error = |source| Refused::Io {
        path: rel.display().to_string(),
        source,
    };
    let len = opened.len.min(LOG_SERVED_MAX_BYTES);
    // Start after what an earlier read already counted, when none of it is wanted and the file
    // only grew since.
    let mut start = Mark {
        len: 0,
        lines: 0,
        end: 0,
    };
    if let Some(mark) = INDEX.get(session_id) {
        if mark.len <= len && mark.lines <= wanted.start {
            start = mark;
        }
    }
    opened
        .file
        .seek(SeekFrom::Start(start.end))
        .map_err(io_error)?;
    let reader = (&opened.file).take(len - start.end);
    let (lines, mark, whole) =
        scan(reader, start.lines, start.end, finished, wanted, visit).map_err(io_error)?;
    if whole {
        INDEX.put(session_id, mark);
    }
    Ok(lines)
}

/// The line-splitting loop of [`read`], over any reader: starting at line `n` at byte `at`,
/// answers the line count reached, the count of complete lines (ending in a newline) and the
/// byte after the last of them, and whether the whole input was read (no early stop).
fn scan(
    mut input: impl Read,
    mut n: u64,
    at: u64,
    finished: bool,
    wanted: Range<u64>,
    mut visit: impl FnMut(u64, &[u8], bool) -> bool,
) -> io::Result<(u64, Mark, bool)> {
    let mut buf = vec![0u8; CHUNK];
    let mut line: Vec<u8> = Vec::new();
    let mut cut = false;
    // Bytes read so far, and where the line being read starts (both from the file's start).
    let mut read = at;
    let mut line_start = at;
    loop {
        let got = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let base = read;
        read += got as u64;
        let mut off = 0;
        while off < got {
            let chunk = &buf[off..got];
            if !wanted.contains(&n) {
                let newlines = chunk.iter().filter(|&&b| b == b'\n').count() as u64;
                if n >= wanted.end || n + newlines < wanted.start {
                    n += newlines;
                    if let Some(last) = chunk.iter().rposition(|&b| b == b'\n') {
                        line_start = base + (off + last + 1) as u64;
                    }
                    break;
                }
                // Skip to the first wanted line: the (wanted.start - n)th newline from here.
                let skip = (wanted.start - n) as usize;
                let Some(p) = chunk
                    .iter()
                    .enumerate()
                    .filter(|(_, &b)| b == b'\n')
                    .nth(skip - 1)
                    .map(|(i, _)| i)
                else {
                    break;
                };
                n = wanted.start;
                off += p + 1;
                line_start = base + off as u64;
                continue;
            }
            let newline = chunk.iter().position(|&b| b == b'\n');
            let part = &chunk[..newline.unwrap_or(chunk.len())];
            let room = LINE_PARSED_MAX - line.len();
            line.extend_from_slice(&part[..part.len().min(room)]);
            cut |= part.len() > room;
            let Some(p) = newline else { break };
            let go_on = visit(n, &line, cut);
            n += 1;
            off += p + 1;
            line_start = base + off as u64;
            line.clear();
            cut = false;
            if !go_on {
                let mark = Mark {
                    len: read,
                    lines: n,
                    end: line_start,
                };
                return Ok((n, mark, false));
            }
        }
    }
    let mark = Mark {
        len: read,
        lines: n,
        end: line_start,
    };
    if line_start < read && finished {
        if wanted.contains(&n) {
            visit(n, &line, cut);
        }
        n += 1;
    }
    Ok((n, mark, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line `scan` visits in `wanted`, and the count it answers.
    fn lines(text: &str, finished: bool, wanted: Range<u64>) -> (Vec<(u64, String)>, u64, u64) {
        let mut seen = Vec::new();
        let (n, mark, _) = scan(text.as_bytes(), 0, 0, finished, wanted, |n, b, _| {
            seen.push((n, String::from_utf8_lossy(b).into_owned()));
            true
        })
        .expect("reading a byte slice");
        (seen, n, mark.end)
    }

    #[test]
    fn counts_complete_lines_and_a_finished_logs_last_line() {
        assert_eq!(lines("a\nb\nc", false, u64::MAX..u64::MAX).1, 2);
        assert_eq!(lines("a\nb\nc", true, 0..0).1, 3);
        assert_eq!(lines("a\nb\n", true, 0..0).1, 2);
        assert_eq!(lines("", true, 0..0).1, 0);
        assert_eq!(lines("a\nb\nc", true, 0..0).2, 4);
    }

    #[test]
    fn visits_only_the_wanted_lines() {
        let text: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        let (seen, n, _) = lines(&text, true, 500..503);
        assert_eq!(n, 1000);
        assert_eq!(
            seen,
            vec![
                (500, "line 500".to_string()),
                (501, "line 501".to_string()),
                (502, "line 502".to_string())
            ]
        );
        let (seen, _, _) = lines("x\ny", true, 1..5);
        assert_eq!(seen, vec![(1, "y".to_string())]);
    }

    #[test]
    fn lines_across_chunks_are_whole() {
        let long = "é".repeat(CHUNK);
        let text = format!("{long}\nshort\n{long}");
        let (seen, n, _) = lines(&text, true, 0..10);
        assert_eq!(n, 3);
        assert_eq!(seen[0].1, long);
        assert_eq!(seen[1].1, "short");
        assert_eq!(seen[2].1, long);
    }

    #[test]
    fn a_growing_log_is_counted_on_from_where_the_last_count_stopped() {
        let data = tempfile::tempdir().expect("data dir");
        let id = "growing-session";
        let path = data.path().join(log_path(id));
        std::fs::create_dir_all(path.parent().expect("folder")).expect("session folder");
        std::fs::write(&path, "a\nb\nc\npart").expect("log");
        assert_eq!(count(data.path(), id, false).expect("count"), 3);
        std::fs::write(&path, "a\nb\nc\npartial\nd\ne").expect("log");
        assert_eq!(count(data.path(), id, false).expect("count"), 5);
        assert_eq!(count(data.path(), id, true).expect("count"), 6);
        let (total, lines) = window(data.path(), id, true, Preset::Lines, 3, 10).expect("window");
        assert_eq!(total, 6);
        let raw: Vec<&str> = lines.iter().map(|l| l.raw.as_str()).collect();
        assert_eq!(raw, ["partial", "d", "e"]);
    }

    #[test]
    fn clip_cuts_long_lines_on_a_char_boundary() {
        let (shown, clipped) = clip(&"é".repeat(LINE_SHOWN_MAX + 5));
        assert!(clipped);
        assert_eq!(shown.chars().count(), LINE_SHOWN_MAX);
        assert_eq!(clip("short"), ("short".to_string(), false));
    }
}
