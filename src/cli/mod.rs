//! The command line's client commands: each talks to a running server over HTTP and prints
//! an aligned table for people, or the API's JSON with `--json`. Everything they print goes
//! through [`Output`], which shows control characters as text on a terminal.

pub mod approvals;
mod client;
mod exit;
pub mod runners;
pub mod status;
mod table;
mod terminal;

pub use client::{Client, ClientError};
pub use exit::{Exit, EXIT_CODES_HELP};
pub use table::{item_table, pool_lines, print_item};
pub use terminal::{for_stderr, Output};
