//! Record generators shared by the batch tests.
#![allow(dead_code)]

use edgepipe_core::record::{CompactString, DataRecord, FieldMap, Payload, Timestamp, Value};
use proptest::prelude::*;

pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_]{1,12}",
        any::<String>(),
        "[\\x00-\\x1f\"\\\\é漢🙂]{0,6}",
        "dev-00[0-9]{2}",
    ]
}

/// Floats JSON can carry (finite), including -0.0 and subnormals.
pub fn finite_float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
        Just(-0.0),
        Just(f64::MIN_POSITIVE / 4.0),
        Just(5e-324),
        (-1_000_000i64..1_000_000).prop_map(|n| n as f64 / 100.0),
    ]
}

/// Every f64 bit pattern, NaNs with payloads included.
pub fn any_float() -> impl Strategy<Value = f64> {
    prop_oneof![finite_float(), any::<u64>().prop_map(f64::from_bits)]
}

pub fn value(finite: bool) -> impl Strategy<Value = Value> {
    let float = if finite {
        finite_float().boxed()
    } else {
        any_float().boxed()
    };
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        (i64::MAX as u64 + 1..=u64::MAX).prop_map(Value::UInt),
        float.prop_map(Value::Float),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::List),
            prop::collection::vec((text(), inner), 0..5)
                .prop_map(|entries| Value::Map(entries.into_iter().collect())),
        ]
    })
}

fn record_id() -> impl Strategy<Value = String> {
    prop_oneof![
        text(),
        (0u64..3, 0u64..1000).prop_map(|(epoch, seq)| format!("gw-1:{epoch}:{seq}")),
        any::<u128>().prop_map(uuid_like),
    ]
}

fn uuid_like(n: u128) -> String {
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Arbitrary records: any strings, values, shapes and timestamps.
pub fn record(finite: bool) -> impl Strategy<Value = DataRecord> {
    let nanos = -9_000_000_000_000_000_000i64..9_000_000_000_000_000_000i64;
    (
        record_id(),
        prop_oneof![text(), "dev-000[0-3]"],
        prop_oneof![
            nanos,
            (0i64..50).prop_map(|t| 1_767_225_600_000_000_000 + t * 100_000_000)
        ],
        prop_oneof![Just("sensors".to_owned()), text()],
        prop::collection::vec((prop_oneof!["[a-c]", text()], value(finite)), 0..6),
        prop::collection::vec((text(), text()), 0..3),
    )
        .prop_map(
            |(record_id, device_id, nanos, data_type, payload, metadata)| DataRecord {
                record_id: record_id.into(),
                device_id: device_id.into(),
                timestamp: Timestamp::from_unix_nanos(nanos),
                data_type: data_type.into(),
                payload: payload.into_iter().collect(),
                metadata: metadata
                    .into_iter()
                    .map(|(key, value)| (key, value.into()))
                    .collect::<FieldMap<CompactString>>(),
            },
        )
}

/// Time series like the workload's: a few devices, decimals in disguise, sequence
/// ids in arrival order, and now and then a field missing, appearing mid-batch,
/// or holding a value of another type.
pub fn series_batch() -> impl Strategy<Value = Vec<DataRecord>> {
    (
        1usize..6,
        1usize..200,
        any::<u64>(),
        prop::collection::vec((0u8..12, any_float()), 0..10),
        any::<bool>(),
    )
        .prop_map(|(devices, count, seed, oddities, uuids)| {
            let mut rng = seed;
            let mut next = move || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let mut records = Vec::with_capacity(count);
            let mut state = vec![(2287i64, 503i64, 10126i64); devices];
            for index in 0..count {
                let device = index % devices;
                let tick = (index / devices) as i64;
                let (t, h, p) = &mut state[device];
                *t += (next() % 11) as i64 - 5;
                *h += (next() % 3) as i64 - 1;
                *p += (next() % 3) as i64 - 1;
                let mut payload = Payload::new();
                payload.insert("temperature", Value::Float(*t as f64 / 100.0));
                payload.insert("humidity", Value::Float(*h as f64 / 10.0));
                payload.insert("pressure", Value::Float(*p as f64 / 10.0));
                let mut metadata = FieldMap::new();
                metadata.insert("site", CompactString::from("factory-1"));
                records.push(DataRecord {
                    record_id: if uuids {
                        uuid_like(u128::from(next()) << 64 | u128::from(next()))
                    } else {
                        format!("gw-1:0:{}", 1000 + index)
                    }
                    .into(),
                    device_id: format!("dev-{device:04}").into(),
                    timestamp: Timestamp::from_unix_nanos(
                        1_767_225_600_000_000_000 + tick * 100_000_000,
                    ),
                    data_type: "sensors".into(),
                    payload,
                    metadata,
                });
            }
            for (kind, float) in oddities {
                let index = (next() as usize) % count;
                let payload = &mut records[index].payload;
                match kind {
                    0 => {
                        payload.remove("humidity");
                    }
                    1 => {
                        payload.insert("vibration", Value::Float(float));
                    }
                    2 => {
                        payload.insert("temperature", Value::Float(float));
                    }
                    3 => {
                        payload.insert("pressure", Value::Null);
                    }
                    4 => {
                        payload.insert("status", Value::from("ok"));
                    }
                    5 => {
                        payload.insert("count", Value::Int(next() as i64));
                    }
                    6 => {
                        payload.insert("humidity", Value::Int(50));
                    }
                    7 => {
                        records[index].metadata.insert("region", "us-west".into());
                    }
                    8 => {
                        records.swap(index, 0);
                    }
                    9 => {
                        records[index].record_id = "verbatim-id".into();
                    }
                    10 => {
                        records[index].timestamp = Timestamp::from_unix_nanos(next() as i64);
                    }
                    _ => {
                        payload.insert("temperature", Value::Float(-0.0));
                    }
                }
            }
            records
        })
}

/// Equality that also tells -0.0 from 0.0 and compares NaNs by their bits.
pub fn same_bits(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        (Value::List(xs), Value::List(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| same_bits(x, y))
        }
        (Value::Map(xs), Value::Map(ys)) => same_payload(xs, ys),
        _ => a == b,
    }
}

pub fn same_payload(a: &Payload, b: &Payload) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|((ka, va), (kb, vb))| ka == kb && same_bits(va, vb))
}

/// Bit-exact record equality, with a readable failure.
pub fn assert_same_records(actual: &[DataRecord], expected: &[DataRecord]) {
    assert_eq!(actual.len(), expected.len(), "record count");
    for (index, (a, e)) in actual.iter().zip(expected).enumerate() {
        let same = a.record_id == e.record_id
            && a.device_id == e.device_id
            && a.timestamp == e.timestamp
            && a.data_type == e.data_type
            && a.metadata == e.metadata
            && same_payload(&a.payload, &e.payload);
        assert!(
            same,
            "record {index} differs:\n  got      {a:?}\n  expected {e:?}"
        );
    }
}
