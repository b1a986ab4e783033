//! Serialized batches: the envelope parser, then the full verify-and-decode path.
#![no_main]

use edgepipe_core::batch::{Batch, DecodeLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits { max_decompressed_bytes: 1 << 20, max_records: 10_000, ..DecodeLimits::default() };
    if let Ok(batch) = Batch::from_bytes(data, &limits) {
        // A parsed envelope writes back to the same bytes.
        assert_eq!(batch.to_bytes(), data);
        let _ = batch.decode(&limits);
    }
});
