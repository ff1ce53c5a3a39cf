//! The redb store: its tables, and a write transaction that keeps every derived structure
//! (status counts, the claim index, `blocks`, history, the event log) in step with the items.
//!
//! Only the QueueManager holds a [`Store`] and writes; reads run anywhere through a
//! [`Reader`] (redb's read transactions see the last commit and never wait for a writer). Each of its operations runs in one [`Tx`]: either
//! everything it wrote commits durably, or nothing does.
//!
//! Two failures have rules of their own. A file that is there but holds no redb store (empty,
//! truncated, something else) is refused at start-up: opening it as a new, empty store would
//! hide that the queue is gone. And after an I/O error (a full disk) redb refuses every later
//! write until the database is opened again, so the store remembers why it cannot write and
//! reopens itself before the next write, which then succeeds once space is back.

use super::item_json::{self, ItemHead};
use super::outbox::{EventFacts, Outbox, OutboxTables};
use super::runner_tables::{self, RunnerTables};
use super::QueueError;
use crate::model::{
    AgentSession, Event, EventData, EventKind, SharedEvent, Status, StatusChange, WorkItem,
};
use chrono::{DateTime, Utc};
use redb::{
    Database, DatabaseError, Durability, MultimapTable, MultimapTableDefinition, ReadableDatabase,
    ReadableMultimapTable, ReadableTable, StorageError, Table, TableDefinition, TransactionError,
    WriteTransaction,
};
use serde_json::value::RawValue;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// id -> WorkItem JSON.
const ITEMS: TableDefinition<&str, &[u8]> = TableDefinition::new("items");
/// Every item in list order (priority rank, then creation time, then id: the [`claim_key`]),
/// so a page of the list reads only its own items.
const ITEM_ORDER: TableDefinition<&[u8], ()> = TableDefinition::new("item_order");
/// The claim index: one key per claimable item (ready, every blocker done), ordered the way
/// claims take them: priority rank, then creation time, then id. See [`claim_key`].
const CLAIMABLE: TableDefinition<&[u8], ()> = TableDefinition::new("claimable");
/// seq -> Event JSON; the most recent [`EVENTS_RETAINED`] events.
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// Counters: `next_seq`, and `count:<status>` for each status.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// (item id, seq of its status_changed event) -> StatusChange JSON: appended, never rewritten.
const HISTORY: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("status_history");
/// session id -> AgentSession JSON.
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// Sessions not yet finished (id -> nothing): what a crash leaves behind, found without a scan.
const LIVE_SESSIONS: TableDefinition<&str, ()> = TableDefinition::new("live_sessions");
/// item id -> its sessions' ids.
const ITEM_SESSIONS: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("item_sessions");

/// Claimable items still waiting out a retry backoff, keyed by [`retry_key`] (time first),
/// each with its claim key as the value. They stay out of [`CLAIMABLE`] until their time
/// comes, so however many of them there are, a claim never walks past them to find a ready
/// item; each claim first moves the ones now due into the claim index.
const RETRY_WAIT: TableDefinition<&[u8], &[u8]> = TableDefinition::new("retry_wait");

/// Items waiting on a person (review, blocked), keyed by [`waiting_key`], so the longest
/// wait is the first entry of its status.
const WAITING: TableDefinition<&[u8], ()> = TableDefinition::new("waiting");

/// Scratch space for [`prove_room`]: empty except during a recovery.
const ROOM_PROBE: TableDefinition<&str, &[u8]> = TableDefinition::new("room_probe");

/// How much room a recovery proves before the store counts as writable again: as much as the
/// largest request body, so that a store that can only fit small writes stays not ready.
const ROOM_PROBE_BYTES: usize = 1 << 20;

/// redb's page cache: enough for the hot part of a large queue, small enough that an idle
/// server with 100,000 items stays well under 100 MiB.
const CACHE_BYTES: usize = 48 << 20;

/// How many events stay replayable after they happened.
pub const EVENTS_RETAINED: u64 = 20_000;

/// A page of the item list.
pub struct ItemPage {
    pub items: Vec<WorkItem>,
    /// Where the next page starts, when there is one.
    pub next: Option<Vec<u8>>,
    /// The `seq` of the last event the page's snapshot saw.
    pub last_seq: u64,
}

/// A page of items as the JSON array the API sends, made of their stored texts.
pub struct ItemJsonPage {
    pub json: String,
    /// Where the next page starts, when there is one.
    pub next: Option<Vec<u8>>,
    /// The `seq` of the last event the page's snapshot saw.
    pub last_seq: u64,
}

/// A page of stored events: a JSON array, sent as it is.
pub struct EventPage {
    pub json: String,
    /// The `seq` of the page's last event when more events follow it.
    pub more_after: Option<u64>,
}

/// The claim index key: `[rank][created_at micros, big endian][id]`, so byte order is claim
/// order.
fn claim_key(item: &WorkItem) -> Vec<u8> {
    let mut key = Vec::with_capacity(9 + item.id.len());
    key.push(item.priority.claim_rank());
    let micros = item.created_at.timestamp_micros().max(0) as u64;
    key.extend_from_slice(&micros.to_be_bytes());
    key.extend_from_slice(item.id.as_bytes());
    key
}

fn id_from_claim_key(key: &[u8]) -> Option<&str> {
    key.get(9..).and_then(|b| std::str::from_utf8(b).ok())
}

/// The retry index key: `[retry_at micros, big endian][id]`, so byte order is the order in
/// which backoffs end.
fn retry_key(at: DateTime<Utc>, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + id.len());
    key.extend_from_slice(&micros(at).to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

fn micros(at: DateTime<Utc>) -> u64 {
    at.timestamp_micros().max(0) as u64
}

/// The waiting index key: `[0 review | 1 blocked][since micros, big endian][id]`; None for
/// items in other statuses.
fn waiting_key(item: &WorkItem) -> Option<Vec<u8>> {
    let rank = match item.status {
        Status::Review => 0u8,
        Status::Blocked => 1,
        _ => return None,
    };
    let since = item.status_since.unwrap_or(item.updated_at);
    let mut key = Vec::with_capacity(9 + item.id.len());
    key.push(rank);
    key.extend_from_slice(&(since.timestamp_micros().max(0) as u64).to_be_bytes());
    key.extend_from_slice(item.id.as_bytes());
    Some(key)
}

/// The META key of the tokens used on a UTC day (`2026-11-24`).
fn tokens_key(day: &str) -> String {
    format!("tokens:{day}")
}

fn count_key(status: Status) -> String {
    format!("count:{status}")
}

/// Reads the store from any thread, each read in its own redb read transaction, so reads
/// never wait for the queue-manager thread nor hold up its writes. Cheap to clone.
#[derive(Clone)]
pub struct Reader {
    shared: Arc<ReaderSlot>,
}

/// The database readers use, and a signal for readers that arrive while it is being reopened.
struct ReaderSlot {
    db: Mutex<Handle>,
    changed: Condvar,
}

/// What a reader finds.
#[derive(Clone)]
enum Handle {
    Open(Arc<Database>),
    /// After an I/O error the store closes its file and opens it again (redb's lock on the
    /// file forbids two handles at once); a read that arrives meanwhile waits for the new one.
    Reopening,
    /// The store is closed for good (shutdown), or could not be opened again.
    Closed,
}

/// How long a read waits for the store to be reopened before it answers "unavailable". A
/// reopen takes milliseconds; this only bounds a reopen stuck on a sick disk.
const REOPEN_WAIT: Duration = Duration::from_secs(5);

impl Reader {
    fn new(db: Arc<Database>) -> Reader {
        Reader {
            shared: Arc::new(ReaderSlot {
                db: Mutex::new(Handle::Open(db)),
                changed: Condvar::new(),
            }),
        }
    }

    /// Runs `f` against a snapshot of the last commit.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Snapshot) -> Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        let db = self.database()?;
        let txn = db.begin_read()?;
        f(&Snapshot { txn })
    }

    /// The open database, waiting up to [`REOPEN_WAIT`] while the store is being reopened.
    fn database(&self) -> Result<Arc<Database>, QueueError> {
        let deadline = Instant::now() + REOPEN_WAIT;
        let mut slot = self
            .shared
            .db
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            match &*slot {
                Handle::Open(db) => return Ok(db.clone()),
                Handle::Closed => {
                    return Err(QueueError::Storage("the store is closed".into()));
                }
                Handle::Reopening => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(QueueError::Storage(
                            "the store is being reopened after a write error".into(),
                        ));
                    }
                    slot = match self.shared.changed.wait_timeout(slot, deadline - now) {
                        Ok((slot, _)) => slot,
                        Err(poisoned) => poisoned.into_inner().0,
                    };
                }
            }
        }
    }

    fn set(&self, handle: Handle) {
        *self
            .shared
            .db
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = handle;
        self.shared.changed.notify_all();
    }

    fn set_open(&self, db: Option<Arc<Database>>) {
        self.set(db.map_or(Handle::Closed, Handle::Open));
    }
}

