//! `edgepipe-ingest`: the ingest server (`POST /api/ingest`, `GET /health`,
//! `GET /metrics`) storing into a data directory. See `docs/ingest.md`.
//!
//! ```text
//! edgepipe-ingest --data-dir DIR --api-key KEY [--api-key KEY ...] [options]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use edgepipe_core::ingest::server::{ServerConfig, TlsFiles, start};
use edgepipe_core::ingest::{Receiver, ReceiverConfig};

const USAGE: &str = "usage: edgepipe-ingest --data-dir DIR --api-key KEY [options]

  --listen ADDR                  address to bind (default 127.0.0.1:8080; port 0 picks one)
  --data-dir DIR                 where lake/, quarantine/ and dedup.journal live (required)
  --api-key KEY                  an accepted X-API-Key (repeatable; or EDGEPIPE_API_KEYS=k1,k2)
  --hmac-key KEY                 check X-Edgepipe-Signature with this HMAC-SHA256 key
  --require-signature            refuse requests without a signature (needs --hmac-key)
  --tls-cert PEM --tls-key PEM   serve HTTPS (rustls)
  --max-body-bytes N             compressed body limit (default 16777216)
  --max-decompressed-bytes N     decompressed size limit (default 67108864)
  --max-records N                records per batch limit (default 1000000)
  --max-in-flight N              ingest requests decoded at once (default 4)
  --dedup-postgres URL           share dedup with other replicas in this PostgreSQL database
                                 (feature `postgres`); DIR is then the lake volume they share
  --kafka-brokers HOST:PORT[,..] also publish accepted records to Kafka (feature `kafka`)
  --kafka-topic T                the Kafka topic (it must exist), keyed by device id
  --kafka-only                   publish to Kafka instead of the data lake

Prints `listening on ADDR` once bound, then serves until killed. Every answered
batch is on disk; one cut short by a kill is reconciled on the next start.";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("edgepipe-ingest: {message}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:8080".to_owned();
    let mut data_dir: Option<PathBuf> = None;
    let mut keys: Vec<String> = Vec::new();
    let mut hmac_key = None;
    let mut require_signature = false;
    let (mut cert, mut key) = (None, None);
    let mut config = ReceiverConfig::new(Vec::<String>::new());
    let mut max_in_flight = 4;
    let mut dedup_postgres: Option<String> = None;
    let mut kafka = KafkaFlags::default();
    let number = |flag: &str, value: Option<String>| -> Result<usize, String> {
        value
            .ok_or_else(|| format!("{flag} needs a value"))?
            .parse()
            .map_err(|_| format!("{flag} needs a whole number"))
    };
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or_else(|| format!("{flag} needs a value"));
        match arg.as_str() {
            "--listen" => listen = value("--listen")?,
            "--data-dir" => data_dir = Some(value("--data-dir")?.into()),
            "--api-key" => keys.push(value("--api-key")?),
            "--hmac-key" => hmac_key = Some(value("--hmac-key")?.into_bytes()),
            "--require-signature" => require_signature = true,
            "--tls-cert" => cert = Some(PathBuf::from(value("--tls-cert")?)),
            "--tls-key" => key = Some(PathBuf::from(value("--tls-key")?)),
            "--max-body-bytes" => config.limits.max_compressed_bytes = number(&arg, args.next())?,
            "--max-decompressed-bytes" => {
                config.limits.max_decompressed_bytes = number(&arg, args.next())?
            }
            "--max-records" => config.limits.max_records = number(&arg, args.next())?,
            "--max-in-flight" => max_in_flight = number(&arg, args.next())?,
            "--dedup-postgres" => dedup_postgres = Some(value("--dedup-postgres")?),
            "--kafka-brokers" => kafka.brokers = Some(value("--kafka-brokers")?),
            "--kafka-topic" => kafka.topic = Some(value("--kafka-topic")?),
            "--kafka-only" => kafka.only = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    if let Ok(env) = std::env::var("EDGEPIPE_API_KEYS") {
        keys.extend(
            env.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(String::from),
        );
    }
    if keys.is_empty() {
        return Err(format!(
            "no API key: pass --api-key or set EDGEPIPE_API_KEYS\n\n{USAGE}"
        ));
    }
    if require_signature && hmac_key.is_none() {
        return Err("--require-signature needs --hmac-key".into());
    }
    let data_dir = data_dir.ok_or_else(|| format!("--data-dir is required\n\n{USAGE}"))?;
    config.api_keys = keys;
    config.hmac_key = hmac_key;
    config.require_signature = require_signature;
    let mut server = ServerConfig::new(
        listen
            .parse()
            .map_err(|_| format!("--listen {listen:?} is not an address like 127.0.0.1:8080"))?,
    );
    server.max_in_flight = max_in_flight;
    server.tls = match (cert, key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    let kafka_output = kafka.store()?;
    let receiver =
        receiver_from_flags(config, &data_dir, kafka_output, kafka.only, dedup_postgres)?;
    let handle = start(Arc::new(receiver), server).map_err(|e| e.message_with_sources())?;
    println!("listening on {}", handle.local_addr());
    wait_for_stop_signal()?;
    eprintln!("edgepipe-ingest: stopping, after the requests in flight");
    handle.shutdown().map_err(|e| e.message_with_sources())
}

/// Blocks until SIGINT (Ctrl-C) or, on Unix, SIGTERM arrives, so the server is
/// shut down cleanly: requests in flight finish and get their answer. (Killing
/// it is safe too, see docs/ingest.md; this only spares clients their retries.)
fn wait_for_stop_signal() -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| format!("starting the signal listener: {e}"))?;
    runtime.block_on(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut terminate = signal(SignalKind::terminate())
                .map_err(|e| format!("listening for SIGTERM: {e}"))?;
            tokio::select! {
                result = tokio::signal::ctrl_c() => result.map_err(|e| format!("listening for SIGINT: {e}")),
                _ = terminate.recv() => Ok(()),
            }
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c()
            .await
            .map_err(|e| format!("listening for Ctrl-C: {e}"))
    })
}

