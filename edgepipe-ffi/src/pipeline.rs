//! `edgepipe_pipeline`: a transform chain built from config, run over JSON Lines.

use std::ffi::{CString, c_char};

use edgepipe_core::record::JsonOptions;
use edgepipe_core::transform::{Outcome, Pipeline};
use edgepipe_core::{DataRecord, Error};

use crate::buffer::edgepipe_buffer;
use crate::error::{Failure, edgepipe_status};
use crate::ffi::{self, Out};
use crate::panic;

/// A pipeline: transforms applied in order to every record, with counters per stage.
///
/// Created by `edgepipe_pipeline_new_from_json` or `edgepipe_pipeline_new_from_toml`,
/// released by `edgepipe_pipeline_free`.
///
/// Thread safety: a pipeline may be created on one thread and used on another. The
/// functions that take `edgepipe_pipeline *` change it (transforms keep state, the
/// counters move) and need it to themselves: no other thread may use the pipeline
/// during such a call. The functions that take `const edgepipe_pipeline *` only read,
/// and may run on several threads at once. Share one pipeline under a mutex.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct edgepipe_pipeline {
    pipeline: Pipeline,
    /// The stage names as C strings, made once so `edgepipe_stage_stats.name` can
    /// point into the pipeline for as long as it lives.
    stage_names: Vec<CString>,
}

impl edgepipe_pipeline {
    fn new(pipeline: Pipeline) -> Self {
        let stage_names = pipeline
            .stats()
            .iter()
            // Transform names are config `type`s and hold no NUL; an empty name beats a failure.
            .map(|stats| CString::new(stats.name.as_str()).unwrap_or_default())
            .collect();
        edgepipe_pipeline {
            pipeline,
            stage_names,
        }
    }
}

/// The counters of one stage, as `edgepipe_pipeline_stats` reports them.
/// `records_in == records_out + dropped + quarantined`.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug)]
pub struct edgepipe_stage_stats {
    /// The transform's config `type`, NUL-terminated; owned by the pipeline and valid
    /// until `edgepipe_pipeline_free`.
    pub name: *const c_char,
    /// Records the stage saw.
    pub records_in: u64,
    /// Records it passed on.
    pub records_out: u64,
    /// Records it dropped on purpose (deadband, a filter, a duplicate).
    pub dropped: u64,
    /// Records it sent to the quarantine output.
    pub quarantined: u64,
}

/// Builds a pipeline from a JSON config (`{"transforms": [...]}`) of `config_len`
/// bytes (no NUL needed) and stores it in `*out`.
///
/// Returns `EDGEPIPE_STATUS_CONFIG` for a config that is refused, with the offending
/// key (e.g. `transforms[0].mapping`) in the message; `EDGEPIPE_STATUS_INVALID_UTF8`,
/// `EDGEPIPE_STATUS_NULL_ARGUMENT`. `*out` is written only on success.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_pipeline_new_from_json(
    config: *const c_char,
    config_len: usize,
    out: *mut *mut edgepipe_pipeline,
) -> edgepipe_status {
    new_from(config, config_len, out, Pipeline::from_json_str)
}

/// Builds a pipeline from a TOML config (`[[transforms]]` tables) of `config_len`
/// bytes (no NUL needed) and stores it in `*out`. Errors as for
/// `edgepipe_pipeline_new_from_json`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_pipeline_new_from_toml(
    config: *const c_char,
    config_len: usize,
    out: *mut *mut edgepipe_pipeline,
) -> edgepipe_status {
    new_from(config, config_len, out, Pipeline::from_toml_str)
}

fn new_from(
    config: *const c_char,
    config_len: usize,
    out: *mut *mut edgepipe_pipeline,
    parse: fn(&str) -> Result<Pipeline, Error>,
) -> edgepipe_status {
    panic::status(|| {
        let config = ffi::try_str(config, config_len, "config")?;
        let out = Out::new(out, "out")?;
        let pipeline = parse(config)?;
        out.write(ffi::into_handle(edgepipe_pipeline::new(pipeline)));
        Ok(())
    })
}

