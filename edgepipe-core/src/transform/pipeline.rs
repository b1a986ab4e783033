//! A chain of transforms with per-stage counters and a quarantine output.

use super::{Reason, Transform, Verdict};
use crate::error::Error;
use crate::error::Result;
use crate::record::{DataRecord, JsonOptions, json};

/// Counters for one stage. `records_in == records_out + dropped + quarantined`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StageStats {
    /// The transform's name.
    pub name: String,
    /// Records the stage saw.
    pub records_in: u64,
    /// Records it passed on.
    pub records_out: u64,
    /// Records it dropped on purpose.
    pub dropped: u64,
    /// Records it sent to quarantine.
    pub quarantined: u64,
}

/// A record set aside by a stage, with the reason.
#[derive(Clone, Debug, PartialEq)]
pub struct Quarantined {
    /// The record as it was when the stage refused it.
    pub record: DataRecord,
    /// Index of the stage in the pipeline.
    pub stage_index: usize,
    /// Name of the stage.
    pub stage: String,
    /// Why.
    pub reason: Reason,
}

impl Quarantined {
    /// One JSON object: `{"stage":…,"stage_index":…,"reason":{"code":…,"field":…,"message":…},"record":{…}}`.
    pub fn write_json(&self, out: &mut Vec<u8>, options: &JsonOptions) -> Result<()> {
        let start = out.len();
        out.extend_from_slice(b"{\"stage\":");
        json::write_string(out, &self.stage);
        out.extend_from_slice(b",\"stage_index\":");
        out.extend_from_slice(self.stage_index.to_string().as_bytes());
        out.extend_from_slice(b",\"reason\":{\"code\":");
        json::write_string(out, self.reason.code);
        out.extend_from_slice(b",\"field\":");
        match &self.reason.field {
            Some(field) => json::write_string(out, field),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"message\":");
        json::write_string(out, &self.reason.message);
        out.extend_from_slice(b"},\"record\":");
        if let Err(error) = self.record.write_json(out, options) {
            out.truncate(start);
            return Err(error);
        }
        out.push(b'}');
        Ok(())
    }
}

/// What happened to one record.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// It came out of the last stage.
    Keep(DataRecord),
    /// Stage `stage_index` dropped it.
    Dropped {
        /// Index of the stage that dropped it.
        stage_index: usize,
    },
    /// A stage quarantined it.
    Quarantined(Box<Quarantined>),
}

/// The two outputs of a batch: records that went through, and the quarantine.
#[derive(Debug, Default)]
pub struct PipelineOutput {
    /// Records that passed every stage, in input order.
    pub records: Vec<DataRecord>,
    /// Records set aside, in input order.
    pub quarantined: Vec<Quarantined>,
}

/// The three outputs of a JSON Lines batch, as bytes.
#[derive(Debug, Default)]
pub struct JsonlOutput {
    /// Records that passed every stage, one JSON object per line, in input order.
    pub records: Vec<u8>,
    /// Quarantined records, one [`Quarantined::write_json`] object per line.
    pub quarantine: Vec<u8>,
    /// Input lines that could not be used (1-based line number and why), in order.
    /// A record that passed but cannot be written (a NaN under
    /// [`NonFinite::Reject`](crate::record::NonFinite::Reject)) is reported here too.
    pub errors: Vec<(u64, Error)>,
}

/// Transforms applied in order to every record.
///
/// ```
/// use edgepipe_core::record::{DataRecord, Payload, Value};
/// use edgepipe_core::transform::{AddMetadata, FilterFields, Outcome, Pipeline};
///
/// let mut pipeline = Pipeline::new()
///     .with(AddMetadata::new([("site", "factory-1")]))
///     .with(FilterFields::new(["temperature"]));
/// let payload: Payload = [("temperature", Value::Float(22.5)), ("debug", Value::Bool(true))]
///     .into_iter()
///     .collect();
/// let Outcome::Keep(record) = pipeline.process(DataRecord::new("edge-001", "sensors", payload)) else {
///     unreachable!()
/// };
/// assert_eq!(record.payload.keys().collect::<Vec<_>>(), ["temperature"]);
/// assert_eq!(record.metadata.get("site").map(|site| site.as_str()), Some("factory-1"));
/// assert_eq!(pipeline.stats()[1].records_out, 1);
/// ```
#[derive(Debug, Default)]
pub struct Pipeline {
    stages: Vec<Box<dyn Transform>>,
    stats: Vec<StageStats>,
}

impl Pipeline {
    /// An empty pipeline (every record passes).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a stage (builder style).
    pub fn with(mut self, transform: impl Transform + 'static) -> Self {
        self.push(Box::new(transform));
        self
    }

    /// Appends a stage.
    pub fn push(&mut self, transform: Box<dyn Transform>) {
        self.stats.push(StageStats {
            name: transform.name().to_owned(),
            ..StageStats::default()
        });
        self.stages.push(transform);
    }

    /// Number of stages.
    pub fn len(&self) -> usize {
        self.stages.len()
    }

    /// True when there are no stages.
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Counters per stage, in stage order.
    pub fn stats(&self) -> &[StageStats] {
        &self.stats
    }

    /// Zeroes every counter (the transforms keep their state).
    pub fn reset_stats(&mut self) {
        for stats in &mut self.stats {
            let name = std::mem::take(&mut stats.name);
            *stats = StageStats {
                name,
                ..StageStats::default()
            };
        }
    }

