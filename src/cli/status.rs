//! `flightdeck status` for people: counts, the pool and its daily token budget, and what a
//! person on call needs (items waiting on a person, the longest waits, recent failures).

pub use crate::model::thousands;
use serde_json::Value;

/// A wait in the largest unit that fits: `45 s`, `12 min`, `3 h`, `2 d`.
pub fn wait(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86400 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86400),
    }
}

/// `$0.42`.
pub fn dollars(cost: f64) -> String {
    format!("${cost:.2}")
}

/// The lines after the counts: pool, budget, on call.
pub fn lines(status: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let pool = &status["pool"];
    out.push(String::new());
    out.extend(super::pool_lines(pool));
    let today = pool["tokensToday"].as_u64().unwrap_or(0);
    match pool["dailyTokens"].as_u64().unwrap_or(0) {
        0 => out.push(format!(
            "tokens: {} today (UTC), no daily budget",
            thousands(today)
        )),
        limit => out.push(format!(
            "tokens: {} of {} tokens today (UTC, budgets.daily_tokens)",
            thousands(today),
            thousands(limit)
        )),
    }
    let on_call = &status["onCall"];
    out.push(format!(
        "on call: {} items wait on a person; {} failed attempts in the last hour",
        on_call["waitingOnPerson"].as_u64().unwrap_or(0),
        on_call["failuresLastHour"].as_u64().unwrap_or(0)
    ));
    for (key, what) in [("oldestReview", "in review"), ("oldestBlocked", "blocked")] {
        let item = &on_call[key];
        if let Some(title) = item["title"].as_str() {
            let reason = item["reason"]
                .as_str()
                .filter(|_| key == "oldestBlocked")
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            out.push(format!(
                "oldest {what}: {title}, {} ({}){reason}",
                wait(item["waitingSecs"].as_u64().unwrap_or(0)),
                dollars(item["costUsd"].as_f64().unwrap_or(0.0))
            ));
        }
    }
    out.push(format!(
        "sandbox: {}   uptime: {}s",
        status["sandbox"].as_str().unwrap_or("?"),
        status["uptimeSecs"]
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_a_person_writes_them() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(240_000), "240,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(wait(59), "59 s");
        assert_eq!(wait(3 * 3600 + 5), "3 h");
        assert_eq!(dollars(0.4249), "$0.42");
    }
}
