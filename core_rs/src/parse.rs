//! Bytes → [`Frame`]: the structural half of decoding (no schemas here).
//!
//! Decision table: `shared/reference/reliability.md` §1.5 and §5.3 rows M1, M4–M12, M33. Every
//! structural fault is an RPC framework error (`RpcFrameworkError` on 2.x, `FormationViolation`
//! on 1.6), answered with the message id when it was readable, else "-1".

use crate::error::{CoreError, ErrorCode, Stage};
use crate::frame::{message_type as mt, Failure, Frame, Payload, Reply, Request};
use crate::limits::{nesting_exceeds, Limits};
use crate::version::OcppVersion;
use serde_json::{Map, Value};

/// Longest message id: "Maximum of 36 characters, to allow for GUIDs" (1.6 Table 3, 2.x §4.1.4).
pub const MAX_UNIQUE_ID_CHARS: usize = 36;

#[cold]
fn framework(description: impl Into<String>) -> CoreError {
    CoreError::new(Stage::Frame, ErrorCode::RpcFrameworkError, description)
}

/// The frame's message id if it is a string of 1 to 36 characters.
fn readable_id(items: &[Value]) -> Option<&str> {
    match items.get(1) {
        Some(Value::String(id)) if valid_id(id) => Some(id.as_str()),
        _ => None,
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.chars().nth(MAX_UNIQUE_ID_CHARS).is_none()
}

/// Parse one text frame received over a connection that negotiated `version`.
///
/// # Errors
/// A [`CoreError`] of stage `Frame` (or `MessageType` for an unknown type number on 2.0.1)
/// for anything that is not a well-formed OCPP-J message of that version.
pub fn parse_frame(
    bytes: &[u8],
    version: OcppVersion,
    limits: &Limits,
) -> Result<Frame, CoreError> {
    if bytes.len() > limits.max_frame_bytes {
        return Err(framework(format!(
            "frame of {} bytes exceeds the limit of {} bytes",
            bytes.len(),
            limits.max_frame_bytes
        )));
    }
    if nesting_exceeds(bytes, limits.max_depth) {
        return Err(framework(format!(
            "JSON nesting deeper than {} levels",
            limits.max_depth
        )));
    }
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| framework(format!("not valid JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(framework("an OCPP-J message must be a JSON array"));
    };
    let id = readable_id(&items).map(str::to_owned);
    let type_id = match items.first() {
        Some(Value::Number(n)) => n.as_u64(),
        _ => None,
    };
    let Some(type_id) = type_id else {
        return Err(
            framework("the first element must be the message type number")
                .with_frame(None, id.as_deref()),
        );
    };
    if !type_defined(version, type_id) {
        if version == OcppVersion::V201 {
            return Err(CoreError::new(
                Stage::MessageType,
                ErrorCode::MessageTypeNotSupported,
                format!("message type {type_id} is not defined by OCPP 2.0.1"),
            )
            .with_frame(Some(type_id), id.as_deref()));
        }
        return Ok(Frame::Ignored {
            message_type_id: type_id,
            unique_id: id,
        });
    }
    let Some(id) = id else {
        return Err(
            framework("the message id must be a string of 1 to 36 characters")
                .with_frame(Some(type_id), None),
        );
    };
    structure(items, type_id, id, version)
}

fn type_defined(version: OcppVersion, type_id: u64) -> bool {
    match type_id {
        mt::CALL | mt::CALLRESULT | mt::CALLERROR => true,
        mt::CALLRESULTERROR | mt::SEND => version.has_send_and_result_error(),
        _ => false,
    }
}

fn arity(type_id: u64) -> usize {
    match type_id {
        mt::CALLRESULT => 3,
        mt::CALL | mt::SEND => 4,
        _ => 5,
    }
}

fn structure(
    items: Vec<Value>,
    type_id: u64,
    id: String,
    version: OcppVersion,
) -> Result<Frame, CoreError> {
    let expected = arity(type_id);
    if items.len() != expected {
        return Err(framework(format!(
            "message type {type_id} has {expected} elements, got {}",
            items.len()
        ))
        .with_frame(Some(type_id), Some(&id)));
    }
    let fail = |what: &str| framework(what.to_owned()).with_frame(Some(type_id), Some(&id));
    let mut rest = items.into_iter().skip(2);
    match type_id {
        mt::CALL | mt::SEND => {
            let Some(Value::String(action)) = rest.next() else {
                return Err(fail("the action must be a string"));
            };
            let payload = payload_object(rest.next(), version, type_id, &id)?;
            let request = Request {
                unique_id: id,
                action,
                payload: Payload::Parsed(payload),
            };
            Ok(if type_id == mt::CALL {
                Frame::Call(request)
            } else {
                Frame::Send(request)
            })
        }
        mt::CALLRESULT => {
            let payload = payload_object(rest.next(), version, type_id, &id)?;
            Ok(Frame::CallResult(Reply {
                unique_id: id,
                payload: Payload::Parsed(payload),
            }))
        }
        _ => {
            let (Some(Value::String(code)), Some(Value::String(description))) =
                (rest.next(), rest.next())
            else {
                return Err(fail("error code and description must be strings"));
            };
            let details = match rest.next() {
                Some(d @ Value::Object(_)) => d,
                Some(Value::Null) => Value::Object(Map::new()),
                _ => return Err(fail("error details must be an object")),
            };
            let failure = Failure {
                unique_id: id,
                code,
                description,
                details,
            };
            Ok(if type_id == mt::CALLERROR {
                Frame::CallError(failure)
            } else {
                Frame::CallResultError(failure)
            })
        }
    }
}

/// A payload must be a JSON object. 1.6 tolerates `null` for an empty payload (OCPP-J 1.6
/// Table 4); 2.x does not (Part 4 §4.1.5).
fn payload_object(
    payload: Option<Value>,
    version: OcppVersion,
    type_id: u64,
    id: &str,
) -> Result<Value, CoreError> {
    match payload {
        Some(p @ Value::Object(_)) => Ok(p),
        Some(Value::Null) if version == OcppVersion::V16 => Ok(Value::Object(Map::new())),
        _ => Err(CoreError::new(
            Stage::Payload,
            ErrorCode::FormatViolation,
            "the payload must be a JSON object",
        )
        .with_frame(Some(type_id), Some(id))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(text: &str, v: OcppVersion) -> Result<Frame, CoreError> {
        parse_frame(text.as_bytes(), v, &Limits::default())
    }

    fn err(text: &str, v: OcppVersion) -> (ErrorCode, String) {
        let e = parse(text, v).unwrap_err();
        (e.code, e.reply_id().to_owned())
    }

    #[test]
    fn parses_a_call() {
        let f = parse(r#"[2,"a1","Heartbeat",{}]"#, OcppVersion::V16).unwrap();
        let Frame::Call(call) = f else { panic!() };
        assert_eq!(call.action, "Heartbeat");
        assert_eq!(call.unique_id, "a1");
    }

    #[test]
    fn truncated_json_is_a_framework_error_with_id_minus_one() {
        let (code, id) = err(r#"[2,"a1","Heartbeat",{}"#, OcppVersion::V201);
        assert_eq!((code, id.as_str()), (ErrorCode::RpcFrameworkError, "-1"));
    }

    #[test]
    fn type_as_string_keeps_the_readable_id() {
        let (code, id) = err(r#"["2","a1","Heartbeat",{}]"#, OcppVersion::V16);
        assert_eq!((code, id.as_str()), (ErrorCode::RpcFrameworkError, "a1"));
    }

    #[test]
    fn ids_must_be_strings_of_1_to_36_chars() {
        for bad in ["19223201", r#""""#, &format!("\"{}\"", "x".repeat(37))] {
            let (_, id) = err(&format!(r#"[2,{bad},"Heartbeat",{{}}]"#), OcppVersion::V201);
            assert_eq!(id, "-1");
        }
        let ok = format!(r#"[2,"{}","Heartbeat",{{}}]"#, "é".repeat(36));
        assert!(parse(&ok, OcppVersion::V201).is_ok());
    }

    #[test]
    fn unknown_types_per_version() {
        let text = r#"[7,"a1","Heartbeat",{}]"#;
        assert!(matches!(
            parse(text, OcppVersion::V16),
            Ok(Frame::Ignored { .. })
        ));
        assert!(matches!(
            parse(text, OcppVersion::V21),
            Ok(Frame::Ignored { .. })
        ));
        let (code, id) = err(text, OcppVersion::V201);
        assert_eq!(
            (code, id.as_str()),
            (ErrorCode::MessageTypeNotSupported, "a1")
        );
        let send = r#"[6,"a1","NotifyPeriodicEventStream",{}]"#;
        assert!(matches!(parse(send, OcppVersion::V21), Ok(Frame::Send(_))));
        assert!(matches!(
            parse(send, OcppVersion::V16),
            Ok(Frame::Ignored { .. })
        ));
    }

    #[test]
    fn null_payload_only_on_16() {
        assert!(parse(r#"[2,"a","Heartbeat",null]"#, OcppVersion::V16).is_ok());
        let (code, _) = err(r#"[2,"a","Heartbeat",null]"#, OcppVersion::V201);
        assert_eq!(code, ErrorCode::FormatViolation);
    }

    #[test]
    fn errors_need_five_elements() {
        assert!(matches!(
            parse(r#"[4,"a","GenericError","",{}]"#, OcppVersion::V16),
            Ok(Frame::CallError(_))
        ));
        assert!(parse(r#"[4,"a","GenericError",""]"#, OcppVersion::V16).is_err());
    }

    #[test]
    fn limits_are_enforced_before_parsing() {
        let limits = Limits {
            max_frame_bytes: 10,
            max_depth: 32,
        };
        assert!(parse_frame(br#"[2,"a1","Heartbeat",{}]"#, OcppVersion::V16, &limits).is_err());
        let deep = format!("{}{}", "[".repeat(50), "]".repeat(50));
        let (code, id) = err(&deep, OcppVersion::V16);
        assert_eq!((code, id.as_str()), (ErrorCode::RpcFrameworkError, "-1"));
    }
}
