//! `forward_if`: conditional forwarding on one payload field.
//!
//! The seed's "only transmit data if the machine's RPM exceeds a threshold"
//! (`if features['rms'] > ALERT_THRESHOLD: publish(...)`), written in config as
//! `{"type": "forward_if", "when": "rpm > 1000"}` or with `field`, `op` and `value`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use super::{OnFailure, Reason, Transform, Verdict};
use crate::error::{Error, Result};
use crate::record::{DataRecord, Payload, Value, ValueKind};

/// A comparison operator: `>`, `>=`, `<`, `<=`, `==` or `!=`.
///
/// In config, the symbol or its name: `gt`, `ge`, `lt`, `le`, `eq`, `ne`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Comparison {
    /// `>` (`gt`)
    Gt,
    /// `>=` (`ge`)
    Ge,
    /// `<` (`lt`)
    Lt,
    /// `<=` (`le`)
    Le,
    /// `==` (`eq`)
    Eq,
    /// `!=` (`ne`)
    Ne,
}

impl Comparison {
    /// Every operator, in the order above.
    pub const ALL: [Comparison; 6] = [
        Comparison::Gt,
        Comparison::Ge,
        Comparison::Lt,
        Comparison::Le,
        Comparison::Eq,
        Comparison::Ne,
    ];

    /// The operator's symbol, e.g. `>=`.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Eq => "==",
            Comparison::Ne => "!=",
        }
    }

    /// The operator's name, e.g. `ge`.
    pub fn word(self) -> &'static str {
        match self {
            Comparison::Gt => "gt",
            Comparison::Ge => "ge",
            Comparison::Lt => "lt",
            Comparison::Le => "le",
            Comparison::Eq => "eq",
            Comparison::Ne => "ne",
        }
    }

    /// True for `==` and `!=`, the only operators that apply to booleans.
    pub fn is_equality(self) -> bool {
        matches!(self, Comparison::Eq | Comparison::Ne)
    }

    /// Whether `left op right` holds, given how `left` compares with `right`
    /// (`None` when they are unordered, as NaN is with everything: then only
    /// `!=` holds, as in IEEE 754).
    pub fn holds(self, ordering: Option<std::cmp::Ordering>) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        match (self, ordering) {
            (Comparison::Ne, None) => true,
            (_, None) => false,
            (Comparison::Gt, Some(ordering)) => ordering == Greater,
            (Comparison::Ge, Some(ordering)) => ordering != Less,
            (Comparison::Lt, Some(ordering)) => ordering == Less,
            (Comparison::Le, Some(ordering)) => ordering != Greater,
            (Comparison::Eq, Some(ordering)) => ordering == Equal,
            (Comparison::Ne, Some(ordering)) => ordering != Equal,
        }
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.symbol())
    }
}

impl Comparison {
    /// The operator written `text`, as a symbol or a name.
    fn lookup(text: &str) -> Option<Comparison> {
        Comparison::ALL
            .into_iter()
            .find(|op| op.symbol() == text || op.word() == text)
    }
}

fn unknown_operator(text: &str) -> String {
    format!(
        "unknown operator {text:?}; expected one of >, >=, <, <=, ==, != \
         (or gt, ge, lt, le, eq, ne)"
    )
}

impl FromStr for Comparison {
    type Err = Error;

    /// Reads a symbol (`>=`) or a name (`ge`).
    fn from_str(text: &str) -> Result<Self> {
        Comparison::lookup(text).ok_or_else(|| Error::config("op", unknown_operator(text)))
    }
}

impl<'de> Deserialize<'de> for Comparison {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Comparison::lookup(&text).ok_or_else(|| serde::de::Error::custom(unknown_operator(&text)))
    }
}

/// Keeps records whose payload field satisfies `field op value`.
///
/// - Numbers compare numerically: two integers exactly, otherwise as `f64`
///   (a NaN field satisfies only `!=`).
/// - Strings compare lexicographically (by Unicode scalar values, bytewise).
/// - Booleans compare only with `==` and `!=`.
///
/// A record whose condition is false is dropped by default (`on_false`,
/// reason `condition.false` when quarantined). A record without the field, or
/// whose field has a type the value cannot be compared with (a string against a
/// number, `null`, a list…), is dropped by default too (`on_missing`, reasons
/// `condition.missing_field` and `condition.not_comparable`).
///
/// ```
/// use edgepipe_core::record::{DataRecord, Payload, Value};
/// use edgepipe_core::transform::{ForwardIf, Transform, Verdict};
///
/// let mut forward = ForwardIf::parse("rpm > 1000")?;
/// let mut record = DataRecord::new("press-1", "sensors", Payload::new());
/// record.payload.insert("rpm", Value::Int(1200));
/// assert_eq!(forward.apply(&mut record), Verdict::Keep);
/// record.payload.insert("rpm", Value::Float(999.5));
/// assert_eq!(forward.apply(&mut record), Verdict::Drop);
/// # Ok::<(), edgepipe_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ForwardIf {
    field: String,
    op: Comparison,
    value: Value,
    on_false: OnFailure,
    on_missing: OnFailure,
}

