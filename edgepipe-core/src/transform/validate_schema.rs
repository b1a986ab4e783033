//! `validate_schema`: check payload field types, presence and numeric ranges.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{OnFailure, Reason, Transform, Verdict};
use crate::error::{Error, Result};
use crate::record::{DataRecord, FieldMap, Value, ValueKind};

/// The type a payload field must have.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Anything (only presence and range are checked).
    #[default]
    Any,
    /// A float. As in Python, `22` is an int, not a float; use `number` to accept both.
    Float,
    /// An integer. Unlike Python's `isinstance(True, int)`, booleans are not integers.
    Int,
    /// An integer or a float.
    Number,
    /// `true` or `false`.
    Bool,
    /// A string.
    String,
    /// `null`.
    Null,
    /// A list.
    List,
    /// A map.
    Map,
}

impl FieldType {
    /// True when `value` has this type.
    pub fn matches(self, value: &Value) -> bool {
        match self {
            FieldType::Any => true,
            FieldType::Number => value.is_number(),
            FieldType::Float => value.kind() == ValueKind::Float,
            FieldType::Int => value.kind() == ValueKind::Int,
            FieldType::Bool => value.kind() == ValueKind::Bool,
            FieldType::String => value.kind() == ValueKind::String,
            FieldType::Null => value.kind() == ValueKind::Null,
            FieldType::List => value.kind() == ValueKind::List,
            FieldType::Map => value.kind() == ValueKind::Map,
        }
    }

    fn name(self) -> &'static str {
        match self {
            FieldType::Any => "any",
            FieldType::Float => "float",
            FieldType::Int => "int",
            FieldType::Number => "number",
            FieldType::Bool => "bool",
            FieldType::String => "string",
            FieldType::Null => "null",
            FieldType::List => "list",
            FieldType::Map => "map",
        }
    }
}

/// The rule for one field. In config, either a type name (`"number"`) or a table
/// (`{type = "number", required = true, min = -40, max = 85}`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    /// Required type.
    #[serde(rename = "type", default)]
    pub field_type: FieldType,
    /// Whether the field must be present (absent fields pass by default, as in the seed).
    #[serde(default)]
    pub required: bool,
    /// Smallest allowed value, for numbers.
    #[serde(default)]
    pub min: Option<f64>,
    /// Largest allowed value, for numbers.
    #[serde(default)]
    pub max: Option<f64>,
}

impl FieldRule {
    /// A rule that checks the type only.
    pub fn of_type(field_type: FieldType) -> Self {
        FieldRule {
            field_type,
            ..FieldRule::default()
        }
    }

    /// The rule, requiring presence.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// The rule, with an inclusive numeric range.
    pub fn range(mut self, min: Option<f64>, max: Option<f64>) -> Self {
        self.min = min;
        self.max = max;
        self
    }

    fn check(&self, field: &str, value: Option<&Value>) -> Option<Reason> {
        let Some(value) = value else {
            return self.required.then(|| {
                Reason::field("schema.missing_field", field, "required field is missing")
            });
        };
        if !self.field_type.matches(value) {
            return Some(Reason::field(
                "schema.wrong_type",
                field,
                format!(
                    "expected {}, found {}",
                    self.field_type.name(),
                    value.kind()
                ),
            ));
        }
        if self.min.is_none() && self.max.is_none() {
            return None;
        }
        let Some(number) = value.as_f64() else {
            return Some(Reason::field(
                "schema.wrong_type",
                field,
                format!("a range applies to numbers, found {}", value.kind()),
            ));
        };
        if let Some(min) = self.min
            && (number < min || number.is_nan())
        {
            return Some(Reason::field(
                "schema.below_min",
                field,
                format!("{number} is below the minimum {min}"),
            ));
        }
        if let Some(max) = self.max
            && (number > max || number.is_nan())
        {
            return Some(Reason::field(
                "schema.above_max",
                field,
                format!("{number} is above the maximum {max}"),
            ));
        }
        None
    }
}

impl<'de> Deserialize<'de> for FieldRuleSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpecVisitor;
        impl<'de> Visitor<'de> for SpecVisitor {
            type Value = FieldRuleSpec;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a type name or a table with type/required/min/max")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<FieldRuleSpec, E> {
                FieldType::deserialize(de::value::StrDeserializer::<E>::new(name))
                    .map(|field_type| FieldRuleSpec(FieldRule::of_type(field_type)))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FieldRuleSpec, A::Error> {
                FieldRule::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(FieldRuleSpec)
            }
        }
        deserializer.deserialize_any(SpecVisitor)
    }
}

/// A [`FieldRule`] as written in config: a type name or a full table.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldRuleSpec(pub FieldRule);

/// Checks each record against per-field rules; the first failure decides.
#[derive(Clone, Debug)]
pub struct ValidateSchema {
    rules: Vec<(String, FieldRule)>,
    on_invalid: OnFailure,
}

impl ValidateSchema {
    /// Rules in the order they are checked; failures are quarantined.
    pub fn new<S: Into<String>>(rules: impl IntoIterator<Item = (S, FieldRule)>) -> Self {
        ValidateSchema {
            rules: rules
                .into_iter()
                .map(|(field, rule)| (field.into(), rule))
                .collect(),
            on_invalid: OnFailure::Quarantine,
        }
    }