/// Frees a pipeline. NULL is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_pipeline_free(pipeline: *mut edgepipe_pipeline) {
    panic::catch_or((), || ffi::free_handle(pipeline));
}

/// Runs every record of a JSON Lines input (`input_len` bytes; `(NULL, 0)` is empty)
/// through the pipeline.
///
/// On success stores three new buffers, each to be freed with `edgepipe_buffer_free`:
/// - `*out_records`: the records that passed every stage, as JSON Lines in input order;
/// - `*out_quarantine`: one JSON object per line for each record a stage set aside:
///   `{"stage":…,"stage_index":…,"reason":{"code":…,"field":…,"message":…},"record":{…}}`;
/// - `*out_errors`: one JSON object per line for each input line that could not be
///   used: `{"line":3,"status":200,"message":"…"}`, where `status` is an
///   `edgepipe_status` (a line that is not a record is 200; a record that passed
///   but holds a NaN JSON cannot carry is 203).
///
/// Bad lines do not stop the batch: the call succeeds and reports them in
/// `*out_errors`. Fails only on bad arguments (`EDGEPIPE_STATUS_NULL_ARGUMENT`) or a
/// panic; the outputs are written only on success.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_pipeline_process_jsonl(
    pipeline: *mut edgepipe_pipeline,
    input: *const u8,
    input_len: usize,
    out_records: *mut *mut edgepipe_buffer,
    out_quarantine: *mut *mut edgepipe_buffer,
    out_errors: *mut *mut edgepipe_buffer,
) -> edgepipe_status {
    panic::status(|| {
        let pipeline = ffi::try_mut(pipeline, "pipeline")?;
        let input = ffi::try_slice(input, input_len, "input")?;
        let out_records = Out::new(out_records, "out_records")?;
        let out_quarantine = Out::new(out_quarantine, "out_quarantine")?;
        let out_errors = Out::new(out_errors, "out_errors")?;
        let output = pipeline
            .pipeline
            .process_jsonl(input, &JsonOptions::default());
        out_records.write(ffi::into_handle(edgepipe_buffer::new(output.records)));
        out_quarantine.write(ffi::into_handle(edgepipe_buffer::new(output.quarantine)));
        out_errors.write(ffi::into_handle(edgepipe_buffer::new(error_lines(
            output.errors,
        ))));
        Ok(())
    })
}

/// Stores the number of stages in `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_pipeline_stage_count(
    pipeline: *const edgepipe_pipeline,
    out: *mut usize,
) -> edgepipe_status {
    panic::status(|| {
        let pipeline = ffi::try_ref(pipeline, "pipeline")?;
        Out::new(out, "out")?.write(pipeline.pipeline.len());
        Ok(())
    })
}

/// Stores the counters of stage `index` (0-based, in config order) in `*out`.
///
/// Returns `EDGEPIPE_STATUS_INDEX_OUT_OF_RANGE` when `index` is not below the stage
/// count. `out->name` stays valid until the pipeline is freed.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_pipeline_stats(
    pipeline: *const edgepipe_pipeline,
    index: usize,
    out: *mut edgepipe_stage_stats,
) -> edgepipe_status {
    panic::status(|| {
        let handle = ffi::try_ref(pipeline, "pipeline")?;
        let out = Out::new(out, "out")?;
        let (Some(stats), Some(name)) = (
            handle.pipeline.stats().get(index),
            handle.stage_names.get(index),
        ) else {
            return Err(Failure::new(
                edgepipe_status::IndexOutOfRange,
                format!(
                    "stage index {index} is out of range: the pipeline has {} stages",
                    handle.pipeline.len()
                ),
            ));
        };
        out.write(edgepipe_stage_stats {
            name: name.as_ptr(),
            records_in: stats.records_in,
            records_out: stats.records_out,
            dropped: stats.dropped,
            quarantined: stats.quarantined,
        });
        Ok(())
    })
}

