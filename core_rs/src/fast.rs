//! The fast path of decoding: one scan of the frame, no allocation but the payload copy.
//!
//! It handles the frames that matter for throughput, CALL, CALLRESULT and 2.1 SEND, when they are
//! well formed and (for CALL/SEND) schema-valid. Anything else returns `None` and goes to
//! the slow path (`parse` + the reference validator), which also writes every error. The two
//! paths must agree on every frame the fast path accepts (`tests/differential.rs`).

use crate::action::{Delivery, Initiator};
use crate::frame::{message_type as mt, Frame, Payload, Reply, Request};
use crate::parse::MAX_UNIQUE_ID_CHARS;
use crate::scan::Cursor;
use crate::schema::SchemaSet;

/// Decode `bytes` if it is a well-formed, valid CALL/SEND from `peer` or a well-formed
/// CALLRESULT; `None` means "take the slow path".
pub(crate) fn decode(
    bytes: &[u8],
    schemas: &SchemaSet,
    peer: Initiator,
    max_depth: usize,
) -> Option<Frame> {
    let mut c = Cursor::new(bytes, max_depth);
    c.enter(b'[')?;
    let type_id = match c.number()?.raw {
        b"2" => mt::CALL,
        b"3" => mt::CALLRESULT,
        b"6" if schemas.version().has_send_and_result_error() => mt::SEND,
        _ => return None,
    };
    if !c.eat(b',') {
        return None;
    }
    let id = c.string()?;
    if id.escaped || id.chars == 0 || id.chars > MAX_UNIQUE_ID_CHARS || !c.eat(b',') {
        return None;
    }
    let unique_id = std::str::from_utf8(id.raw).ok()?.to_owned();
    let frame = if type_id == mt::CALLRESULT {
        let payload = object(&mut c, |c| c.skip_value())?;
        Frame::CallResult(Reply { unique_id, payload })
    } else {
        let action = c.string()?;
        if action.escaped || !c.eat(b',') {
            return None;
        }
        let action = std::str::from_utf8(action.raw).ok()?;
        let (spec, checker) = schemas.request_fast(action)?;
        let delivery = if type_id == mt::SEND {
            Delivery::Send
        } else {
            Delivery::Call
        };
        if !spec.may_be_sent_by(peer) || spec.delivery != delivery {
            return None;
        }
        let payload = object(&mut c, |c| checker.accepts_at(c).then_some(()))?;
        let request = Request {
            unique_id,
            action: action.to_owned(),
            payload,
        };
        if type_id == mt::SEND {
            Frame::Send(request)
        } else {
            Frame::Call(request)
        }
    };
    (c.eat(b']') && c.at_end()).then_some(frame)
}

/// Run `check` over a payload that must be a JSON object; return its exact bytes.
fn object(
    c: &mut Cursor<'_>,
    check: impl FnOnce(&mut Cursor<'_>) -> Option<()>,
) -> Option<Payload> {
    c.ws();
    if c.peek() != Some(b'{') {
        return None;
    }
    let start = c.pos;
    check(c)?;
    Some(Payload::Raw(c.bytes.get(start..c.pos)?.into()))
}

/// The unique id and action of a well-formed, schema-valid CALL from `peer` whose action
/// `wanted` accepts (asked before the payload is validated, so an unwanted action costs only
/// the scan of its first three elements). `None` for anything else: the caller then takes the
/// general path, which decodes again and writes any error.
pub(crate) fn call_if<'b>(
    bytes: &'b [u8],
    schemas: &SchemaSet,
    peer: Initiator,
    max_depth: usize,
    wanted: impl FnOnce(&str) -> bool,
) -> Option<(&'b str, &'b str)> {
    let mut c = Cursor::new(bytes, max_depth);
    c.enter(b'[')?;
    if c.number()?.raw != b"2" || !c.eat(b',') {
        return None;
    }
    let id = c.string()?;
    if id.escaped || id.chars == 0 || id.chars > MAX_UNIQUE_ID_CHARS || !c.eat(b',') {
        return None;
    }
    let action = c.string()?;
    if action.escaped || !c.eat(b',') {
        return None;
    }
    let action = std::str::from_utf8(action.raw).ok()?;
    if !wanted(action) {
        return None;
    }
    let (spec, checker) = schemas.request_fast(action)?;
    if !spec.may_be_sent_by(peer) || spec.delivery != Delivery::Call {
        return None;
    }
    object(&mut c, |c| checker.accepts_at(c).then_some(()))?;
    if !(c.eat(b']') && c.at_end()) {
        return None;
    }
    Some((std::str::from_utf8(id.raw).ok()?, action))
}
