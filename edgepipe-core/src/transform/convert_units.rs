//! `convert_units`: convert numeric payload fields between units (seed 002's
//! `convertUnits(raw.value, sensor.unit, 'SI')`).
//!
//! Every unit is defined against its dimension's base unit as
//! `base = (value - zero) * multiply / divide`: temperatures are affine, every
//! other unit a plain scale.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use super::{OnFailure, Reason, Transform, Verdict};
use crate::error::{Error, Result};
use crate::record::{DataRecord, FieldMap, Value};

/// What a unit measures; only units of the same dimension convert into each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Dimension {
    /// Base unit: degree Celsius.
    Temperature,
    /// Base unit: pascal.
    Pressure,
    /// Base unit: metre.
    Length,
    /// Base unit: metre per second.
    Speed,
    /// Base unit: kilogram.
    Mass,
    /// Base unit: joule.
    Energy,
    /// Base unit: watt.
    Power,
    /// Base unit: cubic metre.
    Volume,
    /// Base unit: a plain fraction (0.5 = 50 %).
    Ratio,
}

impl Dimension {
    /// The lowercase name, e.g. `pressure`.
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Temperature => "temperature",
            Dimension::Pressure => "pressure",
            Dimension::Length => "length",
            Dimension::Speed => "speed",
            Dimension::Mass => "mass",
            Dimension::Energy => "energy",
            Dimension::Power => "power",
            Dimension::Volume => "volume",
            Dimension::Ratio => "ratio",
        }
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// A unit of measurement that [`ConvertUnits`] knows.
///
/// Named by its symbol (case-sensitive: `C`, `F`, `K`, `Pa`, `hPa`, `kPa`, `bar`,
/// `mbar`, `psi`, `inHg`, `mmHg`, `atm`, `m`, `cm`, `mm`, `km`, `in`, `ft`, `mi`,
/// `m/s`, `km/h`, `mph`, `kn`, `kg`, `g`, `lb`, `oz`, `J`, `kJ`, `Wh`, `kWh`, `W`,
/// `kW`, `hp`, `L`, `mL`, `m3`, `gal` (US), `%`, `fraction`) or by one of a few
/// aliases: lowercase long names (`celsius`, `fahrenheit`, `kelvin`, `pascal`,
/// `hectopascal`, `kilopascal`, `millibar`, `atmosphere`, `meter`/`metre`, …,
/// `knot`, `kilogram`, `pound`, `joule`, `watt`, `horsepower`, `liter`/`litre`,
/// `gallon`, `percent`) and common spellings (`°C`, `degC`, `kph`, `l`, `ml`, `m³`).
///
/// ```
/// use edgepipe_core::transform::Unit;
///
/// let fahrenheit: Unit = "F".parse()?;
/// let celsius = Unit::from_name("celsius").unwrap();
/// assert_eq!(celsius.symbol(), "C");
/// assert_eq!(fahrenheit.convert(212.0, celsius), Some(100.0));
/// assert_eq!(Unit::from_name("psi").unwrap().convert(1.0, celsius), None);
/// # Ok::<(), edgepipe_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Unit {
    symbol: &'static str,
    dimension: Dimension,
    /// `base = (value - zero) * multiply / divide`, in the dimension's base unit.
    /// Scales are kept as fractions of exact decimals (5/9, 1000/3600) so that
    /// round values convert to round values (32 °F is 0 °C, not 3.6e-14).
    zero: f64,
    multiply: f64,
    divide: f64,
}

const fn unit(symbol: &'static str, dimension: Dimension, multiply: f64, divide: f64) -> Unit {
    Unit {
        symbol,
        dimension,
        zero: 0.0,
        multiply,
        divide,
    }
}

const fn temperature(symbol: &'static str, zero: f64, multiply: f64, divide: f64) -> Unit {
    Unit {
        symbol,
        dimension: Dimension::Temperature,
        zero,
        multiply,
        divide,
    }
}

