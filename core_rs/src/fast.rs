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
    let unique_id = unique_id(&mut c)?.to_owned();
    let frame = if type_id == mt::CALLRESULT {
        let payload = Payload::Raw(object(&mut c, |c| c.skip_value())?.into());
        Frame::CallResult(Reply { unique_id, payload })
    } else {
        let action = action(&mut c)?;
        let delivery = if type_id == mt::SEND {
            Delivery::Send
        } else {
            Delivery::Call
        };
        let payload = request_payload(&mut c, schemas, peer, action, delivery)?;
        let request = Request {
            unique_id,
            action: action.to_owned(),
            payload: Payload::Raw(payload.into()),
        };
        if type_id == mt::SEND {
            Frame::Send(request)
        } else {
            Frame::Call(request)
        }
    };
    (c.eat(b']') && c.at_end()).then_some(frame)
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
    let id = unique_id(&mut c)?;
    let action = action(&mut c)?;
    if !wanted(action) {
        return None;
    }
    request_payload(&mut c, schemas, peer, action, Delivery::Call)?;
    (c.eat(b']') && c.at_end()).then_some((id, action))
}

/// The unique id element and its comma: unescaped, 1 to `MAX_UNIQUE_ID_CHARS` characters.
#[inline]
fn unique_id<'b>(c: &mut Cursor<'b>) -> Option<&'b str> {
    let id = c.string()?;
    if id.escaped || id.chars == 0 || id.chars > MAX_UNIQUE_ID_CHARS || !c.eat(b',') {
        return None;
    }
    std::str::from_utf8(id.raw).ok()
}

/// The action element and its comma, unescaped.
#[inline]
fn action<'b>(c: &mut Cursor<'b>) -> Option<&'b str> {
    let action = c.string()?;
    if action.escaped || !c.eat(b',') {
        return None;
    }
    std::str::from_utf8(action.raw).ok()
}

/// The exact bytes of the payload at the cursor of an `action` request from `peer` sent as
/// `delivery`, when its schema's fast checker accepts it.
#[inline]
fn request_payload<'b>(
    c: &mut Cursor<'b>,
    schemas: &SchemaSet,
    peer: Initiator,
    action: &str,
    delivery: Delivery,
) -> Option<&'b [u8]> {
    let (spec, checker) = schemas.request_fast(action)?;
    if !spec.may_be_sent_by(peer) || spec.delivery != delivery {
        return None;
    }
    object(c, |c| checker.accepts_at(c).then_some(()))
}

/// Run `check` over a payload that must be a JSON object; return its exact bytes.
#[inline]
fn object<'b>(
    c: &mut Cursor<'b>,
    check: impl FnOnce(&mut Cursor<'b>) -> Option<()>,
) -> Option<&'b [u8]> {
    c.ws();
    if c.peek() != Some(b'{') {
        return None;
    }
    let start = c.pos;
    check(c)?;
    c.bytes.get(start..c.pos)
}
