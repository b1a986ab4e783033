//! `add_computed_field`: add a payload field computed from others.
//!
//! From Rust, any closure over the payload. From config (and so from Python and C
//! without callbacks), a small [`Expression`]: scale/offset of one field, or the
//! sum, mean, difference or ratio of fields.

use serde::Deserialize;

use super::{Reason, Transform, Verdict};
use crate::error::{Error, Result};
use crate::record::{DataRecord, Payload, Value};

type Compute = dyn FnMut(&Payload) -> Result<Value, String> + Send;

enum Computation {
    Closure(Box<Compute>),
    Expression {
        expression: Expression,
        on_missing: OnMissing,
    },
}

/// Adds (or replaces) `field` with a value computed from the payload.
pub struct ComputedField {
    field: String,
    computation: Computation,
}

impl std::fmt::Debug for ComputedField {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = formatter.debug_struct("ComputedField");
        debug.field("field", &self.field);
        if let Computation::Expression {
            expression,
            on_missing,
        } = &self.computation
        {
            debug
                .field("expression", expression)
                .field("on_missing", on_missing);
        }
        debug.finish_non_exhaustive()
    }
}

impl ComputedField {
    /// A field computed by a closure. An `Err(message)` quarantines the record
    /// with reason `compute.failed`.
    pub fn new(
        field: impl Into<String>,
        compute: impl FnMut(&Payload) -> Result<Value, String> + Send + 'static,
    ) -> Self {
        ComputedField {
            field: field.into(),
            computation: Computation::Closure(Box::new(compute)),
        }
    }

    /// A field computed by a declarative expression; inputs that are missing are
    /// handled by `on_missing`, inputs that are not numbers quarantine the record.
    pub fn from_expression(
        field: impl Into<String>,
        expression: Expression,
        on_missing: OnMissing,
    ) -> Self {
        ComputedField {
            field: field.into(),
            computation: Computation::Expression {
                expression,
                on_missing,
            },
        }
    }

    /// The value to set, `Ok(None)` to leave the record as it is.
    fn compute(&mut self, payload: &Payload) -> Result<Option<Value>, String> {
        match &mut self.computation {
            Computation::Closure(compute) => compute(payload).map(Some),
            Computation::Expression {
                expression,
                on_missing,
            } => match expression.evaluate(payload) {
                Ok(value) => Ok(Some(Value::Float(value))),
                Err(Missing::Field(name)) => match on_missing {
                    OnMissing::Skip => Ok(None),
                    OnMissing::Null => Ok(Some(Value::Null)),
                    OnMissing::Quarantine => Err(format!("input field `{name}` is missing")),
                },
                Err(Missing::NotNumber(name)) => {
                    Err(format!("input field `{name}` is not a number"))
                }
                Err(Missing::DivisionByZero(name)) => Err(format!("input field `{name}` is zero")),
            },
        }
    }
}

impl Transform for ComputedField {
    fn name(&self) -> &str {
        "add_computed_field"
    }

    fn apply(&mut self, record: &mut DataRecord) -> Verdict {
        match self.compute(&record.payload) {
            Ok(Some(value)) => {
                record.payload.insert(self.field.as_str(), value);
                Verdict::Keep
            }
            Ok(None) => Verdict::Keep,
            Err(message) => {
                Verdict::Quarantine(Reason::field("compute.failed", self.field.clone(), message))
            }
        }
    }
}

/// What to do when an input field of an expression is missing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnMissing {
    /// Leave the record without the computed field (the default): records of other
    /// kinds flow through the same pipeline.
    #[default]
    Skip,
    /// Set the computed field to `null`.
    Null,
    /// Quarantine with reason `compute.failed`.
    Quarantine,
}

/// A declarative computation over numeric payload fields; the result is a float.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Expression {
    /// `input * factor + offset` (e.g. °C to °F: factor 1.8, offset 32).
    Scale {
        /// The input field.
        input: String,
        /// Multiplier, 1 by default.
        #[serde(default = "one")]
        factor: f64,
        /// Added after scaling, 0 by default.
        #[serde(default)]
        offset: f64,
    },
    /// The sum of the inputs.
    Sum {
        /// Input fields.
        inputs: Vec<String>,
    },
    /// The mean of the inputs.
    Mean {
        /// Input fields.
        inputs: Vec<String>,
    },
    /// `minuend - subtrahend`.
    Difference {
        /// The field subtracted from.
        minuend: String,
        /// The field subtracted.
        subtrahend: String,
    },
    /// `numerator / denominator`; a zero denominator quarantines the record.
    Ratio {
        /// The dividend field.
        numerator: String,
        /// The divisor field.
        denominator: String,
    },
}

fn one() -> f64 {
    1.0
}

