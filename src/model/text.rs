//! Free text in requests, and the one place each kind of it gets its limits.
//!
//! A kind of text (a title, a description, a reason...) is a [`Rule`]: how many characters it
//! may have and whether blanks at its ends are trimmed. A [`Text<R>`] is a string known to obey
//! `R`: the only way to make one is [`Text::parse`], which deserialisation goes through, and its
//! OpenAPI schema is written from the same constants. So a request type made of `Text`s exists
//! only if every field is valid, and no limit is written twice.
//!
//! Limits count characters, and also bytes as the text is stored and sent: JSON, where a
//! control character takes six (`\u0001`). The byte limit is four times the character limit,
//! so ordinary text never meets it first (UTF-8 needs at most four bytes a character), while
//! text made of control characters cannot weigh six times its length.

use std::fmt;
use std::marker::PhantomData;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

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

/// The limits of one kind of text.
pub trait Rule {
    /// The schema's name in the API document.
    const NAME: &'static str;
    /// What the text is, for the API document ("The item's title").
    const ABOUT: &'static str;
    /// 0, or 1 for text that must not be empty (or, when trimmed, blank).
    const MIN_CHARS: usize;
    const MAX_CHARS: usize;
    /// Blank characters at both ends are removed before the limits are checked.
    const TRIMMED: bool;
}

/// A rule under which the empty text is valid, so a missing field may default to it.
pub trait MayBeEmpty: Rule {}

/// Bytes of `text` as a JSON string, quotes left out: what it weighs stored and sent.
pub fn json_len(text: &str) -> usize {
    text.chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .sum()
}

/// Characters that count as blank at the ends of text: Unicode white space, plus the few that
/// some regular-expression engines also call white space (U+001C..U+001F, U+FEFF), so the
/// "not blank" pattern in the API document means the same here as in any client.
pub fn is_blank_char(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c) || c == '\u{feff}'
}

/// The JSON Schema pattern of text that is not blank.
pub const NOT_BLANK_PATTERN: &str = r"[^\s\u0085\u001c-\u001f\ufeff]";

/// A string that obeys rule `R`.
pub struct Text<R>(String, PhantomData<fn() -> R>);

impl<R: Rule> Text<R> {
    pub const MAX_CHARS: usize = R::MAX_CHARS;
    /// The most bytes the text takes as JSON.
    pub const MAX_BYTES: usize = 4 * R::MAX_CHARS;

    /// The text, trimmed if the rule says so, or why it breaks the rule.
    pub fn parse(text: String) -> Result<Self, String> {
        let text = if R::TRIMMED && text.trim_matches(is_blank_char).len() != text.len() {
            text.trim_matches(is_blank_char).to_string()
        } else {
            text
        };
        match Self::broken(&text) {
            Some(why) => Err(why),
            None => Ok(Text(text, PhantomData)),
        }
    }

    /// Checks text kept as a plain string (agent output, say) against the rule.
    pub fn check(field: &str, text: &str) -> Result<(), ValidationError> {
        let text = if R::TRIMMED {
            text.trim_matches(is_blank_char)
        } else {
            text
        };
        match Self::broken(text) {
            Some(why) => Err(ValidationError::new(field, why)),
            None => Ok(()),
        }
    }

    fn broken(text: &str) -> Option<String> {
        let chars = text.chars().count();
        if chars < R::MIN_CHARS {
            return Some(if R::MIN_CHARS == 1 {
                "must not be empty".to_string()
            } else {
                format!("must be at least {} characters", R::MIN_CHARS)
            });
        }
        if chars > R::MAX_CHARS {
            return Some(format!(
                "must be at most {} characters (got {chars})",
                R::MAX_CHARS
            ));
        }
        let bytes = json_len(text);
        (bytes > Self::MAX_BYTES).then(|| {
            format!(
                "must be at most {} bytes as JSON, where a control character takes 6 (got {bytes})",
                Self::MAX_BYTES
            )
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<R: MayBeEmpty> Default for Text<R> {
    fn default() -> Self {
        Text(String::new(), PhantomData)
    }
}

impl<R> Clone for Text<R> {
    fn clone(&self) -> Self {
        Text(self.0.clone(), PhantomData)
    }
}

impl<R> PartialEq for Text<R> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<R> Eq for Text<R> {}

impl<R> fmt::Debug for Text<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<R> From<Text<R>> for String {
    fn from(text: Text<R>) -> String {
        text.0
    }
}

impl<R> PartialEq<str> for Text<R> {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl<'de, R: Rule> serde::Deserialize<'de> for Text<R> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Text::parse(text).map_err(serde::de::Error::custom)
    }
}

impl<R: Rule> utoipa::PartialSchema for Text<R> {
    fn schema() -> RefOr<Schema> {
        let not_blank = R::TRIMMED && R::MIN_CHARS > 0;
        let mut about = match R::MIN_CHARS {
            0 => format!(
                "{}: at most {} characters",
                R::ABOUT,
                thousands(R::MAX_CHARS as u64)
            ),
            min => format!(
                "{}: {min} to {} characters",
                R::ABOUT,
                thousands(R::MAX_CHARS as u64)
            ),
        };
        if not_blank {
            about.push_str(", not blank (trimmed)");
        }
        about.push_str(&format!(
            ", and at most {} bytes as JSON, where a control character takes 6",
            thousands(Self::MAX_BYTES as u64)
        ));
        let mut schema = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(about))
            .min_length((R::MIN_CHARS > 0).then_some(R::MIN_CHARS))
            .max_length(Some(R::MAX_CHARS));
        if not_blank {
            schema = schema.pattern(Some(NOT_BLANK_PATTERN));
        }
        schema.into()
    }
}

impl<R: Rule> utoipa::ToSchema for Text<R> {
    fn name() -> std::borrow::Cow<'static, str> {
        R::NAME.into()
    }
}

/// `20000` as `20,000`, for messages people read.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    enum Short {}
    impl Rule for Short {
        const NAME: &'static str = "Short";
        const ABOUT: &'static str = "A short text";
        const MIN_CHARS: usize = 1;
        const MAX_CHARS: usize = 5;
        const TRIMMED: bool = true;
    }

    #[test]
    fn json_len_counts_escapes_the_way_serde_json_writes_them() {
        for text in [
            "plain",
            "é€😀",
            "a\"b\\c",
            "\n\t\r\u{8}\u{c}",
            "\u{1}\u{1f}\u{7f}",
        ] {
            let encoded = serde_json::to_string(text).unwrap();
            assert_eq!(json_len(text), encoded.len() - 2, "{text:?}");
        }
    }

    #[test]
    fn limits_count_characters_then_encoded_bytes() {
        assert_eq!(
            Text::<Short>::parse("  abc ".into()).unwrap().as_str(),
            "abc"
        );
        assert_eq!(
            Text::<Short>::parse("   ".into()).unwrap_err(),
            "must not be empty"
        );
        assert!(Text::<Short>::parse("abcdef".into())
            .unwrap_err()
            .contains("at most 5 characters (got 6)"));
        // Five 4-byte characters fit; five control characters (30 bytes) do not.
        assert!(Text::<Short>::parse("😀😀😀😀😀".into()).is_ok());
        let why = Text::<Short>::parse("\u{1}\u{2}\u{3}\u{4}\u{5}".into()).unwrap_err();
        assert!(why.contains("at most 20 bytes as JSON"), "{why}");
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(200), "200");
        assert_eq!(thousands(20_000), "20,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
