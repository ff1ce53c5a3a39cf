//! The redb tables of runners, their tokens and their leases, opened with every write
//! transaction (like the outbox's), so a claim and its lease, or a completion and the end of
//! its lease, commit together or not at all.

use super::leases::Lease;
use super::QueueError;
use crate::runners::{RunnerRecord, TokenRecord};
use redb::{ReadTransaction, ReadableTable, Table, TableDefinition, WriteTransaction};

/// item id -> its live [`Lease`] (JSON); at most one per item.
const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("runner_leases");
/// item id -> when its lease runs out (ms since the epoch): the sweeper reads only these.
const LEASE_EXPIRY: TableDefinition<&str, i64> = TableDefinition::new("runner_lease_expiry");
/// item id -> the last fence given out for it; never removed, so fences only grow.
const FENCES: TableDefinition<&str, u64> = TableDefinition::new("runner_fences");
/// runner id -> [`RunnerRecord`] (JSON).
const RUNNERS: TableDefinition<&str, &[u8]> = TableDefinition::new("runners");
/// token id -> [`TokenRecord`] (JSON, the token's hash only).
const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("runner_tokens");

pub struct RunnerTables<'a> {
    leases: Table<'a, &'static str, &'static [u8]>,
    expiry: Table<'a, &'static str, i64>,
    fences: Table<'a, &'static str, u64>,
    runners: Table<'a, &'static str, &'static [u8]>,
    tokens: Table<'a, &'static str, &'static [u8]>,
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, QueueError> {
    Ok(serde_json::from_slice(bytes)?)
}

impl<'a> RunnerTables<'a> {
    pub fn open(txn: &'a WriteTransaction) -> Result<RunnerTables<'a>, QueueError> {
        Ok(RunnerTables {
            leases: txn.open_table(LEASES)?,
            expiry: txn.open_table(LEASE_EXPIRY)?,
            fences: txn.open_table(FENCES)?,
            runners: txn.open_table(RUNNERS)?,
            tokens: txn.open_table(TOKENS)?,
        })
    }

    pub fn lease(&self, item_id: &str) -> Result<Option<Lease>, QueueError> {
        match self.leases.get(item_id)? {
            Some(v) => Ok(Some(decode(v.value())?)),
            None => Ok(None),
        }
    }

    pub fn all_leases(&self) -> Result<Vec<Lease>, QueueError> {
        let mut out = Vec::new();
        for entry in self.leases.iter()? {
            out.push(decode(entry?.1.value())?);
        }
        Ok(out)
    }

    pub fn put_lease(&mut self, lease: &Lease) -> Result<(), QueueError> {
        self.leases.insert(
            lease.item_id.as_str(),
            serde_json::to_vec(lease)?.as_slice(),
        )?;
        self.expiry
            .insert(lease.item_id.as_str(), lease.expires_at_ms)?;
        let last = self.last_fence(&lease.item_id)?;
        if lease.fence > last {
            self.fences.insert(lease.item_id.as_str(), lease.fence)?;
        }
        Ok(())
    }

    pub fn remove_lease(&mut self, item_id: &str) -> Result<(), QueueError> {
        self.leases.remove(item_id)?;
        self.expiry.remove(item_id)?;
        Ok(())
    }

    pub fn last_fence(&self, item_id: &str) -> Result<u64, QueueError> {
        Ok(self.fences.get(item_id)?.map(|v| v.value()).unwrap_or(0))
    }

    /// Items whose lease ran out by `now_ms`, from the expiry table alone.
    pub fn expired_items(&self, now_ms: i64) -> Result<Vec<String>, QueueError> {
        let mut out = Vec::new();
        for entry in self.expiry.iter()? {
            let (item, at) = entry?;
            if at.value() <= now_ms {
                out.push(item.value().to_string());
            }
        }
        Ok(out)
    }

    pub fn runner(&self, id: &str) -> Result<Option<RunnerRecord>, QueueError> {
        match self.runners.get(id)? {
            Some(v) => Ok(Some(decode(v.value())?)),
            None => Ok(None),
        }
    }

    pub fn all_runners(&self) -> Result<Vec<RunnerRecord>, QueueError> {
        let mut out = Vec::new();
        for entry in self.runners.iter()? {
            out.push(decode(entry?.1.value())?);
        }
        Ok(out)
    }

    pub fn put_runner(&mut self, runner: &RunnerRecord) -> Result<(), QueueError> {
        self.runners
            .insert(runner.id.as_str(), serde_json::to_vec(runner)?.as_slice())?;
        Ok(())
    }

    pub fn put_token(&mut self, token: &TokenRecord) -> Result<(), QueueError> {
        self.tokens
            .insert(token.id.as_str(), serde_json::to_vec(token)?.as_slice())?;
        Ok(())
    }

    pub fn remove_token(&mut self, id: &str) -> Result<Option<TokenRecord>, QueueError> {
        let old = match self.tokens.remove(id)? {
            Some(v) => Some(decode(v.value())?),
            None => None,
        };
        Ok(old)
    }
}

/// Creates the tables (at start-up, with the others).
pub fn create(txn: &WriteTransaction) -> Result<(), QueueError> {
    RunnerTables::open(txn)?;
    Ok(())
}

/// Reads of the same tables from a snapshot.
pub fn read_runners(txn: &ReadTransaction) -> Result<Vec<RunnerRecord>, QueueError> {
    let mut out = Vec::new();
    for entry in txn.open_table(RUNNERS)?.iter()? {
        out.push(decode(entry?.1.value())?);
    }
    Ok(out)
}

pub fn read_leases(txn: &ReadTransaction) -> Result<Vec<Lease>, QueueError> {
    let mut out = Vec::new();
    for entry in txn.open_table(LEASES)?.iter()? {
        out.push(decode(entry?.1.value())?);
    }
    Ok(out)
}

pub fn read_tokens(txn: &ReadTransaction) -> Result<Vec<TokenRecord>, QueueError> {
    let mut out = Vec::new();
    for entry in txn.open_table(TOKENS)?.iter()? {
        out.push(decode(entry?.1.value())?);
    }
    Ok(out)
}
