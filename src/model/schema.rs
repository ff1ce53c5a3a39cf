//! Schema-only types: the length and content rules of the request fields, stated in the
//! OpenAPI document next to the code that enforces them (`input.rs`), so clients and the
//! fuzzer know them before they send anything.

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

macro_rules! text_schema {
    ($name:ident, $min:expr, $max:expr, $nonblank:expr, $doc:expr) => {
        #[doc = $doc]
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                let mut text = ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some($doc))
                    .min_length(($min > 0).then_some($min))
                    .max_length(Some($max));
                if $nonblank {
                    text = text.pattern(Some(super::input::NOT_BLANK_PATTERN));
                }
                text.into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

text_schema!(
    Title,
    1,
    super::input::TITLE_MAX,
    true,
    "1 to 200 characters, not blank (trimmed)"
);
text_schema!(
    Description,
    0,
    super::input::DESCRIPTION_MAX,
    false,
    "At most 20,000 characters"
);
text_schema!(
    Criterion,
    1,
    super::input::CRITERION_MAX,
    true,
    "1 to 500 characters, not blank (trimmed)"
);
text_schema!(ItemRef, 1, 64, true, "The id of another item");
text_schema!(
    Reason,
    0,
    super::input::REASON_MAX,
    false,
    "Why, at most 2,000 characters"
);
text_schema!(
    Name,
    1,
    super::input::NAME_MAX,
    true,
    "1 to 200 characters, not blank"
);
text_schema!(
    ArtifactPath,
    1,
    super::input::PATH_MAX,
    false,
    "A path relative to the data dir (file), or a URL or reference"
);
text_schema!(
    ShortText,
    0,
    super::input::CRITERION_MAX,
    false,
    "At most 500 characters"
);
text_schema!(
    ReportCriterion,
    1,
    super::input::CRITERION_MAX,
    false,
    "The criterion, as written on the item"
);
text_schema!(
    Evidence,
    0,
    super::input::EVIDENCE_MAX,
    false,
    "At most 2,000 characters"
);
