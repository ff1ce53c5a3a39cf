//! The text fields of requests, each with its limits (see `text.rs`), and the lists of them
//! that have a length limit of their own. These constants are the only place a field's limit
//! is written: validation, error messages and the API document all read them.

use super::text::{MayBeEmpty, Rule, Text};
use serde::Deserialize;
use utoipa::openapi::schema::{ArrayBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// What an item is called.
pub enum TitleRule {}
impl Rule for TitleRule {
    const NAME: &'static str = "Title";
    const ABOUT: &'static str = "The item's title";
    const MIN_CHARS: usize = 1;
    const MAX_CHARS: usize = 200;
    const TRIMMED: bool = true;
}
/// An item's title.
pub type Title = Text<TitleRule>;

/// The task in full.
pub enum DescriptionRule {}
impl Rule for DescriptionRule {
    const NAME: &'static str = "Description";
    const ABOUT: &'static str = "The task in full";
    const MIN_CHARS: usize = 0;
    const MAX_CHARS: usize = 20_000;
    const TRIMMED: bool = false;
}
impl MayBeEmpty for DescriptionRule {}
/// An item's description.
pub type Description = Text<DescriptionRule>;

/// One condition the work must meet.
pub enum CriterionRule {}
impl Rule for CriterionRule {
    const NAME: &'static str = "Criterion";
    const ABOUT: &'static str = "One acceptance criterion";
    const MIN_CHARS: usize = 1;
    const MAX_CHARS: usize = 500;
    const TRIMMED: bool = true;
}
/// One of an item's acceptance criteria.
pub type Criterion = Text<CriterionRule>;

/// Another item, by id (or unique id prefix).
pub enum ItemRefRule {}
impl Rule for ItemRefRule {
    const NAME: &'static str = "ItemRef";
    const ABOUT: &'static str = "The id of another item";
    const MIN_CHARS: usize = 1;
    const MAX_CHARS: usize = 64;
    const TRIMMED: bool = true;
}
/// A reference to another item.
pub type ItemRef = Text<ItemRefRule>;

/// Why a person moved or stopped something.
pub enum ReasonRule {}
impl Rule for ReasonRule {
    const NAME: &'static str = "Reason";
    const ABOUT: &'static str = "Why (blank counts as none)";
    const MIN_CHARS: usize = 0;
    const MAX_CHARS: usize = 2_000;
    const TRIMMED: bool = true;
}
impl MayBeEmpty for ReasonRule {}
/// The reason given for a move or a cancel.
pub type Reason = Text<ReasonRule>;

/// Who: a person, an agent, a session.
pub enum NameRule {}
impl Rule for NameRule {
    const NAME: &'static str = "Name";
    const ABOUT: &'static str = "A name or id";
    const MIN_CHARS: usize = 1;
    const MAX_CHARS: usize = 200;
    const TRIMMED: bool = true;
}
/// A name: who created an item, which agent or session claims.
pub type Name = Text<NameRule>;

/// Where an artifact is.
pub enum ArtifactPathRule {}
impl Rule for ArtifactPathRule {
    const NAME: &'static str = "ArtifactPath";
    const ABOUT: &'static str = "A path relative to the data dir (file), or a URL or reference";
    const MIN_CHARS: usize = 1;
    const MAX_CHARS: usize = 4_096;
    const TRIMMED: bool = false;
}
/// An artifact's path, URL or reference.
pub type ArtifactPath = Text<ArtifactPathRule>;

/// What an artifact is, in a line.
pub enum ArtifactDescriptionRule {}
impl Rule for ArtifactDescriptionRule {
    const NAME: &'static str = "ArtifactDescription";
    const ABOUT: &'static str = "What the artifact is";
    const MIN_CHARS: usize = 0;
    const MAX_CHARS: usize = 500;
    const TRIMMED: bool = false;
}
impl MayBeEmpty for ArtifactDescriptionRule {}
/// An artifact's description.
pub type ArtifactDescription = Text<ArtifactDescriptionRule>;

/// A criterion as an acceptance report quotes it.
pub enum ReportCriterionRule {}
impl Rule for ReportCriterionRule {
    const NAME: &'static str = "ReportCriterion";
    const ABOUT: &'static str = "The criterion, as written on the item";
    const MIN_CHARS: usize = 1;
    const MAX_CHARS: usize = CriterionRule::MAX_CHARS;
    const TRIMMED: bool = false;
}
/// The criterion an acceptance report entry is about.
pub type ReportCriterion = Text<ReportCriterionRule>;

/// What shows a criterion is met.
pub enum EvidenceRule {}
impl Rule for EvidenceRule {
    const NAME: &'static str = "Evidence";
    const ABOUT: &'static str = "What shows it";
    const MIN_CHARS: usize = 0;
    const MAX_CHARS: usize = 2_000;
    const TRIMMED: bool = false;
}
impl MayBeEmpty for EvidenceRule {}
/// The evidence of an acceptance report entry.
pub type Evidence = Text<EvidenceRule>;

/// The most bytes, as JSON, of the text a client sets on an item (title, description,
/// criteria, dependencies, creator), quotes and separators included. With the item's other
/// fields (a few hundred bytes), its status reason and its artifacts, this bounds what one
/// item weighs stored and sent (see docs/LIMITS.md).
pub const ITEM_TEXT_MAX_BYTES: usize = (Title::MAX_BYTES + 2)
    + (Description::MAX_BYTES + 2)
    + Criteria::MAX * (Criterion::MAX_BYTES + 3)
    + BlockedBy::MAX * (ItemRef::MAX_BYTES + 3)
    + (Name::MAX_BYTES + 2);

/// A reason where a blank one counts as none: `null`, absent, `""` and `"  "` all give None.
pub fn optional_reason<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Reason>, D::Error> {
    Ok(Option::<Reason>::deserialize(d)?.filter(|r| !r.is_empty()))
}

/// An array schema of `T`s (by reference) with at most `max` entries.
fn list_schema<T: ToSchema>(max: usize, about: &str) -> RefOr<Schema> {
    ArrayBuilder::new()
        .items(Ref::from_schema_name(T::name()))
        .max_items(Some(max))
        .description(Some(about))
        .into()
}

/// An item's acceptance criteria: at most [`Criteria::MAX`], each a [`Criterion`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Criteria(Vec<Criterion>);

impl Criteria {
    pub const MAX: usize = 50;
}

impl From<Criteria> for Vec<String> {
    fn from(c: Criteria) -> Vec<String> {
        c.0.into_iter().map(String::from).collect()
    }
}

impl<'de> Deserialize<'de> for Criteria {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let criteria = Vec::<Criterion>::deserialize(d)?;
        if criteria.len() > Self::MAX {
            return Err(serde::de::Error::custom(format!(
                "at most {} criteria are allowed (got {})",
                Self::MAX,
                criteria.len()
            )));
        }
        Ok(Criteria(criteria))
    }
}

