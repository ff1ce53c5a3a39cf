//! The opaque `cursor` of `GET /api/items`: where the next page starts in list order, as
//! lowercase hex of the store's list key (priority rank, creation time, id). A cursor is only a
//! position: any well-formed one (hex pairs, at most [`CURSOR_MAX`] characters) starts the page
//! after that key, so a cursor from an older server or a made-up one still pages in order;
//! text that is not hex pairs is refused by name.

/// The longest key a cursor may hold: rank, time, and an id of at most 64 bytes.
const KEY_MAX: usize = 9 + 64;
/// The longest cursor, in characters (two per key byte); the OpenAPI `maxLength`.
pub const CURSOR_MAX: usize = 2 * KEY_MAX;

pub fn encode(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// The list key of a cursor, or why the text is not one.
pub fn decode(text: &str) -> Result<Vec<u8>, String> {
    const NOT_ONE: &str = "cursor is not one this server hands out (hex pairs, at most 146 characters): pass the X-Next-Cursor header of the page before, as it was";
    if text.len() > CURSOR_MAX || !text.len().is_multiple_of(2) {
        return Err(NOT_ONE.to_string());
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| NOT_ONE.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_a_made_up_one_is_refused() {
        let mut key = vec![2u8];
        key.extend_from_slice(&1_800_000_000_000_000u64.to_be_bytes());
        key.extend_from_slice(b"0193f1c2-aaaa-7bbb-8ccc-1234567890ab");
        assert_eq!(decode(&encode(&key)), Ok(key));
        for bad in ["!!!", "AAAA", "abc", &"ab".repeat(74)] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
        // A made-up but well-formed cursor is a position, not an error.
        assert_eq!(decode("ff00"), Ok(vec![0xff, 0x00]));
    }
}
