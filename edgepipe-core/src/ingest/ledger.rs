//! The shared dedup ledger of ingest replicas, in PostgreSQL (feature `postgres`).
//!
//! Several `edgepipe-ingest` processes behind one load balancer share the same
//! [`Dedup`](super::Dedup) state here instead of each keeping a journal:
//!
//! - `edgepipe_dedup_batches`: one row per batch store key (the primary key is the
//!   uniqueness constraint), `pending` while its files are being written and
//!   `committed` once they are, with the replica that wrote it, when, and the
//!   sources of its records;
//! - `edgepipe_dedup_ranges`: per (source, epoch) the stored sequence ranges.
//!
//! Who may write is decided by PostgreSQL *session advisory locks*, held by the
//! replica's connection: one on the batch key and one per source of the batch's
//! records, taken in one global order (by lock id) before the checks and released
//! after the commit. A replica that dies closes its connection and PostgreSQL
//! releases its locks; a `pending` row whose locks someone else now holds was
//! therefore left by a dead (or failed) writer, and is reconciled from what the
//! store holds (`Store::recover`) by whoever meets it first. The argument is in
//! `docs/ingest.md` ("Many replicas").

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::time::Duration;

use postgres::{Client, NoTls};
use sha2::{Digest, Sha256};

use super::dedup::{RangeSet, Retention, StreamKey, collapse};
use crate::batch::codec::columnar::parse_sequence_id;
use crate::error::{Error, Result};
use crate::record::DataRecord;

/// Commits between two retention prunes (pruning scans the batch table).
const PRUNE_EVERY: u64 = 1024;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS edgepipe_dedup_batches (
    key     text PRIMARY KEY,
    state   text NOT NULL CHECK (state IN ('pending', 'committed')),
    owner   text NOT NULL,
    at      bigint NOT NULL,
    sources text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS edgepipe_dedup_batches_pending
    ON edgepipe_dedup_batches (key) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS edgepipe_dedup_batches_at
    ON edgepipe_dedup_batches (at) WHERE state = 'committed';
CREATE TABLE IF NOT EXISTS edgepipe_dedup_ranges (
    source text NOT NULL,
    epoch  bigint NOT NULL,
    first  bigint NOT NULL,
    last   bigint NOT NULL,
    PRIMARY KEY (source, epoch, first)
);";

/// One advisory lock: a batch key or a source.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum LockName {
    Batch(String),
    Source(String),
}

impl LockName {
    /// The lock's 64-bit id. Two names sharing an id (a hash collision) only
    /// serialise more than needed; the order of acquisition is by id, so no two
    /// replicas ever wait on each other in a cycle.
    fn id(&self) -> i64 {
        let (kind, name) = match self {
            LockName::Batch(key) => ("batch", key),
            LockName::Source(source) => ("source", source),
        };
        let mut hasher = Sha256::new();
        hasher.update(b"edgepipe-dedup\0");
        hasher.update(kind.as_bytes());
        hasher.update(b"\0");
        hasher.update(name.as_bytes());
        let digest = hasher.finalize();
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        i64::from_be_bytes(bytes)
    }
}

/// Sequence numbers are `u64`, PostgreSQL's `bigint` is signed: flipping the top bit
/// maps one onto the other keeping the order, so range comparisons work in SQL.
fn encode(value: u64) -> i64 {
    (value ^ (1 << 63)) as i64
}

fn decode(value: i64) -> u64 {
    (value as u64) ^ (1 << 63)
}

fn ledger_error(context: impl Into<String>, error: &postgres::Error) -> Error {
    let message = match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut text = error.to_string();
            if let Some(source) = std::error::Error::source(error) {
                text.push_str(": ");
                text.push_str(&source.to_string());
            }
            text
        }
    };
    Error::Ledger {
        context: context.into(),
        message,
    }
}

/// The dedup state shared by ingest replicas, in a PostgreSQL database, over one
/// connection (the connection *is* the replica's liveness: its locks go with it).
///
/// [`Receiver::with_ledger`](super::Receiver::with_ledger) drives it; its methods are
/// public for tests and tools. Any failure drops the connection (releasing every
/// lock and rolling back whatever was open), and the next call connects again.
pub struct PgLedger {
    url: String,
    client: Option<Client>,
    owner: String,
    retention: Retention,
    lock_timeout: Duration,
    held: BTreeSet<LockName>,
    commits: u64,
}

