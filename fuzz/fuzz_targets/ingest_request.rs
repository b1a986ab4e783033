//! The ingest receiver's request handler on arbitrary headers and bodies: never a
//! panic, every answer one of the protocol's statuses, a 200 only with records
//! that add up.
#![no_main]

use std::sync::OnceLock;

use edgepipe_core::batch::DecodeLimits;
use edgepipe_core::ingest::{Dedup, IngestRequest, MemoryStore, Outcome, Receiver, ReceiverConfig, Retention};
use libfuzzer_sys::fuzz_target;

const ENCODINGS: [&str; 5] = ["", "gzip", "lz4", "zstd", "identity"];
const CODECS: [&str; 6] = ["", "json", "json-python", "jsonl", "msgpack", "columnar"];

fn receiver() -> &'static Receiver {
    static RECEIVER: OnceLock<Receiver> = OnceLock::new();
    RECEIVER.get_or_init(|| {
        let mut config = ReceiverConfig::new(["k"]);
        config.hmac_key = Some(b"h".to_vec());
        config.limits = DecodeLimits {
            max_compressed_bytes: 1 << 16,
            max_decompressed_bytes: 1 << 20,
            max_records: 1000,
            max_depth: 32,
        };
        // Few batch ids remembered, so the store stays small over a long run.
        let retention = Retention { batch_id_seconds: 60, max_batch_ids: 64 };
        let store = MemoryStore::default();
        Receiver::with_parts(config, Dedup::in_memory(retention), Box::new(store.clone()), Box::new(store))
            .expect("in-memory receiver")
    })
}

fuzz_target!(|data: &[u8]| {
    // First byte: which headers; second: the batch id; the rest: the body.
    let (selector, id, body) = match data {
        [s, i, rest @ ..] => (*s, *i, rest),
        _ => return,
    };
    let mut request = IngestRequest::new(body.to_vec());
    if selector & 0x80 == 0 {
        request = request.header("X-API-Key", "k");
    }
    if selector & 0x40 == 0 {
        request = request.header("X-Batch-ID", format!("b{id}"));
    }
    let encoding = ENCODINGS[usize::from(selector & 7) % ENCODINGS.len()];
    if !encoding.is_empty() {
        request = request.header("Content-Encoding", encoding);
    }
    let codec = CODECS[usize::from((selector >> 3) & 7) % CODECS.len()];
    if !codec.is_empty() {
        request = request.header("X-Edgepipe-Codec", codec);
    }
    let outcome = receiver().handle(&request);
    assert!(matches!(outcome.status(), 200 | 400 | 401 | 413 | 422 | 503));
    serde_json::from_str::<serde_json::Value>(&outcome.body()).expect("a JSON body");
    if let Outcome::Stored { accepted, quarantined, .. } = outcome {
        assert!(accepted + quarantined <= 1000);
    }
});