/// The `--kafka-*` flags.
#[derive(Default)]
struct KafkaFlags {
    brokers: Option<String>,
    topic: Option<String>,
    only: bool,
}

#[cfg(feature = "kafka")]
type KafkaOutput = edgepipe_core::ingest::KafkaStore;
#[cfg(not(feature = "kafka"))]
type KafkaOutput = std::convert::Infallible;

impl KafkaFlags {
    fn store(&self) -> Result<Option<KafkaOutput>, String> {
        match (&self.brokers, &self.topic) {
            (None, None) if !self.only => Ok(None),
            (Some(brokers), Some(topic)) => kafka_store(brokers, topic).map(Some),
            _ => Err(
                "--kafka-brokers and --kafka-topic go together (and --kafka-only needs both)"
                    .into(),
            ),
        }
    }
}

#[cfg(feature = "kafka")]
fn kafka_store(brokers: &str, topic: &str) -> Result<KafkaOutput, String> {
    let brokers = brokers.split(',').map(str::trim).filter(|b| !b.is_empty());
    edgepipe_core::ingest::KafkaStore::new(edgepipe_core::deliver::KafkaOptions::new(
        brokers, topic,
    ))
    .map_err(|e| e.message_with_sources())
}

#[cfg(not(feature = "kafka"))]
fn kafka_store(_brokers: &str, _topic: &str) -> Result<KafkaOutput, String> {
    Err("this edgepipe-ingest was built without the `kafka` feature".into())
}

/// The receiver the flags describe, laid out as [`Receiver::open`]'s under `dir`:
/// accepted records go to the data lake, to Kafka as well, or to Kafka only; the
/// dedup state is the journal under `dir`, or with `--dedup-postgres` the ledger
/// shared by every replica.
fn receiver_from_flags(
    config: ReceiverConfig,
    dir: &std::path::Path,
    kafka: Option<KafkaOutput>,
    kafka_only: bool,
    dedup_postgres: Option<String>,
) -> Result<Receiver, String> {
    use edgepipe_core::ingest::{DataLakeStore, Dedup, JsonlQuarantine, Store};
    let failed = |error: edgepipe_core::Error| error.message_with_sources();
    let store: Box<dyn Store> = match kafka {
        None => Box::new(DataLakeStore::open(dir.join("lake")).map_err(failed)?),
        Some(kafka) => kafka_output(kafka, kafka_only, dir).map_err(failed)?,
    };
    let quarantine = Box::new(JsonlQuarantine::open(dir.join("quarantine")).map_err(failed)?);
    match dedup_postgres {
        None => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let dedup =
                Dedup::open(dir.join("dedup.journal"), config.retention, now).map_err(failed)?;
            Receiver::with_parts(config, dedup, store, quarantine).map_err(failed)
        }
        #[cfg(feature = "postgres")]
        Some(url) => {
            let ledger =
                edgepipe_core::ingest::PgLedger::connect(&url, config.retention).map_err(failed)?;
            Receiver::with_ledger(config, ledger, store, quarantine).map_err(failed)
        }
        #[cfg(not(feature = "postgres"))]
        Some(_) => Err("--dedup-postgres needs a build with the `postgres` feature".into()),
    }
}

/// Kafka as the store, after the lake unless `only`.
#[cfg(feature = "kafka")]
fn kafka_output(
    kafka: KafkaOutput,
    only: bool,
    dir: &std::path::Path,
) -> edgepipe_core::Result<Box<dyn edgepipe_core::ingest::Store>> {
    use edgepipe_core::ingest::{DataLakeStore, TeeStore};
    Ok(if only {
        Box::new(kafka)
    } else {
        Box::new(TeeStore::new(
            Box::new(DataLakeStore::open(dir.join("lake"))?),
            Box::new(kafka),
        ))
    })
}

#[cfg(not(feature = "kafka"))]
fn kafka_output(
    kafka: KafkaOutput,
    _only: bool,
    _dir: &std::path::Path,
) -> edgepipe_core::Result<Box<dyn edgepipe_core::ingest::Store>> {
    match kafka {}
}
