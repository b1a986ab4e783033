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

use serde_json::Value;

use super::{
    Pipeline, Transform, add_metadata, anomaly, computed_field, convert_units, deadband, dedup,
    enrich, filter_fields, forward_if, mask_fields, rename_fields, rolling, validate_schema,
};
use crate::error::{Error, Result};
use crate::window::WindowConfig;

/// A whole pipeline: its transforms in order, and optionally a window stage.
///
/// Read from a table with the keys `transforms`, a list of tables each tagged by
/// `type`, and `window` (see [`WindowConfig`]). The tag is read first and the rest of the table is then read as that
/// transform's config, so that every error names the exact key
/// (`transforms[2].expression.factor`), which serde's tagged enums cannot do.
#[derive(Clone, Debug, Default)]
pub struct PipelineConfig {
    /// The stages, applied in order.
    pub transforms: Vec<TransformConfig>,
    /// The window stage after the transforms, if any (built by
    /// [`crate::window::WindowedPipeline`]).
    pub window: Option<WindowConfig>,
}

/// One stage's config, by `type`.
#[derive(Clone, Debug)]
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
    /// See [`super::Anomaly`].
    Anomaly(anomaly::Config),
    /// See [`super::Rolling`].
    Rolling(rolling::Config),
}

/// Every transform `type`, in the order of the guide.
pub const TRANSFORM_TYPES: &[&str] = &[
    "add_metadata",
    "filter_fields",
    "rename_fields",
    "add_computed_field",
    "mask_sensitive_fields",
    "validate_schema",
    "deadband",
    "forward_if",
    "dedup",
    "enrich",
    "convert_units",
    "anomaly",
    "rolling",
];

/// Reads `T` from `value`, naming the offending key below `key` on error.
pub(crate) fn read<T: serde::de::DeserializeOwned>(key: &str, value: Value) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let key = if path == "." {
            key.to_owned()
        } else {
            format!("{key}.{path}")
        };
        Error::config(key, error.into_inner().to_string())
    })
}

impl TransformConfig {
    /// Reads the config of a transform of type `kind` from the rest of its table.
    /// `key` (e.g. `transforms[3]`) prefixes any error.
    pub fn from_table(kind: &str, table: Value, key: &str) -> Result<Self> {
        Ok(match kind {
            "add_metadata" => TransformConfig::AddMetadata(read(key, table)?),
            "filter_fields" => TransformConfig::FilterFields(read(key, table)?),
            "rename_fields" => TransformConfig::RenameFields(read(key, table)?),
            "add_computed_field" => TransformConfig::AddComputedField(read(key, table)?),
            "mask_sensitive_fields" => TransformConfig::MaskSensitiveFields(read(key, table)?),
            "validate_schema" => TransformConfig::ValidateSchema(read(key, table)?),
            "deadband" => TransformConfig::Deadband(read(key, table)?),
            "forward_if" => TransformConfig::ForwardIf(read(key, table)?),
            "dedup" => TransformConfig::Dedup(read(key, table)?),
            "enrich" => TransformConfig::Enrich(read(key, table)?),
            "convert_units" => TransformConfig::ConvertUnits(read(key, table)?),
            "anomaly" => TransformConfig::Anomaly(read(key, table)?),
            "rolling" => TransformConfig::Rolling(read(key, table)?),
            other => {
                return Err(Error::config(
                    format!("{key}.type"),
                    format!(
                        "unknown transform `{other}`, expected one of {}",
                        TRANSFORM_TYPES.join(", ")
                    ),
                ));
            }
        })
    }

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
            TransformConfig::Anomaly(config) => Box::new(config.build(key)?),
            TransformConfig::Rolling(config) => Box::new(config.build(key)?),
        })
    }
}

impl PipelineConfig {
    /// Parses JSON, naming the offending key on error.
    pub fn from_json_str(text: &str) -> Result<Self> {
        let value =
            serde_json::from_str(text).map_err(|error| Error::config(".", error.to_string()))?;
        Self::from_value(value)
    }

