//! Labels: what a runner offers (`gpu`, `linux`, `claude`) and what an item requires of the
//! runner that takes it. A runner takes an item only when it has every label the item
//! requires; an item that requires nothing goes to any runner. Labels are short lower-case
//! words, so a typo is refused instead of leaving an item that no runner ever takes.

use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// A list of labels: at most [`Labels::MAX`], each named once, each a word of
/// [`Labels::MAX_CHARS`] lower-case letters, digits, `-`, `_` or `.`, starting with a letter or
/// digit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Labels(Vec<String>);

impl Labels {
    pub const MAX: usize = 16;
    pub const MAX_CHARS: usize = 32;

    /// Checks one label; the error names it and the rule.
    pub fn check(label: &str) -> Result<(), String> {
        let well_formed = !label.is_empty()
            && label.len() <= Self::MAX_CHARS
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
            && label
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if well_formed {
            Ok(())
        } else {
            Err(format!(
                "the label {label:?} is not allowed: a label is 1 to {} characters of a-z, 0-9, '-', '_' or '.', starting with a letter or digit",
                Self::MAX_CHARS
            ))
        }
    }

    /// Labels from a list of words (a `--labels a,b` option, a config list), checked.
    pub fn parse<S: AsRef<str>>(words: &[S]) -> Result<Labels, String> {
        let mut out: Vec<String> = Vec::new();
        for word in words {
            let word = word.as_ref().trim();
            if word.is_empty() {
                continue;
            }
            Self::check(word)?;
            if !out.iter().any(|l| l == word) {
                out.push(word.to_string());
            }
        }
        if out.len() > Self::MAX {
            return Err(format!("at most {} labels are allowed", Self::MAX));
        }
        Ok(Labels(out))
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// Whether a runner with these labels may take an item that requires `required`.
    pub fn satisfy(&self, required: &[String]) -> bool {
        required.iter().all(|r| self.0.contains(r))
    }
}

impl From<Labels> for Vec<String> {
    fn from(l: Labels) -> Vec<String> {
        l.0
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let words = Vec::<String>::deserialize(d)?;
        // In JSON a label is a word; a blank one is a mistake to name, not to skip.
        if words.iter().any(|w| w.trim().is_empty()) {
            return Err(serde::de::Error::custom("a label cannot be empty"));
        }
        Labels::parse(&words).map_err(serde::de::Error::custom)
    }
}

impl PartialSchema for Labels {
    fn schema() -> RefOr<Schema> {
        let label = ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .min_length(Some(1))
            .max_length(Some(Self::MAX_CHARS))
            .pattern(Some("^[a-z0-9][a-z0-9._-]*$"))
            .build();
        ArrayBuilder::new()
            .items(label)
            .max_items(Some(Self::MAX))
            .description(Some(
                "Labels (gpu, linux, ...): an item requires them of the runner that takes it",
            ))
            .build()
            .into()
    }
}

impl ToSchema for Labels {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_short_lower_case_words_named_once() {
        let l = Labels::parse(&["gpu", " linux ", "gpu", ""]).unwrap();
        assert_eq!(l.as_slice(), ["gpu", "linux"]);
        assert!(Labels::parse(&["GPU"]).unwrap_err().contains("\"GPU\""));
        assert!(Labels::parse(&["-x"]).is_err());
        assert!(l.satisfy(&["gpu".into()]));
        assert!(!l.satisfy(&["arm".into()]));
        assert!(Labels::default().satisfy(&[]));
    }
}
