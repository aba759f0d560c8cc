//! The gateway's two hot NATS chores, as pure byte work (no I/O, no Python):
//!
//! - [`exchange_parts`]: the HPUB command that stores a station's CALL and the answer we are
//!   about to send as one JetStream message, with its `Nats-Msg-Id` header and the reply subject
//!   its PubAck comes back on. The body is a `csms.exchange` envelope (version 2: the session's
//!   fields once, both frames embedded verbatim as JSON values) when both frames allow it (see
//!   [`embeddable`]), else a JSON array of two `csms.frame` envelopes (version 1, exactly as the
//!   Python envelope encoder writes them, field for field and byte for byte).
//! - [`scan_acks`]: the PubAcks at the start of what the server sent, read without building a
//!   message object per ack; it stops at the first operation that is anything else, which the
//!   general (Python) parser then reads.
//!
//! Nothing read from the network is trusted: lengths are parsed with overflow checks and bounded
//! by the data actually present, and no index is used unchecked.

/// One side of the exchange: the station's CALL or our answer.
pub struct Frame<'a> {
    pub seq: u64,
    pub inbound: bool,
    pub message_type: u8,
    pub raw: &'a str,
    pub at_ns: i64,
}

/// The identity every event of a session shares.
pub struct Origin<'a> {
    pub node_id: &'a str,
    pub session_id: &'a str,
    pub station_id: &'a str,
    pub ocpp_version: &'a str,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_digit(nibble: u8) -> u8 {
    HEX.get(usize::from(nibble)).copied().unwrap_or(b'0')
}

/// The escape of each byte in a JSON string: 0 none, `u` for `\u00xx`, else the short escape.
// Evaluated at compile time: an index out of range is a build error, never a run-time panic.
#[allow(clippy::indexing_slicing)]
const ESCAPES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// `"text"` as JSON, escaped exactly as msgspec does (short escapes for \b \t \n \f \r, `\u00xx`
/// for the other control characters, `\"` and `\\`; everything else, UTF-8 included, verbatim).
/// Byte by byte into reserved space: OCPP frames have a quote every few bytes, so runs between
/// escapes are too short for a bulk copy to pay.
pub fn push_json_str(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    push_escaped(out, text);
    out.push(b'"');
}

/// The inside of [`push_json_str`]: written into zeroed space sized for the worst case (6 bytes
/// per control character, else 2 per byte) by index, then cut to what was written; OCPP frames
/// have a quote every few bytes, too often for bulk copies of the runs between them to pay.
fn push_escaped(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    if bytes
        .iter()
        .all(|&b| ESCAPES.get(usize::from(b)).copied().unwrap_or(0) == 0)
    {
        out.extend_from_slice(bytes); // ids, names: nothing to escape
        return;
    }
    let start = out.len();
    let widest = if bytes.iter().any(|&b| b < 0x20) {
        6
    } else {
        2
    };
    out.resize(start + bytes.len() * widest, 0);
    let mut at = 0;
    if let Some(space) = out.get_mut(start..) {
        let mut put = |b: u8| {
            if let Some(slot) = space.get_mut(at) {
                *slot = b;
            }
            at += 1;
        };
        for &b in bytes {
            match ESCAPES.get(usize::from(b)).copied().unwrap_or(0) {
                0 => put(b),
                b'u' => {
                    for c in [
                        b'\\',
                        b'u',
                        b'0',
                        b'0',
                        hex_digit(b >> 4),
                        hex_digit(b & 0x0f),
                    ] {
                        put(c);
                    }
                }
                short => {
                    put(b'\\');
                    put(short);
                }
            }
        }
    }
    out.truncate(start + at);
}

fn push_event_id(out: &mut Vec<u8>, origin: &Origin<'_>, seq: u64) {
    out.push(b'"');
    push_escaped(out, origin.node_id);
    out.push(b'-');
    push_escaped(out, origin.session_id);
    out.push(b'-');
    push_number(out, seq);
    out.push(b'"');
}

/// Decimal digits of `n` (what `to_string` writes, without an allocation).
fn push_number(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        if let Some(slot) = digits.get_mut(at) {
            *slot = b'0' + (rest % 10) as u8;
        }
        rest /= 10;
        if rest == 0 || at == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(at..).unwrap_or_default());
}

fn push_signed(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    push_number(out, n.unsigned_abs());
}