/// Every unit with its aliases. Exact definitions where there is one (the
/// international inch, foot, mile, pound, US gallon; the standard atmosphere);
/// conventional values for inHg (at 0 °C) and mmHg.
const UNITS: &[(Unit, &[&str])] = {
    use Dimension::*;
    &[
        (temperature("C", 0.0, 1.0, 1.0), &["°C", "degC", "celsius"]),
        (
            temperature("F", 32.0, 5.0, 9.0),
            &["°F", "degF", "fahrenheit"],
        ),
        (temperature("K", 273.15, 1.0, 1.0), &["kelvin"]),
        (unit("Pa", Pressure, 1.0, 1.0), &["pascal"]),
        (unit("hPa", Pressure, 100.0, 1.0), &["hectopascal"]),
        (unit("kPa", Pressure, 1000.0, 1.0), &["kilopascal"]),
        (unit("bar", Pressure, 100_000.0, 1.0), &[]),
        (unit("mbar", Pressure, 100.0, 1.0), &["millibar"]),
        // 1 lbf / in² = 4.4482216152605 N / 0.00064516 m².
        (unit("psi", Pressure, 6_894.757_293_168_361, 1.0), &[]),
        (unit("inHg", Pressure, 3_386.389, 1.0), &[]),
        (unit("mmHg", Pressure, 133.322_387_415, 1.0), &[]),
        (unit("atm", Pressure, 101_325.0, 1.0), &["atmosphere"]),
        (unit("m", Length, 1.0, 1.0), &["meter", "metre"]),
        (
            unit("cm", Length, 1.0, 100.0),
            &["centimeter", "centimetre"],
        ),
        (
            unit("mm", Length, 1.0, 1000.0),
            &["millimeter", "millimetre"],
        ),
        (unit("km", Length, 1000.0, 1.0), &["kilometer", "kilometre"]),
        (unit("in", Length, 0.0254, 1.0), &["inch"]),
        (unit("ft", Length, 0.3048, 1.0), &["foot", "feet"]),
        (unit("mi", Length, 1_609.344, 1.0), &["mile"]),
        (unit("m/s", Speed, 1.0, 1.0), &["meters_per_second"]),
        (unit("km/h", Speed, 1000.0, 3600.0), &["kph", "kmh"]),
        (unit("mph", Speed, 1_609.344, 3600.0), &[]),
        (unit("kn", Speed, 1852.0, 3600.0), &["kt", "knot"]),
        (unit("kg", Mass, 1.0, 1.0), &["kilogram"]),
        (unit("g", Mass, 1.0, 1000.0), &["gram"]),
        (unit("lb", Mass, 0.453_592_37, 1.0), &["pound"]),
        (unit("oz", Mass, 0.453_592_37, 16.0), &["ounce"]),
        (unit("J", Energy, 1.0, 1.0), &["joule"]),
        (unit("kJ", Energy, 1000.0, 1.0), &["kilojoule"]),
        (unit("Wh", Energy, 3600.0, 1.0), &["watt_hour"]),
        (unit("kWh", Energy, 3_600_000.0, 1.0), &["kilowatt_hour"]),
        (unit("W", Power, 1.0, 1.0), &["watt"]),
        (unit("kW", Power, 1000.0, 1.0), &["kilowatt"]),
        // Mechanical horsepower: 550 ft·lbf/s.
        (
            unit("hp", Power, 745.699_871_582_270_2, 1.0),
            &["horsepower"],
        ),
        (unit("L", Volume, 1.0, 1000.0), &["l", "liter", "litre"]),
        (
            unit("mL", Volume, 1.0, 1_000_000.0),
            &["ml", "milliliter", "millilitre"],
        ),
        (
            unit("m3", Volume, 1.0, 1.0),
            &["m³", "cubic_meter", "cubic_metre"],
        ),
        (unit("gal", Volume, 3.785_411_784, 1000.0), &["gallon"]),
        (unit("%", Ratio, 1.0, 100.0), &["percent"]),
        (unit("fraction", Ratio, 1.0, 1.0), &[]),
    ]
};

