//! Property tests: each stateful or arithmetic transform against a deliberately
//! naive reference implementation, on random record sequences.
//!
//! The references favour obviousness over speed (linear scans, tuple keys,
//! textbook formulas); the transforms must agree with them exactly, except for
//! float rounding in unit conversion.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroUsize;
use std::time::Duration;

use proptest::prelude::*;

use edgepipe_core::record::{DataRecord, FieldMap, Payload, Timestamp, Value};
use edgepipe_core::transform::{
    Comparison, ConvertUnits, Deadband, Dedup, DedupKey, DeviceInfo, Enrich, ForwardIf, OnFailure,
    SensorInfo, Transform, Unit, Verdict,
};

const SECOND: i64 = 1_000_000_000;
const BASE: i64 = 1_767_225_600 * SECOND;

fn make_record(
    record_id: &str,
    device_id: &str,
    data_type: &str,
    seconds: i64,
    payload: Payload,
) -> DataRecord {
    let mut record = DataRecord::new(device_id, data_type, payload);
    record.record_id = record_id.into();
    record.timestamp = Timestamp::from_unix_nanos(BASE + seconds * SECOND);
    record
}

/// Payload values: small ints, round-ish floats, and the non-numeric kinds.
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (-20_i64..20).prop_map(Value::Int),
        4 => (-80_i32..80).prop_map(|quarters| Value::Float(f64::from(quarters) / 4.0)),
        1 => (-1000.0_f64..1000.0).prop_map(Value::Float),
        1 => prop::sample::select(vec!["ok", "fault", ""]).prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
        1 => prop::collection::vec((0_i64..3).prop_map(Value::Int), 0..2).prop_map(Value::List),
    ]
}

/// A payload over fields `a`..`d`, each present or not.
fn payload() -> impl Strategy<Value = Payload> {
    prop::collection::vec(prop::option::of(value()), 4).prop_map(|values| {
        ["a", "b", "c", "d"]
            .into_iter()
            .zip(values)
            .filter_map(|(field, value)| value.map(|value| (field, value)))
            .collect()
    })
}

/// Records from a few devices and data types, timestamps jumping back and forth.
fn records(max: usize) -> impl Strategy<Value = Vec<DataRecord>> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["d0", "d1", "d2"]),
            prop::sample::select(vec!["sensors", "system"]),
            0_i64..300,
            payload(),
        ),
        0..max,
    )
    .prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(|(index, (device, data_type, seconds, payload))| {
                make_record(&format!("r{index}"), device, data_type, seconds, payload)
            })
            .collect()
    })
}

fn keeps(verdicts: &[Verdict]) -> Vec<bool> {
    verdicts
        .iter()
        .map(|verdict| *verdict == Verdict::Keep)
        .collect()
}

// ----------------------------------------------------------------------------
// deadband

struct NaiveDeadband {
    fields: Option<Vec<String>>,
    absolute: Option<f64>,
    relative: Option<f64>,
    heartbeat_seconds: Option<i64>,
    last: HashMap<(String, String, String), (Value, Timestamp)>,
}

impl NaiveDeadband {
    fn differs(&self, last: &Value, now: &Value) -> bool {
        match (last.as_f64(), now.as_f64()) {
            (Some(a), Some(b)) => {
                let change = (b - a).abs();
                self.absolute.is_some_and(|limit| change > limit)
                    || self
                        .relative
                        .is_some_and(|fraction| change > fraction * a.abs())
            }
            _ => last != now,
        }
    }

    fn keep(&mut self, record: &DataRecord) -> bool {
        let tracked: Vec<(String, Value)> = record
            .payload
            .iter()
            .filter(|(field, _)| {
                self.fields
                    .as_ref()
                    .is_none_or(|fields| fields.iter().any(|tracked| tracked == field))
            })
            .map(|(field, value)| (field.to_string(), value.clone()))
            .collect();
        if tracked.is_empty() {
            return true;
        }
        let key = |field: &str| {
            (
                record.device_id.to_string(),
                record.data_type.to_string(),
                field.to_string(),
            )
        };
        let forward = tracked
            .iter()
            .any(|(field, value)| match self.last.get(&key(field)) {
                None => true,
                Some((last, at)) => {
                    let elapsed = record.timestamp.unix_nanos() - at.unix_nanos();
                    self.heartbeat_seconds
                        .is_some_and(|seconds| elapsed >= seconds * SECOND)
                        || self.differs(last, value)
                }
            });
        if forward {
            for (field, value) in tracked {
                self.last.insert(key(&field), (value, record.timestamp));
            }
        }
        forward
    }
}