enum Missing<'a> {
    Field(&'a str),
    NotNumber(&'a str),
    DivisionByZero(&'a str),
}

impl Expression {
    fn input<'a>(payload: &Payload, name: &'a str) -> Result<f64, Missing<'a>> {
        match payload.get(name) {
            None => Err(Missing::Field(name)),
            Some(value) => value.as_f64().ok_or(Missing::NotNumber(name)),
        }
    }

    fn evaluate<'a>(&'a self, payload: &Payload) -> Result<f64, Missing<'a>> {
        Ok(match self {
            Expression::Scale {
                input,
                factor,
                offset,
            } => Self::input(payload, input)? * factor + offset,
            Expression::Sum { inputs } => {
                let mut total = 0.0;
                for input in inputs {
                    total += Self::input(payload, input)?;
                }
                total
            }
            Expression::Mean { inputs } => {
                let mut total = 0.0;
                for input in inputs {
                    total += Self::input(payload, input)?;
                }
                total / inputs.len() as f64
            }
            Expression::Difference {
                minuend,
                subtrahend,
            } => Self::input(payload, minuend)? - Self::input(payload, subtrahend)?,
            Expression::Ratio {
                numerator,
                denominator,
            } => {
                let divisor = Self::input(payload, denominator)?;
                if divisor == 0.0 {
                    return Err(Missing::DivisionByZero(denominator));
                }
                Self::input(payload, numerator)? / divisor
            }
        })
    }

    fn inputs(&self) -> Vec<&str> {
        match self {
            Expression::Scale { input, .. } => vec![input],
            Expression::Sum { inputs } | Expression::Mean { inputs } => {
                inputs.iter().map(String::as_str).collect()
            }
            Expression::Difference {
                minuend,
                subtrahend,
            } => vec![minuend, subtrahend],
            Expression::Ratio {
                numerator,
                denominator,
            } => vec![numerator, denominator],
        }
    }
}

/// `{"type": "add_computed_field", "field": "temp_f", "expression": {"op": "scale", "input": "temperature", "factor": 1.8, "offset": 32}}`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The payload field to set.
    pub field: String,
    /// How to compute it.
    pub expression: Expression,
    /// What to do when an input is missing.
    #[serde(default)]
    pub on_missing: OnMissing,
}

impl Config {
    pub(crate) fn build(&self, key: &str) -> Result<ComputedField> {
        if self.field.is_empty() {
            return Err(Error::config(
                format!("{key}.field"),
                "the field name is empty",
            ));
        }
        let inputs = self.expression.inputs();
        if inputs.is_empty() {
            return Err(Error::config(
                format!("{key}.expression.inputs"),
                "needs at least one input field",
            ));
        }
        if let Expression::Scale { factor, offset, .. } = &self.expression
            && !(factor.is_finite() && offset.is_finite())
        {
            return Err(Error::config(
                format!("{key}.expression"),
                "factor and offset must be finite",
            ));
        }
        Ok(ComputedField::from_expression(
            self.field.clone(),
            self.expression.clone(),
            self.on_missing,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::tests::record;

    #[test]
    fn closures_compute_and_failures_quarantine() {
        let mut input = record();
        let mut transform = ComputedField::new("heat_index", |payload: &Payload| {
            let t = payload
                .get("temperature")
                .and_then(Value::as_f64)
                .ok_or("no temperature")?;
            Ok(Value::Float(t * 2.0))
        });
        assert_eq!(transform.apply(&mut input), Verdict::Keep);
        assert_eq!(input.payload.get("heat_index"), Some(&Value::Float(44.22)));
        input.payload.remove("temperature");
        match transform.apply(&mut input) {
            Verdict::Quarantine(reason) => {
                assert_eq!(reason.code, "compute.failed");
                assert_eq!(reason.message, "no temperature");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn expressions_cover_scale_sum_mean_difference_ratio() {
        let payload = record().payload;
        let eval = |json: &str| {
            let expression: Expression = serde_json::from_str(json).unwrap();
            expression.evaluate(&payload).ok()
        };
        assert_eq!(
            eval(r#"{"op":"scale","input":"temperature","factor":1.8,"offset":32}"#),
            Some(22.11 * 1.8 + 32.0)
        );
        assert_eq!(
            eval(r#"{"op":"sum","inputs":["temperature","humidity"]}"#),
            Some(22.11 + 50.3)
        );
        assert_eq!(
            eval(r#"{"op":"mean","inputs":["temperature","humidity"]}"#),
            Some((22.11 + 50.3) / 2.0)
        );
        assert_eq!(
            eval(r#"{"op":"difference","minuend":"pressure","subtrahend":"humidity"}"#),
            Some(1012.6 - 50.3)
        );
        assert_eq!(
            eval(r#"{"op":"ratio","numerator":"humidity","denominator":"temperature"}"#),
            Some(50.3 / 22.11)
        );
        assert_eq!(eval(r#"{"op":"scale","input":"absent"}"#), None);
    }

    #[test]
    fn missing_inputs_follow_the_policy() {
        let expression = Expression::Scale {
            input: "absent".into(),
            factor: 1.0,
            offset: 0.0,
        };
        let mut input = record();
        let mut skip = ComputedField::from_expression("out", expression.clone(), OnMissing::Skip);
        assert_eq!(skip.apply(&mut input), Verdict::Keep);
        assert!(!input.payload.contains_key("out"));
        let mut null = ComputedField::from_expression("out", expression.clone(), OnMissing::Null);
        assert_eq!(null.apply(&mut input), Verdict::Keep);
        assert_eq!(input.payload.get("out"), Some(&Value::Null));
        let mut strict = ComputedField::from_expression("out", expression, OnMissing::Quarantine);
        assert!(matches!(strict.apply(&mut input), Verdict::Quarantine(_)));
        input.payload.insert("zero", Value::Int(0));
        let ratio = Expression::Ratio {
            numerator: "humidity".into(),
            denominator: "zero".into(),
        };
        let mut divide = ComputedField::from_expression("out", ratio, OnMissing::Skip);
        assert!(matches!(divide.apply(&mut input), Verdict::Quarantine(_)));
    }
}
