//! What the command line prints that came from the server (titles, descriptions, reasons,
//! agent logs) is written by agents and by whoever can reach the API, so it may carry terminal
//! control sequences: OSC 52 writes the clipboard, `ESC [2J` clears the screen, SGR codes fake
//! colours or hide text. A terminal obeys them. So when stdout (or, for errors, stderr) is a
//! terminal, every control character except newline and tab is shown as visible text instead:
//! `\x1b` for C0 and DEL, `\u{9b}` for C1. Into a pipe or a file the bytes pass unchanged, as
//! `cat` would pass them, so scripts see exactly what the server holds; `--raw` passes them to
//! a terminal too. JSON output escapes DEL and C1 as `\u00XX` as well, which any JSON reader
//! decodes back to the same text, so `--json` is safe to print anywhere.

use serde_json::Value;
use std::borrow::Cow;
use std::io::{IsTerminal, Write};

/// Whether `c` would be obeyed by a terminal rather than shown: C0 controls except newline
/// and tab, DEL, and C1 controls.
fn is_control(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

/// `text` with every control character (but newline and tab) written out as visible text:
/// the one rule for what reaches a terminal.
pub fn visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            c if !is_control(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

/// Pretty JSON with DEL and C1 escaped as `\u00XX` (serde_json escapes C0 already). Outside
/// strings JSON is plain ASCII, so this only touches string contents, and decodes the same.
pub fn json_text(value: &Value) -> String {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    if !text.chars().any(is_control) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_control(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// The CLI's standard output: shows control characters as text on a terminal, unless raw.
pub struct Output {
    escape: bool,
    /// The start of a UTF-8 character cut off at the end of the last chunk of a stream.
    pending: Vec<u8>,
}

impl Output {
    /// `raw`: the user asked for the server's bytes as they are (`--raw`).
    pub fn stdout(raw: bool) -> Output {
        Output {
            escape: !raw && std::io::stdout().is_terminal(),
            pending: Vec::new(),
        }
    }

    /// Prints `text` as it is, or made visible on a terminal.
    pub fn print(&self, text: &str) {
        let text = if self.escape {
            visible(text)
        } else {
            Cow::Borrowed(text)
        };
        write_out(text.as_bytes());
    }

    /// Prints `text` and a newline.
    pub fn line(&self, text: &str) {
        self.print(text);
        write_out(b"\n");
    }

    pub fn json(&self, value: &Value) {
        self.line(&json_text(value));
    }

    /// Prints the next piece of a byte stream (an agent log). Raw, the bytes pass unchanged;
    /// on a terminal they are decoded (invalid UTF-8 shown as U+FFFD) and made visible, and a
    /// character cut in two between chunks is held back until its end arrives.
    pub fn stream(&mut self, chunk: &[u8]) {
        if !self.escape {
            write_out(chunk);
            return;
        }
        self.pending.extend_from_slice(chunk);
        let complete = self.pending.len() - incomplete_tail(&self.pending);
        let rest = self.pending.split_off(complete);
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending = rest;
        self.print(&text);
    }
}

/// How many bytes at the end of `bytes` start a UTF-8 character that is not complete yet.
fn incomplete_tail(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let byte = bytes[bytes.len() - back];
        if byte & 0xC0 == 0x80 {
            continue; // a continuation byte: the lead is further back
        }
        let needs = match byte {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if needs > back { back } else { 0 };
    }
    0
}

fn write_out(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`flightdeck logs X | head`) is not an error worth a message.
    let _ = out.write_all(bytes).and_then(|()| out.flush());
}

/// An error message for stderr: made visible when stderr is a terminal.
pub fn for_stderr(message: &str) -> Cow<'_, str> {
    if std::io::stderr().is_terminal() {
        visible(message)
    } else {
        Cow::Borrowed(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible_text() {
        assert_eq!(visible("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(
            visible("\u{1b}]52;c;aGk=\u{7}\u{1b}[2Jx\r\u{7f}"),
            "\\x1b]52;c;aGk=\\x07\\x1b[2Jx\\x0d\\x7f"
        );
        assert_eq!(visible("a\u{9b}31mb"), "a\\u{9b}31mb");
        assert_eq!(visible("é ✓"), "é ✓");
    }

    #[test]
    fn a_character_cut_between_chunks_waits_for_its_end() {
        let check = "✓".as_bytes();
        assert_eq!(incomplete_tail(b"ok"), 0);
        assert_eq!(incomplete_tail(&check[..1]), 1);
        assert_eq!(incomplete_tail(&check[..2]), 2);
        assert_eq!(incomplete_tail(check), 0);
        assert_eq!(incomplete_tail(b"a\xff"), 0);
    }

    #[test]
    fn json_escapes_del_and_c1_and_decodes_the_same() {
        let value = serde_json::json!({"title": "\u{1b}[2J\u{7f}\u{9b}"});
        let text = json_text(&value);
        assert!(!text.chars().any(is_control), "{text}");
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), value);
    }
}
