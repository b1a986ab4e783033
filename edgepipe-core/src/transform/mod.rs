//! Transforms: per-record steps chained into a [`Pipeline`].
//!
//! A [`Transform`] looks at one record, may change it in place, and returns a
//! [`Verdict`]: keep it, drop it (counted), or send it to the quarantine output
//! with a machine-readable [`Reason`]. Nothing disappears silently: every stage
//! counts what came in, went out, was dropped and was quarantined.
//!
//! Built-ins, one file each:
//!
//! | config `type`            | transform                     | from        |
//! | ------------------------ | ----------------------------- | ----------- |
//! | `add_metadata`           | [`AddMetadata`]               | seed 000    |
//! | `filter_fields`          | [`FilterFields`]              | seed 000    |
//! | `rename_fields`          | [`RenameFields`]              | seed 000    |
//! | `add_computed_field`     | [`ComputedField`]             | seed 000    |
//! | `mask_sensitive_fields`  | [`MaskFields`]                | seed 000    |
//! | `validate_schema`        | [`ValidateSchema`]            | seed 000    |
//! | `deadband`               | [`Deadband`]                  | seed 001    |
//! | `forward_if`             | [`ForwardIf`]                 | seed 001/002|
//! | `dedup`                  | [`Dedup`]                     | seed 002/003|
//! | `enrich`                 | [`Enrich`]                    | seed 002    |
//! | `convert_units`          | [`ConvertUnits`]              | seed 002    |
//! | `anomaly`                | [`Anomaly`]                   | seed 002    |
//! | `rolling`                | [`Rolling`]                   | seed 001    |
//!
//! Pipelines are built in Rust or from a JSON/TOML [`PipelineConfig`].

mod bounded;
mod config;
mod pipeline;

mod add_metadata;
mod anomaly;
mod computed_field;
mod convert_units;
mod deadband;
mod dedup;
mod enrich;
mod filter_fields;
mod forward_if;
mod mask_fields;
mod rename_fields;
mod rolling;
mod validate_schema;

pub use add_metadata::AddMetadata;
pub use anomaly::{Anomaly, AnomalyMethod, CONSTANT_BASELINE_SCORE};
pub use computed_field::{ComputedField, Expression, OnMissing};
pub(crate) use config::read as read_config;
pub use config::{PipelineConfig, TransformConfig};
pub use convert_units::{ConvertUnits, Dimension, Unit};
pub use deadband::Deadband;
pub use dedup::{Dedup, DedupKey};
pub use enrich::{DeviceInfo, Enrich, SensorInfo};
pub use filter_fields::FilterFields;
pub use forward_if::{Comparison, ForwardIf};
pub use mask_fields::{DEFAULT_MASK, MaskFields};
pub use pipeline::{JsonlOutput, Outcome, Pipeline, PipelineOutput, Quarantined, StageStats};
pub use rename_fields::RenameFields;
pub use rolling::{Rolling, RollingAggregate, RollingWindow};
pub use validate_schema::{FieldRule, FieldType, ValidateSchema};

use std::fmt;

use crate::record::DataRecord;

/// One step of a pipeline.
///
/// `apply` may change the record in place. Transforms with state (deadband,
/// dedup) keep it bounded and see records in pipeline order.
pub trait Transform: Send {
    /// The transform's config `type` name, used in stats and quarantine reasons.
    fn name(&self) -> &str;

    /// Looks at (and may change) one record and decides what happens to it.
    fn apply(&mut self, record: &mut DataRecord) -> Verdict;
}

impl fmt::Debug for dyn Transform {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// What a transform decided about a record.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Pass it on to the next stage.
    Keep,
    /// Drop it on purpose (deadband, a failed condition, a duplicate); counted.
    Drop,
    /// Set it aside on the quarantine output, with the reason.
    Quarantine(Reason),
}

/// Why a record was quarantined, in a form a machine can sort on.
#[derive(Clone, Debug, PartialEq)]
pub struct Reason {
    /// Stable code, e.g. `schema.wrong_type`, `enrich.unknown_device`.
    pub code: &'static str,
    /// The payload field concerned, when there is one.
    pub field: Option<String>,
    /// A human-readable explanation.
    pub message: String,
}

impl Reason {
    /// A reason about one field.
    pub fn field(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Reason {
            code,
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// A reason about the whole record.
    pub fn record(code: &'static str, message: impl Into<String>) -> Self {
        Reason {
            code,
            field: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(formatter, "{} ({field}): {}", self.code, self.message),
            None => write!(formatter, "{}: {}", self.code, self.message),
        }
    }
}

/// What a transform does with records that fail its check, where the user may choose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Send to the quarantine output with the reason (the default).
    #[default]
    Quarantine,
    /// Drop and count.
    Drop,
    /// Let the record through unchanged.
    Keep,
}

impl OnFailure {
    /// The verdict for a failure with `reason`.
    pub fn verdict(self, reason: impl FnOnce() -> Reason) -> Verdict {
        match self {
            OnFailure::Quarantine => Verdict::Quarantine(reason()),
            OnFailure::Drop => Verdict::Drop,
            OnFailure::Keep => Verdict::Keep,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::record::{DataRecord, Payload, Timestamp, Value};

    /// The first record of the shared workload.
    pub(crate) fn record() -> DataRecord {
        let payload: Payload = [
            ("temperature", Value::Float(22.11)),
            ("humidity", Value::Float(50.3)),
            ("pressure", Value::Float(1012.6)),
        ]
        .into_iter()
        .collect();
        DataRecord {
            record_id: "0b7e5e42-54c4-4a3c-9b7f-2f4c1f6f3a10".into(),
            device_id: "dev-0000".into(),
            timestamp: Timestamp::from_unix_nanos(1_767_225_600_000_000_000),
            data_type: "sensors".into(),
            payload,
            metadata: Default::default(),
        }
    }
}