    /// Parses TOML, naming the offending key on error.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let value = toml::from_str(text).map_err(|error| Error::config(".", error.to_string()))?;
        Self::from_value(value)
    }

    /// Reads a config already parsed into a JSON value (what a binding builds
    /// from a Python dict, say).
    pub fn from_value(value: Value) -> Result<Self> {
        let Value::Object(mut top) = value else {
            return Err(Error::config(
                ".",
                "expected a table with a `transforms` list",
            ));
        };
        if let Some(unknown) = top
            .keys()
            .find(|key| *key != "transforms" && *key != "window")
        {
            return Err(Error::config(
                unknown.as_str(),
                "unknown field, expected `transforms` or `window`",
            ));
        }
        let window = top
            .remove("window")
            .map(|table| WindowConfig::from_value(table, "window"))
            .transpose()?;
        let items = match top.remove("transforms") {
            None => Vec::new(),
            Some(Value::Array(items)) => items,
            Some(_) => return Err(Error::config("transforms", "expected a list of tables")),
        };
        let mut transforms = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            let key = format!("transforms[{index}]");
            let Value::Object(mut table) = item else {
                return Err(Error::config(key, "expected a table with a `type`"));
            };
            let kind = match table.remove("type") {
                Some(Value::String(kind)) => kind,
                Some(_) => return Err(Error::config(format!("{key}.type"), "expected a string")),
                None => {
                    return Err(Error::config(
                        format!("{key}.type"),
                        format!("missing; expected one of {}", TRANSFORM_TYPES.join(", ")),
                    ));
                }
            };
            transforms.push(TransformConfig::from_table(
                &kind,
                Value::Object(table),
                &key,
            )?);
        }
        Ok(PipelineConfig { transforms, window })
    }

    /// Builds the pipeline, checking every stage's parameters (the window's
    /// too; [`crate::window::WindowedPipeline`] builds both stages).
    pub fn build(&self) -> Result<Pipeline> {
        if let Some(window) = &self.window {
            window.validate("window")?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config_error(result: Result<Pipeline>) -> (String, String) {
        match result {
            Err(Error::Config { key, message }) => (key, message),
            Err(other) => panic!("expected a config error, got {other}"),
            Ok(_) => panic!("expected a config error, got a pipeline"),
        }
    }

    #[test]
    fn unknown_transform_names_are_refused_naming_the_key() {
        let (key, message) = config_error(Pipeline::from_json_str(
            r#"{"transforms": [{"type": "add_metadata", "metadata": {}}, {"type": "frobnicate"}]}"#,
        ));
        assert_eq!(key, "transforms[1].type");
        assert!(
            message.contains("unknown transform `frobnicate`"),
            "{message}"
        );
        assert!(
            message.contains("rename_fields"),
            "lists the known names: {message}"
        );

        let (key, message) = config_error(Pipeline::from_toml_str(
            "[[transforms]]\ntype = \"frobnicate\"\n",
        ));
        assert_eq!(key, "transforms[0].type");
        assert!(message.contains("frobnicate"), "{message}");
    }

    #[test]
    fn bad_parameters_are_refused_naming_the_key() {
        let (key, message) = config_error(Pipeline::from_json_str(
            r#"{"transforms": [{"type": "filter_fields", "fields": "temperature"}]}"#,
        ));
        assert_eq!(key, "transforms[0].fields");
        assert!(message.contains("expected a sequence"), "{message}");

        let (key, message) = config_error(Pipeline::from_json_str(
            r#"{"transforms": [{"type": "add_computed_field", "field": "f",
                "expression": {"op": "scale", "input": "t", "factor": "two"}}]}"#,
        ));
        assert_eq!(
            key, "transforms[0].expression",
            "inside the tagged expression serde keeps no path"
        );
        assert!(message.contains("expected f64"), "{message}");

        let (key, message) = config_error(Pipeline::from_json_str(
            r#"{"transforms": [{"type": "forward_if", "field": "rpm", "op": "~", "value": 1}]}"#,
        ));
        assert_eq!(key, "transforms[0].op");
        assert!(message.contains('~'), "{message}");

        let (key, message) = config_error(Pipeline::from_toml_str(
            "[[transforms]]\ntype = \"rename_fields\"\nmapping = { temperature = \"\" }\n",
        ));
        assert_eq!(key, "transforms[0].mapping.temperature");
        assert!(message.contains("empty"), "{message}");

        let (key, message) =
            config_error(Pipeline::from_json_str(r#"{"transforms": [], "extra": 1}"#));
        assert_eq!(key, "extra");
        assert!(message.contains("unknown field"), "{message}");

        let (_, message) = config_error(Pipeline::from_toml_str("[[transforms]\n"));
        assert!(
            message.contains("TOML") || message.contains("expected"),
            "{message}"
        );
    }

    #[test]
    fn json_and_toml_build_the_same_pipeline() {
        let json = Pipeline::from_json_str(
            r#"{"transforms": [
                {"type": "add_metadata", "metadata": {"site": "f1"}},
                {"type": "validate_schema", "fields": {"temperature": {"type": "number", "max": 85}}},
                {"type": "add_computed_field", "field": "t_f", "expression": {"op": "scale", "input": "temperature", "factor": 1.8, "offset": 32}}
            ]}"#,
        )
        .unwrap();
        let toml = Pipeline::from_toml_str(
            r#"
            [[transforms]]
            type = "add_metadata"
            metadata = { site = "f1" }

            [[transforms]]
            type = "validate_schema"
            fields = { temperature = { type = "number", max = 85 } }

            [[transforms]]
            type = "add_computed_field"
            field = "t_f"
            expression = { op = "scale", input = "temperature", factor = 1.8, offset = 32 }
            "#,
        )
        .unwrap();
        let names = |p: &Pipeline| p.stats().iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&json), names(&toml));
        let mut json = json;
        let mut toml = toml;
        let mut record = super::super::tests::record();
        record
            .payload
            .insert("temperature", crate::record::Value::Int(90));
        assert_eq!(json.process(record.clone()), toml.process(record));
    }
}
