//! RPC error codes with their exact per-version spellings, and the one error type of the core.
//!
//! Spellings: OCPP-J 1.6 Table 7 keeps `FormationViolation` and `OccurenceConstraintViolation`
//! ("Do not fix", 1.6 errata §5.1/§5.2); 2.0.1/2.1 Part 4 Table 8/9 spell `FormatViolation` and
//! `OccurrenceConstraintViolation` and add `MessageTypeNotSupported` and `RpcFrameworkError`.
//! 1.6 has no `RpcFrameworkError`: framework faults are `FormationViolation` there (decision
//! record docs/adr/0002).
//!
//! Meanings (the spec's definitions, Part 4 §4.3): `NotImplemented` = "Requested Action is not
//! known by receiver"; `NotSupported` = "Requested Action is recognized but not supported by the
//! receiver". We use `NotSupported` for a known action sent in the wrong direction.

use crate::version::OcppVersion;
use std::fmt;

/// A version-neutral RPC error code; [`ErrorCode::spelling`] writes it for a version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    NotImplemented,
    NotSupported,
    InternalError,
    ProtocolError,
    SecurityError,
    FormatViolation,
    PropertyConstraintViolation,
    OccurrenceConstraintViolation,
    TypeConstraintViolation,
    GenericError,
    MessageTypeNotSupported,
    RpcFrameworkError,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::NotImplemented,
        ErrorCode::NotSupported,
        ErrorCode::InternalError,
        ErrorCode::ProtocolError,
        ErrorCode::SecurityError,
        ErrorCode::FormatViolation,
        ErrorCode::PropertyConstraintViolation,
        ErrorCode::OccurrenceConstraintViolation,
        ErrorCode::TypeConstraintViolation,
        ErrorCode::GenericError,
        ErrorCode::MessageTypeNotSupported,
        ErrorCode::RpcFrameworkError,
    ];

    /// The code as it goes on the wire for `version`.
    #[must_use]
    pub fn spelling(self, version: OcppVersion) -> &'static str {
        let v16 = version == OcppVersion::V16;
        match self {
            ErrorCode::NotImplemented => "NotImplemented",
            ErrorCode::NotSupported => "NotSupported",
            ErrorCode::InternalError => "InternalError",
            ErrorCode::ProtocolError => "ProtocolError",
            ErrorCode::SecurityError => "SecurityError",
            ErrorCode::FormatViolation | ErrorCode::RpcFrameworkError if v16 => {
                "FormationViolation"
            }
            ErrorCode::FormatViolation => "FormatViolation",
            ErrorCode::PropertyConstraintViolation => "PropertyConstraintViolation",
            ErrorCode::OccurrenceConstraintViolation if v16 => "OccurenceConstraintViolation",
            ErrorCode::OccurrenceConstraintViolation => "OccurrenceConstraintViolation",
            ErrorCode::TypeConstraintViolation => "TypeConstraintViolation",
            ErrorCode::GenericError => "GenericError",
            // 1.6 ignores unknown message types and so never sends this; GenericError is the
            // closest 1.6 code should a caller ask for it anyway.
            ErrorCode::MessageTypeNotSupported if v16 => "GenericError",
            ErrorCode::MessageTypeNotSupported => "MessageTypeNotSupported",
            ErrorCode::RpcFrameworkError => "RpcFrameworkError",
        }
    }

    /// Read a code written in any version's spelling.
    #[must_use]
    pub fn from_wire(text: &str) -> Option<Self> {
        match text {
            "FormationViolation" => Some(ErrorCode::FormatViolation),
            "OccurenceConstraintViolation" => Some(ErrorCode::OccurrenceConstraintViolation),
            _ => ErrorCode::ALL
                .into_iter()
                .find(|c| c.spelling(OcppVersion::V21) == text),
        }
    }
}

/// Which stage refused the input; the Python face maps each to its own exception class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Not a readable OCPP-J frame (bad JSON, wrong shape, unreadable id, over a limit).
    Frame,
    /// A message type number the version does not define (2.0.1 only; 1.6 and 2.1 ignore).
    MessageType,
    /// Unknown action, or known but not accepted in this direction.
    Action,
    /// The payload does not conform to the action's JSON schema.
    Payload,
}

