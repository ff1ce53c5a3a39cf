//! `GET /api/items/{id}/transcript` and `/transcript/search`: an item's agent output by attempt
//! and by line, parsed, for the board's log viewer.
//!
//! The viewer shows a log of any length by asking for the lines on screen: the attempts with
//! their line counts, then windows of lines, each with the raw text (cut for showing) and what
//! the preset's parser made of it. Search runs here too, so a match far outside what the
//! browser holds is found. Files are read off the HTTP workers (`web::block`), never on the
//! queue's thread; `GET /api/items/{id}/log` still serves the whole text for download.

use super::{ApiError, AppState, Query};
use crate::config::Preset;
use crate::dispatch::log_lines::{self, ShownLine, SEARCH_MATCHES_MAX};
use crate::model::{AgentSession, WorkItem};
use crate::queue::{GetItem, ListSessions};
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Most lines one window answers.
pub const WINDOW_MAX: i64 = 2_000;
/// Longest search text, in characters.
pub const SEARCH_TEXT_MAX: usize = 200;

/// Which lines of which attempt.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WindowQuery {
    /// The session (attempt) whose lines to answer, from `attempts[].sessionId`; without it only
    /// the attempts are answered.
    session: Option<String>,
    /// The first line, counting from 0 (default 0). Past the end answers no lines.
    #[param(minimum = 0)]
    from: Option<i64>,
    /// At most this many lines (default 500).
    #[param(minimum = 1, maximum = 2000)]
    limit: Option<i64>,
}

/// One attempt of an item, as a section of its log.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptLog {
    pub session_id: String,
    /// Which attempt of the item this was (a cancelled attempt is not spent, so two sessions
    /// may share a number).
    pub attempt: u32,
    pub started_at: DateTime<Utc>,
    /// How it ended; absent while it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    pub running: bool,
    /// How many lines its log has (a running attempt's last line once it is complete).
    pub lines: u64,
    /// Why its log could not be read, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// An item's attempts, and a window of one attempt's lines.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Transcript {
    /// Every attempt, oldest first.
    pub attempts: Vec<AttemptLog>,
    /// The session the lines are from, when one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The number of the first line answered.
    pub from: u64,
    pub lines: Vec<ShownLine>,
}

#[utoipa::path(
    get, path = "/api/items/{id}/transcript", tag = "items", operation_id = "getItemTranscript",
    summary = "An item's agent output by attempt and line, parsed",
    params(("id" = String, Path, description = "Item id, or a unique prefix of one (4+ characters)"), WindowQuery),
    responses((status = 200, description = "The item's attempts with their line counts, and the asked-for lines of one of them, each with its raw text (cut at 2,000 characters) and what the preset's parser made of it", body = Transcript))
)]
pub async fn window(
    state: web::Data<AppState>,
    id: web::Path<String>,
    Query(query): Query<WindowQuery>,
) -> Result<HttpResponse, ApiError> {
    let from = query.from.unwrap_or(0);
    if from < 0 {
        return Err(ApiError::bad_request("from must be 0 or more").with_field("from"));
    }
    let limit = query.limit.unwrap_or(500);
    if !(1..=WINDOW_MAX).contains(&limit) {
        return Err(
            ApiError::bad_request(format!("limit must be between 1 and {WINDOW_MAX}"))
                .with_field("limit"),
        );
    }
    let (item, sessions) = attempts_of(&state, id.into_inner()).await?;
    let wanted = match &query.session {
        Some(wanted) => Some(session_named(&item, &sessions, wanted)?.id.clone()),
        None => None,
    };
    let data_dir = state.data_dir.clone();
    let preset = state.preset;
    let transcript = web::block(move || {
        let mut lines = Vec::new();
        let mut attempts = Vec::with_capacity(sessions.len());
        for session in &sessions {
            let finished = session.finished_at.is_some();
            let counted = if wanted.as_deref() == Some(session.id.as_str()) {
                log_lines::window(
                    &data_dir,
                    &session.id,
                    finished,
                    preset,
                    from as u64,
                    limit as usize,
                )
                .map(|(count, window)| {
                    lines = window;
                    count
                })
            } else {
                log_lines::count(&data_dir, &session.id, finished)
            };
            attempts.push(attempt_log(session, counted));
        }
        Transcript {
            attempts,
            session: wanted,
            from: from as u64,
            lines,
        }
    })
    .await
    .map_err(|e| ApiError::unavailable(format!("the log could not be read: {e}")))?;
    Ok(HttpResponse::Ok().json(transcript))
}

