//! What clients may ask of the queue, parsed and validated before the queue sees it.
//!
//! Each request type rejects unknown fields and wrong types during deserialisation; the
//! `validate` step then checks lengths and counts, so the queue only ever handles input that
//! is known to be well formed. A [`ValidationError`] names the field at fault.

use super::schema::{
    ArtifactPath, Criterion, Description, Evidence, ItemRef, Name, Reason, ReportCriterion,
    ShortText, Title,
};
use super::{ArtifactKind, Complexity, Priority, Status};
use serde::Deserialize;

pub const TITLE_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 20_000;
pub const CRITERIA_MAX: usize = 50;
pub const CRITERION_MAX: usize = 500;
pub const BLOCKED_BY_MAX: usize = 100;
pub const REASON_MAX: usize = 2_000;
pub const NAME_MAX: usize = 200;
pub const PATH_MAX: usize = 4_096;
pub const ARTIFACTS_MAX: usize = 200;
pub const EVIDENCE_MAX: usize = 2_000;
/// Largest `maxTokens`: a trillion, far past any real budget, so a typo is caught.
pub const MAX_TOKENS_MAX: u64 = 1_000_000_000_000;

/// A field that breaks a rule, and which rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Characters that count as blank at the ends of text: Unicode white space, plus the few that
/// some regular-expression engines also call white space (U+001C..U+001F, U+FEFF), so the
/// "not blank" pattern in the API document means the same here as in any client.
pub fn is_blank_char(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c) || c == '\u{feff}'
}

/// The JSON Schema pattern of text that is not blank.
pub const NOT_BLANK_PATTERN: &str = r"[^\s\u0085\u001c-\u001f\ufeff]";

fn trim_blank(text: &str) -> &str {
    text.trim_matches(is_blank_char)
}

fn check_len(field: &str, text: &str, min: usize, max: usize) -> Result<(), ValidationError> {
    let n = text.chars().count();
    if n < min {
        return Err(ValidationError::new(
            field,
            if min == 1 {
                "must not be empty".to_string()
            } else {
                format!("must be at least {min} characters")
            },
        ));
    }
    if n > max {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max} characters (got {n})"),
        ));
    }
    Ok(())
}

fn clean_title(title: &str) -> Result<String, ValidationError> {
    let title = trim_blank(title);
    check_len("title", title, 1, TITLE_MAX)?;
    Ok(title.to_string())
}

fn check_description(description: &str) -> Result<(), ValidationError> {
    check_len("description", description, 0, DESCRIPTION_MAX)
}

fn clean_criteria(criteria: &[String]) -> Result<Vec<String>, ValidationError> {
    if criteria.len() > CRITERIA_MAX {
        return Err(ValidationError::new(
            "acceptanceCriteria",
            format!(
                "at most {CRITERIA_MAX} criteria are allowed (got {})",
                criteria.len()
            ),
        ));
    }
    criteria
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let c = trim_blank(c);
            check_len(&format!("acceptanceCriteria[{i}]"), c, 1, CRITERION_MAX)?;
            Ok(c.to_string())
        })
        .collect()
}

/// A token count: a whole number, which JSON Schema lets clients write as `5000.0` too.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let number = Option::<serde_json::Number>::deserialize(d)?;
    number
        .map(|n| {
            n.as_u64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= MAX_TOKENS_MAX as f64)
                        .map(|f| f as u64)
                })
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "expected a whole number of tokens from 0 to {MAX_TOKENS_MAX}, got {n}"
                    ))
                })
        })
        .transpose()
}

fn check_max_tokens(max_tokens: Option<u64>) -> Result<(), ValidationError> {
    match max_tokens {
        Some(n) if n > MAX_TOKENS_MAX => Err(ValidationError::new(
            "maxTokens",
            format!("must be at most {MAX_TOKENS_MAX} (got {n}); use 0 for no budget"),
        )),
        _ => Ok(()),
    }
}

