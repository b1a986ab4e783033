//! A synthetic sensor fleet in the shared workload's model, for users who have no
//! workload file at hand (and for benchmarks that must run anywhere).
//!
//! Same shape as the project's shared `workload.py`: `devices` devices named
//! `dev-0000`…, one reading each every `interval_ms` of event time from
//! 2026-01-01T00:00:00Z, emitted tick by tick; payload `{temperature, humidity,
//! pressure}` as bounded random walks rounded to 2/1/1 decimals; a UUIDv4-shaped
//! `record_id` from the seeded generator; `data_type` `"sensors"`; no metadata.
//! The random numbers differ from Python's, so the values are not the file's
//! values, but the statistics and the byte sizes are alike.

use edgepipe_core::record::{DataRecord, Metadata, Payload, Timestamp, Value};

/// 2026-01-01T00:00:00Z in Unix milliseconds.
pub const START_MS: i64 = 1_767_225_600_000;

/// (name, centre, initial half-range, step half-range, low bound, high bound, decimals)
const FIELDS: [(&str, f64, f64, f64, f64, f64, i32); 3] = [
    ("temperature", 22.0, 3.0, 0.05, 15.0, 30.0, 2),
    ("humidity", 50.0, 10.0, 0.1, 20.0, 80.0, 1),
    ("pressure", 1013.0, 10.0, 0.1, 980.0, 1040.0, 1),
];

/// Parameters of the synthetic fleet.
#[derive(Clone, Debug)]
pub struct WorkloadSpec {
    /// Number of devices.
    pub devices: usize,
    /// Event-time milliseconds between two readings of one device.
    pub interval_ms: i64,
    /// Seed of the generator; the same seed gives the same records.
    pub seed: u64,
    /// One reading in this many gets a glitch (a value out of the sensor's
    /// range, or a string where a number belongs); 0 for none.
    pub glitch_every: u64,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec {
            devices: 1000,
            interval_ms: 100,
            seed: 42,
            glitch_every: 0,
        }
    }
}

/// SplitMix64: tiny, fast and good enough for test data (not for anything secret).
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-half, half).
    fn symmetric(&mut self, half: f64) -> f64 {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        (unit * 2.0 - 1.0) * half
    }
}

/// An endless, deterministic stream of readings.
#[derive(Clone, Debug)]
pub struct Workload {
    spec: WorkloadSpec,
    rng: SplitMix64,
    names: Vec<String>,
    state: Vec<[f64; 3]>,
    tick: i64,
    device: usize,
    emitted: u64,
}

impl Workload {
    /// A stream with the given parameters.
    pub fn new(spec: WorkloadSpec) -> Self {
        let mut rng = SplitMix64(spec.seed);
        let names = (0..spec.devices)
            .map(|index| format!("dev-{index:04}"))
            .collect();
        let state = (0..spec.devices)
            .map(|_| FIELDS.map(|(_, centre, half, ..)| centre + rng.symmetric(half)))
            .collect();
        Workload {
            spec,
            rng,
            names,
            state,
            tick: 0,
            device: 0,
            emitted: 0,
        }
    }

    fn uuid_v4(&mut self) -> String {
        let high = self.rng.next_u64();
        let low = self.rng.next_u64();
        let bytes: u128 = (u128::from(high) << 64 | u128::from(low)) & !(0xf << 76) & !(0x3 << 62);
        let bytes = bytes | (0x4 << 76) | (0x2 << 62);
        let hex = format!("{bytes:032x}");
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    }
}

impl Iterator for Workload {
    type Item = DataRecord;

    fn next(&mut self) -> Option<DataRecord> {
        if self.spec.devices == 0 {
            return None;
        }
        let device = self.device;
        let mut payload = Payload::with_capacity(FIELDS.len());
        for (index, (name, _, _, step, low, high, decimals)) in FIELDS.into_iter().enumerate() {
            let mut value = self.state[device][index] + self.rng.symmetric(step);
            if value < low {
                value = low + (low - value);
            } else if value > high {
                value = high - (value - high);
            }
            self.state[device][index] = value;
            let scale = 10f64.powi(decimals);
            payload.insert(name, Value::Float((value * scale).round() / scale));
        }
        self.emitted += 1;
        if self.spec.glitch_every > 0 && self.emitted.is_multiple_of(self.spec.glitch_every) {
            let glitch = if (self.emitted / self.spec.glitch_every).is_multiple_of(2) {
                Value::Float(-999.0)
            } else {
                Value::from("ERR")
            };
            payload.insert("temperature", glitch);
        }
        let record = DataRecord {
            record_id: self.uuid_v4().into(),
            device_id: self.names[device].as_str().into(),
            timestamp: Timestamp::from_unix_nanos(
                (START_MS + self.tick * self.spec.interval_ms) * 1_000_000,
            ),
            data_type: "sensors".into(),
            payload,
            metadata: Metadata::new(),
        };
        self.device += 1;
        if self.device == self.spec.devices {
            self.device = 0;
            self.tick += 1;
        }
        Some(record)
    }
}

/// `n` readings as JSON Lines, the shared workload's file format.
pub fn jsonl(spec: WorkloadSpec, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 200);
    let options = edgepipe_core::record::JsonOptions::default();
    for record in Workload::new(spec).take(n) {
        // Generated values are finite and rounded: writing cannot fail.
        if record.write_json(&mut out, &options).is_ok() {
            out.push(b'\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgepipe_core::record::SequenceId;

    #[test]
    fn same_seed_same_records_tick_major_order() {
        let spec = WorkloadSpec {
            devices: 3,
            ..WorkloadSpec::default()
        };
        let first: Vec<_> = Workload::new(spec.clone()).take(7).collect();
        let again: Vec<_> = Workload::new(spec).take(7).collect();
        assert_eq!(first, again);
        let devices: Vec<_> = first.iter().map(|r| r.device_id.as_str()).collect();
        assert_eq!(
            devices,
            [
                "dev-0000", "dev-0001", "dev-0002", "dev-0000", "dev-0001", "dev-0002", "dev-0000"
            ]
        );
        assert_eq!(
            first[3].timestamp.unix_millis() - first[0].timestamp.unix_millis(),
            100
        );
        for record in &first {
            assert_eq!(record.record_id.len(), 36);
            assert_eq!(record.record_id.as_bytes()[14], b'4');
            assert!(SequenceId::parse(&record.record_id).is_err());
            let temperature = record
                .payload
                .get("temperature")
                .and_then(Value::as_f64)
                .unwrap();
            assert!((15.0..=30.0).contains(&temperature));
        }
    }

    #[test]
    fn glitches_appear_at_the_requested_rate() {
        let spec = WorkloadSpec {
            devices: 10,
            glitch_every: 50,
            ..WorkloadSpec::default()
        };
        let glitched = Workload::new(spec)
            .take(1000)
            .filter(|r| {
                r.payload
                    .get("temperature")
                    .and_then(Value::as_f64)
                    .is_none_or(|t| t < 0.0)
            })
            .count();
        assert_eq!(glitched, 20);
    }
}
