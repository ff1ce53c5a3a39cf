//! What an agent hands back: the files in its artifacts folder, the artifacts it declares in
//! its output, and its acceptance report, held to the limits the API puts on any client (how
//! many artifacts one completion may carry, the sizes of their paths and descriptions, the
//! size of a report). An agent is not trusted to keep them: what breaks a limit is dropped and
//! said in words (a note in the session's log and a count in its progress), never stored. Files
//! are found and read through [`session_files`], so no link or FIFO the agent left is followed.

use super::session_files::{self, Refused, ACCEPTANCE_MAX_BYTES};
use crate::model::{AcceptanceEntry, ArtifactInput, ArtifactKind, CompleteRequest, ARTIFACTS_MAX};
use std::path::{Component, Path, PathBuf};

/// The acceptance report an agent may leave in its artifacts folder.
pub const ACCEPTANCE_FILE: &str = "acceptance.json";

/// The artifacts an agent declared while it ran, kept within the limits as they arrive, so a
/// flood of them never piles up in memory.
#[derive(Debug, Default)]
pub struct Declared {
    kept: Vec<ArtifactInput>,
    invalid: usize,
    excess: usize,
}

impl Declared {
    /// Takes one declared artifact. Returns a note for the session's log when it is dropped:
    /// only for the first of each kind of drop, so a flood writes two lines, not thousands.
    pub fn offer(&mut self, artifact: ArtifactInput) -> Option<String> {
        if let Err(e) = artifact.validate("artifact") {
            self.invalid += 1;
            return (self.invalid == 1).then(|| {
                format!("dropped an artifact the agent declared, as it breaks the API's limits ({e}); any more are counted at the end")
            });
        }
        if self.kept.len() >= ARTIFACTS_MAX {
            self.excess += 1;
            return (self.excess == 1).then(|| {
                format!("dropped an artifact the agent declared: an attempt hands back at most {ARTIFACTS_MAX}; any more are counted at the end")
            });
        }
        self.kept.push(artifact);
        None
    }
}

/// What the collection found: artifacts and report for the queue, rules found broken (each
/// fails the attempt), and notes for the session's log and progress.
#[derive(Debug, Default)]
pub struct HandedBack {
    pub artifacts: Vec<ArtifactInput>,
    pub acceptance: Option<Vec<AcceptanceEntry>>,
    pub unmet: Vec<String>,
    pub notes: Vec<String>,
}