impl fmt::Debug for PgLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password.
        f.debug_struct("PgLedger")
            .field("owner", &self.owner)
            .field("retention", &self.retention)
            .field("lock_timeout", &self.lock_timeout)
            .field("connected", &self.client.is_some())
            .finish_non_exhaustive()
    }
}

/// A batch row left `pending`: its key and the sources its writer locked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingBatch {
    /// The batch's store key.
    pub key: String,
    /// The sources of its records.
    pub sources: Vec<String>,
}

impl PgLedger {
    /// Connects to `url` (a libpq-style URL or key=value string, e.g.
    /// `postgresql://edgepipe@db:5432/ingest`) and creates the tables when missing.
    /// Lock waits are bounded by 5 seconds ([`set_lock_timeout`](Self::set_lock_timeout)).
    pub fn connect(url: &str, retention: Retention) -> Result<Self> {
        let mut ledger = PgLedger {
            url: url.to_owned(),
            client: None,
            owner: format!("pid {}", std::process::id()),
            retention,
            lock_timeout: Duration::from_secs(5),
            held: BTreeSet::new(),
            commits: 0,
        };
        let client = ledger.client()?;
        // Two replicas starting together would race on the catalog; a
        // transaction-scoped advisory lock lets one create while the other waits.
        let result = (|| {
            let mut tx = client.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock(7345003)", &[])?;
            tx.batch_execute(SCHEMA)?;
            tx.commit()
        })();
        result.map_err(|e| ledger.fail("creating the tables", &e))?;
        Ok(ledger)
    }

    /// Names this replica in the rows it writes (default `pid N`); for operators.
    pub fn with_owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    /// How long a lock is waited for before the batch is refused with 503 (applies
    /// from the next connection; the current one is dropped).
    pub fn set_lock_timeout(&mut self, timeout: Duration) {
        self.lock_timeout = timeout;
        self.disconnect();
    }

    /// Closes the connection: PostgreSQL releases every lock it held and rolls back
    /// what was open. The next call connects again. (What a crash does; also the
    /// test seam for one.)
    pub fn disconnect(&mut self) {
        self.client = None;
        self.held.clear();
    }