/// The open redb database.
pub struct Store {
    path: PathBuf,
    /// None only while a reopen after an I/O error has failed; the next write tries again.
    db: Option<Arc<Database>>,
    /// The same database for readers on other threads.
    reader: Reader,
    next_seq: u64,
    /// Why the store cannot write, in words; None while it can.
    fault: Option<String>,
    /// The webhooks every event is offered to (see `outbox.rs`).
    outbox: Arc<Outbox>,
}

impl Store {
    /// Opens the store file, or creates it when there is none, and makes sure every table
    /// exists. A file that is there but is not a redb store is refused with an error that
    /// names it and says what to do.
    pub fn open(path: &Path) -> Result<Store, QueueError> {
        let db = Arc::new(open_database(path)?);
        let next_seq = prepare(&db)?;
        Ok(Store {
            path: path.to_path_buf(),
            reader: Reader::new(db.clone()),
            db: Some(db),
            next_seq,
            fault: None,
            outbox: Outbox::none(),
        })
    }

    /// From now on, every stored event is offered to these webhooks in its own transaction.
    pub fn set_outbox(&mut self, outbox: Arc<Outbox>) {
        self.outbox = outbox;
    }

    /// A handle for reading the store from other threads.
    pub fn reader(&self) -> Reader {
        self.reader.clone()
    }

    fn db(&self) -> Result<&Database, QueueError> {
        self.db.as_deref().ok_or_else(|| {
            QueueError::Storage(
                self.fault
                    .clone()
                    .unwrap_or_else(|| format!("the store {} is not open", self.path.display())),
            )
        })
    }

    /// Why the store cannot write right now, in words; None when it can.
    pub fn fault(&self) -> Option<&str> {
        self.fault.as_deref()
    }

    /// After an I/O error: opens the file again and proves that a durable commit of
    /// [`ROOM_PROBE_BYTES`] fits. On success the store takes writes again; on failure it stays
    /// faulted with the new reason.
    pub fn recover(&mut self) -> Result<(), QueueError> {
        if self.fault.is_none() {
            return Ok(());
        }
        // redb holds a lock on the file: the old handle must be gone before the new one opens.
        // Readers let go of it after their current read; new reads wait for the new handle.
        self.reader.set(Handle::Reopening);
        if let Some(old) = self.db.take() {
            match sole_handle(old) {
                Some(old) => {
                    if let Err(e) = old.close() {
                        log::debug!("closing the store after an I/O error: {e}");
                    }
                }
                None => log::warn!(
                    "a read still holds the store {}: reopening it may fail until it ends",
                    self.path.display()
                ),
            }
        }
        let reopened = open_database(&self.path).and_then(|db| {
            let next_seq = prepare(&db)?;
            prove_room(&db)?;
            Ok((next_seq, db))
        });
        match reopened {
            Ok((next_seq, db)) => {
                log::warn!("the store {} takes writes again", self.path.display());
                let db = Arc::new(db);
                self.reader.set_open(Some(db.clone()));
                self.db = Some(db);
                self.next_seq = next_seq;
                self.fault = None;
                Ok(())
            }
            Err(e) => {
                let reason = cannot_write(&e);
                self.fault = Some(reason.clone());
                // Reads go on from the old file where it still opens, even if writes cannot.
                self.db = open_database(&self.path).ok().map(Arc::new);
                self.reader.set_open(self.db.clone());
                Err(QueueError::Storage(reason))
            }
        }
    }

    /// After a failed write: if redb now refuses every write (it does after an I/O error),
    /// remembers why, so that the next write reopens the store first.
    fn note_failure(&mut self, error: &QueueError) {
        let Some(db) = self.db.as_ref() else {
            return;
        };
        let poisoned = match db.begin_write() {
            Ok(txn) => {
                let _ = txn.abort();
                false
            }
            Err(TransactionError::Storage(StorageError::PreviousIo | StorageError::Io(_))) => true,
            Err(e) => {
                log::warn!("the store refuses writes after a failed one: {e}");
                true
            }
        };
        if poisoned {
            let reason = cannot_write(error);
            log::error!("{}: {reason}", self.path.display());
            self.fault = Some(reason);
        }
    }

    /// Runs `f` in one durable write transaction. Events `f` emits get their `seq` here and
    /// are returned once the commit is durable; on any error nothing is kept. A store that
    /// failed on I/O before is reopened first.
    pub fn write<T>(
        &mut self,
        f: impl FnOnce(&mut Tx) -> Result<T, QueueError>,
    ) -> Result<(T, Vec<SharedEvent>), QueueError> {
        self.recover()?;
        let result = self.write_once(f);
        if let Err(e @ QueueError::Storage(_)) = &result {
            self.note_failure(e);
            if let Some(reason) = &self.fault {
                return Err(QueueError::Storage(reason.clone()));
            }
        }
        result
    }

    fn write_once<T>(
        &mut self,
        f: impl FnOnce(&mut Tx) -> Result<T, QueueError>,
    ) -> Result<(T, Vec<SharedEvent>), QueueError> {
        let mut txn = self.db()?.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let mut tx = Tx::open(&txn, self.next_seq, self.outbox.clone())?;
        let value = f(&mut tx)?;
        let events = tx.flush_events()?;
        let next_seq = tx.next_seq;
        let dirty = tx.dirty;
        let wake = tx.wake;
        drop(tx);
        if !dirty {
            // Nothing was written (say, a claim that found nothing): skip the fsync.
            txn.abort()?;
            return Ok((value, events));
        }
        txn.commit()?;
        self.next_seq = next_seq;
        if wake {
            (self.outbox.wake)();
        }
        Ok((value, events))
    }

