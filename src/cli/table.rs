//! Human output: aligned tables and an item's detail view.

use serde_json::Value;

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

/// Items as an aligned table: ID, STATUS, PRIORITY, SIZE, TRIES, TITLE.
pub fn item_table(items: &[Value]) -> String {
    let header = ["ID", "STATUS", "PRIORITY", "SIZE", "TRIES", "TITLE"];
    let rows: Vec<[String; 6]> = items
        .iter()
        .map(|i| {
            [
                short(s(i, "id")).to_string(),
                s(i, "status").to_string(),
                s(i, "priority").to_string(),
                s(i, "complexity").to_string(),
                i["attempts"].as_u64().unwrap_or(0).to_string(),
                s(i, "title").to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths.iter()).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(&header.map(str::to_string));
    for row in &rows {
        out.push_str(&line(row));
    }
    out
}

/// One item, all its fields, for `flightdeck show`.
pub fn print_item(item: &Value) -> String {
    let mut out = String::new();
    out.push_str(&format!("{}\n", s(item, "title")));
    for (label, key) in [
        ("id", "id"),
        ("status", "status"),
        ("priority", "priority"),
        ("complexity", "complexity"),
        ("created", "createdAt"),
        ("updated", "updatedAt"),
        ("completed", "completedAt"),
        ("agent", "assignedAgentId"),
        ("session", "assignedSessionKey"),
        ("reason", "statusReason"),
    ] {
        if !s(item, key).is_empty() {
            out.push_str(&format!("  {label:<11}{}\n", s(item, key)));
        }
    }
    out.push_str(&format!(
        "  {:<11}{}\n",
        "attempts",
        item["attempts"].as_u64().unwrap_or(0)
    ));
    for (label, key) in [("blocked by", "blockedBy"), ("blocks", "blocks")] {
        let ids: Vec<&str> = item[key]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).map(short).collect())
            .unwrap_or_default();
        if !ids.is_empty() {
            out.push_str(&format!("  {label:<11}{}\n", ids.join(", ")));
        }
    }
    if !s(item, "description").is_empty() {
        out.push_str(&format!("\n{}\n", s(item, "description")));
    }
    if let Some(criteria) = item["acceptanceCriteria"]
        .as_array()
        .filter(|c| !c.is_empty())
    {
        out.push_str("\nAcceptance criteria:\n");
        for c in criteria {
            out.push_str(&format!("  - {}\n", c.as_str().unwrap_or("")));
        }
    }
    if let Some(artifacts) = item["artifacts"].as_array().filter(|a| !a.is_empty()) {
        out.push_str("\nArtifacts:\n");
        for a in artifacts {
            out.push_str(&format!(
                "  {:<9}{}  {}\n",
                s(a, "type"),
                s(a, "path"),
                s(a, "description")
            ));
        }
    }
    out
}

/// The pool as `flightdeck status` shows it: running agents, why dispatch is held back, and a
/// rate-limit pause with its end in local time ("paused: rate limited until 14:05").
pub fn pool_lines(pool: &Value) -> Vec<String> {
    let mut lines = vec![format!(
        "pool: {} running of {} ({} free){}",
        pool["running"],
        pool["size"],
        pool["free"],
        pool["held"]
            .as_str()
            .map(|h| format!("; held: {h}"))
            .unwrap_or_default()
    )];
    let pause = &pool["pause"];
    if let Some(reason) = pause["reason"].as_str() {
        let until = pause["until"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| {
                t.with_timezone(&chrono::Local)
                    .format(" until %H:%M")
                    .to_string()
            })
            .unwrap_or_default();
        let said = pause["message"]
            .as_str()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
        lines.push(format!("paused: {reason}{until}{said}"));
    }
    lines
}
