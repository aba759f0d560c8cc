//! Parse + validate realistic frames from Rust, without Python: the per-frame cost of the core.
//! Frames are the data files in `bench/frames/` shared with the Python benchmark.
//! Run with `make bench` (it sets `OCPP_SCHEMA_ROOT` to the `ocpp` package).
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use _core::{Codec, Limits, OcppVersion, Role, SchemaOptions, SchemaSet};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(
        std::env::var("OCPP_SCHEMA_ROOT")
            .expect("set OCPP_SCHEMA_ROOT to the ocpp package directory"),
    )
}

fn codec(version: OcppVersion) -> Codec {
    let dir = match version {
        OcppVersion::V16 => "v16",
        OcppVersion::V201 => "v201",
        OcppVersion::V21 => "v21",
    };
    let schemas = SchemaSet::load(
        version,
        &root().join(dir).join("schemas"),
        SchemaOptions::default(),
    )
    .unwrap();
    Codec::new(schemas, Limits::default(), Role::Csms, true)
}

fn frames() -> Vec<(String, OcppVersion, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/frames");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let version = if name.starts_with("v16_") {
            OcppVersion::V16
        } else {
            OcppVersion::V201
        };
        let bytes = std::fs::read(&path).unwrap().trim_ascii_end().to_vec();
        out.push((name, version, bytes));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn bench(c: &mut Criterion) {
    let codecs = [codec(OcppVersion::V16), codec(OcppVersion::V201)];
    for (name, version, bytes) in frames() {
        let codec = &codecs[usize::from(version != OcppVersion::V16)];
        assert!(codec.decode(&bytes).is_ok(), "{name} must be valid");
        let mut group = c.benchmark_group(name.as_str());
        group.throughput(Throughput::Elements(1));
        group.bench_function("json_only", |b| {
            b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&bytes)).unwrap())
        });
        group.bench_function("decode", |b| {
            b.iter(|| codec.decode(black_box(&bytes)).unwrap())
        });
        let batch: Vec<Vec<u8>> = vec![bytes.clone(); 256];
        group.throughput(Throughput::Elements(256));
        group.bench_function("decode_batch_256", |b| {
            b.iter_batched_ref(
                || (),
                |()| {
                    for frame in &batch {
                        black_box(codec.decode(frame).unwrap());
                    }
                },
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