    /// What to do with invalid records instead of quarantining them.
    pub fn on_invalid(mut self, policy: OnFailure) -> Self {
        self.on_invalid = policy;
        self
    }

    /// The first rule `record` breaks, if any.
    pub fn check(&self, record: &DataRecord) -> Option<Reason> {
        self.rules
            .iter()
            .find_map(|(field, rule)| rule.check(field, record.payload.get(field)))
    }
}

impl Transform for ValidateSchema {
    fn name(&self) -> &str {
        "validate_schema"
    }

    fn apply(&mut self, record: &mut DataRecord) -> Verdict {
        match self.check(record) {
            None => Verdict::Keep,
            Some(reason) => self.on_invalid.verdict(|| reason),
        }
    }
}

/// `{"type": "validate_schema", "fields": {"temperature": {"type": "number", "min": -40, "max": 85}, "status": "string"}}`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Field name to rule, checked in the order written.
    pub fields: FieldMap<FieldRuleSpec>,
    /// What happens to invalid records: `quarantine` (default), `drop` or `keep`.
    #[serde(default)]
    pub on_invalid: OnFailure,
}

impl Config {
    pub(crate) fn build(&self, key: &str) -> Result<ValidateSchema> {
        for (field, FieldRuleSpec(rule)) in self.fields.iter() {
            let at = || format!("{key}.fields.{field}");
            let numeric = matches!(
                rule.field_type,
                FieldType::Any | FieldType::Number | FieldType::Int | FieldType::Float
            );
            if (rule.min.is_some() || rule.max.is_some()) && !numeric {
                return Err(Error::config(
                    at(),
                    format!(
                        "min/max need a numeric type, not {}",
                        rule.field_type.name()
                    ),
                ));
            }
            if let (Some(min), Some(max)) = (rule.min, rule.max)
                && min > max
            {
                return Err(Error::config(at(), format!("min {min} is above max {max}")));
            }
        }
        Ok(ValidateSchema::new(
            self.fields
                .iter()
                .map(|(field, spec)| (field, spec.0.clone())),
        )
        .on_invalid(self.on_invalid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::tests::record;

    fn schema() -> ValidateSchema {
        ValidateSchema::new([
            (
                "temperature",
                FieldRule::of_type(FieldType::Float).range(Some(-40.0), Some(85.0)),
            ),
            ("humidity", FieldRule::of_type(FieldType::Number)),
            ("status", FieldRule::of_type(FieldType::String)),
        ])
    }

    fn code(record: &DataRecord) -> Option<&'static str> {
        schema().check(record).map(|reason| reason.code)
    }

    #[test]
    fn passes_good_records_and_names_the_broken_rule() {
        let mut input = record();
        assert_eq!(code(&input), None);
        input.payload.insert("temperature", Value::Float(99.0));
        assert_eq!(code(&input), Some("schema.above_max"));
        input.payload.insert("temperature", Value::Float(f64::NAN));
        assert_eq!(code(&input), Some("schema.below_min"));
        input.payload.insert("temperature", Value::Int(20));
        assert_eq!(
            code(&input),
            Some("schema.wrong_type"),
            "an int is not a float, as in Python"
        );
        input.payload.insert("temperature", Value::Float(20.0));
        input.payload.insert("status", Value::Bool(true));
        let reason = schema().check(&input).unwrap();
        assert_eq!(
            (reason.code, reason.field.as_deref()),
            ("schema.wrong_type", Some("status"))
        );
        assert_eq!(reason.message, "expected string, found bool");
    }

    #[test]
    fn required_fields_must_be_present() {
        let mut transform =
            ValidateSchema::new([("serial", FieldRule::of_type(FieldType::String).required())]);
        let mut input = record();
        assert!(
            matches!(transform.apply(&mut input), Verdict::Quarantine(ref r) if r.code == "schema.missing_field")
        );
        let mut dropping = transform.clone().on_invalid(OnFailure::Drop);
        assert_eq!(dropping.apply(&mut input), Verdict::Drop);
    }

    #[test]
    fn config_accepts_type_names_and_tables_and_names_bad_keys() {
        let config: Config = serde_json::from_str(
            r#"{"fields": {"temperature": {"type": "float", "min": -40, "max": 85}, "status": "string"}}"#,
        )
        .unwrap();
        let built = config.build("transforms[0]").unwrap();
        assert_eq!(
            built.rules[0].1,
            FieldRule::of_type(FieldType::Float).range(Some(-40.0), Some(85.0))
        );
        assert_eq!(built.rules[1].0, "status");

        let bad: Config =
            serde_json::from_str(r#"{"fields": {"status": {"type": "string", "min": 1}}}"#)
                .unwrap();
        let error = bad.build("transforms[4]").unwrap_err().to_string();
        assert!(error.contains("transforms[4].fields.status"), "{error}");
        assert!(serde_json::from_str::<Config>(r#"{"fields": {"x": "decimal"}}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"fields": {"x": {"typ": "int"}}}"#).is_err());
    }
}
