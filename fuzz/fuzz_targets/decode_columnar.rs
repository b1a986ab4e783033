//! The columnar decoder on arbitrary bytes: an error or records, never a panic; what
//! it reads re-encodes and decodes to the same records.
#![no_main]

use edgepipe_core::batch::{Codec, DecodeLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits { max_decompressed_bytes: 1 << 20, max_records: 10_000, ..DecodeLimits::default() };
    if let Ok(records) = Codec::Columnar.decode(data, &limits) {
        let mut again = Vec::new();
        if Codec::Columnar.encode(&records, &mut again).is_ok() {
            let back = Codec::Columnar.decode(&again, &DecodeLimits::default()).expect("our own output decodes");
            assert_eq!(back.len(), records.len());
        }
    }
});