    /// The `seq` of the last event ever stored (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// The most recent events, oldest first, at most `limit` of them and `max_bytes` of JSON
    /// (to seed the Monitor's replay window).
    pub fn recent_events(
        &self,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<SharedEvent>, QueueError> {
        self.read(|snap| snap.last_events(limit, max_bytes))
    }

    /// Runs `f` against a consistent read snapshot.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Snapshot) -> Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        let txn = self.db()?.begin_read()?;
        f(&Snapshot { txn })
    }
}

impl Drop for Store {
    /// Takes the database from the readers too, so that it closes cleanly now: a store left
    /// open at exit is repaired at the next start, which takes time in proportion to its size.
    fn drop(&mut self) {
        self.reader.set(Handle::Closed);
    }
}

/// The database once no reader holds it any more. Readers give their handle back after one
/// read transaction, so this waits at most a second; the lock on the file is only released
/// when the last handle is gone, and a reopen before that would find the file still locked.
fn sole_handle(mut db: Arc<Database>) -> Option<Database> {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match Arc::try_unwrap(db) {
            Ok(db) => return Some(db),
            Err(shared) if Instant::now() < deadline => {
                db = shared;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => return None,
        }
    }
}

/// The sentence `/readyz` and every refused write give while the store cannot write. It
/// names no path: `/readyz` answers without the token.
fn cannot_write(error: &QueueError) -> String {
    let error = match error {
        QueueError::Storage(detail) => detail.clone(),
        other => other.to_string(),
    };
    format!(
        "the store cannot write ({error}); is the disk full or read-only? Writes resume by themselves once it can write again"
    )
}

/// Opens the database, or creates it when there is no file.
fn open_database(path: &Path) -> Result<Database, QueueError> {
    let mut builder = Database::builder();
    builder.set_cache_size(CACHE_BYTES);
    // A file the last run did not close cleanly is repaired on open, which reads the whole
    // file: worth a line in the log, since it makes this start-up slow.
    let shown = path.display().to_string();
    builder.set_repair_callback(move |session| {
        if session.progress() == 0.0 {
            log::warn!("the store {shown} was not closed cleanly: repairing it before starting");
        }
    });
    let opened = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => builder.create(path),
        Err(e) => return Err(not_a_store(path, &format!("cannot be read ({e})"))),
        Ok(meta) if !meta.is_file() => return Err(not_a_store(path, "is not a regular file")),
        Ok(meta) if meta.len() == 0 => return Err(not_a_store(path, "is empty (0 bytes)")),
        Ok(_) => builder.open(path),
    };
    opened.map_err(|e| match e {
        DatabaseError::DatabaseAlreadyOpen => QueueError::Storage(format!(
            "the store {} is in use by another flightdeck server (one server per data dir)",
            path.display()
        )),
        DatabaseError::Storage(StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::InvalidData =>
        {
            not_a_store(path, &format!("is not a redb store ({io})"))
        }
        DatabaseError::Storage(StorageError::Corrupted(why)) => {
            not_a_store(path, &format!("is corrupted ({why})"))
        }
        other => QueueError::Storage(format!("cannot open the store {}: {other}", path.display())),
    })
}

/// The refusal of a file that holds no store flightdeck can read, with what to do about it.
fn not_a_store(path: &Path, problem: &str) -> QueueError {
    let p = path.display();
    QueueError::Storage(format!(
        "{p} {problem}: it holds no queue flightdeck can read, and flightdeck will not start on it as an empty store. Restore it from a backup, or move it aside (mv {p} {p}.bad) to start with an empty queue"
    ))
}

/// Creates any missing table and returns the next event `seq`, in one durable commit that
/// changes nothing a reader sees: the proof that the file takes writes.
fn prepare(db: &Database) -> Result<u64, QueueError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    let next_seq;
    {
        txn.open_table(ITEMS)?;
        txn.open_table(ITEM_ORDER)?;
        txn.open_table(CLAIMABLE)?;
        txn.open_table(EVENTS)?;
        txn.open_table(HISTORY)?;
        txn.open_table(SESSIONS)?;
        txn.open_table(LIVE_SESSIONS)?;
        txn.open_table(WAITING)?;
        txn.open_table(RETRY_WAIT)?;
        txn.open_multimap_table(ITEM_SESSIONS)?;
        OutboxTables::open(&txn)?;
        runner_tables::create(&txn)?;
        let mut meta = txn.open_table(META)?;
        next_seq = meta.get("next_seq")?.map(|v| v.value()).unwrap_or(1);
        meta.insert("next_seq", next_seq)?;
    }
    txn.commit()?;
    Ok(next_seq)
}

/// Writes [`ROOM_PROBE_BYTES`] durably, then removes them: the proof that the disk has room
/// again. The freed pages stay in the file for the writes that follow.
fn prove_room(db: &Database) -> Result<(), QueueError> {
    for fill in [true, false] {
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut probe = txn.open_table(ROOM_PROBE)?;
            if fill {
                probe.insert("room", vec![0u8; ROOM_PROBE_BYTES].as_slice())?;
            } else {
                probe.remove("room")?;
            }
        }
        txn.commit()?;
    }
    Ok(())
}

/// The full id of the item `id` names in `items`: the id itself, or the one id it is a
/// prefix of (4 characters at least); not found, or ambiguous, in words.
fn resolve_in(
    items: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &str,
) -> Result<String, QueueError> {
    if items.get(id)?.is_some() {
        return Ok(id.to_string());
    }
    if id.len() < 4 || id.len() > 36 {
        return Err(QueueError::not_found("item", id));
    }
    let mut found = Vec::new();
    for entry in items.range(id..)?.take(2) {
        let (key, _) = entry?;
        if !key.value().starts_with(id) {
            break;
        }
        found.push(key.value().to_string());
    }
    match found.len() {
        0 => Err(QueueError::not_found("item", id)),
        1 => Ok(found.remove(0)),
        _ => Err(QueueError::Ambiguous(id.to_string())),
    }
}

/// A read-only view of the store at one moment.
pub struct Snapshot {
    pub(super) txn: redb::ReadTransaction,
}

impl Snapshot {
    /// The runner tokens (hashed), to load the API's guard at start-up.
    pub fn runner_tokens(&self) -> Result<Vec<crate::runners::TokenRecord>, QueueError> {
        runner_tables::read_tokens(&self.txn)
    }

    pub fn item(&self, id: &str) -> Result<Option<WorkItem>, QueueError> {
        let table = self.txn.open_table(ITEMS)?;
        let found = table.get(id)?;
        Ok(match found {
            Some(bytes) => Some(serde_json::from_slice(bytes.value())?),
            None => None,
        })
    }

    /// The full id of the item `id` names: its id, or a unique prefix of one.
    pub fn resolve(&self, id: &str) -> Result<String, QueueError> {
        resolve_in(&self.txn.open_table(ITEMS)?, id)
    }

