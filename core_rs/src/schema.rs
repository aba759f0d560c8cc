//! The official OCA JSON schemas of one OCPP version, compiled once, and the single mapping from
//! a failed schema keyword to an RPC error code.
//!
//! Keyword → code (decision record docs/adr/0002, after `reliability.md` §1.5):
//!
//! | keyword | code |
//! |---|---|
//! | `type`, `maxLength`, `minLength` (length is part of the data type, e.g. CiString20) | TypeConstraintViolation |
//! | `required`, `minItems`, `maxItems` | OccurrenceConstraintViolation (1.6: Occurence…) |
//! | `additionalProperties`, `additionalItems` | FormatViolation (1.6: FormationViolation) |
//! | `enum`, `minimum`, `maximum`, `multipleOf`, `format`, anything else | PropertyConstraintViolation |
//!
//! When one payload violates several keywords the most basic one wins, in the order of the
//! table (a number where an enum string belongs is a type error, not a bad enum value).

use crate::action::{self, ActionSpec, Delivery};
use crate::compiled::Compiled;
use crate::error::{bounded, CoreError, ErrorCode, Stage};
use crate::frame::Payload;
use crate::version::{OcppVersion, PayloadKind};
use jsonschema::error::ValidationErrorKind;
use jsonschema::Validator;
use rustc_hash::FxHashMap;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// How schemas are compiled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchemaOptions {
    /// Assert `format` (`date-time`, `uri`). Off by default: the OCA schemas leave format
    /// checking to the implementation, the `ocpp` package does not assert it, and field
    /// chargers send timestamps that strict RFC 3339 would refuse (docs/adr/0002).
    pub validate_formats: bool,
}

/// A schema directory that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} is not a usable JSON schema: {message}")]
    Schema { path: PathBuf, message: String },
    #[error("schema directory {dir} does not match the OCPP {version} action table: {detail}")]
    Mismatch {
        dir: PathBuf,
        version: &'static str,
        detail: String,
    },
}

/// One schema: the compiled fast checker when the schema fits its subset, and the reference
/// validator, which decides everything the fast checker does not accept.
struct Checker {
    fast: Option<Compiled>,
    reference: Validator,
}

struct Entry {
    spec: ActionSpec,
    request: Checker,
    response: Option<Checker>,
}

/// All compiled schemas of one version.
pub struct SchemaSet {
    version: OcppVersion,
    entries: FxHashMap<&'static str, Entry>,
}

impl SchemaSet {
    /// Compile every schema of `version` found in `dir` (e.g. `ocpp/v201/schemas`).
    ///
    /// # Errors
    /// [`LoadError`] when a file is unreadable or not a schema, or when the files in `dir` are
    /// not exactly the actions of the version's table.
    pub fn load(
        version: OcppVersion,
        dir: &Path,
        options: SchemaOptions,
    ) -> Result<Self, LoadError> {
        check_inventory(version, dir)?;
        let mut entries = FxHashMap::default();
        for spec in action::actions(version) {
            let request = compile(&dir.join(request_file(version, &spec)), options)?;
            let response = match spec.delivery {
                Delivery::Call => Some(compile(
                    &dir.join(version.schema_file_name(spec.name, PayloadKind::Response)),
                    options,
                )?),
                Delivery::Send => None,
            };
            entries.insert(
                spec.name,
                Entry {
                    spec,
                    request,
                    response,
                },
            );
        }
        Ok(SchemaSet { version, entries })
    }

    #[must_use]
    pub fn version(&self) -> OcppVersion {
        self.version
    }

    /// The action's table entry, if the version defines it (case-sensitive, Part 4 §4.1.6).
    #[must_use]
    pub fn spec(&self, action: &str) -> Option<&ActionSpec> {
        self.entries.get(action).map(|e| &e.spec)
    }