impl Unit {
    /// The unit named `name` (a symbol or an alias), if known.
    pub fn from_name(name: &str) -> Option<Unit> {
        UNITS
            .iter()
            .find(|(unit, aliases)| unit.symbol == name || aliases.contains(&name))
            .map(|(unit, _)| *unit)
    }

    /// Every known unit.
    pub fn all() -> impl Iterator<Item = Unit> {
        UNITS.iter().map(|(unit, _)| *unit)
    }

    /// The unit's symbol, e.g. `hPa`; written to metadata `unit.{field}`.
    pub fn symbol(self) -> &'static str {
        self.symbol
    }

    /// What the unit measures.
    pub fn dimension(self) -> Dimension {
        self.dimension
    }

    /// The conversion to `to`, or `None` when the dimensions differ.
    fn linear_to(self, to: Unit) -> Option<Linear> {
        if self.dimension != to.dimension {
            return None;
        }
        if self.symbol == to.symbol {
            return Some(Linear::IDENTITY);
        }
        Some(Linear { from: self, to })
    }

    /// `value` (in this unit) in unit `to`, or `None` when the dimensions differ.
    pub fn convert(self, value: f64, to: Unit) -> Option<f64> {
        self.linear_to(to).map(|linear| linear.apply(value))
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.symbol)
    }
}

impl FromStr for Unit {
    type Err = Error;

    /// Same as [`Unit::from_name`], failing with the list of known symbols.
    fn from_str(name: &str) -> Result<Self> {
        Unit::from_name(name).ok_or_else(|| Error::config("unit", unknown_unit(name)))
    }
}

fn unknown_unit(name: &str) -> String {
    let known: Vec<&str> = Unit::all().map(Unit::symbol).collect();
    format!("unknown unit {name:?} (known: {})", known.join(", "))
}

/// A conversion between two units of one dimension: into the base unit and out
/// again, one exact-decimal factor at a time rather than by a combined factor,
/// so that 1013 hPa is exactly 101.3 kPa and 212 °F exactly 100 °C.
#[derive(Clone, Copy, Debug)]
struct Linear {
    from: Unit,
    to: Unit,
}

impl Linear {
    const IDENTITY: Linear = Linear {
        from: unit("", Dimension::Ratio, 1.0, 1.0),
        to: unit("", Dimension::Ratio, 1.0, 1.0),
    };

    fn apply(self, value: f64) -> f64 {
        let (from, to) = (self.from, self.to);
        let base = (value - from.zero) * from.multiply / from.divide;
        base * to.divide / to.multiply + to.zero
    }
}

#[derive(Clone, Debug)]
struct Conversion {
    field: String,
    /// `unit.{field}`.
    metadata_key: String,
    from: Unit,
    to: Unit,
    linear: Linear,
}

/// Converts numeric payload fields from one unit to another.
///
/// For each configured field present in the payload:
///
/// - a number (int or float) is replaced by the converted float, and with
///   `set_unit_metadata` (the default) metadata `unit.{field}` is set to the
///   target unit's symbol;
/// - any other value (string, bool, null, list, map) makes the record invalid:
///   quarantined by default (`on_invalid`, reason `units.not_a_number`), and then
///   left entirely unconverted. With `on_invalid = keep` the other fields are
///   still converted and the invalid one is left as it is.
///
/// A record without the field is kept unchanged.
#[derive(Clone, Debug)]
pub struct ConvertUnits {
    conversions: Vec<Conversion>,
    set_unit_metadata: bool,
    on_invalid: OnFailure,
}

impl ConvertUnits {
    /// Converts each `(field, from, to)`; fails when `from` and `to` measure
    /// different things. A field given twice keeps its last conversion.
    pub fn new<S: Into<String>>(
        conversions: impl IntoIterator<Item = (S, Unit, Unit)>,
    ) -> Result<Self> {
        Self::checked("convert_units", conversions)
    }