/// Why a condition could not be evaluated.
enum Undecided {
    Missing,
    NotComparable,
}

impl ForwardIf {
    /// `field op value`. The value must be a number, a string or a boolean, and a
    /// boolean only with `==` or `!=`. Failing records are dropped.
    pub fn new(field: impl Into<String>, op: Comparison, value: impl Into<Value>) -> Result<Self> {
        Self::checked("forward_if", field.into(), op, value.into())
    }

    fn checked(key: &str, field: String, op: Comparison, value: Value) -> Result<Self> {
        if field.is_empty() {
            return Err(Error::config(
                format!("{key}.field"),
                "the field name is empty",
            ));
        }
        match &value {
            Value::Int(_) | Value::UInt(_) | Value::String(_) => {}
            Value::Float(number) if !number.is_nan() => {}
            Value::Bool(_) if op.is_equality() => {}
            Value::Bool(_) => {
                return Err(Error::config(
                    format!("{key}.op"),
                    format!("booleans compare only with == or !=, not {op}"),
                ));
            }
            other => {
                return Err(Error::config(
                    format!("{key}.value"),
                    format!(
                        "must be a number, a string or a boolean, not {}",
                        if other.is_number() {
                            "NaN".to_owned()
                        } else {
                            other.kind().to_string()
                        }
                    ),
                ));
            }
        }
        Ok(ForwardIf {
            field,
            op,
            value,
            on_false: OnFailure::Drop,
            on_missing: OnFailure::Drop,
        })
    }

    /// Reads a condition written `field op value`, e.g. `rpm > 1000`,
    /// `status == "ok"`, `status != fault` or `rpm ge 1000`.
    ///
    /// The value is read as JSON when it is JSON (`1000`, `2.5`, `true`,
    /// `"quoted text"`), otherwise taken as a bare string.
    pub fn parse(condition: &str) -> Result<Self> {
        Self::parse_at("when", condition)
    }

    fn parse_at(key: &str, condition: &str) -> Result<Self> {
        let invalid = |message: String| Error::config(key, message);
        let text = condition.trim();
        let (field, op, rest) = match text.find(['<', '>', '=', '!']) {
            Some(start) => {
                let tail = &text[start..];
                let op = [">=", "<=", "==", "!=", ">", "<"]
                    .into_iter()
                    .find(|symbol| tail.starts_with(symbol))
                    .ok_or_else(|| {
                        invalid(format!(
                            "no operator in {condition:?} (use > >= < <= == !=)"
                        ))
                    })?;
                (text[..start].trim(), op, tail[op.len()..].trim())
            }
            None => {
                // `field word value`, e.g. `rpm gt 1000`.
                let mut parts = text.splitn(2, char::is_whitespace);
                let field = parts.next().unwrap_or_default();
                let rest = parts.next().unwrap_or_default().trim_start();
                let mut parts = rest.splitn(2, char::is_whitespace);
                let op = parts.next().unwrap_or_default();
                (field, op, parts.next().unwrap_or_default().trim())
            }
        };
        let op: Comparison = op.parse().map_err(|_| {
            invalid(format!(
                "expected `field op value` with op one of > >= < <= == != \
                 (or gt ge lt le eq ne), found {condition:?}"
            ))
        })?;
        if field.is_empty() {
            return Err(invalid(format!("no field name in {condition:?}")));
        }
        if rest.is_empty() {
            return Err(invalid(format!(
                "no value to compare with in {condition:?}"
            )));
        }
        let value =
            serde_json::from_str::<Value>(rest).unwrap_or_else(|_| Value::String(rest.into()));
        Self::checked(key, field.to_owned(), op, value).map_err(|error| match error {
            Error::Config { message, .. } => invalid(format!("{message} (in {condition:?})")),
            other => other,
        })
    }

    /// What to do with records for which the condition is false (default: drop).
    pub fn on_false(mut self, policy: OnFailure) -> Self {
        self.on_false = policy;
        self
    }

    /// What to do with records that lack the field or hold a value of a type that
    /// does not compare with the condition's (default: drop).
    pub fn on_missing(mut self, policy: OnFailure) -> Self {
        self.on_missing = policy;
        self
    }