    fn checker(&self, action: &str, kind: PayloadKind) -> Result<&Checker, CoreError> {
        let entry = self.entries.get(action);
        let checker = entry.and_then(|e| match kind {
            PayloadKind::Request => Some(&e.request),
            PayloadKind::Response => e.response.as_ref(),
        });
        checker.ok_or_else(|| {
            CoreError::new(
                Stage::Action,
                ErrorCode::NotImplemented,
                format!(
                    "OCPP {} has no {kind:?} schema for {}",
                    self.version.label(),
                    bounded(action.to_owned(), 40)
                ),
            )
        })
    }

    /// Check a parsed `payload` against the action's request or response schema.
    ///
    /// # Errors
    /// A [`CoreError`] of stage `Action` (code NotImplemented) when the version has no such
    /// schema, or of stage `Payload` with the code of the most basic violated keyword.
    pub fn validate(
        &self,
        action: &str,
        kind: PayloadKind,
        payload: &Value,
    ) -> Result<(), CoreError> {
        let checker = self.checker(action, kind)?;
        if checker.reference.is_valid(payload) {
            return Ok(());
        }
        Err(violation(&checker.reference, payload))
    }

    /// Check the JSON text of a payload: the compiled checker first, the reference validator
    /// for anything it does not accept (which then decides, and explains a refusal).
    ///
    /// # Errors
    /// As [`SchemaSet::validate`]; a payload that is not JSON is a payload-stage FormatViolation.
    pub fn validate_json(
        &self,
        action: &str,
        kind: PayloadKind,
        json: &[u8],
        max_depth: usize,
    ) -> Result<(), CoreError> {
        let checker = self.checker(action, kind)?;
        if checker
            .fast
            .as_ref()
            .is_some_and(|f| f.accepts(json, max_depth))
        {
            return Ok(());
        }
        let value: Value = serde_json::from_slice(json).map_err(|e| {
            CoreError::new(
                Stage::Payload,
                ErrorCode::FormatViolation,
                format!("payload is not JSON: {e}"),
            )
        })?;
        self.validate(action, kind, &value)
    }

    /// Check a decoded payload, raw or parsed.
    ///
    /// # Errors
    /// As [`SchemaSet::validate_json`].
    pub fn validate_payload(
        &self,
        action: &str,
        kind: PayloadKind,
        payload: &Payload,
        max_depth: usize,
    ) -> Result<(), CoreError> {
        match payload {
            Payload::Raw(json) => self.validate_json(action, kind, json, max_depth),
            Payload::Parsed(value) => self.validate(action, kind, value),
        }
    }

    /// The compiled fast checker of an action's schema, if the schema fits the subset.
    pub(crate) fn fast(&self, action: &str, kind: PayloadKind) -> Option<&Compiled> {
        self.checker(action, kind).ok()?.fast.as_ref()
    }

    /// The action's table entry and the compiled fast checker of its request schema, in one
    /// look-up (the fast path of `decode`).
    pub(crate) fn request_fast(&self, action: &str) -> Option<(&ActionSpec, &Compiled)> {
        let entry = self.entries.get(action)?;
        Some((&entry.spec, entry.request.fast.as_ref()?))
    }

    /// Whether the fast checker alone accepts `json` (for tests and coverage reports).
    #[must_use]
    pub fn fast_accepts(&self, action: &str, kind: PayloadKind, json: &[u8]) -> bool {
        self.fast(action, kind)
            .is_some_and(|f| f.accepts(json, usize::MAX))
    }
}

/// How many errors we look at to pick the most basic one; bounds the work on hostile input.
const MAX_ERRORS_INSPECTED: usize = 32;
const MAX_PATH_CHARS: usize = 120;

#[cold]
fn violation(validator: &Validator, payload: &Value) -> CoreError {
    let best = validator
        .iter_errors(payload)
        .take(MAX_ERRORS_INSPECTED)
        .map(|e| {
            let (code, keyword, rank) = classify(e.kind(), e.schema_path().as_str());
            (
                rank,
                code,
                keyword,
                e.instance_path().as_str().to_owned(),
                e.to_string(),
            )
        })
        .min_by_key(|(rank, ..)| *rank);
    let Some((_, code, keyword, path, message)) = best else {
        return CoreError::new(
            Stage::Payload,
            ErrorCode::GenericError,
            "payload rejected by its schema",
        );
    };
    let path = bounded(path, MAX_PATH_CHARS);
    let shown = if path.is_empty() { "/" } else { path.as_str() };
    let mut err = CoreError::new(
        Stage::Payload,
        code,
        format!("{shown}: {message} ({keyword})"),
    );
    err.path = Some(path);
    err.keyword = Some(keyword);
    err
}

