//! What clients may ask of the queue, parsed and validated before the queue sees it.
//!
//! The fields of a request are the validated types of `fields.rs`, and unknown fields and
//! wrong types are refused, so deserialising a [`NewWorkItem`], an [`ItemPatch`] or a
//! [`MoveRequest`] is validating it: one exists only if valid. Artifacts and acceptance
//! reports also come from agents' output, kept as plain strings, so they are checked by
//! `validate` against the same rules. A [`ValidationError`] names the field at fault.

use super::fields::{
    optional_reason, ArtifactDescription, ArtifactPath, BlockedBy, Criteria, Description, Evidence,
    Name, Reason, ReportCriterion, Title,
};
use super::text::ValidationError;
use super::{ArtifactKind, Complexity, Priority, Status};
use serde::Deserialize;
use utoipa::openapi::schema::{Array, ArrayBuilder, SchemaType, Type};
use utoipa::openapi::Ref;
use utoipa::ToSchema;

/// Most artifacts one request (or one agent's run) may declare.
pub const ARTIFACTS_MAX: usize = 200;
/// Largest `maxTokens`: a trillion, far past any real budget, so a typo is caught.
pub const MAX_TOKENS_MAX: u64 = 1_000_000_000_000;

/// A token budget: a whole number from 0 (no budget) to [`MAX_TOKENS_MAX`], which JSON Schema
/// lets clients write as `5000.0` too; refused while deserialising, so a request holding one
/// is valid. The one rule for every token budget a client sends (an item's, the pool's daily).
pub fn token_budget<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    n.as_u64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| f as u64)
        })
        .filter(|t| *t <= MAX_TOKENS_MAX)
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "expected a whole number of tokens from 0 to {MAX_TOKENS_MAX} (0: no budget), got {n}"
            ))
        })
}

/// [`token_budget`] for a field that may be absent.
fn max_tokens<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    struct Budget(#[serde(deserialize_with = "token_budget")] u64);
    Ok(Option::<Budget>::deserialize(d)?.map(|Budget(n)| n))
}

/// `POST /api/items`: a new work item.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewWorkItem {
    pub title: Title,
    #[serde(default)]
    pub description: Description,
    #[serde(default)]
    pub acceptance_criteria: Criteria,
    #[serde(default)]
    pub priority: Priority,
    #[serde(default)]
    pub complexity: Complexity,
    #[serde(default)]
    pub blocked_by: BlockedBy,
    pub status: Option<InitialStatus>,
    pub created_by: Option<Name>,
    /// Token budget of the item over all its attempts; absent: `budgets.item_tokens`; 0: none.
    #[serde(default, deserialize_with = "max_tokens")]
    #[schema(maximum = 1_000_000_000_000_u64)]
    pub max_tokens: Option<u64>,
    /// Labels the runner that takes the item must have (`["gpu"]`); none: any runner.
    #[serde(default)]
    pub requires: super::Labels,
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

/// `PATCH /api/items/{id}`: fields to change; absent fields stay as they are. Status changes
/// go through `move`, so `status` is not accepted here.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ItemPatch {
    pub title: Option<Title>,
    pub description: Option<Description>,
    pub acceptance_criteria: Option<Criteria>,
    pub priority: Option<Priority>,
    pub complexity: Option<Complexity>,
    pub blocked_by: Option<BlockedBy>,
    /// New token budget; 0: none.
    #[serde(default, deserialize_with = "max_tokens")]
    #[schema(maximum = 1_000_000_000_000_u64)]
    pub max_tokens: Option<u64>,
    /// New labels the runner that takes the item must have.
    pub requires: Option<super::Labels>,
}

/// `POST /api/items/{id}/move`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MoveRequest {
    pub status: Status,
    #[serde(default, deserialize_with = "optional_reason")]
    pub reason: Option<Reason>,
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
    #[schema(value_type = ArtifactDescription)]
    pub description: String,
}

impl ArtifactInput {
    pub fn validate(&self, field: &str) -> Result<(), ValidationError> {
        ArtifactPath::check(&format!("{field}.path"), &self.path)?;
        ArtifactDescription::check(&format!("{field}.description"), &self.description)
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

impl AcceptanceEntry {
    pub fn validate(&self, field: &str) -> Result<(), ValidationError> {
        ReportCriterion::check(&format!("{field}.criterion"), &self.criterion)?;
        Evidence::check(&format!("{field}.evidence"), &self.evidence)
    }
}

/// `POST /api/claim`, and the next claim of `POST /api/items/{id}/complete`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimRequest {
    /// Who claims: an agent or worker id.
    pub agent_id: Name,
    /// The session of that agent, recorded on the item.
    pub session_key: Name,
}

/// `POST /api/items/{id}/complete`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompleteRequest {
    /// Claim the next item for this worker in the same write as the completion (one trip and
    /// one commit per item for a worker that loops); the answer's `next` holds it. Absent or
    /// null: no claim.
    #[serde(default)]
    pub claim_next: Option<ClaimRequest>,
    /// What the work produced.
    #[serde(default)]
    #[schema(schema_with = artifacts_schema)]
    pub artifacts: Vec<ArtifactInput>,
    /// One entry per criterion of the item.
    #[schema(schema_with = acceptance_schema)]
    pub acceptance: Option<Vec<AcceptanceEntry>>,
}

/// The artifacts of a completion: at most [`ARTIFACTS_MAX`] `ArtifactInput`s (a component of
/// the API document, with [`AcceptanceEntry`]: see `api/openapi.rs`).
fn artifacts_schema() -> Array {
    ArrayBuilder::new()
        .items(Ref::from_schema_name(ArtifactInput::name()))
        .max_items(Some(ARTIFACTS_MAX))
        .build()
}

/// An acceptance report (or null): at most one entry per criterion an item may have.
fn acceptance_schema() -> Array {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(Ref::from_schema_name(AcceptanceEntry::name()))
        .max_items(Some(Criteria::MAX))
        .build()
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
            if report.len() > Criteria::MAX {
                return Err(ValidationError::new(
                    "acceptance",
                    format!("at most {} entries", Criteria::MAX),
                ));
            }
            for (i, e) in report.iter().enumerate() {
                e.validate(&format!("acceptance[{i}]"))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_item(json: &str) -> Result<NewWorkItem, String> {
        let de = &mut serde_json::Deserializer::from_str(json);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            format!("{path}: {}", e.into_inner())
        })
    }

    #[test]
    fn defaults_and_trimming() {
        let item = new_item(r#"{"title":"  Build login  "}"#).unwrap();
        assert_eq!(item.title.as_str(), "Build login");
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
            .contains("from 0 to 1000000000000"));
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