    /// The payload field tested.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The operator.
    pub fn op(&self) -> Comparison {
        self.op
    }

    /// The value compared with.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The condition on `payload`: `None` when the field is missing or cannot be
    /// compared with the value.
    pub fn evaluate(&self, payload: &Payload) -> Option<bool> {
        self.decide(payload).ok()
    }

    fn decide(&self, payload: &Payload) -> Result<bool, Undecided> {
        let actual = payload.get(&self.field).ok_or(Undecided::Missing)?;
        compare(actual, self.op, &self.value).ok_or(Undecided::NotComparable)
    }
}

/// `actual op expected`, or `None` when the two cannot be compared with `op`.
fn compare(actual: &Value, op: Comparison, expected: &Value) -> Option<bool> {
    let ordering = match (actual, expected) {
        (Value::Int(_) | Value::UInt(_), Value::Int(_) | Value::UInt(_)) => {
            Some(as_i128(actual).cmp(&as_i128(expected)))
        }
        (Value::String(left), Value::String(right)) => Some(left.as_str().cmp(right.as_str())),
        (Value::Bool(left), Value::Bool(right)) if op.is_equality() => Some(left.cmp(right)),
        _ => {
            let (left, right) = (actual.as_f64()?, expected.as_f64()?);
            left.partial_cmp(&right)
        }
    };
    Some(op.holds(ordering))
}

fn as_i128(value: &Value) -> i128 {
    match *value {
        Value::Int(number) => i128::from(number),
        Value::UInt(number) => i128::from(number),
        _ => 0,
    }
}

/// A value for a message: numbers and booleans as written, strings quoted.
fn show(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(flag) => flag.to_string(),
        Value::Int(number) => number.to_string(),
        Value::UInt(number) => number.to_string(),
        Value::Float(number) => number.to_string(),
        Value::String(text) => format!("{text:?}"),
        other => format!("a {}", other.kind()),
    }
}

impl fmt::Display for ForwardIf {
    /// The condition as [`ForwardIf::parse`] reads it.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} {} {}",
            self.field,
            self.op,
            show(&self.value)
        )
    }
}

impl FromStr for ForwardIf {
    type Err = Error;

    /// Same as [`ForwardIf::parse`].
    fn from_str(condition: &str) -> Result<Self> {
        ForwardIf::parse(condition)
    }
}

impl Transform for ForwardIf {
    fn name(&self) -> &str {
        "forward_if"
    }

    fn apply(&mut self, record: &mut DataRecord) -> Verdict {
        match self.decide(&record.payload) {
            Ok(true) => Verdict::Keep,
            Ok(false) => self.on_false.verdict(|| {
                let found = record
                    .payload
                    .get(&self.field)
                    .map_or_else(String::new, show);
                Reason::field(
                    "condition.false",
                    self.field.clone(),
                    format!("{self} is false (found {found})"),
                )
            }),
            Err(Undecided::Missing) => self.on_missing.verdict(|| {
                Reason::field(
                    "condition.missing_field",
                    self.field.clone(),
                    format!("the field tested by `{self}` is missing"),
                )
            }),
            Err(Undecided::NotComparable) => self.on_missing.verdict(|| {
                let found = record
                    .payload
                    .get(&self.field)
                    .map_or(ValueKind::Null, Value::kind);
                Reason::field(
                    "condition.not_comparable",
                    self.field.clone(),
                    format!("`{self}` cannot compare a {found} field"),
                )
            }),
        }
    }
}

fn drop_by_default() -> OnFailure {
    OnFailure::Drop
}

/// `{"type": "forward_if", "when": "rpm > 1000"}` or
/// `{"type": "forward_if", "field": "rpm", "op": ">", "value": 1000, "on_false": "drop"}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The whole condition as text, `field op value`; instead of the three keys below.
    #[serde(default)]
    pub when: Option<String>,
    /// The payload field tested.
    #[serde(default)]
    pub field: Option<String>,
    /// The operator.
    #[serde(default)]
    pub op: Option<Comparison>,
    /// The number, string or boolean compared with.
    #[serde(default)]
    pub value: Option<Value>,
    /// What happens to records for which the condition is false: `drop` (default),
    /// `quarantine` or `keep`.
    #[serde(default = "drop_by_default")]
    pub on_false: OnFailure,
    /// What happens to records without the field or with an incomparable value:
    /// `drop` (default), `quarantine` or `keep`.
    #[serde(default = "drop_by_default")]
    pub on_missing: OnFailure,
}

