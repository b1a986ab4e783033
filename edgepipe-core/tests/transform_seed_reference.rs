//! The seed's six transforms against a naive transcription of the seed's Python.
//!
//! The reference keeps payloads as a plain list of pairs with Python dict
//! semantics spelled out (assignment keeps an existing key's position), and each
//! function is a line-by-line copy of the seed's code. Field names come from a
//! small alphabet so that renames collide and filters overlap often.

use edgepipe_core::record::{DataRecord, Metadata, Payload, Timestamp, Value};
use edgepipe_core::transform::{
    AddMetadata, ComputedField, FieldRule, FieldType, FilterFields, MaskFields, Outcome, Pipeline,
    RenameFields, Transform, ValidateSchema, Verdict,
};
use proptest::prelude::*;

/// A Python dict, naively.
#[derive(Clone, Debug, Default, PartialEq)]
struct PyDict(Vec<(String, Value)>);

impl PyDict {
    fn set(&mut self, key: &str, value: Value) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.0.push((key.to_owned(), value)),
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn from_payload(payload: &Payload) -> Self {
        PyDict(
            payload
                .iter()
                .map(|(k, v)| (k.to_owned(), v.clone()))
                .collect(),
        )
    }
}

// def add_metadata(metadata): new_metadata = {**record.metadata, **metadata}
fn ref_add_metadata(
    old: &[(String, String)],
    labels: &[(String, String)],
) -> Vec<(String, String)> {
    let mut new: Vec<(String, String)> = Vec::new();
    for (k, v) in old.iter().chain(labels) {
        match new.iter_mut().find(|(key, _)| key == k) {
            Some(entry) => entry.1 = v.clone(),
            None => new.push((k.clone(), v.clone())),
        }
    }
    new
}

// filtered = {k: v for k, v in record.payload.items() if k in allowed_fields}
fn ref_filter(payload: &PyDict, allowed: &[String]) -> PyDict {
    let mut out = PyDict::default();
    for (k, v) in &payload.0 {
        if allowed.contains(k) {
            out.set(k, v.clone());
        }
    }
    out
}

// for old_name, value in payload.items(): renamed[mapping.get(old_name, old_name)] = value
fn ref_rename(payload: &PyDict, mapping: &[(String, String)]) -> PyDict {
    let mut renamed = PyDict::default();
    for (old, value) in &payload.0 {
        let new = mapping
            .iter()
            .find(|(o, _)| o == old)
            .map_or(old, |(_, n)| n);
        renamed.set(new, value.clone());
    }
    renamed
}

// new_payload = {**record.payload, field_name: compute(record.payload)}
fn ref_computed(payload: &PyDict, field: &str, value: Value) -> PyDict {
    let mut out = payload.clone();
    out.set(field, value);
    out
}

// for field in fields: if field in masked: masked[field] = "***MASKED***"
fn ref_mask(payload: &PyDict, fields: &[String]) -> PyDict {
    let mut masked = payload.clone();
    for field in fields {
        if masked.get(field).is_some() {
            masked.set(field, Value::from("***MASKED***"));
        }
    }
    masked
}

// for field, expected_type in schema.items(): if field in payload and not isinstance(...): raise
fn ref_validate(payload: &PyDict, schema: &[(String, FieldType)]) -> bool {
    schema
        .iter()
        .all(|(field, expected)| match payload.get(field) {
            None => true,
            Some(value) => match expected {
                FieldType::Float => matches!(value, Value::Float(_)),
                FieldType::Int => matches!(value, Value::Int(_) | Value::UInt(_)),
                FieldType::String => matches!(value, Value::String(_)),
                FieldType::Bool => matches!(value, Value::Bool(_)),
                _ => unreachable!("the generator only draws the types above"),
            },
        })
}

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c", "d", "e"]).prop_map(str::to_owned)
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::Int),
        (-1e6f64..1e6).prop_map(Value::Float),
        "[a-z]{0,4}".prop_map(Value::from),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ]
}

fn payload() -> impl Strategy<Value = Payload> {
    prop::collection::vec((name(), value()), 0..7).prop_map(|entries| entries.into_iter().collect())
}

