//! Shared by the integration tests: codecs built from the `ocpp` package's schemas, and seeds.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use _core::{Codec, Limits, OcppVersion, Role, SchemaOptions, SchemaSet};
use std::path::{Path, PathBuf};

/// The `ocpp` package directory; tests fail loudly without it (never skip).
pub fn schema_root() -> PathBuf {
    let root = std::env::var("OCPP_SCHEMA_ROOT").expect(
        "OCPP_SCHEMA_ROOT must point at the installed `ocpp` package (make test-rust sets it)",
    );
    PathBuf::from(root)
}

pub fn folder(version: OcppVersion) -> &'static str {
    match version {
        OcppVersion::V16 => "v16",
        OcppVersion::V201 => "v201",
        OcppVersion::V21 => "v21",
    }
}

pub fn codec(version: OcppVersion, role: Role) -> Codec {
    let dir = schema_root().join(folder(version)).join("schemas");
    let schemas = SchemaSet::load(version, &dir, SchemaOptions::default()).expect("schemas load");
    Codec::new(schemas, Limits::default(), role, true)
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A frame to mutate: its version, the role that decodes it, and its bytes.
pub struct Seed {
    pub version: OcppVersion,
    pub role: Role,
    pub bytes: Vec<u8>,
}

/// The benchmark frames plus every valid request payload of the conformance corpus wrapped in
/// a CALL, decoded by the side that receives it.
pub fn seeds() -> Vec<Seed> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(repo().join("bench/frames")).expect("bench/frames") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let version = if name.starts_with("v16_") {
            OcppVersion::V16
        } else {
            OcppVersion::V201
        };
        let bytes = std::fs::read(&path)
            .expect("frame")
            .trim_ascii_end()
            .to_vec();
        out.push(Seed {
            version,
            role: Role::Csms,
            bytes,
        });
    }
    for version in OcppVersion::ALL {
        let csms = codec(version, Role::Csms);
        let base = repo().join("tests/fixtures/ocpp").join(folder(version));
        let Ok(actions) = std::fs::read_dir(&base) else {
            continue;
        };
        for action in actions {
            let action = action.expect("entry").path();
            let name = action
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            let Ok(files) = std::fs::read_dir(action.join("valid")) else {
                continue;
            };
            for file in files {
                let file = file.expect("entry").path();
                let file_name = file
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned();
                if !file_name.contains("request") {
                    continue;
                }
                let payload = std::fs::read_to_string(&file).expect("payload");
                let from_station = csms
                    .schemas()
                    .spec(&name)
                    .is_some_and(|s| s.may_be_sent_by(_core::action::Initiator::Station));
                let role = if from_station {
                    Role::Csms
                } else {
                    Role::Station
                };
                let send = csms
                    .schemas()
                    .spec(&name)
                    .is_some_and(|s| s.delivery == _core::action::Delivery::Send);
                let type_id = if send { 6 } else { 2 };
                let frame = format!("[{type_id},\"seed-1\",\"{name}\",{}]", payload.trim());
                out.push(Seed {
                    version,
                    role,
                    bytes: frame.into_bytes(),
                });
            }
        }
    }
    out
}
