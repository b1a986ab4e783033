//! Pipelines from declarative config, in JSON or TOML.
//!
//! ```
//! use edgepipe_core::transform::Pipeline;
//!
//! let pipeline = Pipeline::from_toml_str(r#"
//!     [[transforms]]
//!     type = "add_metadata"
//!     metadata = { region = "us-west", site = "factory-1" }
//!
//!     [[transforms]]
//!     type = "rename_fields"
//!     mapping = { temperature = "temp_c" }
//! "#)?;
//! assert_eq!(pipeline.len(), 2);
//!
//! let error = Pipeline::from_json_str(r#"{"transforms": [{"type": "rename_fields", "mapingg": {}}]}"#)
//!     .unwrap_err();
//! assert!(error.to_string().contains("transforms[0]"));
//! assert!(error.to_string().contains("mapingg"));
//! # Ok::<(), edgepipe_core::Error>(())
//! ```

use serde::Deserialize;

use super::{
    Pipeline, Transform, add_metadata, computed_field, convert_units, deadband, dedup, enrich,
    filter_fields, forward_if, mask_fields, rename_fields, validate_schema,
};
use crate::error::{Error, Result};

/// A whole pipeline: its transforms in order.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// The stages, applied in order.
    #[serde(default)]
    pub transforms: Vec<TransformConfig>,
}

/// One stage, tagged by `type`.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TransformConfig {
    /// See [`super::AddMetadata`].
    AddMetadata(add_metadata::Config),
    /// See [`super::FilterFields`].
    FilterFields(filter_fields::Config),
    /// See [`super::RenameFields`].
    RenameFields(rename_fields::Config),
    /// See [`super::ComputedField`].
    AddComputedField(computed_field::Config),
    /// See [`super::MaskFields`].
    MaskSensitiveFields(mask_fields::Config),
    /// See [`super::ValidateSchema`].
    ValidateSchema(validate_schema::Config),
    /// See [`super::Deadband`].
    Deadband(deadband::Config),
    /// See [`super::ForwardIf`].
    ForwardIf(forward_if::Config),
    /// See [`super::Dedup`].
    Dedup(dedup::Config),
    /// See [`super::Enrich`].
    Enrich(enrich::Config),
    /// See [`super::ConvertUnits`].
    ConvertUnits(convert_units::Config),
}

impl TransformConfig {
    /// Builds the transform; `key` (e.g. `transforms[3]`) prefixes any error.
    pub fn build(&self, key: &str) -> Result<Box<dyn Transform>> {
        Ok(match self {
            TransformConfig::AddMetadata(config) => Box::new(config.build()),
            TransformConfig::FilterFields(config) => Box::new(config.build()),
            TransformConfig::RenameFields(config) => Box::new(config.build(key)?),
            TransformConfig::AddComputedField(config) => Box::new(config.build(key)?),
            TransformConfig::MaskSensitiveFields(config) => Box::new(config.build()),
            TransformConfig::ValidateSchema(config) => Box::new(config.build(key)?),
            TransformConfig::Deadband(config) => Box::new(config.build(key)?),
            TransformConfig::ForwardIf(config) => Box::new(config.build(key)?),
            TransformConfig::Dedup(config) => Box::new(config.build(key)?),
            TransformConfig::Enrich(config) => Box::new(config.build(key)?),
            TransformConfig::ConvertUnits(config) => Box::new(config.build(key)?),
        })
    }
}

impl PipelineConfig {
    /// Parses JSON, naming the offending key on error.
    pub fn from_json_str(text: &str) -> Result<Self> {
        let deserializer = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let key = error.path().to_string();
            Error::config(key, error.into_inner().to_string())
        })
    }

    /// Parses TOML, naming the offending key on error.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let deserializer = toml::Deserializer::parse(text)
            .map_err(|error| Error::config(".", error.to_string()))?;
        serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let key = error.path().to_string();
            Error::config(key, error.into_inner().to_string())
        })
    }

    /// Builds the pipeline, checking every stage's parameters.
    pub fn build(&self) -> Result<Pipeline> {
        let mut pipeline = Pipeline::new();
        for (index, transform) in self.transforms.iter().enumerate() {
            pipeline.push(transform.build(&format!("transforms[{index}]"))?);
        }
        Ok(pipeline)
    }
}

impl Pipeline {
    /// Builds a pipeline from a JSON config (`{"transforms": [...]}`).
    pub fn from_json_str(text: &str) -> Result<Self> {
        PipelineConfig::from_json_str(text)?.build()
    }

    /// Builds a pipeline from a TOML config (`[[transforms]]` tables).
    pub fn from_toml_str(text: &str) -> Result<Self> {
        PipelineConfig::from_toml_str(text)?.build()
    }
}
