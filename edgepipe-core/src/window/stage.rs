//! A window stage after a transform pipeline, built from one config.

use super::config::WindowConfig;
use super::operator::{WindowOperator, WindowOutput};
use crate::error::{Error, Result};
use crate::record::{DataRecord, Timestamp};
use crate::transform::{Outcome, Pipeline, PipelineConfig, Quarantined};

/// Transforms, then a window: what a pipeline config with a `window` table builds.
///
/// ```
/// use edgepipe_core::record::DataRecord;
/// use edgepipe_core::window::{WindowOutput, WindowedPipeline};
///
/// let mut stage = WindowedPipeline::from_json_str(r#"{
///     "transforms": [{"type": "rename_fields", "mapping": {"temperature": "temp_c"}}],
///     "window": {"kind": "tumbling", "size_seconds": 10, "aggregates": ["max"]}
/// }"#)?;
/// let mut out = WindowOutput::new();
/// let mut quarantine = Vec::new();
/// for line in [
///     r#"{"record_id":"a","device_id":"d1","timestamp":"2026-01-01T00:00:01Z","data_type":"sensors","payload":{"temperature":21.5}}"#,
///     r#"{"record_id":"b","device_id":"d1","timestamp":"2026-01-01T00:00:02Z","data_type":"sensors","payload":{"temperature":23.0}}"#,
/// ] {
///     stage.push(DataRecord::from_json(line)?, &mut out, &mut quarantine);
/// }
/// stage.flush(&mut out);
/// assert_eq!(out.aggregates[0].payload.get("temp_c.max").and_then(|v| v.as_f64()), Some(23.0));
/// # Ok::<(), edgepipe_core::Error>(())
/// ```
#[derive(Debug)]
pub struct WindowedPipeline {
    pipeline: Pipeline,
    window: WindowOperator,
}

impl WindowedPipeline {
    /// Chains `pipeline` and `window`.
    pub fn new(pipeline: Pipeline, window: WindowOperator) -> Self {
        WindowedPipeline { pipeline, window }
    }

    /// Builds both stages; the config must have a `window` table.
    pub fn from_config(config: &PipelineConfig) -> Result<Self> {
        let window = config.window.as_ref().ok_or_else(|| {
            Error::config(
                "window",
                "missing; a windowed pipeline needs a `window` table",
            )
        })?;
        Ok(WindowedPipeline::new(config.build()?, build(window)?))
    }

    /// Parses and builds a JSON config (`{"transforms": [...], "window": {...}}`).
    pub fn from_json_str(text: &str) -> Result<Self> {
        Self::from_config(&PipelineConfig::from_json_str(text)?)
    }

    /// Parses and builds a TOML config (`[[transforms]]` tables and a `[window]` table).
    pub fn from_toml_str(text: &str) -> Result<Self> {
        Self::from_config(&PipelineConfig::from_toml_str(text)?)
    }

    /// Runs `record` through the transforms; what passes goes into the window.
    /// Quarantined records are appended to `quarantine`.
    pub fn push(
        &mut self,
        record: DataRecord,
        out: &mut WindowOutput,
        quarantine: &mut Vec<Quarantined>,
    ) {
        match self.pipeline.process(record) {
            Outcome::Keep(record) => self.window.push(&record, out),
            Outcome::Quarantined(quarantined) => quarantine.push(*quarantined),
            Outcome::Dropped { .. } => {}
        }
    }

    /// See [`WindowOperator::advance_to`].
    pub fn advance_to(&mut self, now: Timestamp, out: &mut WindowOutput) {
        self.window.advance_to(now, out);
    }

    /// See [`WindowOperator::flush`].
    pub fn flush(&mut self, out: &mut WindowOutput) {
        self.window.flush(out);
    }

    /// The transform stages (for their counters).
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The window stage (for its counters and snapshots).
    pub fn window(&self) -> &WindowOperator {
        &self.window
    }

    /// The window stage, mutably (to restore it, say).
    pub fn window_mut(&mut self) -> &mut WindowOperator {
        &mut self.window
    }
}

fn build(config: &WindowConfig) -> Result<WindowOperator> {
    WindowOperator::new(config.clone())
}
