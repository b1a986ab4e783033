//! `enrich`: add context from a device registry (seed 002's `enrichEvent`).
//!
//! The seed looks each event's device up in a registry, refuses unknown devices,
//! flags out-of-range readings, and adds location, zone, device type, unit and
//! threshold. Here the registry is given in config or loaded from a JSON file
//! when the pipeline is built, and is read without allocating per record.

use std::collections::HashMap;

use serde::Deserialize;

use super::{OnFailure, Reason, Transform, Verdict};
use crate::error::{Error, Result};
use crate::record::{DataRecord, FieldMap, Value};

/// What the registry knows about one device.
///
/// In JSON: `{"location": "Berlin", "zone": "hall-2", "device_type": "thermometer",
/// "labels": {"owner": "facilities"}, "sensors": {"temperature": {"unit": "C",
/// "threshold": 25, "min": -40, "max": 85}}}`; every key is optional.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceInfo {
    /// Set as metadata `location`.
    #[serde(default)]
    pub location: Option<String>,
    /// Set as metadata `zone`.
    #[serde(default)]
    pub zone: Option<String>,
    /// Set as metadata `device_type`.
    #[serde(default)]
    pub device_type: Option<String>,
    /// Further metadata to set, in order.
    #[serde(default)]
    pub labels: FieldMap<String>,
    /// Payload field name to what is known about the sensor behind it.
    #[serde(default)]
    pub sensors: FieldMap<SensorInfo>,
}

/// What the registry knows about one sensor, i.e. one payload field of a device.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorInfo {
    /// The unit of the readings, set as metadata `unit.{field}`.
    #[serde(default)]
    pub unit: Option<String>,
    /// Readings above this set payload `{field}_alert` to `true` (else `false`).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// The smallest plausible reading; below it the record is out of range.
    #[serde(default)]
    pub min: Option<f64>,
    /// The largest plausible reading; above it the record is out of range.
    #[serde(default)]
    pub max: Option<f64>,
}

impl SensorInfo {
    fn check(&self, at: &str) -> Result<()> {
        for (name, bound) in [
            ("threshold", self.threshold),
            ("min", self.min),
            ("max", self.max),
        ] {
            if let Some(bound) = bound
                && !bound.is_finite()
            {
                return Err(Error::config(
                    format!("{at}.{name}"),
                    format!("must be a finite number (found {bound})"),
                ));
            }
        }
        if let (Some(min), Some(max)) = (self.min, self.max)
            && min > max
        {
            return Err(Error::config(at, format!("min {min} is above max {max}")));
        }
        Ok(())
    }
}

/// A device as the transform uses it: the metadata to set, ready to copy, and
/// the sensors with their derived key names made once.
#[derive(Clone, Debug)]
struct Device {
    metadata: Vec<(String, String)>,
    sensors: Vec<Sensor>,
}

#[derive(Clone, Debug)]
struct Sensor {
    field: String,
    /// `unit.{field}` and the unit, when the unit is known.
    unit: Option<(String, String)>,
    /// `{field}_alert`.
    alert_field: String,
    info: SensorInfo,
}

impl Device {
    fn from_info(info: &DeviceInfo) -> Self {
        let mut metadata = Vec::new();
        for (key, value) in [
            ("location", &info.location),
            ("zone", &info.zone),
            ("device_type", &info.device_type),
        ] {
            if let Some(value) = value {
                metadata.push((key.to_owned(), value.clone()));
            }
        }
        for (key, value) in info.labels.iter() {
            metadata.push((key.to_owned(), value.clone()));
        }
        let sensors = info
            .sensors
            .iter()
            .map(|(field, sensor)| Sensor {
                field: field.to_owned(),
                unit: sensor
                    .unit
                    .as_ref()
                    .map(|unit| (format!("unit.{field}"), unit.clone())),
                alert_field: format!("{field}_alert"),
                info: sensor.clone(),
            })
            .collect();
        Device { metadata, sensors }
    }
}