    /// Items in list order (priority, then age, then id) that pass `keep`, after the position
    /// `after` (a [`ItemPage::next`] of an earlier page), at most `limit` of them.
    pub fn items_page(
        &self,
        after: Option<&[u8]>,
        limit: usize,
        keep: impl Fn(&WorkItem) -> bool,
    ) -> Result<ItemPage, QueueError> {
        let mut items = Vec::new();
        let next = self.walk_items(
            after,
            limit,
            |stored| {
                let item: WorkItem = serde_json::from_slice(stored)?;
                Ok(keep(&item).then_some(item))
            },
            |_, item| items.push(item),
        )?;
        Ok(ItemPage {
            items,
            next,
            last_seq: self.last_seq()?,
        })
    }

    /// Like [`Snapshot::items_page`], as the JSON array the API sends, made of the stored texts
    /// (see `item_json`); `keep` sees only each item's [`ItemHead`], and None keeps all.
    pub fn items_json_page(
        &self,
        after: Option<&[u8]>,
        limit: usize,
        keep: Option<&dyn Fn(&ItemHead) -> bool>,
    ) -> Result<ItemJsonPage, QueueError> {
        let mut json = Vec::with_capacity(limit.min(512) * 512);
        json.push(b'[');
        let next = self.walk_items(
            after,
            limit,
            |stored| match keep {
                Some(keep) => Ok(keep(&ItemHead::read(stored)?).then_some(())),
                None => Ok(Some(())),
            },
            |stored, ()| {
                if json.len() > 1 {
                    json.push(b',');
                }
                json.extend_from_slice(stored);
            },
        )?;
        json.push(b']');
        Ok(ItemJsonPage {
            json: String::from_utf8(json)
                .map_err(|e| QueueError::Storage(format!("a stored item is not UTF-8: {e}")))?,
            next,
            last_seq: self.last_seq()?,
        })
    }

    /// Offers the stored text of each item in list order after `after` to `pick`, and hands
    /// what it picks to `put`, until `limit` are put; answers where the next page starts when
    /// one more item would be picked.
    fn walk_items<T>(
        &self,
        after: Option<&[u8]>,
        limit: usize,
        mut pick: impl FnMut(&[u8]) -> Result<Option<T>, QueueError>,
        mut put: impl FnMut(&[u8], T),
    ) -> Result<Option<Vec<u8>>, QueueError> {
        use std::ops::Bound;
        let order = self.txn.open_table(ITEM_ORDER)?;
        let items = self.txn.open_table(ITEMS)?;
        let start = match after {
            Some(key) => Bound::Excluded(key),
            None => Bound::Unbounded,
        };
        let mut kept = 0usize;
        let mut last_key = Vec::new();
        for entry in order.range::<&[u8]>((start, Bound::Unbounded))? {
            let (key, _) = entry?;
            let Some(id) = id_from_claim_key(key.value()) else {
                continue;
            };
            let Some(stored) = items.get(id)? else {
                continue;
            };
            let Some(picked) = pick(stored.value())? else {
                continue;
            };
            if kept == limit {
                return Ok(Some(last_key));
            }
            put(stored.value(), picked);
            kept += 1;
            last_key = key.value().to_vec();
        }
        Ok(None)
    }

    /// The `seq` of the last event this snapshot holds (0 before the first).
    pub fn last_seq(&self) -> Result<u64, QueueError> {
        let meta = self.txn.open_table(META)?;
        let next = meta.get("next_seq")?.map(|v| v.value()).unwrap_or(1);
        Ok(next.saturating_sub(1))
    }

    pub fn all_items(&self) -> Result<Vec<WorkItem>, QueueError> {
        let table = self.txn.open_table(ITEMS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (_, v) = entry?;
            out.push(serde_json::from_slice(v.value())?);
        }
        Ok(out)
    }

    /// The item that has waited longest in `status` (review or blocked), from the index.
    pub fn longest_waiting(&self, status: Status) -> Result<Option<WorkItem>, QueueError> {
        let rank: u8 = match status {
            Status::Review => 0,
            Status::Blocked => 1,
            _ => return Ok(None),
        };
        let table = self.txn.open_table(WAITING)?;
        let start = [rank];
        let end = [rank + 1];
        let first = table.range(&start[..]..&end[..])?.next();
        let Some(entry) = first else { return Ok(None) };
        let (key, _) = entry?;
        match key
            .value()
            .get(9..)
            .and_then(|b| std::str::from_utf8(b).ok())
        {
            Some(id) => self.item(id),
            None => Ok(None),
        }
    }

    /// Tokens used on the UTC day `day` (`2026-11-24`).
    pub fn tokens_on(&self, day: &str) -> Result<u64, QueueError> {
        let meta = self.txn.open_table(META)?;
        let value = meta.get(tokens_key(day).as_str())?;
        Ok(value.map(|v| v.value()).unwrap_or(0))
    }

    pub fn count(&self, status: Status) -> Result<u64, QueueError> {
        let meta = self.txn.open_table(META)?;
        let value = meta.get(count_key(status).as_str())?;
        Ok(value.map(|v| v.value()).unwrap_or(0))
    }

    /// The item's status changes, oldest first. The first entry, its creation, is not stored
    /// (it follows from the item and its first change), which saves a write per new item.
    pub fn history(&self, id: &str) -> Result<Vec<StatusChange>, QueueError> {
        let Some(item) = self.item(id)? else {
            return Err(QueueError::not_found("item", id));
        };
        let table = self.txn.open_table(HISTORY)?;
        let mut changes: Vec<StatusChange> = Vec::new();
        for entry in table.range((id, 0)..=(id, u64::MAX))? {
            let (_, v) = entry?;
            changes.push(serde_json::from_slice(v.value())?);
        }
        let created = StatusChange {
            at: item.created_at,
            from: None,
            to: changes.first().and_then(|c| c.from).unwrap_or(item.status),
            reason: None,
        };
        changes.insert(0, created);
        Ok(changes)
    }