fn clean_blocked_by(ids: &[String]) -> Result<Vec<String>, ValidationError> {
    if ids.len() > BLOCKED_BY_MAX {
        return Err(ValidationError::new(
            "blockedBy",
            format!("at most {BLOCKED_BY_MAX} dependencies are allowed"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let id = trim_blank(id);
        check_len(&format!("blockedBy[{i}]"), id, 1, 64)?;
        if !out.iter().any(|o| o == id) {
            out.push(id.to_string());
        }
    }
    Ok(out)
}

/// `POST /api/items`: a new work item.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewWorkItem {
    #[schema(value_type = Title)]
    pub title: String,
    #[serde(default)]
    #[schema(value_type = Description)]
    pub description: String,
    #[serde(default)]
    #[schema(value_type = Vec<Criterion>, max_items = 50)]
    pub acceptance_criteria: Vec<String>,
    #[serde(default)]
    pub priority: Priority,
    #[serde(default)]
    pub complexity: Complexity,
    #[serde(default)]
    #[schema(value_type = Vec<ItemRef>, max_items = 100)]
    pub blocked_by: Vec<String>,
    pub status: Option<InitialStatus>,
    #[schema(value_type = Option<Name>)]
    pub created_by: Option<String>,
    /// Token budget of the item over all its attempts; absent: `budgets.item_tokens`; 0: none.
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(maximum = 1_000_000_000_000_u64)]
    pub max_tokens: Option<u64>,
}

/// The statuses an item may be created in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InitialStatus {
    Inbox,
    Planning,
    Ready,
}

impl From<InitialStatus> for Status {
    fn from(s: InitialStatus) -> Status {
        match s {
            InitialStatus::Inbox => Status::Inbox,
            InitialStatus::Planning => Status::Planning,
            InitialStatus::Ready => Status::Ready,
        }
    }
}

impl NewWorkItem {
    /// Checks every rule that needs no other item; trims the title and criteria.
    pub fn validate(mut self) -> Result<NewWorkItem, ValidationError> {
        self.title = clean_title(&self.title)?;
        check_description(&self.description)?;
        self.acceptance_criteria = clean_criteria(&self.acceptance_criteria)?;
        self.blocked_by = clean_blocked_by(&self.blocked_by)?;
        if let Some(by) = &self.created_by {
            check_len("createdBy", trim_blank(by), 1, NAME_MAX)?;
        }
        check_max_tokens(self.max_tokens)?;
        Ok(self)
    }
}

/// `PATCH /api/items/{id}`: fields to change; absent fields stay as they are. Status changes
/// go through `move`, so `status` is not accepted here.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ItemPatch {
    #[schema(value_type = Option<Title>)]
    pub title: Option<String>,
    #[schema(value_type = Option<Description>)]
    pub description: Option<String>,
    #[schema(value_type = Option<Vec<Criterion>>, max_items = 50)]
    pub acceptance_criteria: Option<Vec<String>>,
    pub priority: Option<Priority>,
    pub complexity: Option<Complexity>,
    #[schema(value_type = Option<Vec<ItemRef>>, max_items = 100)]
    pub blocked_by: Option<Vec<String>>,
    /// New token budget; 0: none.
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(maximum = 1_000_000_000_000_u64)]
    pub max_tokens: Option<u64>,
}

impl ItemPatch {
    pub fn validate(mut self) -> Result<ItemPatch, ValidationError> {
        if let Some(t) = &self.title {
            self.title = Some(clean_title(t)?);
        }
        if let Some(d) = &self.description {
            check_description(d)?;
        }
        if let Some(c) = &self.acceptance_criteria {
            self.acceptance_criteria = Some(clean_criteria(c)?);
        }
        if let Some(b) = &self.blocked_by {
            self.blocked_by = Some(clean_blocked_by(b)?);
        }
        check_max_tokens(self.max_tokens)?;
        Ok(self)
    }
}

/// `POST /api/items/{id}/move`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MoveRequest {
    pub status: Status,
    #[schema(value_type = Option<Reason>)]
    pub reason: Option<String>,
}

impl MoveRequest {
    pub fn validate(mut self) -> Result<MoveRequest, ValidationError> {
        self.reason = clean_reason(self.reason)?;
        Ok(self)
    }
}

/// Trims a free-text reason; an empty one counts as none.
pub fn clean_reason(reason: Option<String>) -> Result<Option<String>, ValidationError> {
    match reason.map(|r| trim_blank(&r).to_string()) {
        Some(r) if r.is_empty() => Ok(None),
        Some(r) => {
            check_len("reason", &r, 1, REASON_MAX)?;
            Ok(Some(r))
        }
        None => Ok(None),
    }
}