/// Adds what a device registry knows to each record of a known device.
///
/// For a device in the registry:
///
/// - metadata `location`, `zone` and `device_type` (those that are set), then
///   each of the device's labels, replacing existing values;
/// - for each sensor field present in the payload: metadata `unit.{field}` when
///   the sensor's unit is known; with `flag_thresholds` (the default) and a
///   threshold, payload `{field}_alert` = `value > threshold` when the value is a
///   number;
/// - a numeric value outside the sensor's `[min, max]` (NaN included) makes the
///   record out of range: quarantined by default (`out_of_range`, reason
///   `enrich.out_of_range` naming the first such field). The record is enriched
///   first, so the quarantine shows it with its context.
///
/// A record from a device not in the registry is quarantined by default
/// (`on_unknown_device`, reason `enrich.unknown_device`) and left unchanged.
#[derive(Clone, Debug)]
pub struct Enrich {
    registry: HashMap<String, Device>,
    on_unknown_device: OnFailure,
    out_of_range: OnFailure,
    flag_thresholds: bool,
}

impl Enrich {
    /// A transform over `registry` (device id to what is known about it).
    ///
    /// Fails when a sensor's bounds are not finite or its `min` is above its `max`.
    pub fn new<S: Into<String>>(
        registry: impl IntoIterator<Item = (S, DeviceInfo)>,
    ) -> Result<Self> {
        let mut enrich = Enrich {
            registry: HashMap::new(),
            on_unknown_device: OnFailure::Quarantine,
            out_of_range: OnFailure::Quarantine,
            flag_thresholds: true,
        };
        enrich.extend("registry", registry)?;
        Ok(enrich)
    }

    /// Adds (or replaces) devices, checking each; `at` names the registry in errors.
    fn extend<S: Into<String>>(
        &mut self,
        at: &str,
        registry: impl IntoIterator<Item = (S, DeviceInfo)>,
    ) -> Result<()> {
        for (device_id, info) in registry {
            let device_id = device_id.into();
            for (field, sensor) in info.sensors.iter() {
                sensor.check(&format!("{at}.{device_id}.sensors.{field}"))?;
            }
            self.registry.insert(device_id, Device::from_info(&info));
        }
        Ok(())
    }

    /// What to do with records from devices the registry does not know
    /// (default: quarantine).
    pub fn on_unknown_device(mut self, policy: OnFailure) -> Self {
        self.on_unknown_device = policy;
        self
    }

    /// What to do with records holding a reading outside its sensor's range
    /// (default: quarantine).
    pub fn out_of_range(mut self, policy: OnFailure) -> Self {
        self.out_of_range = policy;
        self
    }

    /// Whether to add `{field}_alert` flags for sensors with a threshold (default: true).
    pub fn flag_thresholds(mut self, flag: bool) -> Self {
        self.flag_thresholds = flag;
        self
    }

    /// Number of devices in the registry.
    pub fn devices(&self) -> usize {
        self.registry.len()
    }
}

impl Transform for Enrich {
    fn name(&self) -> &str {
        "enrich"
    }

    fn apply(&mut self, record: &mut DataRecord) -> Verdict {
        let Some(device) = self.registry.get(record.device_id.as_str()) else {
            return self.on_unknown_device.verdict(|| {
                Reason::record(
                    "enrich.unknown_device",
                    format!("device {:?} is not in the registry", record.device_id),
                )
            });
        };
        for (key, value) in &device.metadata {
            set_metadata(record, key, value);
        }
        let mut out_of_range: Option<(&Sensor, f64)> = None;
        for sensor in &device.sensors {
            let Some(value) = record.payload.get(&sensor.field) else {
                continue;
            };
            let number = value.as_f64();
            if let Some(number) = number
                && out_of_range.is_none()
                && !sensor.info.contains(number)
            {
                out_of_range = Some((sensor, number));
            }
            if let Some((key, unit)) = &sensor.unit {
                set_metadata(record, key, unit);
            }
            if self.flag_thresholds
                && let (Some(threshold), Some(number)) = (sensor.info.threshold, number)
            {
                record
                    .payload
                    .insert(sensor.alert_field.as_str(), Value::Bool(number > threshold));
            }
        }
        match out_of_range {
            None => Verdict::Keep,
            Some((sensor, number)) => self.out_of_range.verdict(|| {
                let bound =
                    |bound: Option<f64>| bound.map_or_else(|| "…".to_owned(), |b| b.to_string());
                Reason::field(
                    "enrich.out_of_range",
                    sensor.field.clone(),
                    format!(
                        "{number} is outside the sensor's range [{}, {}]",
                        bound(sensor.info.min),
                        bound(sensor.info.max)
                    ),
                )
            }),
        }
    }
}

