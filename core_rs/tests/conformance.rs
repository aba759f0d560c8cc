//! The conformance corpus (`tests/fixtures/`), walked through the core's public API.
//!
//! * Every payload under `tests/fixtures/ocpp/<v>/<Action>/valid/` must be accepted by the
//!   reference validator (`validate`), by `validate_json`, and by the fast path alone
//!   (`fast_accepts`), except the few listed in [`KNOWN_SLOW_PATH`].
//! * Every payload under `invalid/` is named `<CODE>--...json` and must be refused by `validate`
//!   and `validate_json` with exactly that code as the version spells it, and never be accepted
//!   by the fast path.
//! * Every row of `tests/fixtures/frames/malformed.json` is decoded by a CSMS-side [`Codec`] of
//!   each version it lists, and must give the listed CALLERROR code and reply id, `Ignored`, or
//!   the listed frame class.
//!
//! The schemas come from `OCPP_SCHEMA_ROOT` (the `ocpp` Python package directory, holding `v16/`,
//! `v201/` and `v21/`); `make test-rust` sets it. Without it the tests fail: a corpus that is
//! silently skipped proves nothing. The same corpus is walked from Python by
//! `tests/unit/protocol/test_conformance.py`.

// The helpers below are test code too, but clippy's `allow-*-in-tests` (clippy.toml) only covers
// `#[test]` functions and `#[cfg(test)]` modules, not free functions of an integration test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use _core::{
    Codec, CoreError, ErrorCode, Frame, Limits, OcppVersion, PayloadKind, Role, SchemaOptions,
    SchemaSet,
};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Valid corpus payloads the fast path cannot accept, so the reference validator decides them:
/// `(version folder, action, file name, reason)`. Each entry must still be refused by the fast
/// path, so a stale entry fails the test too.
const KNOWN_SLOW_PATH: &[(&str, &str, &str, &str)] = &[
    (
        "v16",
        "GetCompositeSchedule",
        "gen-response-full.json",
        "multipleOf (limit, minChargingRate)",
    ),
    (
        "v16",
        "RemoteStartTransaction",
        "gen-request-full.json",
        "multipleOf (limit, minChargingRate)",
    ),
    (
        "v16",
        "SetChargingProfile",
        "gen-request-full.json",
        "multipleOf (limit, minChargingRate)",
    ),
    (
        "v16",
        "SetChargingProfile",
        "request-limit-21.4.json",
        "multipleOf (limit)",
    ),
];

/// Most failures listed in one panic message.
const MAX_REPORTED: usize = 40;

fn folder(version: OcppVersion) -> &'static str {
    match version {
        OcppVersion::V16 => "v16",
        OcppVersion::V201 => "v201",
        OcppVersion::V21 => "v21",
    }
}

