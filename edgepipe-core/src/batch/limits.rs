//! What a decoder accepts: bounds on every size a sender controls.

/// Bounds applied while decoding a batch; each one fails with its own typed error.
///
/// Memory spent decoding one batch is bounded by `max_compressed_bytes` (the
/// input), `max_decompressed_bytes` (checked while inflating, so a bomb stops at
/// the limit) and `max_records` (each record costs a few hundred bytes in memory,
/// whatever the codec squeezed it into on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest compressed payload accepted, in bytes (default 16 MiB).
    pub max_compressed_bytes: usize,
    /// Largest payload after decompression, in bytes (default 64 MiB).
    pub max_decompressed_bytes: usize,
    /// Most records in one batch (default 1,000,000).
    pub max_records: usize,
    /// Deepest nesting of lists and maps inside a payload value (default 128, as
    /// the JSON reader).
    pub max_depth: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_compressed_bytes: 16 << 20,
            max_decompressed_bytes: 64 << 20,
            max_records: 1_000_000,
            max_depth: 128,
        }
    }
}
