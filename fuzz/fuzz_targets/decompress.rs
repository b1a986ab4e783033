//! Every decompressor on arbitrary bytes, with a small output limit.
#![no_main]

use edgepipe_core::batch::Compression;
use edgepipe_core::batch::compression::decompress;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for compression in [Compression::SEED, Compression::Lz4, Compression::Zstd { level: 3 }] {
        if let Ok(out) = decompress(data, compression, 1 << 20) {
            assert!(out.len() <= 1 << 20);
        }
    }
});
