//! `flightdeck approvals`, `approve` and `say`: a person in the loop of a running ACP agent,
//! from the terminal. Lines go through `Output`, which shows control characters as text.

use serde_json::Value;

/// One block of lines per waiting approval: what the agent wants to do, and how to answer.
pub fn lines(approvals: &Value) -> Vec<String> {
    let list = approvals.as_array().map(Vec::as_slice).unwrap_or_default();
    if list.is_empty() {
        return vec!["No agent waits for a person.".into()];
    }
    let mut out = Vec::new();
    for a in list {
        let text = |v: &Value| v.as_str().unwrap_or("").to_string();
        out.push(format!(
            "{}  \"{}\" asks to {}: {}",
            text(&a["id"]),
            text(&a["itemTitle"]),
            text(&a["tool"]["kind"]),
            text(&a["tool"]["title"]),
        ));
        if let Some(command) = a["tool"]["command"].as_str() {
            out.push(format!("    command: {command}"));
        }
        let options: Vec<String> = a["options"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| format!("{} ({})", text(&o["optionId"]), text(&o["name"])))
            .collect();
        out.push(format!(
            "    answer with: flightdeck approve {} OPTION, OPTION one of {}",
            text(&a["id"]),
            options.join(", ")
        ));
    }
    out
}
