//! Writing your own transform: the dew point, computed at the edge.
//!
//! ```text
//! cargo run -p edgepipe-examples --bin custom-transform
//! ```
//!
//! A transform is one trait method, `apply`, that may change a record and says
//! whether to keep it, drop it, or quarantine it with a reason. Custom and
//! built-in transforms mix in one pipeline, with counters for each stage.

use edgepipe_core::record::json::parse_jsonl;
use edgepipe_core::record::{DataRecord, Value};
use edgepipe_core::transform::{AddMetadata, Outcome, Pipeline, Reason, Transform, Verdict};

/// Adds `dew_point` (°C, Magnus formula) from `temperature` (°C) and `humidity`
/// (%); quarantines a reading whose humidity cannot be right.
#[derive(Debug, Default)]
struct DewPoint;

impl Transform for DewPoint {
    fn name(&self) -> &str {
        "dew_point"
    }

    fn apply(&mut self, record: &mut DataRecord) -> Verdict {
        let number = |field| record.payload.get(field).and_then(Value::as_finite_f64);
        let (Some(temperature), Some(humidity)) = (number("temperature"), number("humidity"))
        else {
            // Not a climate reading: pass it on untouched.
            return Verdict::Keep;
        };
        if !(0.0 < humidity && humidity <= 100.0) {
            return Verdict::Quarantine(Reason::field(
                "dew_point.humidity_out_of_range",
                "humidity",
                format!("{humidity} % is not a relative humidity"),
            ));
        }
        let (a, b) = (17.62, 243.12);
        let gamma = (humidity / 100.0).ln() + a * temperature / (b + temperature);
        let dew_point = b * gamma / (a - gamma);
        // Two decimals, like the sensors' own readings.
        let rounded = (dew_point * 100.0).round() / 100.0;
        record.payload.insert("dew_point", Value::Float(rounded));
        Verdict::Keep
    }
}

const READINGS: &str = r#"{"record_id":"r1","device_id":"edge-001","timestamp":"2026-01-01T00:00:00Z","data_type":"sensors","payload":{"temperature":22.87,"humidity":45.1}}
{"record_id":"r2","device_id":"edge-001","timestamp":"2026-01-01T00:00:10Z","data_type":"sensors","payload":{"temperature":23.10,"humidity":180.0}}
{"record_id":"r3","device_id":"edge-009","timestamp":"2026-01-01T00:00:10Z","data_type":"system","payload":{"cpu":0.42}}
"#;

fn main() -> edgepipe_core::Result<()> {
    let mut pipeline = Pipeline::new()
        .with(AddMetadata::new([("site", "factory-1")]))
        .with(DewPoint);
    for (_, record) in parse_jsonl(READINGS.as_bytes()) {
        match pipeline.process(record?) {
            Outcome::Keep(record) => println!("keep       {}", record.to_json()?),
            Outcome::Quarantined(set_aside) => println!(
                "quarantine {} by {}: {}",
                set_aside.record.record_id, set_aside.stage, set_aside.reason.message
            ),
            Outcome::Dropped { stage_index } => println!("dropped by stage {stage_index}"),
        }
    }
    for stage in pipeline.stats() {
        println!(
            "stage {:<12} in {} out {} quarantined {}",
            stage.name, stage.records_in, stage.records_out, stage.quarantined
        );
    }
    Ok(())
}