fn push_event(
    out: &mut Vec<u8>,
    origin: &Origin<'_>,
    unique_id: &str,
    action: &str,
    frame: &Frame<'_>,
) {
    out.extend_from_slice(b"{\"event_id\":");
    push_event_id(out, origin, frame.seq);
    out.extend_from_slice(b",\"kind\":\"frame\",\"station_id\":");
    push_json_str(out, origin.station_id);
    out.extend_from_slice(b",\"ocpp_version\":");
    push_json_str(out, origin.ocpp_version);
    out.extend_from_slice(if frame.inbound {
        b",\"direction\":\"in\",\"message_type\":"
    } else {
        b",\"direction\":\"out\",\"message_type\":"
    });
    push_number(out, u64::from(frame.message_type));
    out.extend_from_slice(b",\"unique_id\":");
    push_json_str(out, unique_id);
    out.extend_from_slice(b",\"action\":");
    push_json_str(out, action);
    out.extend_from_slice(b",\"raw\":");
    push_json_str(out, frame.raw);
    out.extend_from_slice(b",\"received_at_ns\":");
    push_signed(out, frame.at_ns);
    out.extend_from_slice(b",\"node_id\":");
    push_json_str(out, origin.node_id);
    out.extend_from_slice(b",\"session_id\":");
    push_json_str(out, origin.session_id);
    out.extend_from_slice(b",\"seq\":");
    push_number(out, frame.seq);
    out.extend_from_slice(b",\"reason\":null,\"type\":\"csms.frame\",\"version\":1}");
}

/// Whether `raw` can be stored verbatim as a JSON value inside an envelope and read back byte
/// for byte (`msgspec.Raw`): it is one JSON array with nothing around it and without `\u`
/// escapes (a lone surrogate escape is one spelling JSON readers disagree on). The caller
/// guarantees `raw` is JSON (the gateway passes only CALLs its codec accepted and answers it
/// encoded); anything else is written as an escaped string (version 1).
pub fn embeddable(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    bytes.first() == Some(&b'[')
        && bytes.last() == Some(&b']')
        && !memchr::memchr_iter(b'\\', bytes).any(|at| bytes.get(at + 1) == Some(&b'u'))
}

/// The version 2 body: one `csms.exchange` object carrying the fields both events share once and
/// the two frames as JSON values. Readers (`streams.envelope.decode_many`) expand it into the
/// very events version 1 stores: event ids `<node>-<session>-<seq>` and `...-<seq + 1>`.
fn exchange_v2(
    out: &mut Vec<u8>,
    origin: &Origin<'_>,
    unique_id: &str,
    action: &str,
    call: &Frame<'_>,
    answer: &Frame<'_>,
) {
    out.extend_from_slice(b"{\"type\":\"csms.exchange\",\"version\":2,\"node_id\":");
    push_json_str(out, origin.node_id);
    out.extend_from_slice(b",\"session_id\":");
    push_json_str(out, origin.session_id);
    out.extend_from_slice(b",\"station_id\":");
    push_json_str(out, origin.station_id);
    out.extend_from_slice(b",\"ocpp_version\":");
    push_json_str(out, origin.ocpp_version);
    out.extend_from_slice(b",\"seq\":");
    push_number(out, call.seq);
    out.extend_from_slice(b",\"unique_id\":");
    push_json_str(out, unique_id);
    out.extend_from_slice(b",\"action\":");
    push_json_str(out, action);
    out.extend_from_slice(b",\"call_at_ns\":");
    push_signed(out, call.at_ns);
    out.extend_from_slice(b",\"answer_type\":");
    push_number(out, u64::from(answer.message_type));
    out.extend_from_slice(b",\"answer_at_ns\":");
    push_signed(out, answer.at_ns);
    out.extend_from_slice(b",\"call\":");
    out.extend_from_slice(call.raw.as_bytes());
    out.extend_from_slice(b",\"answer\":");
    out.extend_from_slice(answer.raw.as_bytes());
    out.push(b'}');
}

/// The stream message body of a CALL and its answer (`answer.seq` is `call.seq + 1`): version 2
/// when both frames are [`embeddable`], else version 1, `[call event, answer event]`.
pub fn exchange_body(
    origin: &Origin<'_>,
    unique_id: &str,
    action: &str,
    call: &Frame<'_>,
    answer: &Frame<'_>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(call.raw.len() + answer.raw.len() + 768);
    if embeddable(call.raw) && embeddable(answer.raw) {
        exchange_v2(&mut out, origin, unique_id, action, call, answer);
        return out;
    }
    out.push(b'[');
    push_event(&mut out, origin, unique_id, action, call);
    out.push(b',');
    push_event(&mut out, origin, unique_id, action, answer);
    out.push(b']');
    out
}