/// What to look for in an item's log.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// The text to find, ignoring case (1 to 200 characters).
    #[param(min_length = 1, max_length = 200)]
    q: String,
    /// Which text to search: what the parsed view shows (default) or the raw lines.
    view: Option<View>,
}

/// The two views of a log.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum View {
    Parsed,
    Raw,
}

/// One line that matched.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Match {
    pub session_id: String,
    pub line: u64,
}

/// The lines of an item's log that contain the search text, in order.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchResult {
    pub matches: Vec<Match>,
    /// More lines matched than the 10,000 answered.
    pub truncated: bool,
}

#[utoipa::path(
    get, path = "/api/items/{id}/transcript/search", tag = "items", operation_id = "searchItemTranscript",
    summary = "Find text in an item's agent output",
    params(("id" = String, Path, description = "Item id, or a unique prefix of one (4+ characters)"), SearchQuery),
    responses((status = 200, description = "Every line (at most 10,000) whose shown text contains q, ignoring case, oldest attempt first", body = SearchResult))
)]
pub async fn search(
    state: web::Data<AppState>,
    id: web::Path<String>,
    Query(query): Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let needle = query.q.to_lowercase();
    // Any text is searched for as it is, spaces too: a line is a match when it contains it.
    if needle.is_empty() {
        return Err(ApiError::bad_request("q must not be empty").with_field("q"));
    }
    if needle.chars().count() > SEARCH_TEXT_MAX {
        return Err(ApiError::bad_request(format!(
            "q must be at most {SEARCH_TEXT_MAX} characters"
        ))
        .with_field("q"));
    }
    let parsed = query.view.unwrap_or(View::Parsed) == View::Parsed;
    let (_, sessions) = attempts_of(&state, id.into_inner()).await?;
    let data_dir = state.data_dir.clone();
    let preset = state.preset;
    let result = web::block(move || {
        let mut matches = Vec::new();
        let mut truncated = false;
        for session in &sessions {
            let room = SEARCH_MATCHES_MAX + 1 - matches.len();
            let lines = found_in(&data_dir, session, preset, &needle, parsed, room);
            matches.extend(lines.into_iter().map(|line| Match {
                session_id: session.id.clone(),
                line,
            }));
            if matches.len() > SEARCH_MATCHES_MAX {
                matches.truncate(SEARCH_MATCHES_MAX);
                truncated = true;
                break;
            }
        }
        SearchResult { matches, truncated }
    })
    .await
    .map_err(|e| ApiError::unavailable(format!("the log could not be searched: {e}")))?;
    Ok(HttpResponse::Ok().json(result))
}

/// The matching lines of one attempt; a log that cannot be read has none (its section says
/// why).
fn found_in(
    data_dir: &std::path::Path,
    session: &AgentSession,
    preset: Preset,
    needle: &str,
    parsed: bool,
    max: usize,
) -> Vec<u64> {
    let finished = session.finished_at.is_some();
    log_lines::search(data_dir, &session.id, finished, preset, needle, parsed, max)
        .unwrap_or_default()
}

/// The item and its sessions, oldest first.
async fn attempts_of(
    state: &AppState,
    id: String,
) -> Result<(WorkItem, Vec<AgentSession>), ApiError> {
    let item = state.reader.ask(GetItem { id }).await?;
    let mut sessions = state
        .reader
        .ask(ListSessions {
            item_id: Some(item.id.clone()),
        })
        .await?;
    sessions.reverse();
    Ok((item, sessions))
}

fn session_named<'a>(
    item: &WorkItem,
    sessions: &'a [AgentSession],
    wanted: &str,
) -> Result<&'a AgentSession, ApiError> {
    sessions.iter().find(|s| s.id == wanted).ok_or_else(|| {
        ApiError::not_found(format!(
            "session {wanted} is not one of the attempts of “{}”; the item's attempts are listed in this answer's attempts without session",
            item.title
        ))
        .with_field("session")
    })
}

fn attempt_log(
    session: &AgentSession,
    counted: Result<u64, crate::dispatch::session_files::Refused>,
) -> AttemptLog {
    let (lines, problem) = match counted {
        Ok(lines) => (lines, None),
        Err(e) => (0, Some(format!("not shown: {e}"))),
    };
    AttemptLog {
        session_id: session.id.clone(),
        attempt: session.attempt,
        started_at: session.started_at,
        outcome: session.outcome.clone(),
        running: session.finished_at.is_none(),
        lines,
        problem,
    }
}