    fn client(&mut self) -> Result<&mut Client> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.disconnect();
        }
        if self.client.is_none() {
            let mut client = Client::connect(&self.url, NoTls)
                .map_err(|e| ledger_error("connecting to PostgreSQL", &e))?;
            let millis = self.lock_timeout.as_millis().max(1);
            client
                .batch_execute(&format!(
                    "SET lock_timeout = {millis}; SET application_name = 'edgepipe-ingest'"
                ))
                .map_err(|e| ledger_error("configuring the session", &e))?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// Maps a database error, dropping the connection so no lock or transaction
    /// outlives the failure.
    fn fail(&mut self, context: impl Into<String>, error: &postgres::Error) -> Error {
        self.disconnect();
        ledger_error(context, error)
    }

    /// True when a batch with this store key was committed and is still remembered.
    pub fn has_batch(&mut self, key: &str) -> Result<bool> {
        let rows = self
            .client()?
            .query(
                "SELECT 1 FROM edgepipe_dedup_batches WHERE key = $1 AND state = 'committed'",
                &[&key],
            )
            .map_err(|e| ledger_error("looking up a batch", &e));
        match rows {
            Ok(rows) => Ok(!rows.is_empty()),
            Err(error) => {
                self.disconnect();
                Err(error)
            }
        }
    }

    /// Takes the locks of batch `key` and of `sources`, and reconciles every
    /// abandoned `pending` batch they cover (its key or one of its sources),
    /// taking that batch's locks too. Blocks up to the lock timeout per lock.
    pub fn acquire(
        &mut self,
        key: &str,
        sources: &BTreeSet<String>,
        recover: &mut dyn FnMut(&str) -> Result<Vec<DataRecord>>,
    ) -> Result<()> {
        let mut wanted: BTreeSet<LockName> =
            sources.iter().cloned().map(LockName::Source).collect();
        wanted.insert(LockName::Batch(key.to_owned()));
        loop {
            self.lock_all(&wanted)?;
            let abandoned = self.pending_covered()?;
            let mut widened = false;
            for batch in &abandoned {
                for name in batch.lock_names() {
                    widened |= wanted.insert(name);
                }
            }
            if widened {
                // Locks are only ever taken in id order from none held, so they are
                // given back and taken again with the abandoned batches' ones.
                self.release()?;
                continue;
            }
            for batch in abandoned {
                self.reconcile_held(&batch.key, recover)?;
            }
            return Ok(());
        }
    }

    fn lock_all(&mut self, names: &BTreeSet<LockName>) -> Result<()> {
        let mut ordered: Vec<(i64, &LockName)> = names.iter().map(|n| (n.id(), n)).collect();
        ordered.sort();
        ordered.dedup_by_key(|(id, _)| *id);
        for (id, name) in ordered {
            if self.held.contains(name) {
                continue;
            }
            let result = self
                .client()?
                .execute("SELECT pg_advisory_lock($1)", &[&id]);
            if let Err(error) = result {
                return Err(self.fail(format!("locking {name:?}"), &error));
            }
            self.held.insert(name.clone());
        }
        // Names sharing an id with one locked above are held through it.
        self.held.extend(names.iter().cloned());
        Ok(())
    }

    /// Gives back every lock this connection holds.
    pub fn release(&mut self) -> Result<()> {
        if self.held.is_empty() || self.client.is_none() {
            self.held.clear();
            return Ok(());
        }
        let result = self
            .client()?
            .execute("SELECT pg_advisory_unlock_all()", &[]);
        self.held.clear();
        result
            .map(drop)
            .map_err(|e| self.fail("releasing the locks", &e))
    }

    /// Pending rows covered by a lock held now: their writers are gone.
    fn pending_covered(&mut self) -> Result<Vec<PendingBatch>> {
        let mut keys = Vec::new();
        let mut sources = Vec::new();
        for name in &self.held {
            match name {
                LockName::Batch(key) => keys.push(key.clone()),
                LockName::Source(source) => sources.push(source.clone()),
            }
        }
        let rows = self.client()?.query(
            "SELECT key, sources FROM edgepipe_dedup_batches \
             WHERE state = 'pending' AND (key = ANY($1) OR sources && $2)",
            &[&keys, &sources],
        );
        match rows {
            Ok(rows) => Ok(rows
                .iter()
                .map(|row| PendingBatch {
                    key: row.get(0),
                    sources: row.get(1),
                })
                .collect()),
            Err(error) => Err(self.fail("finding pending batches", &error)),
        }
    }

    /// Every batch row left `pending` (by a writer alive or not).
    pub fn pending(&mut self) -> Result<Vec<PendingBatch>> {
        let rows = self.client()?.query(
            "SELECT key, sources FROM edgepipe_dedup_batches WHERE state = 'pending' ORDER BY key",
            &[],
        );
        match rows {
            Ok(rows) => Ok(rows
                .iter()
                .map(|row| PendingBatch {
                    key: row.get(0),
                    sources: row.get(1),
                })
                .collect()),
            Err(error) => Err(self.fail("listing pending batches", &error)),
        }
    }

    /// Reconciles the pending batches whose writers are gone (their locks are free),
    /// skipping those still being written: what start-up does.
    pub fn reconcile_abandoned(
        &mut self,
        recover: &mut dyn FnMut(&str) -> Result<Vec<DataRecord>>,
    ) -> Result<usize> {
        let mut reconciled = 0;
        for batch in self.pending()? {
            let mut ordered: Vec<(i64, LockName)> =
                batch.lock_names().map(|n| (n.id(), n)).collect();
            ordered.sort();
            ordered.dedup_by_key(|(id, _)| *id);
            let mut all = true;
            for (id, name) in ordered {
                let row = self
                    .client()?
                    .query_one("SELECT pg_try_advisory_lock($1)", &[&id]);
                match row {
                    Ok(row) if row.get::<_, bool>(0) => {
                        self.held.insert(name);
                    }
                    Ok(_) => {
                        all = false;
                        break;
                    }
                    Err(error) => return Err(self.fail("trying a lock", &error)),
                }
            }
            if all {
                // Someone may have settled it between the listing and the locks.
                let still = self.client()?.query(
                    "SELECT 1 FROM edgepipe_dedup_batches WHERE key = $1 AND state = 'pending'",
                    &[&batch.key],
                );
                match still {
                    Ok(rows) if !rows.is_empty() => {
                        self.reconcile_held(&batch.key, recover)?;
                        reconciled += 1;
                    }
                    Ok(_) => {}
                    Err(error) => return Err(self.fail("re-reading a pending batch", &error)),
                }
            }
            self.release()?;
        }
        Ok(reconciled)
    }

    /// Settles an abandoned pending batch whose locks are held: the records its
    /// interrupted write left in the store are recorded as stored (by sequence
    /// range), and its key is forgotten (its files may be partial, so a retry
    /// stores the rest), as the journal's reconcile does.
    fn reconcile_held(
        &mut self,
        key: &str,
        recover: &mut dyn FnMut(&str) -> Result<Vec<DataRecord>>,
    ) -> Result<()> {
        let records = recover(key)?;
        let ids = records
            .iter()
            .filter_map(|r| parse_sequence_id(&r.record_id))
            .map(|(source, epoch, sequence)| (source.to_owned(), epoch, sequence))
            .collect();
        let ranges = collapse(ids);
        let result = (|| {
            let client = self.client.as_mut().expect("locks held, so connected");
            let mut tx = client.transaction()?;
            merge_ranges(&mut tx, &ranges)?;
            tx.execute(
                "DELETE FROM edgepipe_dedup_batches WHERE key = $1 AND state = 'pending'",
                &[&key],
            )?;
            tx.commit()
        })();
        result.map_err(|e| self.fail(format!("reconciling batch {key}"), &e))
    }

    /// The stored ranges of each stream, restricted to the span of `sequences`
    /// (`(source, epoch)` → lowest and highest sequence number asked about).
    pub fn stored_ranges(
        &mut self,
        spans: &HashMap<StreamKey, (u64, u64)>,
    ) -> Result<HashMap<StreamKey, RangeSet>> {
        let mut out = HashMap::new();
        for ((source, epoch), (low, high)) in spans {
            let rows = self.client()?.query(
                "SELECT first, last FROM edgepipe_dedup_ranges \
                 WHERE source = $1 AND epoch = $2 AND last >= $3 AND first <= $4",
                &[source, &encode(*epoch), &encode(*low), &encode(*high)],
            );
            let rows = match rows {
                Ok(rows) => rows,
                Err(error) => return Err(self.fail("reading sequence ranges", &error)),
            };
            let mut set = RangeSet::default();
            for row in rows {
                set.insert(decode(row.get(0)), decode(row.get(1)));
            }
            out.insert((source.clone(), *epoch), set);
        }
        Ok(out)
    }

    /// Records that `key` is about to be written (a `pending` row, committed before
    /// any file is written), with the sources it holds locks on.
    pub fn begin(&mut self, key: &str, sources: &BTreeSet<String>, now: u64) -> Result<()> {
        let sources: Vec<&String> = sources.iter().collect();
        let owner = self.owner.clone();
        let result = self.client()?.execute(
            "INSERT INTO edgepipe_dedup_batches (key, state, owner, at, sources) \
             VALUES ($1, 'pending', $2, $3, $4) \
             ON CONFLICT (key) DO UPDATE SET state = 'pending', owner = EXCLUDED.owner, \
             at = EXCLUDED.at, sources = EXCLUDED.sources",
            &[&key, &owner, &(now as i64), &sources],
        );
        result
            .map(drop)
            .map_err(|e| self.fail(format!("beginning batch {key}"), &e))
    }

    /// Records, in one transaction, that `key` is stored with these
    /// `(source, epoch, first, last)` ranges.
    pub fn commit(
        &mut self,
        key: &str,
        now: u64,
        ranges: &[(String, u64, u64, u64)],
    ) -> Result<()> {
        let owner = self.owner.clone();
        let result = (|| {
            let mut tx = self
                .client()?
                .transaction()
                .map_err(|e| ledger_error("", &e))?;
            let written = (|| {
                merge_ranges(&mut tx, ranges)?;
                tx.execute(
                    "INSERT INTO edgepipe_dedup_batches (key, state, owner, at) \
                     VALUES ($1, 'committed', $2, $3) \
                     ON CONFLICT (key) DO UPDATE SET state = 'committed', \
                     owner = EXCLUDED.owner, at = EXCLUDED.at, sources = '{}'",
                    &[&key, &owner, &(now as i64)],
                )?;
                Ok::<(), postgres::Error>(())
            })();
            match written {
                Ok(()) => tx.commit().map_err(|e| ledger_error("", &e)),
                Err(e) => Err(ledger_error("", &e)),
            }
        })();
        if let Err(Error::Ledger { message, .. }) = result {
            self.disconnect();
            return Err(Error::Ledger {
                context: format!("committing batch {key}"),
                message,
            });
        }
        result?;
        self.commits += 1;
        if self.commits.is_multiple_of(PRUNE_EVERY) {
            // The batch is committed whatever pruning does; a failure here only
            // delays it to the next round.
            let _ = self.prune(now);
        }
        Ok(())
    }

    /// Forgets committed batch keys past the retention (age, then count). Sequence
    /// ranges are never forgotten. Returns the number of keys removed.
    pub fn prune(&mut self, now: u64) -> Result<u64> {
        let oldest = now.saturating_sub(self.retention.batch_id_seconds) as i64;
        let keep = i64::try_from(self.retention.max_batch_ids).unwrap_or(i64::MAX);
        let result = (|| {
            let client = self.client()?;
            let aged = client
                .execute(
                    "DELETE FROM edgepipe_dedup_batches WHERE state = 'committed' AND at < $1",
                    &[&oldest],
                )
                .map_err(|e| ledger_error("", &e))?;
            let over = client
                .execute(
                    "DELETE FROM edgepipe_dedup_batches WHERE key IN (\
                     SELECT key FROM edgepipe_dedup_batches WHERE state = 'committed' \
                     ORDER BY at DESC, key DESC OFFSET $1)",
                    &[&keep],
                )
                .map_err(|e| ledger_error("", &e))?;
            Ok::<u64, Error>(aged + over)
        })();
        result.map_err(|error| {
            self.disconnect();
            match error {
                Error::Ledger { message, .. } => Error::Ledger {
                    context: "pruning batch keys".into(),
                    message,
                },
                other => other,
            }
        })
    }

    /// Number of committed batch keys remembered.
    pub fn batch_ids(&mut self) -> Result<u64> {
        let row = self.client()?.query_one(
            "SELECT count(*) FROM edgepipe_dedup_batches WHERE state = 'committed'",
            &[],
        );
        match row {
            Ok(row) => Ok(row.get::<_, i64>(0) as u64),
            Err(error) => Err(self.fail("counting batch keys", &error)),
        }
    }

    /// The stored ranges of one stream, all of them.
    pub fn stream(&mut self, source: &str, epoch: u64) -> Result<RangeSet> {
        let spans = HashMap::from([((source.to_owned(), epoch), (0, u64::MAX))]);
        Ok(self
            .stored_ranges(&spans)?
            .remove(&(source.to_owned(), epoch))
            .unwrap_or_default())
    }
}

