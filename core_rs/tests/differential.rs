//! The fast path and the reference path (serde_json + jsonschema) must agree on every frame:
//! same frame or same error (stage, code, reply id). Inputs are structural and byte-level
//! mutations of real frames and of every valid request in the conformance corpus.

// Test code: a failing expect/index/panic is the failure report.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use _core::{Codec, CoreError, Frame, OcppVersion, Role};
use common::{codec, seeds, Seed};
use proptest::prelude::*;
use serde_json::Value;
use std::sync::OnceLock;

#[derive(Debug, PartialEq)]
enum Outcome {
    Frame(String, Option<Value>),
    Error(_core::Stage, _core::ErrorCode, String, Option<u64>),
}

fn outcome(result: Result<Frame, CoreError>) -> Outcome {
    match result {
        Ok(frame) => {
            let payload = match &frame {
                Frame::Call(r) | Frame::Send(r) => {
                    Some(r.payload.value().expect("json").into_owned())
                }
                Frame::CallResult(r) => Some(r.payload.value().expect("json").into_owned()),
                _ => None,
            };
            let label = match &frame {
                Frame::Call(r) => format!("Call {} {}", r.unique_id, r.action),
                Frame::Send(r) => format!("Send {} {}", r.unique_id, r.action),
                Frame::CallResult(r) => format!("CallResult {}", r.unique_id),
                other => format!("{other:?}"),
            };
            Outcome::Frame(label, payload)
        }
        Err(e) => Outcome::Error(e.stage, e.code, e.reply_id().to_owned(), e.message_type_id),
    }
}

struct World {
    seeds: Vec<Seed>,
    codecs: Vec<(OcppVersion, Role, Codec)>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let mut codecs = Vec::new();
        for version in OcppVersion::ALL {
            for role in [Role::Csms, Role::Station] {
                codecs.push((version, role, codec(version, role)));
            }
        }
        World {
            seeds: seeds(),
            codecs,
        }
    })
}

fn codec_for(version: OcppVersion, role: Role) -> &'static Codec {
    let found = world()
        .codecs
        .iter()
        .find(|(v, r, _)| *v == version && *r == role);
    &found.expect("codec").2
}

fn assert_agree(codec: &Codec, bytes: &[u8]) -> Result<(), TestCaseError> {
    let fast = outcome(codec.decode(bytes));
    let reference = outcome(codec.decode_reference(bytes));
    prop_assert_eq!(fast, reference, "frame: {}", String::from_utf8_lossy(bytes));
    Ok(())
}

/// Every JSON pointer in `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                pointers(
                    child,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// String lengths and numbers at the edges the OCA schemas use (maxLength 6…5500, minimums 0/1).
const EDGE_LENGTHS: &[usize] = &[
    0, 1, 6, 7, 8, 9, 20, 21, 25, 26, 36, 37, 40, 41, 48, 49, 50, 51, 64, 65, 100, 101, 128, 129,
    255, 256, 500, 501, 512, 513, 1000, 1001, 2500, 2501, 5500, 5501,
];
const EDGE_NUMBERS: &[i64] = &[-1, 0, 1, 2, 9, 10, 99, 100, 101, 255, 256, 3600, 86400];

fn replacement(kind: u8, n: i64, len: usize) -> Value {
    let edge_len = EDGE_LENGTHS[len % EDGE_LENGTHS.len()];
    let edge_num = EDGE_NUMBERS[n.unsigned_abs() as usize % EDGE_NUMBERS.len()];
    match kind % 15 {
        12 => Value::from("y".repeat(edge_len)),
        13 => Value::from(edge_num),
        14 => Value::from(edge_num as f64 + 0.5),
        0 => Value::from(n),
        1 => Value::from(n as f64 / 10.0),
        2 => Value::from("x".repeat(len)),
        3 => Value::from("é€".repeat(len)),
        4 => Value::from("NotAValue"),
        5 => Value::Bool(n % 2 == 0),
        6 => Value::Null,
        7 => Value::Array(vec![]),
        8 => serde_json::json!({}),
        9 => Value::from(format!("tab\t\"quote\" \\ {n}")),
        10 => Value::from(i64::MAX - n.abs()),
        _ => Value::from("2026-01-01T00:00:00Z"),
    }
}