    fn checked<S: Into<String>>(
        key: &str,
        conversions: impl IntoIterator<Item = (S, Unit, Unit)>,
    ) -> Result<Self> {
        let mut checked: Vec<Conversion> = Vec::new();
        for (field, from, to) in conversions {
            let field = field.into();
            let linear = from.linear_to(to).ok_or_else(|| {
                Error::config(
                    format!("{key}.fields.{field}"),
                    format!(
                        "cannot convert {} ({from}) to {} ({to})",
                        from.dimension, to.dimension
                    ),
                )
            })?;
            let conversion = Conversion {
                metadata_key: format!("unit.{field}"),
                field,
                from,
                to,
                linear,
            };
            match checked
                .iter_mut()
                .find(|known| known.field == conversion.field)
            {
                Some(known) => *known = conversion,
                None => checked.push(conversion),
            }
        }
        Ok(ConvertUnits {
            conversions: checked,
            set_unit_metadata: true,
            on_invalid: OnFailure::Quarantine,
        })
    }

    /// Whether to set metadata `unit.{field}` to the target unit (default: true).
    pub fn set_unit_metadata(mut self, set: bool) -> Self {
        self.set_unit_metadata = set;
        self
    }

    /// What to do with records where a configured field is not a number
    /// (default: quarantine).
    pub fn on_invalid(mut self, policy: OnFailure) -> Self {
        self.on_invalid = policy;
        self
    }
}

impl Transform for ConvertUnits {
    fn name(&self) -> &str {
        "convert_units"
    }

    fn apply(&mut self, record: &mut DataRecord) -> Verdict {
        if self.on_invalid != OnFailure::Keep {
            // Check first, so that a refused record is refused unchanged.
            for conversion in &self.conversions {
                if let Some(value) = record.payload.get(&conversion.field)
                    && !value.is_number()
                {
                    return self.on_invalid.verdict(|| {
                        Reason::field(
                            "units.not_a_number",
                            conversion.field.clone(),
                            format!(
                                "cannot convert a {} from {} to {}",
                                value.kind(),
                                conversion.from,
                                conversion.to
                            ),
                        )
                    });
                }
            }
        }
        for conversion in &self.conversions {
            let Some(value) = record.payload.get_mut(&conversion.field) else {
                continue;
            };
            let Some(number) = value.as_f64() else {
                continue;
            };
            *value = Value::Float(conversion.linear.apply(number));
            if self.set_unit_metadata {
                let symbol = conversion.to.symbol;
                match record.metadata.get_mut(&conversion.metadata_key) {
                    Some(existing) => {
                        existing.clear();
                        existing.push_str(symbol);
                    }
                    None => {
                        record
                            .metadata
                            .insert(conversion.metadata_key.as_str(), symbol.into());
                    }
                }
            }
        }
        Verdict::Keep
    }
}

/// The units of one field in config: `{"from": "F", "to": "C"}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldUnits {
    /// The unit the readings are in.
    pub from: String,
    /// The unit to convert them to.
    pub to: String,
}

fn yes() -> bool {
    true
}

/// `{"type": "convert_units", "fields": {"temperature": {"from": "F", "to": "C"}, "pressure": {"from": "psi", "to": "kPa"}}}`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Payload field to its units, converted in the order written.
    pub fields: FieldMap<FieldUnits>,
    /// Whether to set metadata `unit.{field}` to the target unit (default true).
    #[serde(default = "yes")]
    pub set_unit_metadata: bool,
    /// What happens to records where a field is not a number: `quarantine`
    /// (default), `drop` or `keep`.
    #[serde(default)]
    pub on_invalid: OnFailure,
}

