//! The receiver: one request in, one typed [`Outcome`] out (the HTTP protocol's
//! responses, see `docs/wire-http.md`). Synchronous and free of network code, so
//! the server, the fuzz target and the tests all drive the same function.

use std::fmt;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{Deserializer as _, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::dedup::{Dedup, Retention, collapse};
#[cfg(feature = "postgres")]
use super::ledger::PgLedger;
use super::store::{
    DataLakeStore, JsonlQuarantine, QuarantineStore, QuarantinedRecord, Store, store_key,
};
use crate::batch::codec::columnar::parse_sequence_id;
use crate::batch::compression;
use crate::batch::{Codec, Compression, DecodeLimits, sha256_hex, signature};
use crate::error::{Error, Result};
use crate::record::DataRecord;

/// What the receiver accepts and from whom.
#[derive(Clone)]
pub struct ReceiverConfig {
    /// Accepted `X-API-Key` values (compared in constant time). Empty refuses every request.
    pub api_keys: Vec<String>,
    /// Key of the `X-Edgepipe-Signature` HMAC-SHA256; a signature that is present is
    /// checked whenever a key is set.
    pub hmac_key: Option<Vec<u8>>,
    /// Refuse requests without a signature (needs `hmac_key`).
    pub require_signature: bool,
    /// Bounds on the body, its decompressed size, records and nesting.
    pub limits: DecodeLimits,
    /// How long batch ids are remembered.
    pub retention: Retention,
    /// `Retry-After` seconds sent with a 503.
    pub retry_after_seconds: u64,
}

impl fmt::Debug for ReceiverConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets are never printed.
        f.debug_struct("ReceiverConfig")
            .field("api_keys", &format_args!("[{} keys]", self.api_keys.len()))
            .field("hmac_key", &self.hmac_key.as_ref().map(|_| "<set>"))
            .field("require_signature", &self.require_signature)
            .field("limits", &self.limits)
            .field("retention", &self.retention)
            .field("retry_after_seconds", &self.retry_after_seconds)
            .finish()
    }
}

impl ReceiverConfig {
    /// Default limits and retention, accepting the given API keys.
    pub fn new<I, S>(api_keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ReceiverConfig {
            api_keys: api_keys.into_iter().map(Into::into).collect(),
            hmac_key: None,
            require_signature: false,
            limits: DecodeLimits::default(),
            retention: Retention::default(),
            retry_after_seconds: 5,
        }
    }
}

/// One `POST /api/ingest`: its headers (names in any case) and its body as sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestRequest {
    /// Header name and value pairs.
    pub headers: Vec<(String, String)>,
    /// The body, still compressed.
    pub body: Vec<u8>,
}