impl SensorInfo {
    /// True when `number` lies within `[min, max]` (NaN never does, when a bound is set).
    fn contains(&self, number: f64) -> bool {
        self.min.is_none_or(|min| number >= min) && self.max.is_none_or(|max| number <= max)
    }
}

fn set_metadata(record: &mut DataRecord, key: &str, value: &str) {
    match record.metadata.get_mut(key) {
        Some(existing) => {
            existing.clear();
            existing.push_str(value);
        }
        None => {
            record.metadata.insert(key, value.into());
        }
    }
}

/// `{"type": "enrich", "registry": {"temp-007": {"location": "Berlin", "sensors": {"temperature": {"unit": "C", "threshold": 25}}}}}`
/// or `{"type": "enrich", "registry_file": "devices.json"}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Device id to [`DeviceInfo`]; entries here replace the file's for the same id.
    #[serde(default)]
    pub registry: Option<HashMap<String, DeviceInfo>>,
    /// A JSON file holding the same map, read once when the pipeline is built.
    #[serde(default)]
    pub registry_file: Option<String>,
    /// What happens to records from unknown devices: `quarantine` (default),
    /// `drop` or `keep`.
    #[serde(default)]
    pub on_unknown_device: OnFailure,
    /// What happens to records with a reading outside its sensor's `[min, max]`:
    /// `quarantine` (default), `drop` or `keep`.
    #[serde(default)]
    pub out_of_range: OnFailure,
    /// Whether to add `{field}_alert` flags for sensors with a threshold (default true).
    #[serde(default = "yes")]
    pub flag_thresholds: bool,
}

fn yes() -> bool {
    true
}

impl Config {
    pub(crate) fn build(&self, key: &str) -> Result<Enrich> {
        if self.registry.is_none() && self.registry_file.is_none() {
            return Err(Error::config(
                format!("{key}.registry"),
                "give `registry`, `registry_file` or both",
            ));
        }
        let mut enrich = Enrich::new(std::iter::empty::<(String, DeviceInfo)>())?
            .on_unknown_device(self.on_unknown_device)
            .out_of_range(self.out_of_range)
            .flag_thresholds(self.flag_thresholds);
        if let Some(path) = &self.registry_file {
            let at = format!("{key}.registry_file");
            let mut registry: Vec<_> = read_registry(path)
                .map_err(|message| Error::config(&at, message))?
                .into_iter()
                .collect();
            // Sorted, so that the first error reported does not depend on hashing.
            registry.sort_unstable_by(|(left, _), (right, _)| left.cmp(right));
            enrich.extend(&at, registry).map_err(|error| match error {
                Error::Config { key, message } => Error::config(
                    at.clone(),
                    format!(
                        "{path}: {}: {message}",
                        key.strip_prefix(at.as_str())
                            .unwrap_or(&key)
                            .trim_start_matches('.')
                    ),
                ),
                other => other,
            })?;
        }
        if let Some(registry) = &self.registry {
            // Sorted, so that the first error reported does not depend on hashing.
            let mut devices: Vec<_> = registry.iter().collect();
            devices.sort_unstable_by_key(|(device_id, _)| device_id.as_str());
            enrich.extend(
                &format!("{key}.registry"),
                devices
                    .into_iter()
                    .map(|(device_id, info)| (device_id.as_str(), info.clone())),
            )?;
        }
        Ok(enrich)
    }
}

