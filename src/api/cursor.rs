//! The opaque `cursor` of `GET /api/items`: where the next page starts in list order, as
//! URL-safe base64 of the store's list key (priority rank, creation time, id). Decoding checks
//! the shape, so a cursor that was not handed out is refused by name instead of read as a
//! position.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// The longest key a cursor may hold: rank, time, and an id of at most 64 bytes.
const KEY_MAX: usize = 9 + 64;

pub fn encode(key: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

/// The list key of a cursor, or why the text is not one.
pub fn decode(text: &str) -> Result<Vec<u8>, String> {
    const NOT_ONE: &str = "cursor is not one this server handed out: pass the X-Next-Cursor header of the page before, as it was";
    let key = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| NOT_ONE.to_string())?;
    let well_formed = key.len() > 9
        && key.len() <= KEY_MAX
        && key[0] <= 3
        && key[9..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-');
    if !well_formed {
        return Err(NOT_ONE.to_string());
    }
    Ok(key)
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
        for bad in ["", "!!!", "AAAA", &encode(&[9u8; 20])] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }
}