impl IngestRequest {
    /// A request with this body and no headers.
    pub fn new(body: impl Into<Vec<u8>>) -> Self {
        IngestRequest {
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The first value of header `name`, compared case-insensitively.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The answer to a request; each variant is one response of the protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 200 `ok`: the batch is stored (valid records to the store, invalid ones to
    /// the quarantine, records already stored dropped).
    Stored {
        /// The `X-Batch-ID`.
        batch_id: String,
        /// Records stored.
        accepted: u64,
        /// Records sent to the quarantine.
        quarantined: u64,
        /// Records dropped because they were stored before.
        duplicate: u64,
    },
    /// 200 `duplicate`: the whole batch was stored before.
    Duplicate {
        /// The `X-Batch-ID`.
        batch_id: String,
    },
    /// 401: wrong API key or signature.
    Unauthorized {
        /// `Invalid API key` or `Invalid signature`.
        detail: &'static str,
    },
    /// 400: a batch that cannot be read.
    BadRequest {
        /// Why (`Invalid gzip data`, `Invalid JSON`, a checksum mismatch, …).
        detail: String,
    },
    /// 413: a body, decompressed size or record count over its limit.
    TooLarge {
        /// Which limit.
        detail: String,
    },
    /// 422: required headers missing (FastAPI's validation error).
    MissingHeaders {
        /// The missing headers, lowercase.
        headers: Vec<&'static str>,
    },
    /// 503 with `Retry-After`: the batch could not be stored now; retrying is safe.
    Unavailable {
        /// What failed.
        detail: String,
        /// Seconds to wait.
        retry_after_seconds: u64,
    },
}

impl Outcome {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            Outcome::Stored { .. } | Outcome::Duplicate { .. } => 200,
            Outcome::Unauthorized { .. } => 401,
            Outcome::BadRequest { .. } => 400,
            Outcome::TooLarge { .. } => 413,
            Outcome::MissingHeaders { .. } => 422,
            Outcome::Unavailable { .. } => 503,
        }
    }

    /// The JSON body, in the seed FastAPI service's shapes.
    pub fn body(&self) -> String {
        let value = match self {
            Outcome::Stored {
                batch_id,
                accepted,
                quarantined,
                duplicate,
            } => serde_json::json!({
                "status": "ok",
                "batch_id": batch_id,
                "records_accepted": accepted,
                "records_quarantined": quarantined,
                "records_duplicate": duplicate,
            }),
            Outcome::Duplicate { batch_id } => {
                serde_json::json!({"status": "duplicate", "batch_id": batch_id})
            }
            Outcome::Unauthorized { detail } => serde_json::json!({ "detail": detail }),
            Outcome::BadRequest { detail }
            | Outcome::TooLarge { detail }
            | Outcome::Unavailable { detail, .. } => serde_json::json!({ "detail": detail }),
            Outcome::MissingHeaders { headers } => {
                let detail: Vec<_> = headers
                    .iter()
                    .map(|h| {
                        serde_json::json!({
                            "type": "missing",
                            "loc": ["header", h],
                            "msg": "Field required",
                            "input": null,
                        })
                    })
                    .collect();
                serde_json::json!({ "detail": detail })
            }
        };
        value.to_string()
    }

    /// `Retry-After` seconds, for a 503.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Outcome::Unavailable {
                retry_after_seconds,
                ..
            } => Some(*retry_after_seconds),
            _ => None,
        }
    }
}

/// Where a simulated crash stops a request (a test seam for the crash-window
/// proofs): nothing after the point runs, and the receiver refuses everything until
/// it is dropped and opened again, as a killed process would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// After the journal's `begin`, before any file is written.
    AfterBegin,
    /// After the store and quarantine writes, before the journal's `commit`.
    AfterStore,
    /// After the `commit`, before the response (the response is lost).
    AfterCommit,
}

/// Counters, read by `GET /metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Batches stored (`ok`).
    pub batches_stored: AtomicU64,
    /// Batches answered `duplicate`.
    pub batches_duplicate: AtomicU64,
    /// Records stored.
    pub records_accepted: AtomicU64,
    /// Records quarantined.
    pub records_quarantined: AtomicU64,
    /// Records dropped as already stored.
    pub records_duplicate: AtomicU64,
    /// Request body bytes received.
    pub bytes_received: AtomicU64,
    rejected: [AtomicU64; REJECT_STATUSES.len()],
}

/// The statuses counted in `edgepipe_ingest_rejected_total`; the last slot counts any other.
const REJECT_STATUSES: [u16; 7] = [400, 401, 404, 413, 422, 503, 0];