fn schema_root() -> PathBuf {
    match std::env::var_os("OCPP_SCHEMA_ROOT") {
        Some(root) if !root.is_empty() => PathBuf::from(root),
        _ => panic!(
            "OCPP_SCHEMA_ROOT is not set. Point it at the `ocpp` Python package directory \
             (the one holding v16/, v201/ and v21/), e.g. \
             OCPP_SCHEMA_ROOT=$(.venv/bin/python -c 'import ocpp,os;print(os.path.dirname(ocpp.__file__))'), \
             or run `make test-rust`"
        ),
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn load(version: OcppVersion) -> SchemaSet {
    let dir = schema_root().join(folder(version)).join("schemas");
    SchemaSet::load(version, &dir, SchemaOptions::default()).unwrap_or_else(|e| {
        panic!(
            "cannot load the OCPP {} schemas from {}: {e}",
            version.label(),
            dir.display()
        )
    })
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = read.map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// `request-…`/`response-…`, optionally behind `gen-`, says which schema a payload is for.
fn kind_of(name: &str) -> Option<PayloadKind> {
    let name = name.strip_prefix("gen-").unwrap_or(name);
    if name.starts_with("request-") {
        Some(PayloadKind::Request)
    } else if name.starts_with("response-") {
        Some(PayloadKind::Response)
    } else {
        None
    }
}

fn describe(err: &CoreError, version: OcppVersion) -> String {
    format!(
        "{} at {:?} ({:?}): {}",
        err.code.spelling(version),
        err.path,
        err.keyword,
        err.description
    )
}

/// Walk one version's corpus; returns the number of cases and the failures.
fn walk_corpus(version: OcppVersion) -> (usize, Vec<String>) {
    let schemas = load(version);
    let root = fixtures().join("ocpp").join(folder(version));
    assert!(root.is_dir(), "no corpus at {}", root.display());
    let mut cases = 0usize;
    let mut failures = Vec::new();
    let mut slow_seen = Vec::new();
    for action_dir in sorted_entries(&root) {
        let action = file_name(&action_dir);
        for (valid, sub) in [(true, "valid"), (false, "invalid")] {
            for path in sorted_entries(&action_dir.join(sub)) {
                let name = file_name(&path);
                if !name.ends_with(".json") {
                    continue;
                }
                let label = format!("{}/{action}/{sub}/{name}", folder(version));
                let (expected_code, rest) = if valid {
                    (None, name.as_str())
                } else {
                    match name.split_once("--") {
                        Some((code, rest)) => (Some(code), rest),
                        None => {
                            failures.push(format!("{label}: invalid file name without CODE--"));
                            continue;
                        }
                    }
                };
                let Some(kind) = kind_of(rest) else {
                    failures.push(format!("{label}: name says neither request- nor response-"));
                    continue;
                };
                let bytes = std::fs::read(&path).unwrap();
                let value: Value = match serde_json::from_slice(&bytes) {
                    Ok(v) => v,
                    Err(e) => {
                        failures.push(format!("{label}: not JSON: {e}"));
                        continue;
                    }
                };
                cases += 1;
                let fast = schemas.fast_accepts(&action, kind, &bytes);
                let reference = schemas.validate(&action, kind, &value);
                let json =
                    schemas.validate_json(&action, kind, &bytes, Limits::default().max_depth);
                match expected_code {
                    None => {
                        if let Err(e) = &reference {
                            failures.push(format!(
                                "{label}: validate refused: {}",
                                describe(e, version)
                            ));
                        }
                        if let Err(e) = &json {
                            failures.push(format!(
                                "{label}: validate_json refused: {}",
                                describe(e, version)
                            ));
                        }
                        let known_slow = KNOWN_SLOW_PATH.iter().find(|(v, a, f, _)| {
                            *v == folder(version) && *a == action && *f == name
                        });
                        match (fast, known_slow) {
                            (true, None) => {}
                            (false, None) => failures.push(format!(
                                "{label}: the fast path does not accept it (add it to \
                                 KNOWN_SLOW_PATH only if it legitimately cannot)"
                            )),
                            (true, Some(_)) => failures.push(format!(
                                "{label}: listed in KNOWN_SLOW_PATH but the fast path accepts it"
                            )),
                            (false, Some(entry)) => slow_seen.push(*entry),
                        }
                    }
                    Some(code) => {
                        for (how, result) in [("validate", &reference), ("validate_json", &json)] {
                            match result {
                                Ok(()) => failures
                                    .push(format!("{label}: {how} accepted it, expected {code}")),
                                Err(e) if e.code.spelling(version) != code => {
                                    failures.push(format!(
                                        "{label}: {how} expected {code}, got {}",
                                        describe(e, version)
                                    ));
                                }
                                Err(_) => {}
                            }
                        }
                        if fast {
                            failures.push(format!("{label}: the fast path accepted it"));
                        }
                    }
                }
            }
        }
    }
    for entry in KNOWN_SLOW_PATH {
        if entry.0 == folder(version) && !slow_seen.contains(entry) {
            failures.push(format!(
                "KNOWN_SLOW_PATH entry {entry:?} was not met as a slow-path corpus case"
            ));
        }
    }
    (cases, failures)
}

fn report(what: &str, cases: usize, failures: &[String]) {
    if failures.is_empty() {
        return;
    }
    let mut text = format!("{what}: {} of {cases} checks failed:\n", failures.len());
    for line in failures.iter().take(MAX_REPORTED) {
        writeln!(text, "  {line}").unwrap();
    }
    if failures.len() > MAX_REPORTED {
        writeln!(text, "  … and {} more", failures.len() - MAX_REPORTED).unwrap();
    }
    panic!("{text}");
}

fn corpus(version: OcppVersion) {
    let (cases, failures) = walk_corpus(version);
    assert!(
        cases > 0,
        "the OCPP {} corpus is empty; run `.venv/bin/python -m tests.fixtures.generate`",
        version.label()
    );
    report(
        &format!("OCPP {} corpus", version.label()),
        cases,
        &failures,
    );
}

#[test]
fn corpus_v16() {
    corpus(OcppVersion::V16);
}

#[test]
fn corpus_v201() {
    corpus(OcppVersion::V201);
}

#[test]
fn corpus_v21() {
    corpus(OcppVersion::V21);
}

/// The frame text of a malformed.json row for `version`, if the row has one.
fn frame_text(row: &Value, version: OcppVersion) -> Option<String> {
    if let Some(repeat) = row.get("frame_repeat") {
        let text = repeat["text"].as_str().unwrap();
        let times = usize::try_from(repeat["times"].as_u64().unwrap()).unwrap();
        let suffix = repeat.get("suffix").and_then(Value::as_str).unwrap_or("");
        return Some(format!("{}{suffix}", text.repeat(times)));
    }
    match &row["frame"] {
        Value::String(text) => Some(text.clone()),
        Value::Object(per_version) => per_version
            .get(version.label())
            .map(|t| t.as_str().unwrap().to_owned()),
        other => panic!("frame must be a string or an object keyed by version, got {other}"),
    }
}

/// The class name malformed.json uses for a decoded frame; SEND and CALLRESULTERROR share the
/// classes of CALL and CALLERROR, as in the Python API.
fn class_of(frame: &Frame) -> &'static str {
    match frame {
        Frame::Call(_) | Frame::Send(_) => "Call",
        Frame::CallResult(_) => "CallResult",
        Frame::CallError(_) | Frame::CallResultError(_) => "CallError",
        Frame::Ignored { .. } => "Ignored",
    }
}

fn check_row(codec: &Codec, row: &Value, expect: &Value) -> Result<(), String> {
    let version = codec.version();
    let text = frame_text(row, version).ok_or("no frame for this version")?;
    let got = codec.decode(text.as_bytes());
    if let Some(code) = expect.get("code").and_then(Value::as_str) {
        let id = expect["unique_id"].as_str().unwrap();
        return match got {
            Err(e) if e.code.spelling(version) == code && e.reply_id() == id => Ok(()),
            Err(e) => Err(format!(
                "expected {code} id {id:?}, got {} id {:?}",
                describe(&e, version),
                e.reply_id()
            )),
            Ok(frame) => Err(format!(
                "expected {code} id {id:?}, decoded a {}",
                class_of(&frame)
            )),
        };
    }
    let wanted = if expect.get("ignored") == Some(&Value::Bool(true)) {
        "Ignored"
    } else {
        expect["ok"]
            .as_str()
            .ok_or("expectation has no code, ignored or ok")?
    };
    match got {
        Ok(frame) if class_of(&frame) == wanted => Ok(()),
        Ok(frame) => Err(format!("expected {wanted}, decoded a {}", class_of(&frame))),
        Err(e) => Err(format!(
            "expected {wanted}, got {} id {:?}",
            describe(&e, version),
            e.reply_id()
        )),
    }
}

#[test]
fn malformed_frames() {
    let path = fixtures().join("frames/malformed.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let rows: Vec<Value> = serde_json::from_str(&text).unwrap();
    let mut failures = Vec::new();
    let mut total = 0usize;
    for version in OcppVersion::ALL {
        let codec = Codec::new(load(version), Limits::default(), Role::Csms, true);
        let mut cases = 0usize;
        for row in &rows {
            let id = row["id"].as_str().unwrap();
            let Some(expect) = row["expect"].get(version.label()) else {
                continue;
            };
            cases += 1;
            if let Err(why) = check_row(&codec, row, expect) {
                failures.push(format!("{id} on {}: {why}", version.label()));
            }
        }
        assert!(
            cases > 0,
            "malformed.json has no row for OCPP {}",
            version.label()
        );
        total += cases;
    }
    report("malformed.json", total, &failures);
}

/// The file-name codes of the corpus are real wire spellings of the version they sit under.
#[test]
fn corpus_codes_are_wire_spellings() {
    let mut failures = Vec::new();
    let mut files = 0usize;
    for version in OcppVersion::ALL {
        let spellings: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.spelling(version)).collect();
        let root = fixtures().join("ocpp").join(folder(version));
        for action_dir in sorted_entries(&root) {
            for path in sorted_entries(&action_dir.join("invalid")) {
                files += 1;
                let name = file_name(&path);
                let code = name.split_once("--").map_or("", |(c, _)| c);
                if !spellings.contains(&code) {
                    failures.push(format!(
                        "{}/{}: {code:?} is not an OCPP {} code",
                        folder(version),
                        name,
                        version.label()
                    ));
                }
            }
        }
    }
    assert!(files > 0, "the corpus has no invalid payloads");
    report("corpus codes", files, &failures);
}