fn thresholds() -> impl Strategy<Value = (Option<f64>, Option<f64>)> {
    (
        prop::sample::select(vec![None, Some(0.0), Some(0.5), Some(5.0)]),
        prop::sample::select(vec![None, Some(0.0), Some(0.1), Some(1.0)]),
    )
        .prop_filter("at least one threshold", |(absolute, relative)| {
            absolute.is_some() || relative.is_some()
        })
}

fn tracked_fields() -> impl Strategy<Value = Option<Vec<String>>> {
    prop::option::of(
        prop::sample::subsequence(vec!["a", "b", "c"], 1..=3)
            .prop_map(|fields| fields.into_iter().map(String::from).collect()),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn deadband_matches_reference(
        (absolute, relative) in thresholds(),
        heartbeat_seconds in prop::option::of(0_i64..120),
        fields in tracked_fields(),
        input in records(60),
    ) {
        let mut deadband = Deadband::new(absolute, relative).unwrap();
        if let Some(fields) = &fields {
            deadband = deadband.fields(fields.iter().cloned());
        }
        if let Some(seconds) = heartbeat_seconds {
            deadband = deadband.heartbeat(Duration::from_secs(seconds.unsigned_abs()));
        }
        let mut naive = NaiveDeadband {
            fields,
            absolute,
            relative,
            heartbeat_seconds,
            last: HashMap::new(),
        };
        for (index, record) in input.iter().enumerate() {
            let mut copy = record.clone();
            let verdict = deadband.apply(&mut copy);
            prop_assert_eq!(&copy, record, "deadband must not change records");
            let expected = if naive.keep(record) { Verdict::Keep } else { Verdict::Drop };
            prop_assert_eq!(verdict, expected, "record {}: {:?}", index, record);
        }
    }

    #[test]
    fn deadband_state_stays_bounded(
        max_series in 2_usize..12,
        input in records(120),
    ) {
        let mut deadband = Deadband::new(Some(1.0), None).unwrap().max_series(max_series);
        for record in &input {
            let verdict = deadband.apply(&mut record.clone());
            prop_assert!(matches!(verdict, Verdict::Keep | Verdict::Drop));
            prop_assert!(deadband.tracked_series() <= max_series);
        }
    }
}

// ----------------------------------------------------------------------------
// forward_if

const OPS: [(&str, Comparison); 6] = [
    (">", Comparison::Gt),
    (">=", Comparison::Ge),
    ("<", Comparison::Lt),
    ("<=", Comparison::Le),
    ("==", Comparison::Eq),
    ("!=", Comparison::Ne),
];

/// `actual op expected` the long way round; `None` when not comparable.
fn naive_condition(actual: &Value, op: &str, expected: &Value) -> Option<bool> {
    use std::cmp::Ordering;
    let ordering: Option<Ordering> = match (actual, expected) {
        (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
        (Value::String(a), Value::String(b)) => Some(a.as_str().cmp(b.as_str())),
        (Value::Bool(a), Value::Bool(b)) => {
            if op != "==" && op != "!=" {
                return None;
            }
            Some(a.cmp(b))
        }
        (a, b) if a.is_number() && b.is_number() => {
            a.as_f64().unwrap().partial_cmp(&b.as_f64().unwrap())
        }
        _ => return None,
    };
    Some(match ordering {
        None => op == "!=",
        Some(ordering) => match op {
            ">" => ordering == Ordering::Greater,
            ">=" => ordering != Ordering::Less,
            "<" => ordering == Ordering::Less,
            "<=" => ordering != Ordering::Greater,
            "==" => ordering == Ordering::Equal,
            _ => ordering != Ordering::Equal,
        },
    })
}

fn condition_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-20_i64..20).prop_map(Value::Int),
        any::<i64>().prop_map(Value::Int),
        (-80_i32..80).prop_map(|quarters| Value::Float(f64::from(quarters) / 4.0)),
        any::<f64>()
            .prop_filter("finite", |number| number.is_finite())
            .prop_map(Value::Float),
        "[a-z<>=! ]{0,5}".prop_map(Value::from),
        any::<bool>().prop_map(Value::Bool),
    ]
}

