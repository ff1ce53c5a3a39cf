//! The CLI's exit codes: one per kind of failure a script may want to tell apart, listed once
//! here and shown by `flightdeck --help` (and in the README).

use super::ClientError;
use std::process::ExitCode;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok,
    /// Anything not named below (a server error, a bad config file, a refused start).
    Other,
    // 2 is clap's: a usage error (unknown command or option, missing argument).
    /// The item, session or route does not exist (404), or an id prefix matched nothing.
    NotFound,
    /// The state forbids it (409): a move the state machine refuses, an item in flight.
    Conflict,
    /// The server refused the input (400, 413, 415, 422): the message names the field.
    Invalid,
    /// No server answers at the URL.
    NoServer,
    /// The server wants a token this command did not have, or had wrong (401, 403).
    Unauthorized,
}

impl Exit {
    pub const fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Other => 1,
            Exit::NotFound => 3,
            Exit::Conflict => 4,
            Exit::Invalid => 5,
            Exit::NoServer => 6,
            Exit::Unauthorized => 7,
        }
    }

    /// The exit code for an HTTP error status.
    pub fn for_status(status: u16) -> Exit {
        match status {
            404 | 410 => Exit::NotFound,
            409 => Exit::Conflict,
            400 | 413 | 415 | 422 => Exit::Invalid,
            401 | 403 => Exit::Unauthorized,
            _ => Exit::Other,
        }
    }
}

impl From<&ClientError> for Exit {
    fn from(e: &ClientError) -> Exit {
        match e {
            ClientError::Unreachable(_) => Exit::NoServer,
            ClientError::Unauthorized(_) => Exit::Unauthorized,
            ClientError::Api { status, .. } => Exit::for_status(*status),
            ClientError::Answer(_) => Exit::Other,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}

/// The exit codes as `--help` shows them; a test checks it against [`Exit::code`].
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  any other error (a server error, a bad config file)
  2  usage error: unknown command or option, missing argument
  3  not found: no such item or session, or an id prefix that matches none
  4  conflict: the item's state forbids it (e.g. a move the state machine refuses)
  5  invalid input: the server refused a value; the message names the field
  6  no server answers at the URL (start one with `flightdeck serve`, or pass --server)
  7  unauthorized: the server wants its API token

Ids: every command that takes an item id accepts a unique prefix of it (4+ characters), as
the tables show them (8 characters).

Output: tables for people; --json prints the API's JSON. No colour or styling codes are
written when NO_COLOR is set or when the output is not a terminal.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_lists_every_code_as_the_code_returns_it() {
        for (exit, word) in [
            (Exit::Ok, "success"),
            (Exit::Other, "any other error"),
            (Exit::NotFound, "not found"),
            (Exit::Conflict, "conflict"),
            (Exit::Invalid, "invalid input"),
            (Exit::NoServer, "no server"),
            (Exit::Unauthorized, "unauthorized"),
        ] {
            let line = format!("  {}  {word}", exit.code());
            assert!(EXIT_CODES_HELP.contains(&line), "{line}");
        }
    }
}