/// The longest description we ever write: ErrorDescription is `string[255]` (Part 4 Table 7).
pub const MAX_DESCRIPTION_CHARS: usize = 255;

/// A refusal of an input frame or payload, carrying everything a CALLERROR needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreError {
    pub stage: Stage,
    pub code: ErrorCode,
    /// The frame's message id when it was readable, else `None` (the CALLERROR then says "-1").
    pub unique_id: Option<String>,
    /// The message type number of the refused frame when it was readable.
    pub message_type_id: Option<u64>,
    /// Bounded human-readable text naming the JSON path and the rule.
    pub description: String,
    /// JSON pointer of the offending value (payload errors only; bounded).
    pub path: Option<String>,
    /// The schema keyword that failed (payload errors only).
    pub keyword: Option<&'static str>,
}

impl CoreError {
    #[cold]
    pub(crate) fn new(stage: Stage, code: ErrorCode, description: impl Into<String>) -> Self {
        CoreError {
            stage,
            code,
            unique_id: None,
            message_type_id: None,
            description: bounded(description.into(), MAX_DESCRIPTION_CHARS),
            path: None,
            keyword: None,
        }
    }

    #[must_use]
    pub(crate) fn with_frame(mut self, message_type_id: Option<u64>, id: Option<&str>) -> Self {
        self.message_type_id = message_type_id;
        self.unique_id = id.map(str::to_owned);
        self
    }

    /// The message id to put into the CALLERROR: the frame's, or "-1" when it was unreadable
    /// (Part 4 §4.2.3).
    #[must_use]
    pub fn reply_id(&self) -> &str {
        self.unique_id.as_deref().unwrap_or("-1")
    }
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.description)
    }
}

impl std::error::Error for CoreError {}

/// Cut `text` to at most `max_chars` characters, marking the cut with an ellipsis.
#[must_use]
pub fn bounded(mut text: String, max_chars: usize) -> String {
    if let Some((cut, _)) = text.char_indices().nth(max_chars) {
        let keep = text
            .char_indices()
            .nth(max_chars.saturating_sub(1))
            .map_or(cut, |(i, _)| i);
        text.truncate(keep);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v16_keeps_its_misspellings() {
        let v = OcppVersion::V16;
        assert_eq!(ErrorCode::FormatViolation.spelling(v), "FormationViolation");
        assert_eq!(
            ErrorCode::RpcFrameworkError.spelling(v),
            "FormationViolation"
        );
        assert_eq!(
            ErrorCode::OccurrenceConstraintViolation.spelling(v),
            "OccurenceConstraintViolation"
        );
    }

    #[test]
    fn v2_spells_per_part4() {
        for v in [OcppVersion::V201, OcppVersion::V21] {
            assert_eq!(ErrorCode::FormatViolation.spelling(v), "FormatViolation");
            assert_eq!(
                ErrorCode::RpcFrameworkError.spelling(v),
                "RpcFrameworkError"
            );
            assert_eq!(
                ErrorCode::OccurrenceConstraintViolation.spelling(v),
                "OccurrenceConstraintViolation"
            );
            assert_eq!(
                ErrorCode::MessageTypeNotSupported.spelling(v),
                "MessageTypeNotSupported"
            );
        }
    }

    #[test]
    fn wire_spellings_round_trip() {
        for code in ErrorCode::ALL {
            assert_eq!(
                ErrorCode::from_wire(code.spelling(OcppVersion::V21)),
                Some(code)
            );
        }
        assert_eq!(
            ErrorCode::from_wire("OccurenceConstraintViolation"),
            Some(ErrorCode::OccurrenceConstraintViolation)
        );
        assert_eq!(ErrorCode::from_wire("Nope"), None);
    }

    #[test]
    fn bounded_cuts_on_char_boundaries() {
        assert_eq!(bounded("abc".into(), 3), "abc");
        assert_eq!(bounded("abcd".into(), 3), "ab…");
        assert_eq!(bounded("ééééé".into(), 3).chars().count(), 3);
    }
}
