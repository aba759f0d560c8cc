//! The five OCPP-J message shapes, with payloads as parsed JSON.

use serde_json::Value;
use std::borrow::Cow;

/// A payload as the fast path leaves it (the exact bytes, validated) or as the slow path
/// leaves it (parsed). Either way it was checked against its schema when the frame was a
/// CALL or SEND; a CALLRESULT is checked once matched to its CALL.
#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    Raw(Box<[u8]>),
    Parsed(Value),
}

impl Payload {
    /// The payload as a JSON value, parsing the raw bytes if needed.
    ///
    /// # Errors
    /// Only if raw bytes are not JSON, which the fast path never lets through.
    pub fn value(&self) -> Result<Cow<'_, Value>, serde_json::Error> {
        match self {
            Payload::Raw(bytes) => serde_json::from_slice(bytes).map(Cow::Owned),
            Payload::Parsed(v) => Ok(Cow::Borrowed(v)),
        }
    }
}

/// CALL (2) or, in 2.1, SEND (6): `[type, id, action, payload]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub unique_id: String,
    pub action: String,
    pub payload: Payload,
}

/// CALLRESULT (3): `[3, id, payload]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub unique_id: String,
    pub payload: Payload,
}

/// CALLERROR (4) or, in 2.1, CALLRESULTERROR (5): `[type, id, code, description, details]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub unique_id: String,
    /// The code exactly as the peer wrote it (peers are not trusted to spell it right).
    pub code: String,
    pub description: String,
    pub details: Value,
}

/// One parsed inbound frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    Call(Request),
    CallResult(Reply),
    CallError(Failure),
    CallResultError(Failure),
    Send(Request),
    /// A message type the version tells us to ignore (1.6 and 2.1, Part 4 §4.1.3).
    Ignored {
        message_type_id: u64,
        unique_id: Option<String>,
    },
}

/// Message type numbers (Part 4 §4.1.3, 2.1 §4.2).
pub mod message_type {
    pub const CALL: u64 = 2;
    pub const CALLRESULT: u64 = 3;
    pub const CALLERROR: u64 = 4;
    pub const CALLRESULTERROR: u64 = 5;
    pub const SEND: u64 = 6;
}