impl PendingBatch {
    fn lock_names(&self) -> impl Iterator<Item = LockName> + '_ {
        std::iter::once(LockName::Batch(self.key.clone()))
            .chain(self.sources.iter().cloned().map(LockName::Source))
    }
}

/// Merges `(source, epoch, first, last)` ranges into the table: each new range
/// absorbs the stored ones it overlaps or touches. Only safe under the sources'
/// locks (a read-modify-write).
fn merge_ranges(
    tx: &mut postgres::Transaction<'_>,
    ranges: &[(String, u64, u64, u64)],
) -> std::result::Result<(), postgres::Error> {
    let mut by_stream: BTreeMap<(&str, u64), RangeSet> = BTreeMap::new();
    for (source, epoch, first, last) in ranges {
        by_stream
            .entry((source.as_str(), *epoch))
            .or_default()
            .insert(*first, *last);
    }
    for ((source, epoch), set) in by_stream {
        for (first, last) in set.ranges() {
            let rows = tx.query(
                "DELETE FROM edgepipe_dedup_ranges \
                 WHERE source = $1 AND epoch = $2 AND last >= $3 AND first <= $4 \
                 RETURNING first, last",
                &[
                    &source,
                    &encode(epoch),
                    &encode(first.saturating_sub(1)),
                    &encode(last.saturating_add(1)),
                ],
            )?;
            let (mut low, mut high) = (first, last);
            for row in rows {
                low = low.min(decode(row.get(0)));
                high = high.max(decode(row.get(1)));
            }
            tx.execute(
                "INSERT INTO edgepipe_dedup_ranges (source, epoch, first, last) \
                 VALUES ($1, $2, $3, $4)",
                &[&source, &encode(epoch), &encode(low), &encode(high)],
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_keeps_order() {
        let values = [
            0,
            1,
            41,
            1 << 62,
            (1 << 63) - 1,
            1 << 63,
            u64::MAX - 1,
            u64::MAX,
        ];
        for pair in values.windows(2) {
            assert!(encode(pair[0]) < encode(pair[1]), "{pair:?}");
        }
        for value in values {
            assert_eq!(decode(encode(value)), value);
        }
    }

    #[test]
    fn lock_ids_differ_by_kind() {
        let batch = LockName::Batch("a".into()).id();
        let source = LockName::Source("a".into()).id();
        assert_ne!(batch, source);
        assert_eq!(batch, LockName::Batch("a".into()).id());
    }
}
