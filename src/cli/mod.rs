//! The command line's client commands: each talks to a running server over HTTP and prints
//! an aligned table for people, or the API's JSON with `--json`.

mod client;
mod table;

pub use client::{Client, ClientError};
pub use table::{item_table, print_item};