    /// The events after `since`, oldest first, as their stored JSON: at most `limit` of them
    /// and `max_bytes` in all (but at least one).
    pub fn events_after(
        &self,
        since: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<EventPage, QueueError> {
        let table = self.txn.open_table(EVENTS)?;
        let mut page = EventPage {
            json: String::from("["),
            more_after: None,
        };
        let mut last = since;
        for (count, entry) in table.range(since.saturating_add(1)..)?.enumerate() {
            let (seq, v) = entry?;
            let text = std::str::from_utf8(v.value()).map_err(|e| {
                QueueError::Storage(format!("event {} is not UTF-8: {e}", seq.value()))
            })?;
            if count == limit || (count > 0 && page.json.len() + text.len() + 2 > max_bytes) {
                page.more_after = Some(last);
                break;
            }
            if count > 0 {
                page.json.push(',');
            }
            page.json.push_str(text);
            last = seq.value();
        }
        page.json.push(']');
        Ok(page)
    }

    /// The most recent events, oldest first, with their stored JSON: at most `limit` of them
    /// and `max_bytes` of JSON.
    pub fn last_events(
        &self,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<SharedEvent>, QueueError> {
        let table = self.txn.open_table(EVENTS)?;
        let mut out = Vec::new();
        let mut bytes = 0;
        for entry in table.iter()?.rev().take(limit) {
            let (_, v) = entry?;
            let stored = v.value();
            bytes += stored.len();
            if bytes > max_bytes {
                break;
            }
            let event: Event = serde_json::from_slice(stored)?;
            let json = String::from_utf8_lossy(stored).into_owned();
            out.push(SharedEvent::new(event, json));
        }
        out.reverse();
        Ok(out)
    }

    pub fn session(&self, id: &str) -> Result<Option<AgentSession>, QueueError> {
        let table = self.txn.open_table(SESSIONS)?;
        let found = table.get(id)?;
        Ok(match found {
            Some(bytes) => Some(serde_json::from_slice(bytes.value())?),
            None => None,
        })
    }

    pub fn all_sessions(&self) -> Result<Vec<AgentSession>, QueueError> {
        let table = self.txn.open_table(SESSIONS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (_, v) = entry?;
            out.push(serde_json::from_slice(v.value())?);
        }
        Ok(out)
    }

    /// The sessions that worked on `item_id`, oldest first.
    pub fn sessions_of(&self, item_id: &str) -> Result<Vec<AgentSession>, QueueError> {
        let index = self.txn.open_multimap_table(ITEM_SESSIONS)?;
        let mut out = Vec::new();
        for id in index.get(item_id)? {
            if let Some(s) = self.session(id?.value())? {
                out.push(s);
            }
        }
        out.sort_by_key(|s: &AgentSession| s.started_at);
        Ok(out)
    }
}

/// One write transaction in progress, with its tables open (once per batch, not per call) and
/// the events it will publish.
pub struct Tx<'a> {
    items: Table<'a, &'static str, &'static [u8]>,
    item_order: Table<'a, &'static [u8], ()>,
    claimable: Table<'a, &'static [u8], ()>,
    event_log: Table<'a, u64, &'static [u8]>,
    meta: Table<'a, &'static str, u64>,
    history: Table<'a, (&'static str, u64), &'static [u8]>,
    sessions: Table<'a, &'static str, &'static [u8]>,
    live_sessions: Table<'a, &'static str, ()>,
    waiting: Table<'a, &'static [u8], ()>,
    retry_wait: Table<'a, &'static [u8], &'static [u8]>,
    item_sessions: MultimapTable<'a, &'static str, &'static str>,
    outbox_tables: OutboxTables<'a>,
    runner_tables: RunnerTables<'a>,
    outbox: Arc<Outbox>,
    /// Whether the delivery workers should look at the outbox once this commits.
    wake: bool,
    pub now: DateTime<Utc>,
    events: Vec<(EventKind, Box<RawValue>)>,
    next_seq: u64,
    /// Whether anything was written; a clean transaction is aborted instead of committed.
    dirty: bool,
    /// How many writes so far: with the events emitted, what [`Tx::attempt`] compares.
    writes: u64,
    /// The id and stored text of the item [`Tx::put`] wrote last, for its events to carry.
    last_put: Option<(String, Box<RawValue>)>,
}