impl Metrics {
    /// Counts one rejected request by its status.
    pub fn count_reject(&self, status: u16) {
        let slot = REJECT_STATUSES
            .iter()
            .position(|&s| s == status)
            .unwrap_or(REJECT_STATUSES.len() - 1);
        self.rejected[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests rejected with `status`.
    pub fn rejected(&self, status: u16) -> u64 {
        REJECT_STATUSES
            .iter()
            .position(|&s| s == status)
            .map_or(0, |slot| self.rejected[slot].load(Ordering::Relaxed))
    }

    /// The counters in the Prometheus text exposition format.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            ));
        };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            "edgepipe_ingest_batches_total",
            "Batches stored.",
            get(&self.batches_stored),
        );
        counter(
            "edgepipe_ingest_batches_duplicate_total",
            "Batches answered duplicate (already stored).",
            get(&self.batches_duplicate),
        );
        counter(
            "edgepipe_ingest_records_accepted_total",
            "Records stored.",
            get(&self.records_accepted),
        );
        counter(
            "edgepipe_ingest_records_quarantined_total",
            "Records refused by validation and quarantined.",
            get(&self.records_quarantined),
        );
        counter(
            "edgepipe_ingest_records_duplicate_total",
            "Records dropped because they were already stored.",
            get(&self.records_duplicate),
        );
        counter(
            "edgepipe_ingest_bytes_total",
            "Request body bytes received.",
            get(&self.bytes_received),
        );
        out.push_str("# HELP edgepipe_ingest_rejected_total Requests refused, by status.\n");
        out.push_str("# TYPE edgepipe_ingest_rejected_total counter\n");
        for (slot, status) in REJECT_STATUSES.iter().enumerate() {
            let label = if *status == 0 {
                "other".to_owned()
            } else {
                status.to_string()
            };
            out.push_str(&format!(
                "edgepipe_ingest_rejected_total{{status=\"{label}\"}} {}\n",
                self.rejected[slot].load(Ordering::Relaxed)
            ));
        }
        out
    }
}

/// Where the dedup state lives: this process's journal, or the ledger shared by
/// every replica.
enum DedupState {
    Journal(Dedup),
    /// Boxed: one per receiver, and the journal variant stays small.
    #[cfg(feature = "postgres")]
    Ledger(Box<PgLedger>),
}

impl DedupState {
    /// The fast check made before decoding; a ledger that cannot answer says no,
    /// and the store step, which must reach it too, answers 503.
    fn has_batch(&mut self, key: &str) -> bool {
        match self {
            DedupState::Journal(dedup) => dedup.has_batch(key),
            #[cfg(feature = "postgres")]
            DedupState::Ledger(ledger) => ledger.has_batch(key).unwrap_or(false),
        }
    }
}

struct State {
    dedup: DedupState,
    store: Box<dyn Store>,
    quarantine: Box<dyn QuarantineStore>,
}