    /// Runs the stages on `record` until one drops or quarantines it.
    fn run(&mut self, record: &mut DataRecord) -> Result<(), (usize, Verdict)> {
        for (index, (stage, stats)) in self.stages.iter_mut().zip(&mut self.stats).enumerate() {
            stats.records_in += 1;
            match stage.apply(record) {
                Verdict::Keep => stats.records_out += 1,
                Verdict::Drop => {
                    stats.dropped += 1;
                    return Err((index, Verdict::Drop));
                }
                verdict @ Verdict::Quarantine(_) => {
                    stats.quarantined += 1;
                    return Err((index, verdict));
                }
            }
        }
        Ok(())
    }

    fn quarantined(&self, record: DataRecord, stage_index: usize, reason: Reason) -> Quarantined {
        Quarantined {
            record,
            stage_index,
            stage: self.stats[stage_index].name.clone(),
            reason,
        }
    }

    /// Runs one record through every stage.
    pub fn process(&mut self, mut record: DataRecord) -> Outcome {
        match self.run(&mut record) {
            Ok(()) => Outcome::Keep(record),
            Err((stage_index, Verdict::Quarantine(reason))) => {
                Outcome::Quarantined(Box::new(self.quarantined(record, stage_index, reason)))
            }
            Err((stage_index, _)) => Outcome::Dropped { stage_index },
        }
    }

    /// Runs a batch in place: `records` keeps what passed, in order; what was
    /// quarantined is appended to `quarantine`. Returns how many were dropped.
    pub fn process_in_place(
        &mut self,
        records: &mut Vec<DataRecord>,
        quarantine: &mut Vec<Quarantined>,
    ) -> usize {
        let mut kept = 0;
        let mut dropped = 0;
        for index in 0..records.len() {
            match self.run(&mut records[index]) {
                Ok(()) => {
                    records.swap(kept, index);
                    kept += 1;
                }
                Err((stage_index, Verdict::Quarantine(reason))) => {
                    let record = std::mem::replace(&mut records[index], placeholder_record());
                    quarantine.push(self.quarantined(record, stage_index, reason));
                }
                Err(_) => dropped += 1,
            }
        }
        records.truncate(kept);
        dropped
    }

    /// Runs a JSON Lines batch: bytes in, bytes out. One record at a time, so
    /// memory holds the outputs and never the parsed batch; a bad line is reported
    /// in [`JsonlOutput::errors`] and never stops the rest.
    ///
    /// This is the bulk call the Python and C bindings expose.
    pub fn process_jsonl(&mut self, input: &[u8], options: &JsonOptions) -> JsonlOutput {
        let mut output = JsonlOutput::default();
        for (line, parsed) in json::parse_jsonl(input) {
            let written = parsed.and_then(|record| match self.process(record) {
                Outcome::Keep(record) => {
                    write_line(&mut output.records, |out| record.write_json(out, options))
                }
                Outcome::Quarantined(quarantined) => write_line(&mut output.quarantine, |out| {
                    quarantined.write_json(out, options)
                }),
                Outcome::Dropped { .. } => Ok(()),
            });
            if let Err(error) = written {
                output.errors.push((line, error));
            }
        }
        output
    }

    /// Runs a batch and returns both outputs.
    pub fn process_batch(
        &mut self,
        records: impl IntoIterator<Item = DataRecord>,
    ) -> PipelineOutput {
        let mut output = PipelineOutput::default();
        for record in records {
            match self.process(record) {
                Outcome::Keep(record) => output.records.push(record),
                Outcome::Quarantined(quarantined) => output.quarantined.push(*quarantined),
                Outcome::Dropped { .. } => {}
            }
        }
        output
    }
}

/// Appends one JSON value and a newline; the writers leave nothing half-written on error.
fn write_line(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), Error>,
) -> Result<(), Error> {
    write(out)?;
    out.push(b'\n');
    Ok(())
}

/// An empty record used to take a quarantined record out of a vector cheaply.
fn placeholder_record() -> DataRecord {
    DataRecord {
        record_id: Default::default(),
        device_id: Default::default(),
        timestamp: crate::record::Timestamp::UNIX_EPOCH,
        data_type: Default::default(),
        payload: Default::default(),
        metadata: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::{FieldRule, FieldType, ValidateSchema};

    #[test]
    fn process_jsonl_splits_records_quarantine_and_bad_lines() {
        let good = r#"{"record_id":"r1","device_id":"d","timestamp":"2026-01-01T00:00:00Z","data_type":"t","payload":{"v":1.5}}"#;
        let wrong = good.replace("1.5", "\"x\"").replace("r1", "r2");
        let long = format!(
            "{{\"pad\":\"{}\"}}",
            "x".repeat(json::DEFAULT_MAX_LINE_BYTES)
        );
        let input = format!("{good}\n{{oops\n{wrong}\n\n{long}\n");
        let mut pipeline = Pipeline::new().with(ValidateSchema::new([(
            "v",
            FieldRule::of_type(FieldType::Number),
        )]));
        let output = pipeline.process_jsonl(input.as_bytes(), &JsonOptions::default());

        assert_eq!(
            output.records,
            format!(
                "{}\n",
                DataRecord::from_json(good).unwrap().to_json().unwrap()
            )
            .into_bytes()
        );
        let quarantine = String::from_utf8(output.quarantine).unwrap();
        assert_eq!(quarantine.lines().count(), 1);
        assert!(
            quarantine.contains("\"record_id\":\"r2\"") && quarantine.contains("schema.wrong_type")
        );
        let lines: Vec<u64> = output.errors.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [2, 5]);
        assert!(matches!(
            output.errors[0].1,
            Error::InvalidJson { line: Some(2), .. }
        ));
        assert!(matches!(
            output.errors[1].1,
            Error::LineTooLong { line: 5, .. }
        ));
        assert_eq!(pipeline.stats()[0].records_in, 2);
    }
}
