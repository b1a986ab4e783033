//! Codecs: how a batch's records become bytes before compression.
//!
//! - [`json`]: the seed's body, a JSON array of `to_dict()` records;
//! - [`json_python`]: the same array byte for byte as Python's `json.dumps`
//!   writes it;
//! - [`jsonl`]: JSON Lines, one record per line;
//! - [`msgpack`]: MessagePack, an array of `to_dict()`-shaped maps;
//! - [`columnar`]: edgepipe's time-series format, series-grouped and encoded
//!   column by column (specified in `docs/wire-format.md`).
//!
//! Every decoder takes [`DecodeLimits`] and refuses, with a typed error, input
//! that declares or holds more than they allow.

pub mod columnar;
pub mod json;
pub mod json_python;
pub mod jsonl;
pub mod msgpack;
mod wire;

use super::limits::DecodeLimits;
use crate::error::{Error, Result};
use crate::record::DataRecord;

/// The encoding of a batch's records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// A JSON array of records, the seed's `json.dumps([r.to_dict() ...])`
    /// read to the same values: compact and UTF-8.
    Json,
    /// The same JSON array byte for byte as the seed's Python writes it
    /// (`", "` and `": "`, `\uXXXX` escapes, Python's float `repr`), for peers
    /// that compare or hash the body text. Name `json-python`.
    JsonPython,
    /// JSON Lines.
    Jsonl,
    /// MessagePack: an array of maps with the `to_dict()` keys.
    Msgpack,
    /// edgepipe's columnar time-series format.
    Columnar,
}

impl Codec {
    /// Every codec, for tests and benchmarks.
    pub const ALL: [Codec; 5] = [
        Codec::Json,
        Codec::JsonPython,
        Codec::Jsonl,
        Codec::Msgpack,
        Codec::Columnar,
    ];

    /// The name used in envelopes and headers.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Json => "json",
            Codec::JsonPython => "json-python",
            Codec::Jsonl => "jsonl",
            Codec::Msgpack => "msgpack",
            Codec::Columnar => "columnar",
        }
    }

    /// Reads a name as [`name`](Self::name) writes it.
    pub fn from_name(name: &str) -> Result<Self> {
        Codec::ALL
            .into_iter()
            .find(|codec| codec.name() == name)
            .ok_or_else(|| Error::Unsupported {
                what: "codec",
                name: name.to_owned(),
            })
    }

    /// True when a batch's encoded size is the sum of its records' sizes plus a
    /// framing that depends only on the count, so a batcher can account for bytes
    /// exactly record by record.
    pub fn is_additive(self) -> bool {
        !matches!(self, Codec::Columnar)
    }

    /// Appends `records`, encoded, to `out`. On error `out` is left as it was.
    pub fn encode(self, records: &[DataRecord], out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        let result = match self {
            Codec::Json => json::encode(records, out),
            Codec::JsonPython => json_python::encode(records, out),
            Codec::Jsonl => jsonl::encode(records, out),
            Codec::Msgpack => msgpack::encode(records, out),
            Codec::Columnar => columnar::encode(records, out),
        };
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    /// Reads records encoded by [`encode`](Self::encode), within `limits`.
    pub fn decode(self, bytes: &[u8], limits: &DecodeLimits) -> Result<Vec<DataRecord>> {
        match self {
            // The same JSON, only laid out differently.
            Codec::Json | Codec::JsonPython => json::decode(bytes, limits),
            Codec::Jsonl => jsonl::decode(bytes, limits),
            Codec::Msgpack => msgpack::decode(bytes, limits),
            Codec::Columnar => columnar::decode(bytes, limits),
        }
    }
}