/// The ingest receiver: authenticates, bounds, decodes, validates, deduplicates
/// and stores one batch per [`handle`](Receiver::handle) call. Thread-safe: decoding
/// runs in the caller's thread, the store and journal writes one batch at a time.
///
/// ```
/// use edgepipe_core::ingest::{IngestRequest, Outcome, Receiver, ReceiverConfig};
///
/// let dir = tempfile::tempdir()?;
/// let receiver = Receiver::open(ReceiverConfig::new(["k1"]), dir.path())?;
/// let body = br#"[{"record_id":"r1","device_id":"dev-1","timestamp":"2026-01-01T00:00:00Z","data_type":"sensors","payload":{"t":1.5},"metadata":{}},{"record_id":"r2"}]"#;
/// let request = IngestRequest::new(&body[..]).header("X-API-Key", "k1").header("X-Batch-ID", "b1");
/// let outcome = receiver.handle(&request);
/// assert_eq!(outcome, Outcome::Stored { batch_id: "b1".into(), accepted: 1, quarantined: 1, duplicate: 0 });
/// // A retry after a lost response is recognised.
/// assert_eq!(receiver.handle(&request), Outcome::Duplicate { batch_id: "b1".into() });
/// assert!(dir.path().join("lake/date=2026-01-01/device=dev-1/part-b1.jsonl").exists());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Receiver {
    config: ReceiverConfig,
    state: Mutex<State>,
    metrics: Metrics,
    crash_at: Mutex<Option<CrashPoint>>,
    crashed: AtomicBool,
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Receiver {
    /// A receiver storing under `dir`: `lake/` (the [`DataLakeStore`]),
    /// `quarantine/` ([`JsonlQuarantine`]) and `dedup.journal`. Batches a crash
    /// interrupted are reconciled before this returns.
    pub fn open(config: ReceiverConfig, dir: &Path) -> Result<Self> {
        let store = DataLakeStore::open(dir.join("lake"))?;
        let quarantine = JsonlQuarantine::open(dir.join("quarantine"))?;
        let dedup = Dedup::open(dir.join("dedup.journal"), config.retention, now_seconds())?;
        Self::with_parts(config, dedup, Box::new(store), Box::new(quarantine))
    }

    /// A receiver over any stores and dedup state (e.g. [`Dedup::in_memory`] and a
    /// [`MemoryStore`](super::MemoryStore) in tests).
    pub fn with_parts(
        config: ReceiverConfig,
        mut dedup: Dedup,
        mut store: Box<dyn Store>,
        quarantine: Box<dyn QuarantineStore>,
    ) -> Result<Self> {
        reconcile(&mut dedup, store.as_mut())?;
        let state = State {
            dedup: DedupState::Journal(dedup),
            store,
            quarantine,
        };
        Ok(Self::from_state(config, state))
    }

    /// A receiver whose dedup state is the [`PgLedger`] shared with other replicas
    /// (feature `postgres`), over stores the replicas share (the same lake volume).
    /// Pending batches that replicas which died left behind are reconciled before
    /// this returns (those still being written by live replicas are left to them).
    #[cfg(feature = "postgres")]
    pub fn with_ledger(
        config: ReceiverConfig,
        mut ledger: PgLedger,
        mut store: Box<dyn Store>,
        quarantine: Box<dyn QuarantineStore>,
    ) -> Result<Self> {
        ledger.reconcile_abandoned(&mut |key| store.recover(key))?;
        let state = State {
            dedup: DedupState::Ledger(Box::new(ledger)),
            store,
            quarantine,
        };
        Ok(Self::from_state(config, state))
    }

    /// [`open`](Self::open) for one of many replicas: `lake/` and `quarantine/` under
    /// `dir` (a volume every replica mounts) and the dedup ledger at `postgres_url`;
    /// nothing under `dir` belongs to this replica alone.
    #[cfg(feature = "postgres")]
    pub fn open_shared(config: ReceiverConfig, dir: &Path, postgres_url: &str) -> Result<Self> {
        let store = DataLakeStore::open(dir.join("lake"))?;
        let quarantine = JsonlQuarantine::open(dir.join("quarantine"))?;
        let ledger = PgLedger::connect(postgres_url, config.retention)?;
        Self::with_ledger(config, ledger, Box::new(store), Box::new(quarantine))
    }

    fn from_state(config: ReceiverConfig, state: State) -> Self {
        Receiver {
            config,
            state: Mutex::new(state),
            metrics: Metrics::default(),
            crash_at: Mutex::new(None),
            crashed: AtomicBool::new(false),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ReceiverConfig {
        &self.config
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Test seam: the next request that reaches `point` stops there, as if the
    /// process died (see [`CrashPoint`]).
    #[doc(hidden)]
    pub fn crash_at(&self, point: Option<CrashPoint>) {
        *self.crash_at.lock().unwrap_or_else(|p| p.into_inner()) = point;
    }

    /// Handles one request, counting it in the metrics.
    pub fn handle(&self, request: &IngestRequest) -> Outcome {
        self.metrics
            .bytes_received
            .fetch_add(request.body.len() as u64, Ordering::Relaxed);
        let outcome = self.handle_inner(request);
        let m = &self.metrics;
        match &outcome {
            Outcome::Stored {
                accepted,
                quarantined,
                duplicate,
                ..
            } => {
                m.batches_stored.fetch_add(1, Ordering::Relaxed);
                m.records_accepted.fetch_add(*accepted, Ordering::Relaxed);
                m.records_quarantined
                    .fetch_add(*quarantined, Ordering::Relaxed);
                m.records_duplicate.fetch_add(*duplicate, Ordering::Relaxed);
            }
            Outcome::Duplicate { .. } => {
                m.batches_duplicate.fetch_add(1, Ordering::Relaxed);
            }
            other => m.count_reject(other.status()),
        }
        outcome
    }

    fn unavailable(&self, detail: impl Into<String>) -> Outcome {
        Outcome::Unavailable {
            detail: detail.into(),
            retry_after_seconds: self.config.retry_after_seconds,
        }
    }

    /// The checks made before the body is read: required headers (422) and the API
    /// key (401). [`handle`](Receiver::handle) makes them too; a server calls this
    /// first so it reads no body from a stranger.
    pub fn authenticate(&self, request: &IngestRequest) -> Result<(), Outcome> {
        let api_key = request.get("x-api-key");
        let batch_id = request.get("x-batch-id");
        let (Some(api_key), Some(_)) = (api_key, batch_id) else {
            let mut headers = Vec::new();
            if api_key.is_none() {
                headers.push("x-api-key");
            }
            if batch_id.is_none() {
                headers.push("x-batch-id");
            }
            return Err(Outcome::MissingHeaders { headers });
        };
        // Every key is compared, each in constant time.
        let mut known = false;
        for key in &self.config.api_keys {
            known |= constant_time_eq(key.as_bytes(), api_key.as_bytes());
        }
        if !known {
            return Err(Outcome::Unauthorized {
                detail: "Invalid API key",
            });
        }
        Ok(())
    }

    fn handle_inner(&self, request: &IngestRequest) -> Outcome {
        // 1-2. Required headers, as FastAPI checks them before the handler runs,
        // then authentication.
        if let Err(outcome) = self.authenticate(request) {
            return outcome;
        }
        let batch_id = request.get("x-batch-id").unwrap_or_default();
        if let Some(key) = &self.config.hmac_key {
            match request.get("x-edgepipe-signature") {
                Some(given) => {
                    let expected = signature(key, batch_id, &request.body);
                    if !constant_time_eq(expected.as_bytes(), given.trim().as_bytes()) {
                        return Outcome::Unauthorized {
                            detail: "Invalid signature",
                        };
                    }
                }
                None if self.config.require_signature => {
                    return Outcome::Unauthorized {
                        detail: "Invalid signature",
                    };
                }
                None => {}
            }
        }
        if self.crashed.load(Ordering::SeqCst) {
            return self.unavailable("receiver stopped after a simulated crash");
        }
        let limits = &self.config.limits;
        // 3. Size of the body as sent.
        if request.body.len() > limits.max_compressed_bytes {
            return too_large(&Error::CompressedTooLarge {
                size: request.body.len(),
                limit: limits.max_compressed_bytes,
            });
        }
        // 4. A batch stored before is answered as the seed does, without decoding.
        let key = store_key(batch_id);
        if self.lock().dedup.has_batch(&key) {
            return Outcome::Duplicate {
                batch_id: batch_id.to_owned(),
            };
        }
        // 5. Checksum, decompression within the limit, codec, validation.
        let (records, quarantined) = match self.decode(request) {
            Ok(decoded) => decoded,
            Err(outcome) => return outcome,
        };
        // 6. Dedup and store, one batch at a time.
        self.store(batch_id, &key, records, quarantined)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn decode(
        &self,
        request: &IngestRequest,
    ) -> Result<(Vec<DataRecord>, Vec<QuarantinedRecord>), Outcome> {
        let limits = &self.config.limits;
        let compression = match request.get("content-encoding").map(str::trim) {
            None => Compression::None,
            Some(name) if name.is_empty() || name.eq_ignore_ascii_case("identity") => {
                Compression::None
            }
            Some(name) => match name.to_ascii_lowercase().as_str() {
                "gzip" => Compression::SEED,
                "lz4" => Compression::Lz4,
                "zstd" => Compression::Zstd { level: 3 },
                _ => {
                    return Err(bad(format!("unsupported Content-Encoding {name:?}")));
                }
            },
        };
        let codec = match request.get("x-edgepipe-codec").map(str::trim) {
            None => Codec::Json,
            Some(name) => Codec::from_name(name).map_err(|e| bad(e.to_string()))?,
        };
        let declared = match request.get("x-edgepipe-records") {
            None => None,
            Some(text) => {
                let count: u64 = text
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("invalid X-Edgepipe-Records {text:?}")))?;
                if count > limits.max_records as u64 {
                    return Err(too_large(&Error::TooManyRecords {
                        limit: limits.max_records,
                    }));
                }
                Some(count)
            }
        };
        if let Some(expected) = request.get("x-edgepipe-checksum") {
            let actual = sha256_hex(&request.body);
            if !actual.eq_ignore_ascii_case(expected.trim()) {
                return Err(bad(Error::ChecksumMismatch {
                    expected: expected.trim().to_owned(),
                    actual,
                }
                .to_string()));
            }
        }
        let decompressed;
        let encoded: &[u8] = if compression == Compression::None {
            if request.body.len() > limits.max_decompressed_bytes {
                return Err(too_large(&Error::DecompressedTooLarge {
                    limit: limits.max_decompressed_bytes,
                }));
            }
            &request.body
        } else {
            decompressed =
                compression::decompress(&request.body, compression, limits.max_decompressed_bytes)
                    .map_err(|e| error_outcome(&e))?;
            &decompressed
        };
        let (records, quarantined) = match codec {
            Codec::Json | Codec::JsonPython => split_json_array(encoded, limits)?,
            Codec::Jsonl => split_jsonl(encoded, limits)?,
            other => (
                other
                    .decode(encoded, limits)
                    .map_err(|e| error_outcome(&e))?,
                Vec::new(),
            ),
        };
        let total = (records.len() + quarantined.len()) as u64;
        if let Some(declared) = declared
            && declared != total
        {
            return Err(bad(format!(
                "X-Edgepipe-Records says {declared} records, the body holds {total}"
            )));
        }
        Ok((records, quarantined))
    }

    fn crash_point(&self, point: CrashPoint) -> bool {
        let mut at = self.crash_at.lock().unwrap_or_else(|p| p.into_inner());
        if *at == Some(point) {
            *at = None;
            self.crashed.store(true, Ordering::SeqCst);
            return true;
        }
        false
    }

    fn store(
        &self,
        batch_id: &str,
        key: &str,
        records: Vec<DataRecord>,
        quarantined: Vec<QuarantinedRecord>,
    ) -> Outcome {
        let mut state = self.lock();
        if self.crashed.load(Ordering::SeqCst) {
            return self.unavailable("receiver stopped after a simulated crash");
        }
        let State {
            dedup,
            store,
            quarantine: quarantine_store,
        } = &mut *state;
        // One arm only without the `postgres` feature.
        #[allow(clippy::infallible_destructuring_match)]
        let dedup = match dedup {
            DedupState::Journal(dedup) => dedup,
            #[cfg(feature = "postgres")]
            DedupState::Ledger(ledger) => {
                return self.store_shared(
                    ledger,
                    store.as_mut(),
                    quarantine_store.as_mut(),
                    batch_id,
                    key,
                    records,
                    quarantined,
                );
            }
        };
        // Batches a failed write left behind are settled before anything else lands.
        if let Err(error) = reconcile(dedup, store.as_mut()) {
            return self.unavailable(error.message_with_sources());
        }
        if dedup.has_batch(key) {
            return Outcome::Duplicate {
                batch_id: batch_id.to_owned(),
            };
        }
        let mut accepted = Vec::with_capacity(records.len());
        let mut ids = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut duplicate = 0u64;
        for record in records {
            if let Some((source, epoch, sequence)) = parse_sequence_id(&record.record_id) {
                if dedup.has_sequence(source, epoch, sequence)
                    || !seen.insert((source.to_owned(), epoch, sequence))
                {
                    duplicate += 1;
                    continue;
                }
                ids.push((source.to_owned(), epoch, sequence));
            }
            accepted.push(record);
        }
        let now = now_seconds();
        if accepted.is_empty() && quarantined.is_empty() && duplicate > 0 {
            // Every record was stored before: the whole batch is a duplicate.
            return match dedup.commit(key, now, true, Vec::new()) {
                Ok(()) => Outcome::Duplicate {
                    batch_id: batch_id.to_owned(),
                },
                Err(error) => self.unavailable(error.message_with_sources()),
            };
        }
        let result = (|| -> Result<bool> {
            dedup.begin(key)?;
            if self.crash_point(CrashPoint::AfterBegin) {
                return Ok(false);
            }
            if !accepted.is_empty() {
                store.put(key, &accepted)?;
            }
            if !quarantined.is_empty() {
                quarantine_store.put(key, batch_id, &quarantined)?;
            }
            if self.crash_point(CrashPoint::AfterStore) {
                return Ok(false);
            }
            dedup.commit(key, now, true, collapse(ids))?;
            Ok(!self.crash_point(CrashPoint::AfterCommit))
        })();
        match result {
            Ok(true) => Outcome::Stored {
                batch_id: batch_id.to_owned(),
                accepted: accepted.len() as u64,
                quarantined: quarantined.len() as u64,
                duplicate,
            },
            Ok(false) => self.unavailable("receiver stopped after a simulated crash"),
            Err(error) => self.unavailable(error.message_with_sources()),
        }
    }
}

#[cfg(feature = "postgres")]
impl Receiver {
    /// [`store`](Self::store) with the ledger shared by the replicas: the same steps,
    /// under the ledger's locks on the batch key and the batch's sources (see
    /// `docs/ingest.md`, "Many replicas").
    #[allow(clippy::too_many_arguments)]
    fn store_shared(
        &self,
        ledger: &mut PgLedger,
        store: &mut dyn Store,
        quarantine: &mut dyn QuarantineStore,
        batch_id: &str,
        key: &str,
        records: Vec<DataRecord>,
        quarantined: Vec<QuarantinedRecord>,
    ) -> Outcome {
        let result = self.store_shared_locked(
            ledger,
            store,
            quarantine,
            batch_id,
            key,
            records,
            quarantined,
        );
        if self.crashed.load(Ordering::SeqCst) {
            // A dead replica's connection closes: its locks go, its pending row stays.
            ledger.disconnect();
            return self.unavailable("receiver stopped after a simulated crash");
        }
        // The locks are given back whatever happened. A release that fails has
        // dropped the connection, which frees them too, so the answer stands.
        let _ = ledger.release();
        match result {
            Ok(outcome) => outcome,
            Err(error) => self.unavailable(error.message_with_sources()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn store_shared_locked(
        &self,
        ledger: &mut PgLedger,
        store: &mut dyn Store,
        quarantine: &mut dyn QuarantineStore,
        batch_id: &str,
        key: &str,
        records: Vec<DataRecord>,
        quarantined: Vec<QuarantinedRecord>,
    ) -> Result<Outcome> {
        let mut spans: std::collections::HashMap<super::dedup::StreamKey, (u64, u64)> =
            std::collections::HashMap::new();
        let mut sources = std::collections::BTreeSet::new();
        for record in &records {
            if let Some((source, epoch, sequence)) = parse_sequence_id(&record.record_id) {
                if !sources.contains(source) {
                    sources.insert(source.to_owned());
                }
                let span = spans
                    .entry((source.to_owned(), epoch))
                    .or_insert((sequence, sequence));
                span.0 = span.0.min(sequence);
                span.1 = span.1.max(sequence);
            }
        }
        ledger.acquire(key, &sources, &mut |pending| store.recover(pending))?;
        if ledger.has_batch(key)? {
            return Ok(Outcome::Duplicate {
                batch_id: batch_id.to_owned(),
            });
        }
        let stored = ledger.stored_ranges(&spans)?;
        let mut accepted = Vec::with_capacity(records.len());
        let mut ids = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut duplicate = 0u64;
        for record in records {
            if let Some((source, epoch, sequence)) = parse_sequence_id(&record.record_id) {
                let before = stored
                    .get(&(source.to_owned(), epoch))
                    .is_some_and(|set| set.contains(sequence));
                if before || !seen.insert((source.to_owned(), epoch, sequence)) {
                    duplicate += 1;
                    continue;
                }
                ids.push((source.to_owned(), epoch, sequence));
            }
            accepted.push(record);
        }
        let now = now_seconds();
        if accepted.is_empty() && quarantined.is_empty() && duplicate > 0 {
            ledger.commit(key, now, &[])?;
            return Ok(Outcome::Duplicate {
                batch_id: batch_id.to_owned(),
            });
        }
        let crashed = || self.unavailable("receiver stopped after a simulated crash");
        ledger.begin(key, &sources, now)?;
        if self.crash_point(CrashPoint::AfterBegin) {
            return Ok(crashed());
        }
        if !accepted.is_empty() {
            store.put(key, &accepted)?;
        }
        if !quarantined.is_empty() {
            quarantine.put(key, batch_id, &quarantined)?;
        }
        if self.crash_point(CrashPoint::AfterStore) {
            return Ok(crashed());
        }
        ledger.commit(key, now, &collapse(ids))?;
        if self.crash_point(CrashPoint::AfterCommit) {
            return Ok(crashed());
        }
        Ok(Outcome::Stored {
            batch_id: batch_id.to_owned(),
            accepted: accepted.len() as u64,
            quarantined: quarantined.len() as u64,
            duplicate,
        })
    }
}

/// Settles keys begun and never committed: whatever their interrupted write left
/// in the store is journalled as stored (by sequence range; the key itself is not
/// remembered, as its files may be partial), so a retry stores only the rest.
fn reconcile(dedup: &mut Dedup, store: &mut dyn Store) -> Result<()> {
    let pending: Vec<String> = dedup.pending().to_vec();
    for key in pending {
        let records = store.recover(&key)?;
        let ids = records
            .iter()
            .filter_map(|r| parse_sequence_id(&r.record_id))
            .map(|(source, epoch, sequence)| (source.to_owned(), epoch, sequence))
            .collect();
        dedup.commit(&key, now_seconds(), false, collapse(ids))?;
    }
    Ok(())
}

fn bad(detail: impl Into<String>) -> Outcome {
    Outcome::BadRequest {
        detail: detail.into(),
    }
}

fn too_large(error: &Error) -> Outcome {
    Outcome::TooLarge {
        detail: error.to_string(),
    }
}

fn error_outcome(error: &Error) -> Outcome {
    match error {
        Error::CompressedTooLarge { .. }
        | Error::DecompressedTooLarge { .. }
        | Error::TooManyRecords { .. } => too_large(error),
        Error::CorruptCompression {
            compression: "gzip",
            ..
        } => bad("Invalid gzip data"),
        Error::InvalidJson { .. } => bad("Invalid JSON"),
        other => bad(other.to_string()),
    }
}

type Split = (Vec<DataRecord>, Vec<QuarantinedRecord>);

/// Reads a JSON array element by element: each element that the record parser
/// refuses goes to the quarantine with its text, the rest are records.
fn split_json_array(bytes: &[u8], limits: &DecodeLimits) -> Result<Split, Outcome> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let raws = deserializer
        .deserialize_seq(RawArray {
            max_records: limits.max_records,
        })
        .and_then(|raws| deserializer.end().map(|()| raws));
    let raws = match raws {
        Ok(raws) => raws,
        Err(error) if error.to_string().starts_with(TOO_MANY) => {
            return Err(too_large(&Error::TooManyRecords {
                limit: limits.max_records,
            }));
        }
        Err(_) => return Err(bad("Invalid JSON")),
    };
    let mut records = Vec::with_capacity(raws.len());
    let mut quarantined = Vec::new();
    for raw in raws {
        match DataRecord::from_json(raw.get()) {
            Ok(record) => records.push(record),
            Err(error) => quarantined.push(QuarantinedRecord {
                reason: error.to_string(),
                raw: raw.get().to_owned(),
            }),
        }
    }
    Ok((records, quarantined))
}

fn split_jsonl(bytes: &[u8], limits: &DecodeLimits) -> Result<Split, Outcome> {
    let mut records = Vec::new();
    let mut quarantined = Vec::new();
    for line in bytes.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if records.len() + quarantined.len() == limits.max_records {
            return Err(too_large(&Error::TooManyRecords {
                limit: limits.max_records,
            }));
        }
        match DataRecord::from_json_slice(line) {
            Ok(record) => records.push(record),
            Err(error) => quarantined.push(QuarantinedRecord {
                reason: error.to_string(),
                raw: String::from_utf8_lossy(line).into_owned(),
            }),
        }
    }
    Ok((records, quarantined))
}

const TOO_MANY: &str = "edgepipe: too many records";

struct RawArray {
    max_records: usize,
}

impl<'de> Visitor<'de> for RawArray {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut raws = Vec::new();
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            if raws.len() == self.max_records {
                return Err(serde::de::Error::custom(TOO_MANY));
            }
            raws.push(raw);
        }
        Ok(raws)
    }
}

/// Equal in time independent of where the inputs differ (the length is not secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // black_box keeps the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
