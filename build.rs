//! Lists the board's files (everything under static/ but the API docs) for
//! src/static_files.rs, which builds them into the binary. The board is split into ES modules
//! (static/js/...): a generated list means a new module is served without touching Rust, and
//! cargo rebuilds whenever a file there changes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let static_dir = root.join("static");
    let mut files = Vec::new();
    walk(&static_dir, &static_dir, &mut files);
    files.sort();
    let mut out = String::from("&[\n");
    for (name, path) in &files {
        let mime = match Path::new(name).extension().and_then(|e| e.to_str()) {
            Some("html") => "text/html; charset=utf-8",
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            _ => continue,
        };
        writeln!(
            out,
            "    ({name:?}, {mime:?}, include_str!({:?})),",
            path.display()
        )
        .expect("writing to a String");
    }
    out.push_str("]\n");
    let dest =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("board_files.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
    println!("cargo:rerun-if-changed=static");
}

/// Every file under `dir` as (its path from `static_dir` with `/`, its absolute path),
/// skipping the API docs (served by their own list) and dot files.
fn walk(static_dir: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || (dir == static_dir && name == "api-docs") {
            continue;
        }
        println!("cargo:rerun-if-changed={}", path.display());
        if path.is_dir() {
            walk(static_dir, &path, files);
        } else if let Ok(relative) = path.strip_prefix(static_dir) {
            let url = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            files.push((url, path));
        }
    }
}