fn record(payload: Payload, metadata: Metadata) -> DataRecord {
    DataRecord {
        record_id: "r".into(),
        device_id: "d".into(),
        timestamp: Timestamp::UNIX_EPOCH,
        data_type: "t".into(),
        payload,
        metadata,
    }
}

fn labels() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((name(), "[a-z]{0,3}"), 0..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn add_metadata_matches_the_seed(old in labels(), new in labels()) {
        let metadata: Metadata = old.iter().map(|(k, v)| (k.as_str(), v.as_str().into())).collect();
        let old_deduped: Vec<(String, String)> = metadata.iter().map(|(k, v)| (k.to_owned(), v.to_string())).collect();
        let mut input = record(Payload::new(), metadata);
        AddMetadata::new(new.iter().map(|(k, v)| (k.as_str(), v.as_str()))).apply(&mut input);
        let actual: Vec<(String, String)> = input.metadata.iter().map(|(k, v)| (k.to_owned(), v.to_string())).collect();
        prop_assert_eq!(actual, ref_add_metadata(&old_deduped, &new));
    }

    #[test]
    fn filter_fields_matches_the_seed(payload in payload(), allowed in prop::collection::vec(name(), 0..4)) {
        let expected = ref_filter(&PyDict::from_payload(&payload), &allowed);
        let mut input = record(payload, Metadata::new());
        FilterFields::new(allowed.iter().cloned()).apply(&mut input);
        prop_assert_eq!(PyDict::from_payload(&input.payload), expected);
    }

    #[test]
    fn rename_fields_matches_the_seed(payload in payload(), mapping in prop::collection::vec((name(), name()), 0..4)) {
        // A Python dict literal for the mapping keeps the last value of a repeated key.
        let mut deduped: Vec<(String, String)> = Vec::new();
        for (old, new) in &mapping {
            match deduped.iter_mut().find(|(o, _)| o == old) {
                Some(entry) => entry.1 = new.clone(),
                None => deduped.push((old.clone(), new.clone())),
            }
        }
        let expected = ref_rename(&PyDict::from_payload(&payload), &deduped);
        let mut input = record(payload, Metadata::new());
        RenameFields::new(deduped.iter().map(|(o, n)| (o.as_str(), n.as_str()))).apply(&mut input);
        prop_assert_eq!(PyDict::from_payload(&input.payload), expected);
    }

    #[test]
    fn add_computed_field_matches_the_seed(payload in payload(), field in name()) {
        // compute = lambda payload: len(payload)
        let expected = ref_computed(&PyDict::from_payload(&payload), &field, Value::Int(payload.len() as i64));
        let mut input = record(payload, Metadata::new());
        let mut transform = ComputedField::new(field, |p: &Payload| Ok(Value::Int(p.len() as i64)));
        prop_assert_eq!(transform.apply(&mut input), Verdict::Keep);
        prop_assert_eq!(PyDict::from_payload(&input.payload), expected);
    }

    #[test]
    fn mask_sensitive_fields_matches_the_seed(payload in payload(), fields in prop::collection::vec(name(), 0..4)) {
        let expected = ref_mask(&PyDict::from_payload(&payload), &fields);
        let mut input = record(payload, Metadata::new());
        MaskFields::new(fields.iter().cloned()).apply(&mut input);
        prop_assert_eq!(PyDict::from_payload(&input.payload), expected);
    }

    #[test]
    fn validate_schema_matches_the_seed(
        payload in payload(),
        schema in prop::collection::vec(
            (name(), prop::sample::select(vec![FieldType::Float, FieldType::Int, FieldType::String, FieldType::Bool])),
            0..4,
        ),
    ) {
        let valid = ref_validate(&PyDict::from_payload(&payload), &schema);
        let mut pipeline = Pipeline::new().with(ValidateSchema::new(
            schema.iter().map(|(field, kind)| (field.as_str(), FieldRule::of_type(*kind))),
        ));
        match pipeline.process(record(payload, Metadata::new())) {
            Outcome::Keep(_) => prop_assert!(valid),
            Outcome::Quarantined(q) => {
                prop_assert!(!valid);
                prop_assert_eq!(q.reason.code, "schema.wrong_type");
            }
            Outcome::Dropped { .. } => prop_assert!(false, "validate_schema quarantines by default"),
        }
    }
}