/// Reads a registry file, describing a failure with the path and the cause.
fn read_registry(path: &str) -> std::result::Result<HashMap<String, DeviceInfo>, String> {
    let text = std::fs::read(path).map_err(|error| format!("cannot read {path}: {error}"))?;
    let deserializer = &mut serde_json::Deserializer::from_slice(&text);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let at = error.path().to_string();
        format!("cannot parse {path} at `{at}`: {}", error.into_inner())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::tests::record;

    fn registry() -> Enrich {
        let config: Config = serde_json::from_str(
            r#"{"registry": {"dev-0000": {
                "location": "Berlin", "zone": "hall-2", "device_type": "weather",
                "labels": {"owner": "facilities", "site": "b1"},
                "sensors": {
                    "temperature": {"unit": "C", "threshold": 25, "min": -40, "max": 85},
                    "humidity": {"unit": "%", "threshold": 50},
                    "wind": {"unit": "m/s"}
                }
            }}}"#,
        )
        .unwrap();
        config.build("transforms[0]").unwrap()
    }

    #[test]
    fn known_devices_get_metadata_units_and_alerts() {
        let mut input = record();
        input.metadata.insert("site", "old".into());
        assert_eq!(registry().apply(&mut input), Verdict::Keep);
        let metadata: Vec<_> = input
            .metadata
            .iter()
            .map(|(key, value)| (key, value.as_str()))
            .collect();
        assert_eq!(
            metadata,
            [
                ("site", "b1"),
                ("location", "Berlin"),
                ("zone", "hall-2"),
                ("device_type", "weather"),
                ("owner", "facilities"),
                ("unit.temperature", "C"),
                ("unit.humidity", "%"),
            ]
        );
        assert_eq!(
            input.payload.get("temperature_alert"),
            Some(&Value::Bool(false))
        );
        assert_eq!(
            input.payload.get("humidity_alert"),
            Some(&Value::Bool(true))
        );
        assert!(!input.payload.contains_key("wind_alert"));
        assert!(!input.payload.contains_key("pressure_alert"));

        let mut quiet = registry().flag_thresholds(false);
        let mut input = record();
        quiet.apply(&mut input);
        assert!(!input.payload.contains_key("temperature_alert"));
        // A non-numeric reading gets its unit but no alert.
        let mut input = record();
        input.payload.insert("temperature", Value::from("n/a"));
        assert_eq!(registry().apply(&mut input), Verdict::Keep);
        assert!(!input.payload.contains_key("temperature_alert"));
        assert_eq!(
            input
                .metadata
                .get("unit.temperature")
                .map(|unit| unit.as_str()),
            Some("C")
        );
    }

    #[test]
    fn unknown_devices_and_out_of_range_follow_the_policies() {
        let mut input = record();
        input.device_id = "dev-9999".into();
        match registry().apply(&mut input) {
            Verdict::Quarantine(reason) => {
                assert_eq!(reason.code, "enrich.unknown_device");
                assert!(reason.message.contains("dev-9999"));
            }
            other => panic!("{other:?}"),
        }
        assert!(input.metadata.is_empty());
        let mut lenient = registry().on_unknown_device(OnFailure::Keep);
        assert_eq!(lenient.apply(&mut input), Verdict::Keep);

        let mut hot = record();
        hot.payload.insert("temperature", Value::Int(90));
        match registry().apply(&mut hot) {
            Verdict::Quarantine(reason) => {
                assert_eq!(reason.code, "enrich.out_of_range");
                assert_eq!(reason.field.as_deref(), Some("temperature"));
                assert_eq!(reason.message, "90 is outside the sensor's range [-40, 85]");
            }
            other => panic!("{other:?}"),
        }
        // Enriched before being refused.
        assert_eq!(
            hot.payload.get("temperature_alert"),
            Some(&Value::Bool(true))
        );
        let mut dropping = registry().out_of_range(OnFailure::Drop);
        assert_eq!(dropping.apply(&mut hot), Verdict::Drop);
        let mut nan = record();
        nan.payload.insert("temperature", Value::Float(f64::NAN));
        assert!(matches!(registry().apply(&mut nan), Verdict::Quarantine(_)));
        let mut edge = record();
        edge.payload.insert("temperature", Value::Float(85.0));
        assert_eq!(registry().apply(&mut edge), Verdict::Keep);
    }

    #[test]
    fn registry_files_load_and_errors_name_the_key_and_path() {
        let directory =
            std::env::temp_dir().join(format!("edgepipe-enrich-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        let good = directory.join("devices.json");
        std::fs::write(
            &good,
            r#"{"dev-0000": {"location": "Oslo"}, "dev-0001": {"location": "Rome"}}"#,
        )
        .unwrap();
        let config = |json: String| serde_json::from_str::<Config>(&json).unwrap();
        let file_json = serde_json::to_string(good.to_str().unwrap()).unwrap();
        let mut enrich = config(format!(
            r#"{{"registry_file": {file_json}, "registry": {{"dev-0001": {{"location": "Paris"}}}}}}"#
        ))
        .build("transforms[5]")
        .unwrap();
        assert_eq!(enrich.devices(), 2);
        let mut input = record();
        enrich.apply(&mut input);
        assert_eq!(
            input.metadata.get("location").map(|value| value.as_str()),
            Some("Oslo")
        );
        let mut second = record();
        second.device_id = "dev-0001".into();
        enrich.apply(&mut second);
        assert_eq!(
            second.metadata.get("location").map(|value| value.as_str()),
            Some("Paris")
        );

        let missing = directory.join("absent.json");
        let error = config(format!(
            r#"{{"registry_file": {}}}"#,
            serde_json::to_string(missing.to_str().unwrap()).unwrap()
        ))
        .build("transforms[5]")
        .unwrap_err()
        .to_string();
        assert!(error.contains("transforms[5].registry_file"), "{error}");
        assert!(error.contains("absent.json"), "{error}");

        let bad = directory.join("bad.json");
        std::fs::write(
            &bad,
            r#"{"dev-0000": {"sensors": {"t": {"unit": "C", "maximum": 3}}}}"#,
        )
        .unwrap();
        let error = config(format!(
            r#"{{"registry_file": {}}}"#,
            serde_json::to_string(bad.to_str().unwrap()).unwrap()
        ))
        .build("transforms[5]")
        .unwrap_err()
        .to_string();
        assert!(error.contains("transforms[5].registry_file"), "{error}");
        assert!(error.contains("bad.json"), "{error}");
        assert!(error.contains("dev-0000.sensors.t"), "{error}");

        let inverted = directory.join("inverted.json");
        std::fs::write(
            &inverted,
            r#"{"dev-0000": {"sensors": {"t": {"min": 3, "max": 1}}}}"#,
        )
        .unwrap();
        let error = config(format!(
            r#"{{"registry_file": {}}}"#,
            serde_json::to_string(inverted.to_str().unwrap()).unwrap()
        ))
        .build("transforms[5]")
        .unwrap_err()
        .to_string();
        assert!(error.contains("transforms[5].registry_file"), "{error}");
        assert!(error.contains("dev-0000.sensors.t"), "{error}");
        std::fs::remove_dir_all(&directory).unwrap();
    }

    #[test]
    fn config_checks_and_names_bad_keys() {
        let build = |json: &str| {
            serde_json::from_str::<Config>(json)
                .unwrap()
                .build("transforms[1]")
        };
        let error = build("{}").unwrap_err().to_string();
        assert!(error.contains("transforms[1].registry"), "{error}");
        let error = build(r#"{"registry": {"d": {"sensors": {"t": {"min": 5, "max": 1}}}}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("transforms[1].registry.d.sensors.t"),
            "{error}"
        );
        let defaults = build(r#"{"registry": {}}"#).unwrap();
        assert_eq!(defaults.on_unknown_device, OnFailure::Quarantine);
        assert_eq!(defaults.out_of_range, OnFailure::Quarantine);
        assert!(defaults.flag_thresholds);
        assert!(serde_json::from_str::<Config>(r#"{"registry": {"d": {"place": "x"}}}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"registy": {}}"#).is_err());
    }
}
