//! The scoped AGENTS.md an agent reads: only its own item, the reason the last attempt
//! failed or was rejected, where to put artifacts and how to report. Nothing about the rest
//! of the queue ever goes in here.

use super::WorkItem;

/// Renders the AGENTS.md text for `item`. `artifacts_dir` is where this session's artifacts
/// go; without it (a remote worker claiming over HTTP) the text says to declare them instead.
pub fn render_agents_md(item: &WorkItem, artifacts_dir: Option<&str>) -> String {
    let mut md = String::new();
    md.push_str(&format!("# {}\n\n", item.title));
    md.push_str(&format!(
        "Work item `{}`, priority {}, attempt {}.\n\n",
        item.id,
        item.priority.as_str(),
        item.attempts.max(1)
    ));
    md.push_str("## Task\n\n");
    if item.description.trim().is_empty() {
        md.push_str("(no description given)\n\n");
    } else {
        md.push_str(item.description.trim());
        md.push_str("\n\n");
    }
    md.push_str("## Acceptance criteria\n\n");
    if item.acceptance_criteria.is_empty() {
        md.push_str("(none given)\n\n");
    } else {
        for c in &item.acceptance_criteria {
            md.push_str(&format!("- {c}\n"));
        }
        md.push('\n');
    }
    if item.attempts > 1 {
        md.push_str("## Previous attempt\n\n");
        md.push_str(&format!(
            "This is attempt {} of this item. The previous attempt did not pass: {}\n\
             Its files are still in this workspace; continue from them.\n\n",
            item.attempts,
            item.status_reason
                .as_deref()
                .unwrap_or("no reason was recorded")
        ));
    }
    md.push_str("## Reporting\n\n");
    match artifacts_dir {
        Some(dir) => md.push_str(&format!(
            "- Put every deliverable file in the artifacts folder: `{dir}` \
             (also in $FLIGHTDECK_ARTIFACTS). Each file there becomes an artifact.\n"
        )),
        None => {
            md.push_str("- Declare each deliverable as an artifact when you complete the item.\n")
        }
    }
    md.push_str(
        "- Write `acceptance.json` to the artifacts folder: \
         `[{\"criterion\": \"...\", \"met\": true, \"evidence\": \"...\"}]`, one entry per criterion.\n\
         - Progress: print one line per step to stdout. A JSON line \
         `{\"type\":\"progress\",\"message\":\"...\"}` or `{\"type\":\"tokens\",\"input\":N,\"output\":N}` is understood.\n\
         - Exit 0 when the work is done; any other exit code counts as a failed attempt.\n",
    );
    md
}