impl Config {
    pub(crate) fn build(&self, key: &str) -> Result<ConvertUnits> {
        if self.fields.is_empty() {
            return Err(Error::config(
                format!("{key}.fields"),
                "needs at least one field",
            ));
        }
        let mut conversions = Vec::with_capacity(self.fields.len());
        for (field, units) in self.fields.iter() {
            let unit = |name: &str| {
                Unit::from_name(name).ok_or_else(|| {
                    Error::config(format!("{key}.fields.{field}"), unknown_unit(name))
                })
            };
            conversions.push((field, unit(&units.from)?, unit(&units.to)?));
        }
        Ok(ConvertUnits::checked(key, conversions)?
            .set_unit_metadata(self.set_unit_metadata)
            .on_invalid(self.on_invalid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::tests::record;

    fn convert(value: f64, from: &str, to: &str) -> f64 {
        let (from, to) = (Unit::from_name(from).unwrap(), Unit::from_name(to).unwrap());
        from.convert(value, to).unwrap()
    }

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= 1e-9 * expected.abs().max(1.0)
    }

    #[test]
    fn known_conversions() {
        let cases = [
            (212.0, "F", "C", 100.0),
            (-40.0, "C", "F", -40.0),
            (0.0, "C", "K", 273.15),
            (32.0, "fahrenheit", "kelvin", 273.15),
            (1.0, "atm", "hPa", 1013.25),
            (1.0, "bar", "psi", 14.503_773_773_022),
            (29.92, "inHg", "hPa", 1_013.207_588_8),
            (760.0, "mmHg", "atm", 1.000_000_142_466_3),
            (1.0, "mi", "km", 1.609_344),
            (12.0, "in", "ft", 1.0),
            (100.0, "km/h", "m/s", 27.777_777_777_777_8),
            (60.0, "mph", "km/h", 96.560_64),
            (1.0, "kn", "km/h", 1.852),
            (1.0, "lb", "oz", 16.0),
            (1.0, "kWh", "kJ", 3600.0),
            (1.0, "hp", "kW", 0.745_699_871_582_270_2),
            (1.0, "gal", "L", 3.785_411_784),
            (1.0, "m3", "mL", 1_000_000.0),
            (45.0, "%", "fraction", 0.45),
            (0.45, "fraction", "percent", 45.0),
            (22.5, "C", "°C", 22.5),
        ];
        for (value, from, to, expected) in cases {
            let actual = convert(value, from, to);
            assert!(
                (actual - expected).abs() <= 1e-7 * expected.abs().max(1.0),
                "{value} {from} -> {to}: {actual}, expected {expected}"
            );
        }
        assert!(close(convert(convert(71.3, "F", "K"), "K", "F"), 71.3));
        // Round values stay round: no combined factor, no offset computed in floats.
        assert_eq!(convert(32.0, "F", "C"), 0.0);
        assert_eq!(convert(212.0, "F", "C"), 100.0);
        assert_eq!(convert(100.0, "C", "F"), 212.0);
        assert_eq!(convert(-40.0, "F", "C"), -40.0);
        assert_eq!(convert(273.15, "K", "C"), 0.0);
        assert_eq!(convert(1013.0, "hPa", "kPa"), 101.3);
        assert_eq!(convert(36.0, "km/h", "m/s"), 10.0);
        assert_eq!(convert(50.0, "%", "fraction"), 0.5);
        assert_eq!(Unit::from_name("c"), None, "symbols are case-sensitive");
        assert_eq!(Unit::from_name("MBAR"), None);
        let c = Unit::from_name("C").unwrap();
        assert_eq!(Unit::from_name("psi").unwrap().convert(1.0, c), None);
        assert!("parsec".parse::<Unit>().is_err());
    }

    #[test]
    fn every_symbol_and_alias_is_unique() {
        let mut names: Vec<&str> = UNITS
            .iter()
            .flat_map(|(unit, aliases)| std::iter::once(unit.symbol).chain(aliases.iter().copied()))
            .collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
    }

    #[test]
    fn converts_fields_and_sets_unit_metadata() {
        let f = Unit::from_name("F").unwrap();
        let c = Unit::from_name("C").unwrap();
        let hpa = Unit::from_name("hPa").unwrap();
        let kpa = Unit::from_name("kPa").unwrap();
        let mut transform = ConvertUnits::new([
            ("temperature", c, f),
            ("pressure", hpa, kpa),
            ("absent", c, f),
        ])
        .unwrap();
        let mut input = record();
        input.payload.insert("pressure", Value::Int(1013));
        input.metadata.insert("unit.pressure", "hPa".into());
        assert_eq!(transform.apply(&mut input), Verdict::Keep);
        let temperature = input
            .payload
            .get("temperature")
            .and_then(Value::as_f64)
            .unwrap();
        assert!(close(temperature, 22.11 * 1.8 + 32.0));
        assert_eq!(input.payload.get("pressure"), Some(&Value::Float(101.3)));
        assert_eq!(input.payload.get("humidity"), Some(&Value::Float(50.3)));
        assert!(!input.payload.contains_key("absent"));
        assert_eq!(
            input
                .metadata
                .get("unit.temperature")
                .map(|unit| unit.as_str()),
            Some("F")
        );
        assert_eq!(
            input
                .metadata
                .get("unit.pressure")
                .map(|unit| unit.as_str()),
            Some("kPa")
        );
        assert!(!input.metadata.contains_key("unit.absent"));

        let mut quiet = transform.clone().set_unit_metadata(false);
        let mut input = record();
        quiet.apply(&mut input);
        assert!(input.metadata.is_empty());
    }

    #[test]
    fn non_numbers_follow_the_policy_and_quarantine_unchanged() {
        let c = Unit::from_name("C").unwrap();
        let f = Unit::from_name("F").unwrap();
        let mut transform = ConvertUnits::new([("temperature", c, f), ("humidity", c, f)]).unwrap();
        let mut input = record();
        input.payload.insert("humidity", Value::from("wet"));
        let before = input.clone();
        match transform.apply(&mut input) {
            Verdict::Quarantine(reason) => {
                assert_eq!(reason.code, "units.not_a_number");
                assert_eq!(reason.field.as_deref(), Some("humidity"));
                assert_eq!(reason.message, "cannot convert a string from C to F");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(input, before);
        let mut dropping = transform.clone().on_invalid(OnFailure::Drop);
        assert_eq!(dropping.apply(&mut input), Verdict::Drop);
        let mut keeping = transform.clone().on_invalid(OnFailure::Keep);
        assert_eq!(keeping.apply(&mut input), Verdict::Keep);
        assert_eq!(input.payload.get("humidity"), Some(&Value::from("wet")));
        assert_ne!(
            input.payload.get("temperature"),
            before.payload.get("temperature")
        );
        assert!(!input.metadata.contains_key("unit.humidity"));
    }

    #[test]
    fn config_parses_and_names_bad_keys() {
        let config: Config = serde_json::from_str(
            r#"{"fields": {"temperature": {"from": "F", "to": "C"}, "speed": {"from": "mph", "to": "km/h"}}, "set_unit_metadata": false, "on_invalid": "drop"}"#,
        )
        .unwrap();
        let built = config.build("transforms[2]").unwrap();
        assert_eq!(built.conversions.len(), 2);
        assert_eq!(built.conversions[1].to.symbol(), "km/h");
        assert!(!built.set_unit_metadata);
        assert_eq!(built.on_invalid, OnFailure::Drop);

        let error = |json: &str| {
            serde_json::from_str::<Config>(json)
                .unwrap()
                .build("transforms[2]")
                .unwrap_err()
                .to_string()
        };
        let unknown = error(r#"{"fields": {"temperature": {"from": "F", "to": "Celsius"}}}"#);
        assert!(
            unknown.contains("transforms[2].fields.temperature"),
            "{unknown}"
        );
        assert!(unknown.contains("Celsius"), "{unknown}");
        let mismatched = error(r#"{"fields": {"pressure": {"from": "psi", "to": "C"}}}"#);
        assert!(
            mismatched.contains("transforms[2].fields.pressure"),
            "{mismatched}"
        );
        assert!(
            mismatched.contains("pressure (psi) to temperature (C)"),
            "{mismatched}"
        );
        assert!(error(r#"{"fields": {}}"#).contains("transforms[2].fields"));
        assert!(
            serde_json::from_str::<Config>(r#"{"fields": {"t": {"from": "F", "into": "C"}}}"#)
                .is_err()
        );
    }
}