fn mutate_structure(bytes: &[u8], pick: usize, kind: u8, n: i64, len: usize) -> Vec<u8> {
    let Ok(mut frame) = serde_json::from_slice::<Value>(bytes) else {
        return bytes.to_vec();
    };
    let mut ptrs = Vec::new();
    pointers(&frame, String::new(), &mut ptrs);
    let ptr = ptrs[pick % ptrs.len()].clone();
    if kind >= 200 {
        // Remove the key or element the pointer names.
        if let Some((parent, last)) = ptr.rsplit_once('/') {
            match frame.pointer_mut(parent) {
                Some(Value::Object(m)) => {
                    m.remove(&last.replace("~1", "/").replace("~0", "~"));
                }
                Some(Value::Array(a)) => {
                    if let Ok(i) = last.parse::<usize>() {
                        if i < a.len() {
                            a.remove(i);
                        }
                    }
                }
                _ => {}
            }
        }
    } else if kind >= 180 {
        if let Some(Value::Object(m)) = frame.pointer_mut(&ptr) {
            m.insert(format!("extra{n}"), replacement(kind, n, len));
        }
    } else if let Some(slot) = frame.pointer_mut(&ptr) {
        *slot = replacement(kind, n, len);
    }
    serde_json::to_vec(&frame).expect("serialise")
}

fn mutate_bytes(bytes: &[u8], ops: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for &(at, op, byte) in ops {
        if out.is_empty() {
            break;
        }
        let i = at % out.len();
        match op % 4 {
            0 => out[i] = byte,
            1 => out.insert(i, byte),
            2 => {
                out.remove(i);
            }
            _ => out.truncate(i),
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6000, ..ProptestConfig::default() })]

    #[test]
    fn agree_on_structural_mutations(seed in any::<prop::sample::Index>(), pick in any::<usize>(),
                                     kind in any::<u8>(), n in -3i64..100_000, len in 0usize..60) {
        let seeds = &world().seeds;
        let seed = &seeds[seed.index(seeds.len())];
        let bytes = mutate_structure(&seed.bytes, pick, kind, n, len);
        assert_agree(codec_for(seed.version, seed.role), &bytes)?;
    }

    #[test]
    fn agree_on_byte_mutations(seed in any::<prop::sample::Index>(),
                               ops in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..4)) {
        let seeds = &world().seeds;
        let seed = &seeds[seed.index(seeds.len())];
        let bytes = mutate_bytes(&seed.bytes, &ops);
        assert_agree(codec_for(seed.version, seed.role), &bytes)?;
    }
}

/// Requests whose schema has `multipleOf` (charging profiles in 1.6): the fast path defers them
/// to the reference validator on purpose (float multiples are the reference's call).
const SLOW_BY_DESIGN: &[&str] = &["RemoteStartTransaction", "SetChargingProfile"];

#[test]
fn every_seed_takes_the_fast_path_and_agrees() {
    let seeds = &world().seeds;
    assert!(seeds.len() > 5, "no seeds found");
    for seed in seeds {
        let codec = codec_for(seed.version, seed.role);
        let frame = codec.decode(&seed.bytes).unwrap_or_else(|e| {
            panic!(
                "seed must decode: {e} {}",
                String::from_utf8_lossy(&seed.bytes)
            )
        });
        let (fast, action) = match &frame {
            Frame::Call(r) | Frame::Send(r) => (
                matches!(r.payload, _core::frame::Payload::Raw(_)),
                r.action.clone(),
            ),
            _ => (false, String::new()),
        };
        let exempt = seed.version == OcppVersion::V16 && SLOW_BY_DESIGN.contains(&action.as_str());
        assert!(
            fast || exempt,
            "seed took the slow path: {}",
            String::from_utf8_lossy(&seed.bytes)
        );
        assert_eq!(
            outcome(Ok(frame)),
            outcome(codec.decode_reference(&seed.bytes))
        );
    }
}
