//! The built-in demo agent (`flightdeck demo-agent [AGENTS.md]`), so a fresh install runs end
//! to end with nothing else installed. It reads its AGENTS.md like a real agent would, reports
//! a few steps over a few seconds with the `lines` protocol, writes a short plan derived from
//! the item as a real artifact, writes an acceptance report covering every criterion, and
//! exits 0.

use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Pause between steps, so people can watch the card move on the board.
const STEP: Duration = Duration::from_millis(600);

pub fn run(agents_md: Option<&Path>) -> Result<(), String> {
    let path = agents_md
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("AGENTS.md"));
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let artifacts = std::env::var_os("FLIGHTDECK_ARTIFACTS")
        .map(PathBuf::from)
        .ok_or("FLIGHTDECK_ARTIFACTS is not set: the demo agent runs under flightdeck")?;
    let title = text
        .lines()
        .find_map(|l| l.strip_prefix("# "))
        .unwrap_or("untitled")
        .trim()
        .to_string();
    let criteria = section(&text, "## Acceptance criteria")
        .into_iter()
        .filter_map(|l| l.strip_prefix("- ").map(str::to_string))
        .collect::<Vec<_>>();
    let task = section(&text, "## Task").join("\n");

    say(json!({"type": "progress", "message": format!("reading AGENTS.md for \"{title}\"")}));
    pause();
    say(
        json!({"type": "progress", "message": format!("{} acceptance criteria to cover", criteria.len())}),
    );
    say(json!({"type": "tokens", "input": 1200 + text.len() as u64, "output": 0}));
    pause();
    say(json!({"type": "progress", "message": "drafting a plan"}));
    let mut plan = format!(
        "# Plan: {title}\n\n## Goal\n\n{}\n\n## Steps\n\n",
        task.trim()
    );
    let steps = [
        "Read the code this touches and note its tests",
        "Write a failing test for the change",
        "Make the change, smallest diff first",
        "Run the whole test suite",
    ];
    for (i, step) in steps.iter().enumerate() {
        plan.push_str(&format!("{}. {step}\n", i + 1));
    }
    plan.push_str("\n## Acceptance\n\n");
    for c in &criteria {
        plan.push_str(&format!("- [x] {c}\n"));
    }
    pause();
    let plan_path = artifacts.join("plan.md");
    std::fs::write(&plan_path, &plan).map_err(|e| format!("cannot write the plan: {e}"))?;
    say(json!({"type": "progress", "message": "wrote plan.md"}));
    say(json!({"type": "tokens", "input": 0, "output": 40 + plan.len() as u64 / 4}));
    pause();
    let report: Vec<_> = criteria
        .iter()
        .map(|c| json!({"criterion": c, "met": true, "evidence": "covered in plan.md"}))
        .collect();
    std::fs::write(
        artifacts.join("acceptance.json"),
        serde_json::to_vec_pretty(&report).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("cannot write the acceptance report: {e}"))?;
    say(json!({"type": "progress", "message": "done: plan and acceptance report written"}));
    Ok(())
}

/// The lines of a `## ` section, up to the next one.
fn section<'a>(text: &'a str, heading: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|l| l.trim() != heading)
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| !l.trim().is_empty())
        .collect()
}

fn say(v: serde_json::Value) {
    println!("{v}");
}

fn pause() {
    std::thread::sleep(STEP);
}
