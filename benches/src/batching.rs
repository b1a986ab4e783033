//! The batch policies and compressions the benchmarks compare, and batching a
//! record stream with the core's `Batcher` on event time.

use edgepipe_core::batch::{Batch, BatchEncoder, BatchPolicy, Batcher, Codec, Compression};
use edgepipe_core::record::{DataRecord, Timestamp};

/// A batch policy by name: the two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// The seed's 100 records per batch, in arrival order.
    Seed,
    /// 10 s of event time, capped at 1 MiB of encoded records.
    TenSeconds,
}

impl Policy {
    /// Both, in report order.
    pub const ALL: [Policy; 2] = [Policy::Seed, Policy::TenSeconds];

    /// The name used in reports: `100-records` or `10s-1MiB`.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Seed => "100-records",
            Policy::TenSeconds => "10s-1MiB",
        }
    }

    /// The batcher's limits.
    pub fn batch_policy(self) -> BatchPolicy {
        match self {
            Policy::Seed => BatchPolicy {
                max_records: 100,
                max_bytes: 1 << 20,
                max_age_nanos: None,
            },
            Policy::TenSeconds => BatchPolicy {
                max_records: usize::MAX,
                max_bytes: 1 << 20,
                max_age_nanos: Some(10_000_000_000),
            },
        }
    }
}

/// Every compression this build has: none, gzip-6 (the seed's), lz4 and, with the
/// core's `zstd` feature, zstd-3 (zstd's default; 19 took most of a table's time
/// for a few percent fewer bytes).
pub fn compressions() -> Vec<Compression> {
    let mut all = vec![
        Compression::None,
        Compression::Gzip { level: 6 },
        Compression::Lz4,
    ];
    let zstd = Compression::Zstd { level: 3 };
    // Whether the core was built with zstd shows in whether it can compress.
    if edgepipe_core::batch::compression::compress(b"probe", zstd, &mut Vec::new()).is_ok() {
        all.push(zstd);
    }
    all
}

/// `gzip-6`, `zstd-3`, `lz4`, `none`.
pub fn compression_label(compression: Compression) -> String {
    match compression {
        Compression::Gzip { level } => format!("gzip-{level}"),
        Compression::Zstd { level } => format!("zstd-{level}"),
        other => other.name().to_owned(),
    }
}

/// The records with edgepipe sequence ids (`gw-0:0:N`) instead of the workload's
/// UUIDs: what an edgepipe collector stamps, and what the columnar codec stores
/// implicitly.
pub fn with_sequence_ids(records: &[DataRecord]) -> Vec<DataRecord> {
    records
        .iter()
        .enumerate()
        .map(|(index, record)| {
            let mut record = record.clone();
            record.record_id = format!("gw-0:0:{index}").into();
            record
        })
        .collect()
}

/// Batches `records` with the batcher, its clock driven by event time.
pub fn batches(
    records: &[DataRecord],
    codec: Codec,
    compression: Compression,
    policy: Policy,
) -> edgepipe_core::Result<Vec<Batch>> {
    let encoder = BatchEncoder::new("gw-0", codec, compression)?;
    let mut batcher = Batcher::new(encoder, policy.batch_policy())?;
    let mut out = Vec::new();
    for record in records {
        batcher.push(record.clone(), record.timestamp)?;
        out.extend(std::iter::from_fn(|| batcher.next_batch()));
    }
    let last = records
        .last()
        .map_or(Timestamp::UNIX_EPOCH, |r| r.timestamp);
    batcher.flush(last)?;
    out.extend(std::iter::from_fn(|| batcher.next_batch()));
    Ok(out)
}