/// Gathers what the session `session_id` hands back: every regular file of its artifacts
/// folder (with the description the agent declared for it, if any), the other artifacts it
/// declared, `branch` (the git branch of its work) and its acceptance report (the file, or
/// else the one it `reported` in its output).
pub fn collect(
    data_dir: &Path,
    session_id: &str,
    artifacts_dir: &Path,
    declared: Declared,
    reported: Option<Vec<AcceptanceEntry>>,
    branch: Option<ArtifactInput>,
) -> HandedBack {
    let folder = Path::new("agents").join(session_id).join("artifacts");
    let report_file = folder.join(ACCEPTANCE_FILE);
    let mut out = HandedBack::default();
    let mut files: Vec<ArtifactInput> = Vec::new();
    match session_files::walk(
        data_dir,
        &folder,
        ARTIFACTS_MAX,
        std::slice::from_ref(&report_file),
    ) {
        Ok(walk) => {
            if walk.cut {
                out.notes.push(format!(
                    "the artifacts folder holds more than {ARTIFACTS_MAX} entries of a kind; only {} files were collected",
                    walk.files.len()
                ));
            }
            out.unmet.extend(walk.refused);
            for path in walk.files {
                let file = ArtifactInput {
                    description: format!(
                        "file written by the agent: {}",
                        path.rsplit('/').next().unwrap_or(&path)
                    ),
                    kind: ArtifactKind::File,
                    path,
                };
                match file.validate("artifact") {
                    Ok(()) => files.push(file),
                    Err(e) => out.notes.push(format!("a file was not collected: {e}")),
                }
            }
        }
        Err(e) => out
            .unmet
            .push(format!("the artifacts folder was not read: {e}")),
    }
    let Declared {
        kept,
        mut invalid,
        mut excess,
    } = declared;
    let mut others = Vec::new();
    let mut unnamed = 0;
    for a in kept {
        if a.kind != ArtifactKind::File {
            others.push(a);
            continue;
        }
        let found = in_folder(&a.path, artifacts_dir, &folder)
            .and_then(|path| files.iter_mut().find(|f| Path::new(&f.path) == path));
        match found {
            Some(file) if !a.description.trim().is_empty() => file.description = a.description,
            Some(_) => {}
            None => {
                unnamed += 1;
                if unnamed == 1 {
                    out.notes.push(
                        "dropped a declared file artifact: it names no regular file of the artifacts folder".into(),
                    );
                }
            }
        }
    }
    invalid += unnamed;
    out.artifacts.extend(branch);
    out.artifacts.extend(files);
    out.artifacts.extend(others);
    if out.artifacts.len() > ARTIFACTS_MAX {
        excess += out.artifacts.len() - ARTIFACTS_MAX;
        out.artifacts.truncate(ARTIFACTS_MAX);
    }
    if invalid + excess > 0 {
        let mut why = Vec::new();
        if invalid > 0 {
            why.push(format!(
                "{invalid} broke the API's limits or named no file of the artifacts folder"
            ));
        }
        if excess > 0 {
            why.push(format!(
                "{excess} were beyond the {ARTIFACTS_MAX} an attempt hands back"
            ));
        }
        out.notes.push(format!(
            "{} artifacts the agent declared were dropped: {}",
            invalid + excess,
            why.join(", ")
        ));
    }
    let report = match session_files::read_capped(data_dir, &report_file, ACCEPTANCE_MAX_BYTES) {
        Ok(text) => match serde_json::from_slice::<Vec<AcceptanceEntry>>(&text) {
            Ok(report) => Some(report),
            Err(e) => {
                out.unmet.push(format!(
                    "{ACCEPTANCE_FILE} is not a valid acceptance report: {e}"
                ));
                None
            }
        },
        Err(Refused::Missing { .. }) => reported,
        Err(e) => {
            out.unmet
                .push(format!("the acceptance report was not read: {e}"));
            None
        }
    };
    out.acceptance = report.and_then(|report| {
        let request = CompleteRequest {
            acceptance: Some(report),
            ..CompleteRequest::default()
        };
        match request.validate() {
            Ok(()) => request.acceptance,
            Err(e) => {
                out.unmet.push(format!(
                    "the acceptance report breaks the API's limits: {e}"
                ));
                None
            }
        }
    });
    out
}

/// A declared file path (relative to the artifacts folder, or absolute inside it) as a path
/// relative to the data dir, or None when it leads elsewhere. Nothing is followed: the path
/// only matters if it names a file the walk found.
fn in_folder(declared: &str, artifacts_dir: &Path, folder: &Path) -> Option<PathBuf> {
    let declared = Path::new(declared);
    let inside = if declared.is_absolute() {
        declared.strip_prefix(artifacts_dir).ok()?
    } else {
        declared
    };
    let mut path = folder.to_path_buf();
    for c in inside.components() {
        match c {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(i: usize, description: &str) -> ArtifactInput {
        ArtifactInput {
            kind: ArtifactKind::Link,
            path: format!("https://example.invalid/{i}"),
            description: description.to_string(),
        }
    }

    #[test]
    fn declared_artifacts_are_held_to_the_api_limits_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        let arts = data.join("agents/s/artifacts");
        std::fs::create_dir_all(&arts).unwrap();
        std::fs::write(arts.join("report.md"), "r").unwrap();
        let mut declared = Declared::default();
        let long = "x".repeat(60_000);
        let notes: Vec<String> = (0..1000)
            .map(|i| link(i, &long))
            .chain((0..ARTIFACTS_MAX + 5).map(|i| link(i, "ok")))
            .filter_map(|a| declared.offer(a))
            .collect();
        assert_eq!(notes.len(), 2, "{notes:?}");
        declared.offer(ArtifactInput {
            kind: ArtifactKind::File,
            path: "../../../flightdeck.redb".into(),
            description: String::new(),
        });
        let out = collect(data, "s", &arts, declared, None, None);
        assert_eq!(out.artifacts.len(), ARTIFACTS_MAX);
        assert_eq!(out.artifacts[0].path, "agents/s/artifacts/report.md");
        assert!(out.unmet.is_empty(), "{:?}", out.unmet);
        let summary = out.notes.last().unwrap();
        assert!(
            summary.starts_with("1007 artifacts the agent declared were dropped"),
            "{summary}"
        );
    }
}