fn field_value() -> impl Strategy<Value = Option<Value>> {
    prop::option::weighted(
        0.9,
        prop_oneof![
            4 => condition_value(),
            1 => Just(Value::Float(f64::NAN)),
            1 => Just(Value::Null),
            1 => Just(Value::List(Vec::new())),
        ],
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn forward_if_matches_reference(
        op_index in 0_usize..6,
        expected in condition_value(),
        actuals in prop::collection::vec(field_value(), 1..20),
    ) {
        let (symbol, op) = OPS[op_index];
        let built = ForwardIf::new("rpm", op, expected.clone());
        if matches!(expected, Value::Bool(_)) && !matches!(op, Comparison::Eq | Comparison::Ne) {
            prop_assert!(built.is_err(), "booleans have no order");
            return Ok(());
        }
        let transform = built.unwrap();
        let json = serde_json::to_string(&match &expected {
            Value::Int(number) => serde_json::json!(number),
            Value::Float(number) => serde_json::json!(number),
            Value::String(text) => serde_json::json!(text.as_str()),
            Value::Bool(flag) => serde_json::json!(flag),
            other => panic!("not generated: {other:?}"),
        })
        .unwrap();
        let parsed = ForwardIf::parse(&format!("rpm {symbol} {json}")).unwrap();
        prop_assert_eq!(&parsed, &transform);

        let mut strict = transform
            .on_false(OnFailure::Quarantine)
            .on_missing(OnFailure::Quarantine);
        let mut lenient = parsed;
        for actual in actuals {
            let mut payload = Payload::new();
            payload.insert("other", Value::Int(1));
            if let Some(actual) = &actual {
                payload.insert("rpm", actual.clone());
            }
            let mut record = make_record("r", "d", "t", 0, payload);
            let naive = actual.as_ref().map(|actual| naive_condition(actual, symbol, &expected));
            let code = match naive {
                None => Some("condition.missing_field"),
                Some(None) => Some("condition.not_comparable"),
                Some(Some(true)) => None,
                Some(Some(false)) => Some("condition.false"),
            };
            match strict.apply(&mut record) {
                Verdict::Keep => prop_assert_eq!(code, None, "{:?}", actual),
                Verdict::Quarantine(reason) => {
                    prop_assert_eq!(Some(reason.code), code, "{:?}", actual);
                    prop_assert_eq!(reason.field.as_deref(), Some("rpm"));
                }
                Verdict::Drop => prop_assert!(false, "strict never drops"),
            }
            let expected_verdict = if code.is_none() { Verdict::Keep } else { Verdict::Drop };
            prop_assert_eq!(lenient.apply(&mut record), expected_verdict);
        }
    }
}

// ----------------------------------------------------------------------------
// dedup

struct NaiveDedup {
    window: usize,
    /// Distinct keys, least recently seen first.
    recent: VecDeque<String>,
}

impl NaiveDedup {
    fn keep(&mut self, key: String) -> bool {
        if let Some(position) = self.recent.iter().position(|seen| *seen == key) {
            self.recent.remove(position);
            self.recent.push_back(key);
            return false;
        }
        self.recent.push_back(key);
        if self.recent.len() > self.window {
            self.recent.pop_front();
        }
        true
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn dedup_matches_reference(
        window in 1_usize..12,
        by_content in any::<bool>(),
        rows in prop::collection::vec(
            (0_u8..16, prop::sample::select(vec!["d0", "d1"]), 0_i64..4, prop::sample::select(vec!["x", "y"])),
            0..200,
        ),
    ) {
        let mut dedup = Dedup::new(NonZeroUsize::new(window).unwrap());
        if by_content {
            dedup = dedup.key(DedupKey::Content);
        }
        let mut naive = NaiveDedup { window, recent: VecDeque::new() };
        let mut verdicts = Vec::new();
        let mut expected = Vec::new();
        for (id, device, seconds, data_type) in rows {
            let mut record = make_record(&format!("id-{id}"), device, data_type, seconds, Payload::new());
            let key = if by_content {
                format!("{device}|{}|{data_type}", record.timestamp.unix_nanos())
            } else {
                record.record_id.to_string()
            };
            expected.push(naive.keep(key));
            verdicts.push(dedup.apply(&mut record));
            prop_assert!(dedup.remembered() <= window);
        }
        prop_assert_eq!(keeps(&verdicts), expected);
        prop_assert!(verdicts.iter().all(|verdict| matches!(verdict, Verdict::Keep | Verdict::Drop)));
    }
}

// ----------------------------------------------------------------------------
// enrich

fn sensor() -> impl Strategy<Value = SensorInfo> {
    (
        prop::option::of(prop::sample::select(vec!["C", "%", "hPa"])),
        prop::option::of(-10.0_f64..10.0),
        prop::option::of(-15_i32..15),
        prop::option::of(-15_i32..15),
    )
        .prop_map(|(unit, threshold, min, max)| {
            let (min, max) = match (min, max) {
                (Some(min), Some(max)) if min > max => (Some(max), Some(min)),
                other => other,
            };
            SensorInfo {
                unit: unit.map(String::from),
                threshold,
                min: min.map(f64::from),
                max: max.map(f64::from),
            }
        })
}

fn device() -> impl Strategy<Value = DeviceInfo> {
    (
        prop::option::of(prop::sample::select(vec!["Berlin", "Oslo"])),
        prop::option::of(Just("hall-2")),
        prop::option::of(Just("thermometer")),
        prop::sample::subsequence(
            vec![("owner", "ops"), ("location", "override"), ("site", "s1")],
            0..=3,
        ),
        prop::collection::vec(prop::option::of(sensor()), 3),
    )
        .prop_map(
            |(location, zone, device_type, labels, sensors)| DeviceInfo {
                location: location.map(String::from),
                zone: zone.map(String::from),
                device_type: device_type.map(String::from),
                labels: labels
                    .into_iter()
                    .map(|(key, value)| (key, value.to_owned()))
                    .collect::<FieldMap<String>>(),
                sensors: ["a", "c", "b"]
                    .into_iter()
                    .zip(sensors)
                    .filter_map(|(field, sensor)| sensor.map(|sensor| (field, sensor)))
                    .collect::<FieldMap<SensorInfo>>(),
            },
        )
}

/// The seed's `enrichEvent`, spelled out: returns the record as it should come
/// out and the reason code (with its field) if it should be refused.
fn naive_enrich(
    registry: &HashMap<String, DeviceInfo>,
    flag_thresholds: bool,
    record: &DataRecord,
) -> (DataRecord, Option<(&'static str, Option<String>)>) {
    let mut out = record.clone();
    let Some(device) = registry.get(record.device_id.as_str()) else {
        return (out, Some(("enrich.unknown_device", None)));
    };
    let set = |out: &mut DataRecord, key: &str, value: &str| {
        out.metadata.insert(key, value.into());
    };
    if let Some(location) = &device.location {
        set(&mut out, "location", location);
    }
    if let Some(zone) = &device.zone {
        set(&mut out, "zone", zone);
    }
    if let Some(device_type) = &device.device_type {
        set(&mut out, "device_type", device_type);
    }
    for (key, value) in device.labels.iter() {
        set(&mut out, key, value);
    }
    let mut refused = None;
    for (field, sensor) in device.sensors.iter() {
        let Some(value) = record.payload.get(field).cloned() else {
            continue;
        };
        if let Some(unit) = &sensor.unit {
            set(&mut out, &format!("unit.{field}"), unit);
        }
        if let Some(number) = value.as_f64() {
            let below = sensor
                .min
                .is_some_and(|min| number < min || number.is_nan());
            let above = sensor
                .max
                .is_some_and(|max| number > max || number.is_nan());
            if (below || above) && refused.is_none() {
                refused = Some(("enrich.out_of_range", Some(field.to_string())));
            }
            if flag_thresholds && let Some(threshold) = sensor.threshold {
                out.payload
                    .insert(format!("{field}_alert"), Value::Bool(number > threshold));
            }
        }
    }
    (out, refused)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn enrich_matches_reference(
        devices in prop::collection::vec(prop::option::of(device()), 3),
        flag_thresholds in any::<bool>(),
        rows in prop::collection::vec(
            (
                prop::sample::select(vec!["d0", "d1", "d2", "d3"]),
                prop::collection::vec(prop::option::of(prop_oneof![
                    4 => (-20_i64..20).prop_map(Value::Int),
                    4 => (-80_i32..80).prop_map(|quarters| Value::Float(f64::from(quarters) / 4.0)),
                    1 => Just(Value::Float(f64::NAN)),
                    1 => Just(Value::from("n/a")),
                ]), 4),
            ),
            0..30,
        ),
    ) {
        let registry: HashMap<String, DeviceInfo> = ["d0", "d1", "d2"]
            .into_iter()
            .zip(devices)
            .filter_map(|(id, device)| device.map(|device| (id.to_owned(), device)))
            .collect();
        let mut enrich = Enrich::new(registry.clone())
            .unwrap()
            .flag_thresholds(flag_thresholds);
        for (device, values) in rows {
            let payload: Payload = ["a", "b", "c", "z"]
                .into_iter()
                .zip(values)
                .filter_map(|(field, value)| value.map(|value| (field, value)))
                .collect();
            let mut record = make_record("r", device, "sensors", 0, payload);
            record.metadata.insert("location", "before".into());
            let (expected, refused) = naive_enrich(&registry, flag_thresholds, &record);
            let verdict = enrich.apply(&mut record);
            // NaN never equals itself, so compare the JSON-free debug forms.
            prop_assert_eq!(format!("{record:?}"), format!("{expected:?}"));
            match (verdict, refused) {
                (Verdict::Keep, None) => {}
                (Verdict::Quarantine(reason), Some((code, field))) => {
                    prop_assert_eq!(reason.code, code);
                    prop_assert_eq!(reason.field, field);
                }
                (verdict, refused) => prop_assert!(false, "{:?} vs {:?}", verdict, refused),
            }
        }
    }
}

// ----------------------------------------------------------------------------
// convert_units

type Formula = fn(f64) -> f64;

/// Textbook formulas, each written independently of the transform's table.
const FORMULAS: &[(&str, &str, Formula)] = &[
    ("F", "C", |x| (x - 32.0) * 5.0 / 9.0),
    ("C", "F", |x| x * 9.0 / 5.0 + 32.0),
    ("C", "K", |x| x + 273.15),
    ("K", "C", |x| x - 273.15),
    ("F", "K", |x| (x + 459.67) * 5.0 / 9.0),
    ("K", "F", |x| x * 9.0 / 5.0 - 459.67),
    ("psi", "kPa", |x| x * 6.894_757_293_168_361),
    ("hPa", "inHg", |x| x / 33.863_89),
    ("bar", "hPa", |x| x * 1000.0),
    ("mbar", "hPa", |x| x),
    ("atm", "Pa", |x| x * 101_325.0),
    ("mmHg", "kPa", |x| x * 0.133_322_387_415),
    ("m/s", "km/h", |x| x * 3.6),
    ("mph", "km/h", |x| x * 1.609_344),
    ("kn", "m/s", |x| x * 1852.0 / 3600.0),
    ("lb", "kg", |x| x * 0.453_592_37),
    ("oz", "g", |x| x * 28.349_523_125),
    ("kWh", "J", |x| x * 3.6e6),
    ("Wh", "kJ", |x| x * 3.6),
    ("hp", "W", |x| x * 745.699_871_582_270_2),
    ("kW", "hp", |x| x / 0.745_699_871_582_270_2),
    ("gal", "L", |x| x * 3.785_411_784),
    ("mL", "L", |x| x / 1000.0),
    ("m3", "gal", |x| x / 0.003_785_411_784),
    ("ft", "m", |x| x * 0.3048),
    ("in", "cm", |x| x * 2.54),
    ("mi", "km", |x| x * 1.609_344),
    ("mm", "in", |x| x / 25.4),
    ("%", "fraction", |x| x / 100.0),
    ("fraction", "%", |x| x * 100.0),
];

fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() <= 1e-9 * expected.abs().max(1.0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn convert_units_matches_formulas(
        first in 0..FORMULAS.len(),
        second in 0..FORMULAS.len(),
        values in prop::collection::vec(
            prop::option::of(prop_oneof![
                4 => (-1e6_f64..1e6).prop_map(Value::Float),
                4 => (-100_000_i64..100_000).prop_map(Value::Int),
                1 => Just(Value::from("n/a")),
                1 => any::<bool>().prop_map(Value::Bool),
            ]),
            3,
        ),
    ) {
        let unit = |name: &str| Unit::from_name(name).unwrap();
        let (from_a, to_a, formula_a) = FORMULAS[first];
        let (from_b, to_b, formula_b) = FORMULAS[second];
        let mut transform = ConvertUnits::new([
            ("a", unit(from_a), unit(to_a)),
            ("b", unit(from_b), unit(to_b)),
        ])
        .unwrap();
        let payload: Payload = ["a", "b", "c"]
            .into_iter()
            .zip(values)
            .filter_map(|(field, value)| value.map(|value| (field, value)))
            .collect();
        let record = make_record("r", "d", "t", 0, payload);
        let mut converted = record.clone();
        let verdict = transform.apply(&mut converted);

        let invalid = ["a", "b"].into_iter().find(|field| {
            record.payload.get(field).is_some_and(|value| !value.is_number())
        });
        if let Some(field) = invalid {
            match verdict {
                Verdict::Quarantine(reason) => {
                    prop_assert_eq!(reason.code, "units.not_a_number");
                    prop_assert_eq!(reason.field.as_deref(), Some(field));
                }
                other => prop_assert!(false, "{:?}", other),
            }
            prop_assert_eq!(&converted, &record, "refused records stay unchanged");
            return Ok(());
        }
        prop_assert_eq!(verdict, Verdict::Keep);
        prop_assert_eq!(converted.payload.keys().collect::<Vec<_>>(), record.payload.keys().collect::<Vec<_>>());
        for (field, formula, to) in [("a", formula_a, to_a), ("b", formula_b, to_b)] {
            let Some(input) = record.payload.get(field) else {
                let key = format!("unit.{field}");
                prop_assert!(!converted.metadata.contains_key(&key));
                continue;
            };
            let expected = formula(input.as_f64().unwrap());
            match converted.payload.get(field) {
                Some(Value::Float(actual)) => prop_assert!(
                    close(*actual, expected),
                    "{} {:?}: {} vs {}", field, input, actual, expected
                ),
                other => prop_assert!(false, "{:?}", other),
            }
            prop_assert_eq!(
                converted.metadata.get(&format!("unit.{field}")).map(|unit| unit.as_str()),
                Some(to)
            );
        }
        prop_assert_eq!(converted.payload.get("c"), record.payload.get("c"));
    }
}

// ----------------------------------------------------------------------------
// all five from one pipeline config

#[test]
fn the_five_transforms_build_from_pipeline_config_and_run_in_order() {
    use edgepipe_core::transform::{Outcome, Pipeline};

    let mut pipeline = Pipeline::from_toml_str(
        r#"
        [[transforms]]
        type = "dedup"
        window = 100

        [[transforms]]
        type = "enrich"
        on_unknown_device = "drop"
        [transforms.registry.press-1]
        location = "Berlin"
        sensors = { temp = { unit = "F", threshold = 80.0 } }

        [[transforms]]
        type = "convert_units"
        fields = { temp = { from = "F", to = "C" } }

        [[transforms]]
        type = "forward_if"
        when = "rpm > 1000"

        [[transforms]]
        type = "deadband"
        fields = ["temp"]
        absolute = 0.5
        heartbeat_seconds = 60
        "#,
    )
    .unwrap();
    assert_eq!(pipeline.len(), 5);

    let reading = |id: &str, device: &str, seconds: i64, rpm: i64, temp: f64| {
        let payload: Payload = [("rpm", Value::Int(rpm)), ("temp", Value::Float(temp))]
            .into_iter()
            .collect();
        make_record(id, device, "sensors", seconds, payload)
    };
    let stage_of = |outcome: &Outcome| match outcome {
        Outcome::Keep(_) => None,
        Outcome::Dropped { stage_index } => Some(*stage_index),
        Outcome::Quarantined(quarantined) => Some(100 + quarantined.stage_index),
    };
    let inputs = [
        reading("r1", "press-1", 0, 1200, 212.0),
        reading("r1", "press-1", 1, 1200, 212.0), // duplicate id
        reading("r2", "press-9", 2, 1200, 212.0), // unknown device
        reading("r3", "press-1", 3, 900, 212.0),  // rpm too low
        reading("r4", "press-1", 4, 1300, 212.5), // 0.28 °C: inside the deadband
        reading("r5", "press-1", 5, 1300, 214.0), // 1.1 °C
        reading("r6", "press-1", 65, 1300, 214.0), // heartbeat
    ];
    let stages: Vec<Option<usize>> = inputs
        .into_iter()
        .map(|record| stage_of(&pipeline.process(record)))
        .collect();
    assert_eq!(
        stages,
        [None, Some(0), Some(1), Some(3), Some(4), None, None]
    );

    let Outcome::Keep(out) = pipeline.process(reading("r7", "press-1", 200, 1300, 32.0)) else {
        panic!("a new value after the heartbeat passes");
    };
    assert_eq!(out.payload.get("temp"), Some(&Value::Float(0.0)));
    assert_eq!(out.payload.get("temp_alert"), Some(&Value::Bool(false)));
    assert_eq!(
        out.metadata.get("unit.temp").map(|unit| unit.as_str()),
        Some("C")
    );
    assert_eq!(
        out.metadata.get("location").map(|value| value.as_str()),
        Some("Berlin")
    );

    let error = Pipeline::from_json_str(
        r#"{"transforms": [{"type": "dedup"}, {"type": "deadband", "fields": ["t"]}]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("transforms[1]"), "{error}");
}