/// The HPUB command of a CALL and its answer in three parts, `head`, `headers` and `body`, to be
/// written one after the other and followed by CRLF: `HPUB <subject> <reply> <hdr len> <total
/// len>\r\n`, the headers carrying `Nats-Msg-Id: <event id of the CALL>` (a retried write is
/// deduplicated by the stream), then the body. `reply` is `<reply_prefix>.<token>`. Written by
/// hand, not with `format!`: this runs once per answered CALL.
#[allow(clippy::too_many_arguments)]
pub fn exchange_parts(
    subject: &str,
    reply_prefix: &str,
    token: u64,
    origin: &Origin<'_>,
    unique_id: &str,
    action: &str,
    call: &Frame<'_>,
    answer: &Frame<'_>,
) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let body = exchange_body(origin, unique_id, action, call, answer);
    let mut headers = Vec::with_capacity(48 + origin.node_id.len() + origin.session_id.len());
    headers.extend_from_slice(b"NATS/1.0\r\nNats-Msg-Id: ");
    headers.extend_from_slice(origin.node_id.as_bytes());
    headers.push(b'-');
    headers.extend_from_slice(origin.session_id.as_bytes());
    headers.push(b'-');
    push_number(&mut headers, call.seq);
    headers.extend_from_slice(b"\r\n\r\n");
    let mut head = Vec::with_capacity(64 + subject.len() + reply_prefix.len());
    head.extend_from_slice(b"HPUB ");
    head.extend_from_slice(subject.as_bytes());
    head.push(b' ');
    head.extend_from_slice(reply_prefix.as_bytes());
    head.push(b'.');
    push_number(&mut head, token);
    head.push(b' ');
    push_number(&mut head, headers.len() as u64);
    head.push(b' ');
    push_number(&mut head, (headers.len() + body.len()) as u64);
    head.extend_from_slice(b"\r\n");
    (head, headers, body)
}

/// Longest decimal number we read from the server (u64 has 20 digits).
const MAX_DIGITS: usize = 19;