/// The per-line errors of a batch as JSON Lines: `{"line":N,"status":S,"message":"..."}`.
pub(crate) fn error_lines(errors: Vec<(u64, Error)>) -> Vec<u8> {
    let mut out = Vec::new();
    for (line, error) in errors {
        let failure = Failure::from(error);
        out.extend_from_slice(
            format!(
                "{{\"line\":{line},\"status\":{},\"message\":",
                failure.status as u32
            )
            .as_bytes(),
        );
        // A string always serializes, and writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, &failure.message);
        out.extend_from_slice(b"}\n");
    }
    out
}

/// What `edgepipe_pipeline_process_record` did with a record.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum edgepipe_outcome {
    /// It passed every stage; the record now holds the transformed reading.
    Keep = 0,
    /// A stage dropped it on purpose (deadband, filter, duplicate).
    Dropped = 1,
    /// A stage set it aside (validation failed); the record holds it as that stage
    /// saw it. `edgepipe_pipeline_process_jsonl` reports the reason in full.
    Quarantined = 2,
}

/// Runs one record through the pipeline, in place, and stores what happened in
/// `*out`: on `EDGEPIPE_OUTCOME_KEEP` the record holds the result; on
/// `EDGEPIPE_OUTCOME_QUARANTINED` the reading as the refusing stage saw it; on
/// `EDGEPIPE_OUTCOME_DROPPED` its id, device, type and timestamp with the payload
/// and metadata emptied, ready for the next reading.
///
/// The record-at-a-time call for a sensor loop that built its reading with
/// `edgepipe_record_set_*`: no JSON on the way.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_pipeline_process_record(
    pipeline: *mut edgepipe_pipeline,
    record: *mut crate::record::edgepipe_record,
    out: *mut edgepipe_outcome,
) -> edgepipe_status {
    panic::status(|| {
        let pipeline = ffi::try_mut(pipeline, "pipeline")?;
        let record = ffi::try_mut(record, "record")?;
        let out = Out::new(out, "out")?;
        // Identity fields are short (stored inline), so keeping a copy costs no
        // allocation and a dropped reading leaves a reusable record behind.
        let identity = empty_record(&record.record);
        let taken = std::mem::replace(&mut record.record, identity);
        let outcome = match pipeline.pipeline.process(taken) {
            Outcome::Keep(kept) => {
                record.record = kept;
                edgepipe_outcome::Keep
            }
            Outcome::Dropped { .. } => edgepipe_outcome::Dropped,
            Outcome::Quarantined(quarantined) => {
                record.record = quarantined.record;
                edgepipe_outcome::Quarantined
            }
        };
        out.write(outcome);
        Ok(())
    })
}

/// `record`'s id, device, type and timestamp with an empty payload and metadata.
fn empty_record(record: &DataRecord) -> DataRecord {
    DataRecord {
        record_id: record.record_id.clone(),
        device_id: record.device_id.clone(),
        timestamp: record.timestamp,
        data_type: record.data_type.clone(),
        payload: Default::default(),
        metadata: Default::default(),
    }
}

/// Every stage's counters as one JSON object in a new buffer stored in `*out`:
/// `{"stages":[{"name":…,"records_in":…,"records_out":…,"dropped":…,"quarantined":…},…]}`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_pipeline_stats_json(
    pipeline: *const edgepipe_pipeline,
    out: *mut *mut edgepipe_buffer,
) -> edgepipe_status {
    panic::status(|| {
        let pipeline = ffi::try_ref(pipeline, "pipeline")?;
        let out = Out::new(out, "out")?;
        let stages: Vec<serde_json::Value> = pipeline
            .pipeline
            .stats()
            .iter()
            .map(|stats| {
                serde_json::json!({
                    "name": stats.name,
                    "records_in": stats.records_in,
                    "records_out": stats.records_out,
                    "dropped": stats.dropped,
                    "quarantined": stats.quarantined,
                })
            })
            .collect();
        let json = serde_json::json!({ "stages": stages }).to_string();
        out.write(ffi::into_handle(edgepipe_buffer::new(json.into_bytes())));
        Ok(())
    })
}
