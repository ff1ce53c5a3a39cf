//! Runner tokens in memory: the hashes of the live ones, so the API's guards can tell a
//! runner's token from the admin token without asking the store on every request. The store
//! keeps them (hashed); this set is loaded at start-up and changed with every create and
//! revoke.

use super::{token_hash, TokenRecord};
use std::collections::HashMap;
use std::sync::RwLock;

#[derive(Default)]
pub struct RunnerTokens {
    /// hash -> token id.
    by_hash: RwLock<HashMap<String, String>>,
}

impl RunnerTokens {
    pub fn load(records: &[TokenRecord]) -> RunnerTokens {
        let tokens = RunnerTokens::default();
        for r in records {
            tokens.add(r);
        }
        tokens
    }

    pub fn add(&self, record: &TokenRecord) {
        if let Ok(mut map) = self.by_hash.write() {
            map.insert(record.hash.clone(), record.id.clone());
        }
    }

    pub fn remove(&self, record: &TokenRecord) {
        if let Ok(mut map) = self.by_hash.write() {
            map.remove(&record.hash);
        }
    }

    /// The id of the runner token `token` is, if it is one.
    pub fn lookup(&self, token: &str) -> Option<String> {
        let hash = token_hash(token);
        self.by_hash.read().ok()?.get(&hash).cloned()
    }
}

/// A new runner token: 32 random bytes, base64url, with a prefix that says what it is.
pub fn generate() -> String {
    use base64::Engine;
    let bytes: Vec<u8> = (0..2)
        .flat_map(|_| uuid::Uuid::new_v4().into_bytes())
        .collect();
    format!(
        "fdr_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}
