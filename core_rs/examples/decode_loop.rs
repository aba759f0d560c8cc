//! Decode one frame file many times: a fixed amount of work for `perf stat` / `perf record`,
//! which count instructions and sample hot spots even on a busy machine, where wall times drift.
//!
//! `OCPP_SCHEMA_ROOT=... cargo run --release --no-default-features --example decode_loop -- \
//!     bench/frames/v16_meter_values_10.json 1.6 1000000`
#![allow(clippy::expect_used, clippy::unwrap_used)]

use _core::{Codec, Limits, OcppVersion, Role, SchemaOptions, SchemaSet};
use std::hint::black_box;
use std::path::PathBuf;

fn main() {
    let mut args = std::env::args().skip(1);
    let file = PathBuf::from(args.next().expect("frame file"));
    let version = OcppVersion::parse(&args.next().expect("version")).expect("1.6, 2.0.1 or 2.1");
    let count: usize = args.next().expect("count").parse().expect("a count");
    let root = PathBuf::from(std::env::var("OCPP_SCHEMA_ROOT").expect("OCPP_SCHEMA_ROOT"));
    let dir = match version {
        OcppVersion::V16 => "v16",
        OcppVersion::V201 => "v201",
        OcppVersion::V21 => "v21",
    };
    let schemas = SchemaSet::load(
        version,
        &root.join(dir).join("schemas"),
        SchemaOptions::default(),
    )
    .unwrap();
    let codec = Codec::new(schemas, Limits::default(), Role::Csms, true);
    let bytes = std::fs::read(&file).unwrap().trim_ascii_end().to_vec();
    assert!(codec.decode(&bytes).is_ok(), "the frame must be valid");
    for _ in 0..count {
        black_box(codec.decode(black_box(&bytes)).unwrap());
    }
}
