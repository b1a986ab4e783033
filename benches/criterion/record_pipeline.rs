//! JSON Lines → records, and a four-transform pipeline, on the shared workload.
//!
//! `parse/generic_value` is the detour edgepipe avoids (a `serde_json::Value` per
//! line, then a record): compare it with `parse/records` in the same run.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use edgepipe_benches::workload_jsonl;
use edgepipe_core::record::json::parse_jsonl;
use edgepipe_core::record::{DataRecord, JsonOptions};
use edgepipe_core::transform::{
    AddMetadata, FieldRule, FieldType, FilterFields, Pipeline, RenameFields, ValidateSchema,
};

const RECORDS: usize = 200_000;

fn records(input: &[u8]) -> Vec<DataRecord> {
    parse_jsonl(input)
        .filter_map(|(_, record)| record.ok())
        .collect()
}

fn four_transforms() -> Pipeline {
    Pipeline::new()
        .with(AddMetadata::new([
            ("region", "us-west"),
            ("site", "factory-1"),
        ]))
        .with(FilterFields::new(["temperature", "humidity", "pressure"]))
        .with(RenameFields::new([("temperature", "temp_c")]))
        .with(ValidateSchema::new([
            (
                "temp_c",
                FieldRule::of_type(FieldType::Number).range(Some(-40.0), Some(85.0)),
            ),
            (
                "humidity",
                FieldRule::of_type(FieldType::Number).range(Some(0.0), Some(100.0)),
            ),
            ("pressure", FieldRule::of_type(FieldType::Number)),
        ]))
}

fn bench(c: &mut Criterion) {
    let (input, source) = workload_jsonl(RECORDS);
    eprintln!("workload: {source:?}, {} bytes", input.len());
    let parsed = records(&input);
    assert_eq!(parsed.len(), RECORDS);

    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.sample_size(10);
    // Both parse paths stream: each record is built and dropped, as on the edge.
    group.bench_function("records", |b| {
        b.iter(|| {
            parse_jsonl(&input)
                .filter(|(_, record)| record.is_ok())
                .count()
        })
    });
    group.bench_function("generic_value", |b| {
        b.iter(|| {
            input
                .split(|&byte| byte == b'\n')
                .filter(|line| !line.is_empty())
                .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
                .filter_map(|value| serde_json::from_value::<DataRecord>(value).ok())
                .count()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.sample_size(10);
    group.bench_function("add_metadata+filter+rename+validate", |b| {
        let mut pipeline = four_transforms();
        let mut quarantine = Vec::new();
        b.iter_batched(
            || parsed.clone(),
            |mut batch| {
                pipeline.process_in_place(&mut batch, &mut quarantine);
                batch
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("write");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.sample_size(10);
    group.bench_function("jsonl", |b| {
        let mut out = Vec::with_capacity(input.len() * 2);
        b.iter(|| {
            out.clear();
            edgepipe_core::record::json::write_jsonl(&parsed, &mut out, &JsonOptions::default())
                .unwrap();
            out.len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