impl Config {
    pub(crate) fn build(&self, key: &str) -> Result<ForwardIf> {
        let condition = match (&self.when, &self.field, self.op, &self.value) {
            (Some(when), None, None, None) => ForwardIf::parse_at(&format!("{key}.when"), when)?,
            (None, Some(field), Some(op), Some(value)) => {
                ForwardIf::checked(key, field.clone(), op, value.clone())?
            }
            (Some(_), ..) => {
                return Err(Error::config(
                    key,
                    "give either `when` or `field`/`op`/`value`, not both",
                ));
            }
            (None, field, op, value) => {
                let missing = if field.is_none() {
                    "field"
                } else if op.is_none() {
                    "op"
                } else if value.is_none() {
                    "value"
                } else {
                    "when"
                };
                return Err(Error::config(
                    format!("{key}.{missing}"),
                    "missing: give `when` (e.g. \"rpm > 1000\") or all of `field`, `op` and `value`",
                ));
            }
        };
        Ok(condition
            .on_false(self.on_false)
            .on_missing(self.on_missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::tests::record;

    fn holds(field_value: Value, op: Comparison, value: impl Into<Value>) -> Option<bool> {
        let mut payload = Payload::new();
        payload.insert("x", field_value);
        ForwardIf::new("x", op, value).unwrap().evaluate(&payload)
    }

    #[test]
    fn numbers_compare_numerically_and_integers_exactly() {
        use Comparison::*;
        assert_eq!(holds(Value::Int(1001), Gt, 1000), Some(true));
        assert_eq!(holds(Value::Int(1000), Gt, 1000), Some(false));
        assert_eq!(holds(Value::Int(1000), Ge, 1000), Some(true));
        assert_eq!(holds(Value::Float(999.5), Lt, 1000), Some(true));
        assert_eq!(holds(Value::Float(1000.0), Eq, 1000), Some(true));
        assert_eq!(holds(Value::Int(1000), Le, 999.5), Some(false));
        assert_eq!(holds(Value::Int(5), Ne, 5.5), Some(true));
        // 2^53 + 1 and 2^53 are the same f64, but distinct integers.
        let big = (1_i64 << 53) + 1;
        assert_eq!(holds(Value::Int(big), Gt, 1_i64 << 53), Some(true));
        assert_eq!(holds(Value::UInt(u64::MAX), Gt, i64::MAX), Some(true));
        assert_eq!(holds(Value::Int(-1), Lt, u64::MAX), Some(true));
        // NaN satisfies only !=.
        assert_eq!(holds(Value::Float(f64::NAN), Gt, 1), Some(false));
        assert_eq!(holds(Value::Float(f64::NAN), Eq, 1), Some(false));
        assert_eq!(holds(Value::Float(f64::NAN), Ne, 1), Some(true));
    }

    #[test]
    fn strings_and_bools_and_incomparable_types() {
        use Comparison::*;
        assert_eq!(holds(Value::from("beta"), Gt, "alpha"), Some(true));
        assert_eq!(holds(Value::from("ok"), Eq, "ok"), Some(true));
        assert_eq!(holds(Value::from("ok"), Ne, "ok"), Some(false));
        assert_eq!(holds(Value::Bool(true), Eq, true), Some(true));
        assert_eq!(holds(Value::Bool(false), Ne, true), Some(true));
        assert_eq!(holds(Value::from("1000"), Gt, 5), None);
        assert_eq!(holds(Value::Int(1), Eq, "1"), None);
        assert_eq!(holds(Value::Null, Eq, 1), None);
        assert_eq!(holds(Value::Bool(true), Eq, 1), None);
        assert_eq!(holds(Value::Int(1), Eq, true), None);
        assert!(ForwardIf::new("x", Gt, true).is_err());
        assert!(ForwardIf::new("x", Eq, Value::Null).is_err());
        assert!(ForwardIf::new("x", Eq, f64::NAN).is_err());
        assert!(ForwardIf::new("", Eq, 1).is_err());
    }

    #[test]
    fn verdicts_follow_the_policies() {
        let mut input = record();
        let mut hot = ForwardIf::new("temperature", Comparison::Gt, 30).unwrap();
        assert_eq!(hot.apply(&mut input), Verdict::Drop);
        let mut strict = hot.clone().on_false(OnFailure::Quarantine);
        match strict.apply(&mut input) {
            Verdict::Quarantine(reason) => {
                assert_eq!(reason.code, "condition.false");
                assert_eq!(reason.field.as_deref(), Some("temperature"));
                assert_eq!(reason.message, "temperature > 30 is false (found 22.11)");
            }
            other => panic!("{other:?}"),
        }
        let mut absent = ForwardIf::new("rpm", Comparison::Gt, 30)
            .unwrap()
            .on_missing(OnFailure::Quarantine);
        assert!(
            matches!(absent.apply(&mut input), Verdict::Quarantine(r) if r.code == "condition.missing_field")
        );
        input.payload.insert("rpm", Value::from("fast"));
        assert!(
            matches!(absent.apply(&mut input), Verdict::Quarantine(r) if r.code == "condition.not_comparable")
        );
        let mut lenient = absent.on_missing(OnFailure::Keep);
        assert_eq!(lenient.apply(&mut input), Verdict::Keep);
        let mut warm = ForwardIf::new("temperature", Comparison::Ge, 22.11).unwrap();
        assert_eq!(warm.apply(&mut record()), Verdict::Keep);
    }

    #[test]
    fn parses_conditions_from_text() {
        let parse = |text: &str| ForwardIf::parse(text).unwrap();
        let rpm = parse("rpm > 1000");
        assert_eq!(
            (rpm.field(), rpm.op(), rpm.value()),
            ("rpm", Comparison::Gt, &Value::Int(1000))
        );
        assert_eq!(parse("rpm>=1000.5").value(), &Value::Float(1000.5));
        assert_eq!(parse("rpm>=1000.5").op(), Comparison::Ge);
        assert_eq!(parse("  status != fault ").value(), &Value::from("fault"));
        assert_eq!(parse(r#"status == "a > b""#).value(), &Value::from("a > b"));
        assert_eq!(parse("door_open == true").value(), &Value::Bool(true));
        assert_eq!(parse("rpm ge 10").op(), Comparison::Ge);
        assert_eq!(parse("t < -5").value(), &Value::Int(-5));
        assert_eq!(parse("t <= 1e3").op(), Comparison::Le);
        assert_eq!(
            parse(&parse("status == \"ok\"").to_string()),
            parse("status == ok")
        );
        for bad in [
            "rpm",
            "rpm >",
            "> 5",
            "rpm = 5",
            "rpm => 5",
            "rpm ~ 5",
            "x > true",
            "x == null",
            "",
        ] {
            assert!(ForwardIf::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn operators_read_symbols_and_names() {
        for op in Comparison::ALL {
            let symbol: Comparison = serde_json::from_str(&format!("\"{}\"", op.symbol())).unwrap();
            let word: Comparison = serde_json::from_str(&format!("\"{}\"", op.word())).unwrap();
            assert_eq!((symbol, word), (op, op));
        }
        assert!(serde_json::from_str::<Comparison>("\"=>\"").is_err());
    }

    #[test]
    fn config_takes_when_or_field_op_value_and_names_bad_keys() {
        let build = |json: &str| {
            serde_json::from_str::<Config>(json)
                .unwrap()
                .build("transforms[2]")
        };
        let from_when = build(r#"{"when": "rpm > 1000"}"#).unwrap();
        let from_parts = build(r#"{"field": "rpm", "op": "gt", "value": 1000}"#).unwrap();
        assert_eq!(from_when, from_parts);
        assert_eq!(from_when.on_false, OnFailure::Drop);
        assert_eq!(from_when.on_missing, OnFailure::Drop);
        let quarantining =
            build(r#"{"when": "rpm > 1000", "on_false": "quarantine", "on_missing": "keep"}"#)
                .unwrap();
        assert_eq!(quarantining.on_false, OnFailure::Quarantine);
        assert_eq!(quarantining.on_missing, OnFailure::Keep);

        let error = |json: &str| build(json).unwrap_err().to_string();
        let both = error(r#"{"when": "rpm > 1000", "field": "rpm"}"#);
        assert!(both.contains("`transforms[2]`"), "{both}");
        let neither = error(r#"{}"#);
        assert!(neither.contains("transforms[2].field"), "{neither}");
        assert!(error(r#"{"field": "rpm", "op": ">"}"#).contains("transforms[2].value"));
        assert!(error(r#"{"when": "rpm >"}"#).contains("transforms[2].when"));
        assert!(
            error(r#"{"field": "rpm", "op": ">", "value": [1]}"#).contains("transforms[2].value")
        );
        assert!(error(r#"{"field": "on", "op": "<", "value": true}"#).contains("transforms[2].op"));
        assert!(
            serde_json::from_str::<Config>(r#"{"field": "rpm", "op": "~", "value": 1}"#).is_err()
        );
        assert!(serde_json::from_str::<Config>(r#"{"wen": "rpm > 1"}"#).is_err());
    }
}