fn number(data: &[u8]) -> Option<u64> {
    if data.is_empty() || data.len() > MAX_DIGITS {
        return None;
    }
    let mut value: u64 = 0;
    for &b in data {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(value)
}

/// The stream sequence of a successful PubAck body: `{"stream":"<name>","seq":<n>}`, optionally
/// followed by `,"domain":"<d>"` and/or `,"duplicate":true` (a retry the stream deduplicated, still
/// stored). Anything else (an error, another shape) is None and left to the general parser.
fn ack_seq(body: &[u8]) -> Option<u64> {
    let rest = body.strip_prefix(b"{\"stream\":\"")?;
    let quote = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    let rest = rest.get(quote..)?.strip_prefix(b"\",\"seq\":")?;
    let digits = rest.iter().position(|b| !b.is_ascii_digit())?;
    let seq = number(rest.get(..digits)?)?;
    let mut tail = rest.get(digits..)?;
    loop {
        if tail == b"}" {
            return Some(seq);
        }
        if let Some(after) = tail.strip_prefix(b",\"duplicate\":true") {
            tail = after;
        } else if let Some(after) = tail.strip_prefix(b",\"domain\":\"") {
            let end = after.iter().position(|&b| b == b'"' || b == b'\\')?;
            tail = after.get(end + 1..)?;
        } else {
            return None;
        }
    }
}

/// Where the scan stopped and the `(token, stream sequence)` of every PubAck before it.
pub struct Acks {
    pub consumed: usize,
    pub acks: Vec<(u64, u64)>,
}

/// Read the PubAcks at the start of `data`: operations `MSG <prefix>.<token> <sid> <len>\r\n
/// <ack>\r\n` whose token is a number and whose body is a successful PubAck. Stops at the first
/// operation that is anything else or is not complete yet; `consumed` bytes were read.
pub fn scan_acks(data: &[u8], prefix: &[u8]) -> Acks {
    let mut acks = Vec::new();
    let mut pos = 0;
    while let Some(ack) = data.get(pos..).and_then(|rest| one_ack(rest, prefix)) {
        acks.push((ack.0, ack.1));
        pos += ack.2;
    }
    Acks {
        consumed: pos,
        acks,
    }
}

/// Longest control line we look at (the server's own default limit).
const MAX_LINE: usize = 4096;

/// `(token, seq, bytes used)` of one complete PubAck MSG at the start of `data`.
fn one_ack(data: &[u8], prefix: &[u8]) -> Option<(u64, u64, usize)> {
    let window = data.get(..data.len().min(MAX_LINE))?;
    let line_end = memchr::memmem::find(window, b"\r\n")?;
    let line = data.get(..line_end)?;
    let rest = line.strip_prefix(b"MSG ")?.strip_prefix(prefix)?;
    let rest = rest.strip_prefix(b".")?;
    let mut parts = rest.split(|&b| b == b' ');
    let token = number(parts.next()?)?;
    let _sid = number(parts.next()?)?;
    let length = usize::try_from(number(parts.next()?)?).ok()?;
    if parts.next().is_some() {
        return None; // a reply subject: not a PubAck
    }
    let start = line_end.checked_add(2)?;
    let end = start.checked_add(length)?;
    let body = data.get(start..end)?;
    if data.get(end..end.checked_add(2)?)? != b"\r\n" {
        return None;
    }
    let seq = ack_seq(body)?;
    Some((token, seq, end + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_msgspec() {
        let mut out = Vec::new();
        push_json_str(&mut out, "a\"b\\c\n\u{1}\u{1f}é/\u{7f}");
        assert_eq!(
            out,
            b"\"a\\\"b\\\\c\\n\\u0001\\u001f\xc3\xa9/\x7f\"".to_vec()
        );
    }

    #[test]
    fn embeds_json_arrays_verbatim_and_escapes_the_rest() {
        assert!(embeddable("[2,\"1\",\"Heartbeat\",{}]"));
        assert!(!embeddable(" [2]"));
        assert!(!embeddable("[2,\"\\ud800\"]"));
        assert!(!embeddable("{}"));
        let origin = Origin {
            node_id: "n",
            session_id: "s",
            station_id: "st",
            ocpp_version: "1.6",
        };
        let frame = |seq, inbound, raw| Frame {
            seq,
            inbound,
            message_type: if inbound { 2 } else { 3 },
            raw,
            at_ns: 7,
        };
        let v2 = exchange_body(
            &origin,
            "1",
            "Heartbeat",
            &frame(4, true, "[2,\"1\",\"Heartbeat\",{}]"),
            &frame(5, false, "[3,\"1\",{}]"),
        );
        assert_eq!(
            String::from_utf8(v2).unwrap_or_default(),
            "{\"type\":\"csms.exchange\",\"version\":2,\"node_id\":\"n\",\"session_id\":\"s\",\
\"station_id\":\"st\",\"ocpp_version\":\"1.6\",\"seq\":4,\"unique_id\":\"1\",\
\"action\":\"Heartbeat\",\"call_at_ns\":7,\"answer_type\":3,\"answer_at_ns\":7,\
\"call\":[2,\"1\",\"Heartbeat\",{}],\"answer\":[3,\"1\",{}]}"
        );
        let v1 = exchange_body(
            &origin,
            "1",
            "A",
            &frame(4, true, " [2]"),
            &frame(5, false, "[3]"),
        );
        assert_eq!(v1.first(), Some(&b'['));
    }

    #[test]
    fn reads_acks_and_stops_at_anything_else() {
        let data = b"MSG _INBOX.ab.7 1 30\r\n{\"stream\":\"EV\",\"seq\":12345678}\r\n\
MSG _INBOX.ab.8 1 40\r\n{\"stream\":\"EV\",\"seq\":9,\"duplicate\":true}\r\n\
PING\r\n";
        let got = scan_acks(data, b"_INBOX.ab");
        assert_eq!(got.acks, vec![(7, 12345678), (8, 9)]);
        assert_eq!(data.get(got.consumed..), Some(&b"PING\r\n"[..]));
    }

    #[test]
    fn leaves_errors_partial_and_foreign_messages() {
        let error = b"MSG _INBOX.ab.7 1 40\r\n{\"error\":{\"code\":503,\"description\":\"x\"}}\r\n";
        assert_eq!(scan_acks(error, b"_INBOX.ab").consumed, 0);
        let partial = b"MSG _INBOX.ab.7 1 33\r\n{\"stream\":\"EV\",\"se";
        assert_eq!(scan_acks(partial, b"_INBOX.ab").consumed, 0);
        let other = b"MSG _INBOX.zz.7 1 2\r\n{}\r\n";
        assert_eq!(scan_acks(other, b"_INBOX.ab").consumed, 0);
        let huge = b"MSG _INBOX.ab.7 1 99999999999999999999999\r\n";
        assert_eq!(scan_acks(huge, b"_INBOX.ab").consumed, 0);
    }
}