/// An artifact as declared by an agent or a client; the queue gives it an id and a time.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArtifactInput {
    #[serde(rename = "type")]
    pub kind: ArtifactKind,
    #[schema(value_type = ArtifactPath)]
    pub path: String,
    #[serde(default)]
    #[schema(value_type = ShortText)]
    pub description: String,
}

impl ArtifactInput {
    pub fn validate(&self, field: &str) -> Result<(), ValidationError> {
        check_len(&format!("{field}.path"), &self.path, 1, PATH_MAX)?;
        check_len(
            &format!("{field}.description"),
            &self.description,
            0,
            CRITERION_MAX,
        )
    }
}

/// One line of an acceptance report: was this criterion met, and what shows it.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcceptanceEntry {
    #[schema(value_type = ReportCriterion)]
    pub criterion: String,
    pub met: bool,
    #[serde(default)]
    #[schema(value_type = Evidence)]
    pub evidence: String,
}

/// `POST /api/items/{id}/complete`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompleteRequest {
    #[serde(default)]
    #[schema(max_items = 200)]
    pub artifacts: Vec<ArtifactInput>,
    #[schema(max_items = 50)]
    pub acceptance: Option<Vec<AcceptanceEntry>>,
}

impl CompleteRequest {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.artifacts.len() > ARTIFACTS_MAX {
            return Err(ValidationError::new(
                "artifacts",
                format!("at most {ARTIFACTS_MAX} artifacts per request"),
            ));
        }
        for (i, a) in self.artifacts.iter().enumerate() {
            a.validate(&format!("artifacts[{i}]"))?;
        }
        if let Some(report) = &self.acceptance {
            if report.len() > CRITERIA_MAX {
                return Err(ValidationError::new(
                    "acceptance",
                    format!("at most {CRITERIA_MAX} entries"),
                ));
            }
            for (i, e) in report.iter().enumerate() {
                check_len(
                    &format!("acceptance[{i}].criterion"),
                    &e.criterion,
                    1,
                    CRITERION_MAX,
                )?;
                check_len(
                    &format!("acceptance[{i}].evidence"),
                    &e.evidence,
                    0,
                    EVIDENCE_MAX,
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_item(json: &str) -> Result<NewWorkItem, String> {
        let raw: NewWorkItem = serde_json::from_str(json).map_err(|e| e.to_string())?;
        raw.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_trimming() {
        let item = new_item(r#"{"title":"  Build login  "}"#).unwrap();
        assert_eq!(item.title, "Build login");
        assert_eq!(item.priority, Priority::Medium);
        assert_eq!(item.status, None);
    }

    #[test]
    fn bad_input_names_the_field() {
        assert!(new_item(r#"{"title":"   "}"#)
            .unwrap_err()
            .starts_with("title"));
        let long = "x".repeat(201);
        assert!(new_item(&format!(r#"{{"title":"{long}"}}"#))
            .unwrap_err()
            .contains("at most 200"));
        assert!(new_item(r#"{"title":"a","acceptanceCriteria":[""]}"#)
            .unwrap_err()
            .starts_with("acceptanceCriteria[0]"));
        assert!(new_item(r#"{"title":"a","colour":"red"}"#)
            .unwrap_err()
            .contains("colour"));
        assert!(new_item(r#"{"title":"a","priority":"asap"}"#)
            .unwrap_err()
            .contains("asap"));
        assert!(new_item(r#"{"title":"a","maxTokens":-1}"#)
            .unwrap_err()
            .contains("expected a whole number of tokens"));
        assert!(new_item(r#"{"title":"a","maxTokens":1000000000001}"#)
            .unwrap_err()
            .starts_with("maxTokens: must be at most"));
        assert_eq!(
            new_item(r#"{"title":"a","maxTokens":5000}"#)
                .unwrap()
                .max_tokens,
            Some(5000)
        );
        assert!(new_item(r#"{"title":"a","status":"done"}"#)
            .unwrap_err()
            .contains("unknown variant `done`"));
    }

    #[test]
    fn limits_hold_at_the_edges() {
        let ok = "é".repeat(200);
        assert!(new_item(&format!(r#"{{"title":"{ok}"}}"#)).is_ok());
        let criteria: Vec<String> = (0..51).map(|i| format!("c{i}")).collect();
        let json = serde_json::json!({"title":"t","acceptanceCriteria":criteria}).to_string();
        assert!(new_item(&json).unwrap_err().contains("at most 50"));
    }
}