impl<'a> Tx<'a> {
    fn open(
        txn: &'a WriteTransaction,
        next_seq: u64,
        outbox: Arc<Outbox>,
    ) -> Result<Tx<'a>, QueueError> {
        Ok(Tx {
            items: txn.open_table(ITEMS)?,
            item_order: txn.open_table(ITEM_ORDER)?,
            claimable: txn.open_table(CLAIMABLE)?,
            event_log: txn.open_table(EVENTS)?,
            meta: txn.open_table(META)?,
            history: txn.open_table(HISTORY)?,
            sessions: txn.open_table(SESSIONS)?,
            live_sessions: txn.open_table(LIVE_SESSIONS)?,
            waiting: txn.open_table(WAITING)?,
            retry_wait: txn.open_table(RETRY_WAIT)?,
            item_sessions: txn.open_multimap_table(ITEM_SESSIONS)?,
            outbox_tables: OutboxTables::open(txn)?,
            runner_tables: RunnerTables::open(txn)?,
            outbox,
            wake: false,
            now: Utc::now(),
            events: Vec::new(),
            next_seq,
            dirty: false,
            writes: 0,
            last_put: None,
        })
    }

    fn touch(&mut self) {
        self.dirty = true;
        self.writes += 1;
    }

    /// Runs one operation of a batch. An operation that refuses (a broken rule, a missing
    /// item) must refuse before it writes or emits anything, so that the rest of its batch
    /// commits without a trace of it: if it wrote and then refused, that is a bug, caught by
    /// a debug assertion in tests and, in a release build, turned into a storage error that
    /// rolls the whole batch back, so that still nothing of it is kept.
    pub fn attempt<T>(
        &mut self,
        op: impl FnOnce(&mut Self) -> Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        let before = (self.writes, self.events.len());
        let result = op(self);
        if let Err(e) = &result {
            let wrote = (self.writes, self.events.len()) != before;
            if wrote && !matches!(e, QueueError::Storage(_)) {
                debug_assert!(false, "an operation wrote, then refused: {e}");
                log::error!("an operation wrote, then refused ({e}): its batch is rolled back");
                return Err(QueueError::Storage(format!(
                    "an operation failed halfway ({e}); nothing of its batch was kept"
                )));
            }
        }
        result
    }

    /// The webhook outbox, to read (a refusal after this has written nothing).
    pub(super) fn outbox_read(&self) -> &OutboxTables<'a> {
        &self.outbox_tables
    }

    /// The webhook outbox, for a write to it.
    pub(super) fn outbox(&mut self) -> &mut OutboxTables<'a> {
        self.touch();
        &mut self.outbox_tables
    }

    /// Runners, their tokens and leases, to read.
    pub(super) fn runner_tables(&self) -> &RunnerTables<'a> {
        &self.runner_tables
    }

    /// Runners, their tokens and leases, for a write.
    pub(super) fn runner_tables_mut(&mut self) -> &mut RunnerTables<'a> {
        self.dirty = true;
        &mut self.runner_tables
    }

    /// Tells the delivery workers to look at the outbox once this transaction commits.
    pub(super) fn wake_outbox(&mut self) {
        self.wake = true;
    }

    /// Tokens used by every session of the item so far.
    fn tokens_of(&self, item_id: &str) -> Result<u64, QueueError> {
        let mut total = 0u64;
        for id in self.item_sessions.get(item_id)? {
            if let Some(s) = self.session(id?.value())? {
                total = total.saturating_add(s.tokens_used);
            }
        }
        Ok(total)
    }

    /// What an event's webhooks may tell a person beyond its data.
    fn facts(&self, event: &Event) -> Result<EventFacts, QueueError> {
        let mut facts = EventFacts::default();
        if event.kind == EventKind::WorkStatusChanged {
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Changed {
                item_id: String,
            }
            if let Ok(changed) = serde_json::from_str::<Changed>(event.data.get()) {
                facts.tokens_used = self.tokens_of(&changed.item_id)?;
            }
        }
        Ok(facts)
    }

    /// `item` as JSON for an event: the text [`Tx::put`] just stored when it was the item
    /// written last (as it is right after a save), else encoded now.
    pub fn item_text(&self, item: &WorkItem) -> Result<Box<RawValue>, QueueError> {
        match &self.last_put {
            Some((id, text)) if *id == item.id => {
                debug_assert_eq!(
                    text.get(),
                    serde_json::to_string(item)?,
                    "an item changed after it was stored and before its event"
                );
                Ok(text.clone())
            }
            _ => Ok(serde_json::value::to_raw_value(item)?),
        }
    }

    /// Queues an event for this transaction, its kind the payload's, its data encoded now.
    pub fn emit(&mut self, data: EventData<'_>) -> Result<(), QueueError> {
        self.events.push((data.kind(), data.encode()?));
        Ok(())
    }

    pub fn item(&self, id: &str) -> Result<Option<WorkItem>, QueueError> {
        Ok(match self.items.get(id)? {
            Some(bytes) => Some(serde_json::from_slice(bytes.value())?),
            None => None,
        })
    }

    /// Whether the one-time repair `name` is still to be done; marks it done (with the rest
    /// of the transaction).
    pub fn repair_pending(&mut self, name: &'static str) -> Result<bool, QueueError> {
        if self.meta.get(name)?.is_some() {
            return Ok(false);
        }
        self.touch();
        self.meta.insert(name, 1)?;
        Ok(true)
    }

    /// Puts every item into the list-order index (for a store written before it existed).
    pub fn index_item_order(&mut self) -> Result<(), QueueError> {
        let mut keys = Vec::new();
        for entry in self.items.iter()? {
            let (_, v) = entry?;
            let item: WorkItem = serde_json::from_slice(v.value())?;
            keys.push(claim_key(&item));
        }
        self.touch();
        for key in keys {
            self.item_order.insert(key.as_slice(), ())?;
        }
        Ok(())
    }

    /// Rewrites every stored item in this binary's shape when the store's differs (see
    /// `item_json`), a chunk at a time; answers how many changed.
    pub fn reshape_items(&mut self) -> Result<usize, QueueError> {
        const CHUNK: usize = 1024;
        let current = item_json::shape();
        if self.meta.get(item_json::SHAPE_KEY)?.map(|v| v.value()) == Some(current) {
            return Ok(0);
        }
        self.touch();
        let mut changed = 0;
        let mut after: Option<String> = None;
        loop {
            let mut chunk: Vec<(String, Option<Vec<u8>>)> = Vec::with_capacity(CHUNK);
            let range = match &after {
                Some(id) => self.items.range::<&str>((
                    std::ops::Bound::Excluded(id.as_str()),
                    std::ops::Bound::Unbounded,
                ))?,
                None => self.items.range::<&str>(..)?,
            };
            for entry in range.take(CHUNK) {
                let (id, stored) = entry?;
                let item: WorkItem = serde_json::from_slice(stored.value())?;
                let text = serde_json::to_vec(&item)?;
                let differs = text.as_slice() != stored.value();
                chunk.push((id.value().to_string(), differs.then_some(text)));
            }
            let Some((last, _)) = chunk.last() else {
                break;
            };
            after = Some(last.clone());
            for (id, text) in &chunk {
                if let Some(text) = text {
                    self.items.insert(id.as_str(), text.as_slice())?;
                    changed += 1;
                }
            }
        }
        self.meta.insert(item_json::SHAPE_KEY, current)?;
        Ok(changed)
    }

    /// The id of every item, without decoding any.
    pub fn item_ids(&self) -> Result<Vec<String>, QueueError> {
        let mut out = Vec::new();
        for entry in self.items.iter()? {
            out.push(entry?.0.value().to_string());
        }
        Ok(out)
    }

    /// The full id of the item `id` names, as this transaction sees the store (so an item made
    /// earlier in the same batch is found too).
    pub fn resolve(&self, id: &str) -> Result<String, QueueError> {
        resolve_in(&self.items, id)
    }

    pub fn require(&self, id: &str) -> Result<WorkItem, QueueError> {
        self.item(id)?
            .ok_or_else(|| QueueError::not_found("item", id))
    }

    /// Is `item` claimable right now as far as the store knows: ready, and every blocker done.
    fn claimable(&self, item: &WorkItem) -> Result<bool, QueueError> {
        if item.status != Status::Ready {
            return Ok(false);
        }
        for blocker in &item.blocked_by {
            match self.item(blocker)? {
                Some(b) if b.status == Status::Done => {}
                _ => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Writes `item`, keeping the status counts and the claim index in step. `old` is the item
    /// as it was stored (None for a new one).
    pub fn put(&mut self, old: Option<&WorkItem>, item: &WorkItem) -> Result<(), QueueError> {
        self.touch();
        // Encoded once, as raw JSON (`from_string` would parse the text again to check it).
        let text = serde_json::value::to_raw_value(item)?;
        self.items.insert(item.id.as_str(), text.get().as_bytes())?;
        self.last_put = Some((item.id.clone(), text));
        if old.map(|o| o.status) != Some(item.status) {
            if let Some(o) = old {
                self.add_count(o.status, -1)?;
            }
            self.add_count(item.status, 1)?;
        }
        self.reindex(old, item)
    }

    fn reindex(&mut self, old: Option<&WorkItem>, item: &WorkItem) -> Result<(), QueueError> {
        let order = claim_key(item);
        let old_order = old.map(claim_key);
        if old_order.as_ref() != Some(&order) {
            if let Some(old_order) = old_order {
                self.item_order.remove(old_order.as_slice())?;
            }
            self.item_order.insert(order.as_slice(), ())?;
        }
        let claimable = self.claimable(item)?;
        // A claimable item still in its backoff waits in the retry index instead.
        let retry = item
            .retry_at
            .filter(|at| claimable && *at > self.now)
            .map(|at| retry_key(at, &item.id));
        let in_claim_index = claimable && retry.is_none();
        let key = claim_key(item);
        if let Some(o) = old {
            let old_key = claim_key(o);
            if old_key != key || !in_claim_index {
                self.claimable.remove(old_key.as_slice())?;
            }
            if let Some(old_retry) = o.retry_at.map(|at| retry_key(at, &o.id)) {
                if Some(&old_retry) != retry.as_ref() {
                    self.retry_wait.remove(old_retry.as_slice())?;
                }
            }
        }
        if in_claim_index {
            self.claimable.insert(key.as_slice(), ())?;
        }
        if let Some(retry) = retry {
            self.retry_wait.insert(retry.as_slice(), key.as_slice())?;
        }
        let waiting = waiting_key(item);
        if let Some(old_key) = old.and_then(waiting_key) {
            if Some(&old_key) != waiting.as_ref() {
                self.waiting.remove(old_key.as_slice())?;
            }
        }
        if let Some(key) = waiting {
            self.waiting.insert(key.as_slice(), ())?;
        }
        Ok(())
    }

    /// Moves every item whose retry backoff has ended from the retry index into the claim
    /// index. Each entry moves once, so this costs nothing when no backoff ended.
    fn promote_due_retries(&mut self) -> Result<(), QueueError> {
        let end = (micros(self.now) + 1).to_be_bytes();
        let mut due = Vec::new();
        for entry in self.retry_wait.range(..&end[..])? {
            let (key, claim) = entry?;
            due.push((key.value().to_vec(), claim.value().to_vec()));
        }
        for (key, claim) in due {
            self.touch();
            self.retry_wait.remove(key.as_slice())?;
            self.claimable.insert(claim.as_slice(), ())?;
        }
        Ok(())
    }

    /// Adds `tokens` to the UTC day `day`'s total.
    pub fn add_tokens_on(&mut self, day: &str, tokens: u64) -> Result<(), QueueError> {
        if tokens == 0 {
            return Ok(());
        }
        self.touch();
        let key = tokens_key(day);
        let now = self.meta.get(key.as_str())?.map(|v| v.value()).unwrap_or(0);
        self.meta.insert(key.as_str(), now.saturating_add(tokens))?;
        Ok(())
    }

    /// Re-evaluates whether the items with these ids are claimable (after a blocker finished
    /// or went away).
    pub fn refresh_claimable(&mut self, ids: &[String]) -> Result<(), QueueError> {
        for id in ids {
            if let Some(item) = self.item(id)? {
                self.reindex(Some(&item), &item)?;
            }
        }
        Ok(())
    }

    pub fn delete(&mut self, item: &WorkItem) -> Result<(), QueueError> {
        self.touch();
        let id = item.id.as_str();
        self.items.remove(id)?;
        self.item_order.remove(claim_key(item).as_slice())?;
        self.claimable.remove(claim_key(item).as_slice())?;
        if let Some(at) = item.retry_at {
            self.retry_wait.remove(retry_key(at, id).as_slice())?;
        }
        if let Some(key) = waiting_key(item) {
            self.waiting.remove(key.as_slice())?;
        }
        self.history
            .retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
        self.add_count(item.status, -1)
    }

    fn add_count(&mut self, status: Status, delta: i64) -> Result<(), QueueError> {
        let key = count_key(status);
        let now = self.meta.get(key.as_str())?.map(|v| v.value()).unwrap_or(0);
        self.meta
            .insert(key.as_str(), now.saturating_add_signed(delta))?;
        Ok(())
    }

    pub fn count(&self, status: Status) -> Result<u64, QueueError> {
        let n = self
            .meta
            .get(count_key(status).as_str())?
            .map(|v| v.value());
        Ok(n.unwrap_or(0))
    }

    /// The first item in claim order whose retry backoff (if any) has ended and that
    /// `may_take` accepts (the claimer has the labels it requires). Items in their backoff
    /// wait in their own index (see [`RETRY_WAIT`]), so the claim index holds only items
    /// claimable now and this reads one entry in the usual case; at most `LOOKAHEAD` items
    /// the claimer may not take are passed over.
    pub fn first_claimable(
        &mut self,
        may_take: impl Fn(&WorkItem) -> bool,
    ) -> Result<Option<WorkItem>, QueueError> {
        const LOOKAHEAD: usize = 256;
        self.promote_due_retries()?;
        let mut stale = Vec::new();
        let mut found = None;
        let mut passed = 0;
        for entry in self.claimable.iter()? {
            let (key, _) = entry?;
            let item = match id_from_claim_key(key.value()) {
                Some(id) => self.item(id)?,
                None => None,
            };
            match item {
                // Written by a release that kept waiting items here: moved out below.
                Some(item) if item.retry_at.is_some_and(|t| t > self.now) => {
                    stale.push(item);
                }
                Some(item) if may_take(&item) => {
                    found = Some(item);
                    break;
                }
                Some(_) => {
                    passed += 1;
                    if passed >= LOOKAHEAD {
                        break;
                    }
                }
                None => {}
            }
        }
        for item in stale {
            self.touch();
            self.reindex(Some(&item), &item)?;
        }
        Ok(found)
    }

    /// Appends a status change to the item's history. The key is the item and the seq its
    /// `work:status_changed` event gets, so the history reads back in order.
    pub fn record_change(
        &mut self,
        id: &str,
        from: Option<Status>,
        to: Status,
        reason: Option<&str>,
    ) -> Result<(), QueueError> {
        let change = StatusChange {
            at: self.now,
            from,
            to,
            reason: reason.map(str::to_string),
        };
        let seq = self.next_seq + self.events.len() as u64;
        self.history
            .insert((id, seq), serde_json::to_vec(&change)?.as_slice())?;
        Ok(())
    }

    pub fn session(&self, id: &str) -> Result<Option<AgentSession>, QueueError> {
        Ok(match self.sessions.get(id)? {
            Some(bytes) => Some(serde_json::from_slice(bytes.value())?),
            None => None,
        })
    }

    /// The workspace of the item's latest session, which its next attempt takes over.
    pub fn latest_workspace(&self, item_id: &str) -> Result<Option<String>, QueueError> {
        let mut latest: Option<AgentSession> = None;
        for id in self.item_sessions.get(item_id)? {
            if let Some(s) = self.session(id?.value())? {
                if latest.as_ref().is_none_or(|l| s.started_at > l.started_at) {
                    latest = Some(s);
                }
            }
        }
        Ok(latest.map(|s| s.workspace_dir))
    }

    pub fn put_session(&mut self, session: &AgentSession) -> Result<(), QueueError> {
        self.touch();
        let id = session.id.as_str();
        self.sessions
            .insert(id, serde_json::to_vec(session)?.as_slice())?;
        self.item_sessions
            .insert(session.work_item_id.as_str(), id)?;
        if session.status.is_finished() {
            self.live_sessions.remove(id)?;
        } else {
            self.live_sessions.insert(id, ())?;
        }
        Ok(())
    }

    /// Sessions not yet finished: after a crash, these are the ones whose agents died with it.
    pub fn unfinished_sessions(&self) -> Result<Vec<AgentSession>, QueueError> {
        let mut out = Vec::new();
        for entry in self.live_sessions.iter()? {
            let (id, _) = entry?;
            if let Some(s) = self.session(id.value())? {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Every item in `status`. Scans the items, so only when the counts say there are some.
    pub fn items_in(&self, status: Status) -> Result<Vec<WorkItem>, QueueError> {
        if self.count(status)? == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for entry in self.items.iter()? {
            let (_, v) = entry?;
            let item: WorkItem = serde_json::from_slice(v.value())?;
            if item.status == status {
                out.push(item);
            }
        }
        Ok(out)
    }

    /// Gives the emitted events their sequence numbers and stores them, trimming the log to
    /// the retained window.
    fn flush_events(&mut self) -> Result<Vec<SharedEvent>, QueueError> {
        if self.events.is_empty() {
            return Ok(Vec::new());
        }
        self.touch();
        let mut out = Vec::with_capacity(self.events.len());
        for (kind, data) in std::mem::take(&mut self.events) {
            let event = Event {
                seq: self.next_seq,
                kind,
                at: self.now,
                data,
            };
            let json = serde_json::to_string(&event)?;
            self.event_log.insert(event.seq, json.as_bytes())?;
            if !self.outbox.routes.is_empty() {
                let facts = self.facts(&event)?;
                let outbox = self.outbox.clone();
                if self.outbox_tables.enqueue(&outbox, &event, &json, &facts)? > 0 {
                    self.wake = true;
                }
            }
            self.next_seq += 1;
            out.push(SharedEvent::new(event, json));
        }
        let keep_from = self.next_seq.saturating_sub(EVENTS_RETAINED);
        self.event_log.retain_in(..keep_from, |_, _| false)?;
        self.meta.insert("next_seq", self.next_seq)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Complexity, Priority};
    use chrono::TimeZone;

    fn item(id: &str, priority: Priority, secs: i64) -> WorkItem {
        let at = Utc.timestamp_opt(1_800_000_000 + secs, 0).single().unwrap();
        WorkItem {
            id: id.into(),
            title: id.into(),
            description: String::new(),
            acceptance_criteria: Vec::new(),
            status: Status::Ready,
            priority,
            complexity: Complexity::M,
            assigned_agent_id: None,
            assigned_session_key: None,
            created_at: at,
            updated_at: at,
            created_by: "test".into(),
            report: None,
            artifacts: Vec::new(),
            blocked_by: Vec::new(),
            blocks: Vec::new(),
            attempts: 0,
            status_reason: None,
            completed_at: None,
            retry_at: None,
            status_since: None,
            max_tokens: None,
            tokens_used: 0,
            cost_usd: 0.0,
            requires: Vec::new(),
            waiting_on_person: false,
        }
    }

    #[test]
    fn claim_keys_sort_by_priority_then_age_then_id() {
        let mut items = [
            item("a-low-old", Priority::Low, 0),
            item("b-urgent-new", Priority::Urgent, 50),
            item("c-high-new", Priority::High, 40),
            item("d-high-old", Priority::High, 10),
            item("e-medium", Priority::Medium, 5),
            item("f-urgent-old", Priority::Urgent, 1),
            item("g-high-old", Priority::High, 10),
        ];
        items.sort_by_key(claim_key);
        let order: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(
            order,
            [
                "f-urgent-old",
                "b-urgent-new",
                "d-high-old",
                "g-high-old",
                "c-high-new",
                "e-medium",
                "a-low-old"
            ]
        );
        assert_eq!(
            id_from_claim_key(&claim_key(&items[0])),
            Some("f-urgent-old")
        );
    }

    #[test]
    fn a_claim_takes_the_best_claimable_item_and_group_writes_commit_together() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("q.redb")).unwrap();
        let ((), events) = store
            .write(|tx| {
                for it in [
                    item("low", Priority::Low, 0),
                    item("high", Priority::High, 5),
                ] {
                    tx.put(None, &it)?;
                    tx.emit(EventData::WorkAdded {
                        item: &tx.item_text(&it)?,
                    })?;
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(
            events.iter().map(|e| e.event.seq).collect::<Vec<_>>(),
            [1, 2]
        );
        let (first, _) = store.write(|tx| tx.first_claimable(|_| true)).unwrap();
        assert_eq!(first.map(|i| i.id), Some("high".to_string()));
        assert_eq!(store.read(|s| s.count(Status::Ready)).unwrap(), 2);
        // A failing write keeps nothing.
        let failed = store.write(|tx| {
            tx.put(None, &item("ghost", Priority::Urgent, 9))?;
            Err::<(), _>(QueueError::Conflict("no".into()))
        });
        assert!(failed.is_err());
        assert_eq!(store.read(|s| s.item("ghost")).unwrap(), None);
        assert_eq!(store.last_seq(), 2);
    }

    #[test]
    fn a_store_in_the_previous_layout_lists_and_claims_after_a_restart() {
        use crate::queue::operations::{claim, recover, RESTART_POLICY};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.redb");
        let waiting_id = {
            let mut store = Store::open(&path).unwrap();
            let ((), _) = store
                .write(|tx| {
                    let mut waiting = item("waiting", Priority::Urgent, 0);
                    waiting.retry_at = Some(tx.now + chrono::Duration::hours(1));
                    tx.put(None, &waiting)?;
                    for i in 0..5 {
                        tx.put(None, &item(&format!("ready-{i}"), Priority::Low, i))?;
                    }
                    // What the previous release wrote: no list-order index, and an item in
                    // its backoff kept in the claim index.
                    tx.item_order.retain(|_, _| false)?;
                    tx.retry_wait.retain(|_, _| false)?;
                    tx.claimable.insert(claim_key(&waiting).as_slice(), ())?;
                    Ok(())
                })
                .unwrap();
            "waiting".to_string()
        };
        let mut store = Store::open(&path).unwrap();
        store.write(|tx| recover(tx, &RESTART_POLICY)).unwrap();
        let page = store
            .read(|snap| snap.items_page(None, 10, |_| true))
            .unwrap();
        let ids: Vec<&str> = page.items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(
            ids,
            ["waiting", "ready-0", "ready-1", "ready-2", "ready-3", "ready-4"]
        );
        let (claimed, _) = store
            .write(|tx| claim(tx, "agent", "key", &Default::default()))
            .unwrap();
        assert_eq!(claimed.map(|c| c.item.id).as_deref(), Some("ready-0"));
        let moved = store
            .read(|snap| {
                let table = snap.txn.open_table(RETRY_WAIT)?;
                let first = table.iter()?.next().transpose()?;
                Ok(first.map(|(k, _)| k.value().to_vec()))
            })
            .unwrap();
        assert!(
            moved.is_some_and(|k| k.ends_with(waiting_id.as_bytes())),
            "the item in its backoff moved to the retry index"
        );
    }

    #[test]
    fn items_an_older_release_wrote_are_listed_with_every_field_after_a_restart() {
        use crate::queue::operations::{recover, RESTART_POLICY};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.redb");
        let whole = item("old", Priority::High, 0);
        {
            let mut store = Store::open(&path).unwrap();
            let ((), _) = store
                .write(|tx| {
                    tx.put(None, &whole)?;
                    // What an older release stored: the fields added since are missing, and
                    // the store names no item shape.
                    let mut text = serde_json::to_value(&whole)?;
                    let fields = text.as_object_mut().unwrap();
                    for gone in ["requires", "waitingOnPerson", "report", "tokensUsed"] {
                        assert!(fields.remove(gone).is_some(), "{gone} is stored");
                    }
                    tx.items
                        .insert("old", serde_json::to_vec(&text)?.as_slice())?;
                    tx.meta.remove(item_json::SHAPE_KEY)?;
                    Ok(())
                })
                .unwrap();
            let listed = store.read(|s| s.items_json_page(None, 10, None)).unwrap();
            assert!(!listed.json.contains("waitingOnPerson"), "{}", listed.json);
        }
        let mut store = Store::open(&path).unwrap();
        store.write(|tx| recover(tx, &RESTART_POLICY)).unwrap();
        let listed = store.read(|s| s.items_json_page(None, 10, None)).unwrap();
        assert_eq!(
            listed.json,
            serde_json::to_string(&[&whole]).unwrap(),
            "the listing is the item with every field"
        );
        // A second start finds the shape recorded and rewrites nothing.
        let (again, _) = store.write(|tx| tx.reshape_items()).unwrap();
        assert_eq!(again, 0);
    }

    #[test]
    fn a_read_during_a_reopen_waits_for_the_new_handle_and_a_closed_store_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.redb");
        let store = Store::open(&path).unwrap();
        let reader = store.reader();
        reader.set(Handle::Reopening);
        let waiting = {
            let reader = reader.clone();
            std::thread::spawn(move || reader.read(|snap| snap.count(Status::Ready)))
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !waiting.is_finished(),
            "a read during a reopen answered at once"
        );
        reader.set_open(store.db.clone());
        assert_eq!(waiting.join().unwrap().unwrap(), 0);
        drop(store);
        let closed = reader.read(|snap| snap.count(Status::Ready));
        assert!(matches!(closed, Err(QueueError::Storage(m)) if m.contains("closed")));
    }
}
