//! Frames → bytes. Writes straight into one buffer; payloads are serialised once.

use crate::error::{bounded, MAX_DESCRIPTION_CHARS};
use crate::frame::message_type as mt;
use serde_json::Value;
use std::ops::Range;

fn push_json<T: serde::Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &T,
) -> Result<(), serde_json::Error> {
    serde_json::to_writer(out, value)
}

/// The frame and the byte range of its payload.
pub(crate) type Encoded = (Vec<u8>, Range<usize>);

/// `[2|6, id, action, payload]`.
pub(crate) fn request(
    type_id: u64,
    id: &str,
    action: &str,
    payload: &Value,
) -> Result<Encoded, serde_json::Error> {
    let mut out = Vec::with_capacity(64);
    out.push(b'[');
    out.extend_from_slice(type_id.to_string().as_bytes());
    out.push(b',');
    push_json(&mut out, id)?;
    out.push(b',');
    push_json(&mut out, action)?;
    out.push(b',');
    let start = out.len();
    push_json(&mut out, payload)?;
    let end = out.len();
    out.push(b']');
    Ok((out, start..end))
}

/// `[3, id, payload]`.
pub(crate) fn result(id: &str, payload: &Value) -> Result<Encoded, serde_json::Error> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"[3,");
    push_json(&mut out, id)?;
    out.push(b',');
    let start = out.len();
    push_json(&mut out, payload)?;
    let end = out.len();
    out.push(b']');
    Ok((out, start..end))
}

/// `[4|5, id, code, description, details]`; the description is cut to `string[255]` and
/// details are always an object (`{}` if none), Part 4 Table 7.
pub(crate) fn failure(
    type_id: u64,
    id: &str,
    code: &str,
    description: &str,
    details: Option<&Value>,
) -> Result<Vec<u8>, serde_json::Error> {
    let description = bounded(description.to_owned(), MAX_DESCRIPTION_CHARS);
    let mut out = Vec::with_capacity(96 + description.len());
    out.push(b'[');
    out.extend_from_slice(if type_id == mt::CALLRESULTERROR {
        b"5,"
    } else {
        b"4,"
    });
    push_json(&mut out, id)?;
    out.push(b',');
    push_json(&mut out, code)?;
    out.push(b',');
    push_json(&mut out, &description)?;
    out.push(b',');
    match details {
        Some(d @ Value::Object(_)) => push_json(&mut out, d)?,
        _ => out.extend_from_slice(b"{}"),
    }
    out.push(b']');
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_the_three_shapes() {
        assert_eq!(
            request(2, "1", "Heartbeat", &json!({})).unwrap().0,
            br#"[2,"1","Heartbeat",{}]"#
        );
        assert_eq!(
            result("1", &json!({"a": "é\""})).unwrap().0,
            "[3,\"1\",{\"a\":\"é\\\"\"}]".as_bytes()
        );
        assert_eq!(
            failure(4, "-1", "FormationViolation", "bad", None).unwrap(),
            br#"[4,"-1","FormationViolation","bad",{}]"#
        );
    }

    #[test]
    fn long_descriptions_are_cut() {
        let long = "x".repeat(1000);
        let out = failure(4, "1", "GenericError", &long, None).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v[3].as_str().unwrap().chars().count(),
            MAX_DESCRIPTION_CHARS
        );
    }
}
