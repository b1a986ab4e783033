//! The json decoder on arbitrary bytes: an error or records, never a panic; what
//! it reads re-encodes, compact and Python-style (`json-python`), and decodes to
//! the same records.
#![no_main]

use edgepipe_core::batch::{Codec, DecodeLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits { max_decompressed_bytes: 1 << 20, max_records: 10_000, ..DecodeLimits::default() };
    if let Ok(records) = Codec::Json.decode(data, &limits) {
        for codec in [Codec::Json, Codec::JsonPython] {
            let mut again = Vec::new();
            if codec.encode(&records, &mut again).is_ok() {
                let back = codec.decode(&again, &DecodeLimits::default()).expect("our own output decodes");
                assert!(back == records, "{} changes the records", codec.name());
            }
        }
    }
});