impl PartialSchema for Criteria {
    fn schema() -> RefOr<Schema> {
        list_schema::<Criterion>(Self::MAX, "What must be true when the item is done")
    }
}

impl ToSchema for Criteria {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Criterion::name().into(), Criterion::schema()));
    }
}

/// The items an item waits for: at most [`BlockedBy::MAX`], each named once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlockedBy(Vec<ItemRef>);

impl BlockedBy {
    pub const MAX: usize = 100;
}

impl From<BlockedBy> for Vec<String> {
    fn from(b: BlockedBy) -> Vec<String> {
        b.0.into_iter().map(String::from).collect()
    }
}

impl<'de> Deserialize<'de> for BlockedBy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let ids = Vec::<ItemRef>::deserialize(d)?;
        if ids.len() > Self::MAX {
            return Err(serde::de::Error::custom(format!(
                "at most {} dependencies are allowed",
                Self::MAX
            )));
        }
        let mut unique: Vec<ItemRef> = Vec::with_capacity(ids.len());
        for id in ids {
            if !unique.contains(&id) {
                unique.push(id);
            }
        }
        Ok(BlockedBy(unique))
    }
}

impl PartialSchema for BlockedBy {
    fn schema() -> RefOr<Schema> {
        list_schema::<ItemRef>(Self::MAX, "Items that must be done before this one")
    }
}

impl ToSchema for BlockedBy {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((ItemRef::name().into(), ItemRef::schema()));
    }
}
