//! The Parquet cold tier (feature `parquet`): `date=YYYY-MM-DD/part-<key>.parquet`,
//! one file per batch and day, written atomically like the data lake.
//!
//! Columns: `record_id`, `device_id`, `data_type` (UTF-8), `timestamp`
//! (timestamp[ns, UTC]), `payload` and `metadata` (the `to_dict()` JSON text of
//! each, since payload fields differ from record to record). Uncompressed pages:
//! the crate is built without codecs to keep the build small; the columns are
//! dictionary-encoded, which is where most of the size goes on telemetry.
//! pyarrow, DuckDB and Spark read the files as they are.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::{ArrayRef, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::store::{Store, write_atomic};
use crate::error::{Error, Result};
use crate::record::{DataRecord, Timestamp};

/// Accepted records as Parquet files under a root directory.
#[derive(Debug)]
pub struct ParquetStore {
    root: PathBuf,
}

fn parquet_error(context: String, error: impl std::fmt::Display) -> Error {
    Error::io(context, std::io::Error::other(error.to_string()))
}

/// The files' schema.
pub fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("record_id", DataType::Utf8, false),
        Field::new("device_id", DataType::Utf8, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new("data_type", DataType::Utf8, false),
        Field::new("payload", DataType::Utf8, false),
        Field::new("metadata", DataType::Utf8, false),
    ]))
}

impl ParquetStore {
    /// A store rooted at `root` (created when missing).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)
            .map_err(|e| Error::io(format!("creating {}", root.display()), e))?;
        Ok(ParquetStore { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Encodes `records` as one Parquet file.
    pub fn encode(records: &[DataRecord]) -> Result<Vec<u8>> {
        let mut payloads = Vec::with_capacity(records.len());
        let mut metadata = Vec::with_capacity(records.len());
        for record in records {
            // The record's own JSON writer, so the payload text is exactly the
            // `to_dict()` JSON (NaN refused as everywhere).
            let mut value: serde_json::Value = serde_json::from_str(&record.to_json()?)
                .map_err(|e| parquet_error("re-reading a record's JSON".into(), e))?;
            payloads.push(value["payload"].take().to_string());
            metadata.push(value["metadata"].take().to_string());
        }
        let strings = |f: &dyn Fn(&DataRecord) -> &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(records.iter().map(f)))
        };
        let columns: Vec<ArrayRef> = vec![
            strings(&|r| &r.record_id),
            strings(&|r| &r.device_id),
            Arc::new(
                TimestampNanosecondArray::from_iter_values(
                    records.iter().map(|r| r.timestamp.unix_nanos()),
                )
                .with_timezone("UTC"),
            ),
            strings(&|r| &r.data_type),
            Arc::new(StringArray::from_iter_values(&payloads)),
            Arc::new(StringArray::from_iter_values(&metadata)),
        ];
        let batch = RecordBatch::try_new(schema(), columns)
            .map_err(|e| parquet_error("building a record batch".into(), e))?;
        let mut out = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut out, schema(), None)
            .map_err(|e| parquet_error("starting a parquet file".into(), e))?;
        writer
            .write(&batch)
            .and_then(|()| writer.close().map(|_| ()))
            .map_err(|e| parquet_error("writing a parquet file".into(), e))?;
        Ok(out)
    }

    /// Reads the records of one Parquet file written by this store.
    pub fn read(path: &Path) -> Result<Vec<DataRecord>> {
        let context = || format!("reading {}", path.display());
        let file = File::open(path).map_err(|e| Error::io(context(), e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .map_err(|e| parquet_error(context(), e))?;
        let mut records = Vec::new();
        for batch in reader {
            let batch = batch.map_err(|e| parquet_error(context(), e))?;
            let text = |i: usize| batch.column(i).as_string::<i32>();
            let (ids, devices, types, payloads, metadata) =
                (text(0), text(1), text(3), text(4), text(5));
            let times = batch.column(2).as_primitive::<TimestampNanosecondType>();
            for row in 0..batch.num_rows() {
                let json = format!(
                    r#"{{"record_id":{},"device_id":{},"timestamp":"{}","data_type":{},"payload":{},"metadata":{}}}"#,
                    serde_json::Value::from(ids.value(row)),
                    serde_json::Value::from(devices.value(row)),
                    Timestamp::from_unix_nanos(times.value(row)).to_iso8601(),
                    serde_json::Value::from(types.value(row)),
                    payloads.value(row),
                    metadata.value(row),
                );
                records.push(DataRecord::from_json(&json)?);
            }
        }
        Ok(records)
    }

    fn path_of(&self, date: &str, key: &str) -> PathBuf {
        self.root
            .join(format!("date={date}"))
            .join(format!("part-{key}.parquet"))
    }
}

impl Store for ParquetStore {
    fn put(&mut self, key: &str, records: &[DataRecord]) -> Result<()> {
        let mut days: BTreeMap<String, Vec<DataRecord>> = BTreeMap::new();
        for record in records {
            let date = record.timestamp.to_iso8601()[..10].to_owned();
            days.entry(date).or_default().push(record.clone());
        }
        for (date, mut day) in days {
            let path = self.path_of(&date, key);
            // As the data lake: a rewrite keeps what an earlier write of the key held.
            if path.exists() {
                let ids: std::collections::HashSet<_> =
                    day.iter().map(|r| r.record_id.clone()).collect();
                let old = Self::read(&path)?;
                day.extend(old.into_iter().filter(|r| !ids.contains(&r.record_id)));
            }
            write_atomic(&path, &Self::encode(&day)?)?;
        }
        Ok(())
    }

    fn recover(&mut self, key: &str) -> Result<Vec<DataRecord>> {
        let name = format!("part-{key}.parquet");
        let mut records = Vec::new();
        let Ok(days) = std::fs::read_dir(&self.root) else {
            return Ok(records);
        };
        for day in days.flatten() {
            let path = day.path().join(&name);
            let temp = day.path().join(format!("{name}.tmp"));
            if temp.exists() {
                std::fs::remove_file(&temp)
                    .map_err(|e| Error::io(format!("removing {}", temp.display()), e))?;
            }
            if path.exists() {
                records.extend(Self::read(&path)?);
            }
        }
        Ok(records)
    }
}