/// The one keyword → (code, keyword name, rank) table; lower rank wins.
fn classify(kind: &ValidationErrorKind, schema_path: &str) -> (ErrorCode, &'static str, u8) {
    use ErrorCode as C;
    use ValidationErrorKind as K;
    match kind {
        // `additionalProperties: false` on an object without `properties` (three 1.6 response
        // schemas) is reported as a false schema under that keyword.
        K::FalseSchema if schema_path.ends_with("/additionalProperties") => {
            (C::FormatViolation, "additionalProperties", 2)
        }
        K::Type { .. } => (C::TypeConstraintViolation, "type", 0),
        K::Required { .. } => (C::OccurrenceConstraintViolation, "required", 1),
        K::AdditionalProperties { .. } => (C::FormatViolation, "additionalProperties", 2),
        K::AdditionalItems { .. } => (C::FormatViolation, "additionalItems", 2),
        K::MaxLength { .. } => (C::TypeConstraintViolation, "maxLength", 3),
        K::MinLength { .. } => (C::TypeConstraintViolation, "minLength", 3),
        K::MinItems { .. } => (C::OccurrenceConstraintViolation, "minItems", 4),
        K::MaxItems { .. } => (C::OccurrenceConstraintViolation, "maxItems", 4),
        K::Enum { .. } => (C::PropertyConstraintViolation, "enum", 5),
        K::Minimum { .. } => (C::PropertyConstraintViolation, "minimum", 5),
        K::Maximum { .. } => (C::PropertyConstraintViolation, "maximum", 5),
        K::MultipleOf { .. } => (C::PropertyConstraintViolation, "multipleOf", 5),
        K::Format { .. } => (C::PropertyConstraintViolation, "format", 5),
        _ => (C::PropertyConstraintViolation, "schema", 6),
    }
}

fn compile(path: &Path, options: SchemaOptions) -> Result<Checker, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    // Several OCA files start with a UTF-8 byte order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let schema: Value = serde_json::from_str(text).map_err(|source| LoadError::Json {
        path: path.to_owned(),
        source,
    })?;
    let reference = jsonschema::options()
        .should_validate_formats(options.validate_formats)
        .build(&schema)
        .map_err(|e| LoadError::Schema {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    Ok(Checker {
        fast: Compiled::new(&schema, options.validate_formats),
        reference,
    })
}

/// The request schema's file name. The OCA names the one SEND message of 2.1 without the
/// `Request` suffix (`NotifyPeriodicEventStream.json`), as it has no response.
fn request_file(version: OcppVersion, spec: &ActionSpec) -> String {
    match spec.delivery {
        Delivery::Send => format!("{}.json", spec.name),
        Delivery::Call => version.schema_file_name(spec.name, PayloadKind::Request),
    }
}

/// The schema files present must be exactly those the action table names.
fn check_inventory(version: OcppVersion, dir: &Path) -> Result<(), LoadError> {
    let io = |source| LoadError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut present = BTreeSet::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let name = entry
            .map_err(io)?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".json") {
            present.insert(name);
        }
    }
    let mut expected = BTreeSet::new();
    for spec in action::actions(version) {
        expected.insert(request_file(version, &spec));
        if spec.delivery == Delivery::Call {
            expected.insert(version.schema_file_name(spec.name, PayloadKind::Response));
        }
    }
    if present == expected {
        return Ok(());
    }
    let missing: Vec<_> = expected.difference(&present).collect();
    let unknown: Vec<_> = present.difference(&expected).collect();
    Err(LoadError::Mismatch {
        dir: dir.to_owned(),
        version: version.label(),
        detail: format!("missing {missing:?}, not in the table {unknown:?}"),
    })
}
