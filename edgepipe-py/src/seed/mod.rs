//! The drop-in layer: the seed's classes (`shared/seeds/000`), backed by the core.
//!
//! One file per seed module, as `python/edgepipe/` has one Python module each:
//!
//! - [`edge_collector`]: `DataRecord`, and the conversions between Python values
//!   and the core's records;
//! - [`transforms`]: the seed's six transform factories and `TransformPipeline`,
//!   running the core's transforms;
//! - [`batching`]: `create_batch`'s serialise + compress + checksum, the record
//!   split and decompression;
//! - [`delivery`]: the seed's `delivery_queue` table through the core's
//!   `SqliteQueue`, and the seed's HTTP protocol through the core's `HttpSink`.
//!
//! The Python classes that keep the seed's exact shape (`DataBatch`,
//! `BatchProcessor`, `PersistentDeliveryQueue`, `DataDeliveryService`,
//! `DataCollector`) live in the Python modules and call these.

pub(crate) mod batching;
pub(crate) mod delivery;
pub(crate) mod edge_collector;
pub(crate) mod transforms;
