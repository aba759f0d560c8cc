//! A time-bounded fuzz run of `Codec::decode` (all versions, both roles): random bytes,
//! byte-mutated and spliced real frames, and hostile shapes. Fails on any panic, on any input
//! taking more than 10 ms, or on any disagreement between the fast and the reference path.
//!
//! `#[ignore]`d in the default run; `make fuzz` runs it for FUZZ_SECONDS (default 60).
//! cargo-fuzz needs a nightly toolchain, which this project's machines do not have; this is the
//! stable-toolchain equivalent, seeded and reproducible (FUZZ_SEED).

// Test code: a failing expect/index/panic is the failure report.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout
)]

mod common;

use _core::{Codec, Frame, OcppVersion, Role};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// Longest any input of at most 64 KiB may take (reliability.md §5.1).
const BUDGET: Duration = Duration::from_millis(10);

/// xorshift64*: tiny, deterministic, good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&[u8]] = &[
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b":",
    b"\"",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"null",
    b"true",
    b"-0",
    b"1e999",
    b"18446744073709551616",
    b"0.1",
    b"\"-1\"",
    b"2",
    b"3",
    b"4",
    b"5",
    b"6",
    b"7",
    b"\"Heartbeat\"",
    b"\"MeterValues\"",
    b"\"customData\"",
    b"\"vendorId\"",
    b" ",
    b"\xff",
    b"\xc3\x28",
    b"\xef\xbb\xbf",
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut out = seeds[rng.below(seeds.len())].clone();
    match rng.below(10) {
        0 => return (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
        1 => {
            let depth = 1 + rng.below(200_000);
            let mut v = vec![b'['; depth];
            v.extend(std::iter::repeat_n(b']', rng.below(depth + 1)));
            return v;
        }
        2 => {
            let other = &seeds[rng.below(seeds.len())];
            let cut = rng.below(out.len());
            let from = rng.below(other.len());
            out.truncate(cut);
            out.extend_from_slice(&other[from..]);
        }
        _ => {}
    }
    for _ in 0..1 + rng.below(6) {
        if out.is_empty() {
            out.push(b'[');
        }
        let at = rng.below(out.len());
        match rng.below(5) {
            0 => out[at] = rng.next() as u8,
            1 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                out.splice(at..at, token.iter().copied());
            }
            2 => {
                out.remove(at);
            }
            3 => {
                let len = rng.below(out.len() - at).min(64);
                let chunk = out[at..at + len].to_vec();
                let times = 1 + rng.below(50);
                for _ in 0..times {
                    out.splice(at..at, chunk.iter().copied());
                }
            }
            _ => out.truncate(at),
        }
    }
    out
}

fn same(a: &Result<Frame, _core::CoreError>, b: &Result<Frame, _core::CoreError>) -> bool {
    match (a, b) {
        (Ok(x), Ok(y)) => {
            let payload = |f: &Frame| match f {
                Frame::Call(r) | Frame::Send(r) => r.payload.value().ok().map(|v| v.into_owned()),
                Frame::CallResult(r) => r.payload.value().ok().map(|v| v.into_owned()),
                _ => None,
            };
            std::mem::discriminant(x) == std::mem::discriminant(y) && payload(x) == payload(y)
        }
        (Err(x), Err(y)) => x.stage == y.stage && x.code == y.code && x.reply_id() == y.reply_id(),
        _ => false,
    }
}

#[test]
#[ignore = "time-bounded fuzz run: `make fuzz` (FUZZ_SECONDS)"]
fn fuzz_decode() {
    let seconds: u64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_cafe);
    let mut rng = Rng(seed | 1);
    let seeds: Vec<Vec<u8>> = common::seeds().into_iter().map(|s| s.bytes).collect();
    let codecs: Vec<Codec> = OcppVersion::ALL
        .into_iter()
        .flat_map(|v| {
            [
                common::codec(v, Role::Csms),
                common::codec(v, Role::Station),
            ]
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut execs, mut slowest) = (0u64, Duration::ZERO);
    let mut slowest_input = Vec::new();
    while Instant::now() < deadline {
        for _ in 0..256 {
            let input = mutate(&mut rng, &seeds);
            let codec = &codecs[rng.below(codecs.len())];
            let started = Instant::now();
            let result = catch_unwind(AssertUnwindSafe(|| {
                (codec.decode(&input), codec.decode_reference(&input))
            }));
            let took = started.elapsed();
            let Ok((fast, reference)) = result else {
                panic!("panic on input {:?}", String::from_utf8_lossy(&input));
            };
            assert!(
                same(&fast, &reference),
                "fast/reference disagree on {:?}: {fast:?} vs {reference:?}",
                String::from_utf8_lossy(&input)
            );
            if input.len() <= 64 * 1024 && took >= BUDGET {
                // Wall time on a shared 2-core machine includes time spent descheduled: judge
                // on the best of up to ten re-runs, yielding the CPU before each.
                let best = (0..10)
                    .map(|_| {
                        std::thread::yield_now();
                        let t = Instant::now();
                        let _ = (codec.decode(&input), codec.decode_reference(&input));
                        t.elapsed()
                    })
                    .min()
                    .unwrap_or(took);
                assert!(best < BUDGET, "{best:?} on a {}-byte input", input.len());
            }
            if took > slowest {
                slowest = took;
                slowest_input.clone_from(&input);
            }
            execs += 1;
        }
    }
    let keep = common::repo().join("target/fuzz-slowest-input.bin");
    let _ = std::fs::write(&keep, &slowest_input);
    println!("fuzz_decode: {execs} executions in {seconds} s, 0 panics, 0 disagreements, slowest {slowest:?} ({} bytes, kept in {}), seed {seed}", slowest_input.len(), keep.display());
    assert!(execs > 0);
}
