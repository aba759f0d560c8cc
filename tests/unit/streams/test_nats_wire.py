"""The NATS protocol subset of the event writer: framing, split reads, bounds."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csms.domain.events import Origin
from streams import envelope, nats_wire
from streams.nats_wire import Info, Message, Parser, ProtocolError, ServerError


def test_operations_are_read_whole_even_when_split_at_every_byte() -> None:
    wire = (
        b'INFO {"server_id":"x","max_payload":1048576}\r\n'
        b"PING\r\n"
        b"MSG _INBOX.a.7 1 36\r\n"
        b'{"stream":"CSMS_EVENTS","seq":12345}\r\n'
        b"HMSG _INBOX.a.8 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"
        b"+OK\r\nPONG\r\n-ERR 'Authorization Violation'\r\n"
    )
    parser = Parser()
    ops = [op for byte in wire for op in parser.feed(bytes([byte]))]
    assert ops == [
        Info({"server_id": "x", "max_payload": 1048576}),
        nats_wire.PING,
        Message("_INBOX.a.7", 1, b"", b'{"stream":"CSMS_EVENTS","seq":12345}'),
        Message("_INBOX.a.8", 1, b"NATS/1.0 503\r\n\r\n", b""),
        nats_wire.PONG,
        ServerError("Authorization Violation"),
    ]
    assert Parser().feed(wire) == ops


def test_a_message_whose_payload_contains_crlf_is_not_cut() -> None:
    payload = b"a\r\nb\r\n"
    ops = Parser().feed(b"MSG s 1 r " + str(len(payload)).encode() + b"\r\n" + payload + b"\r\n")
    assert ops == [Message("s", 1, b"", payload)]


@pytest.mark.parametrize(
    "wire",
    [
        b"X" * (nats_wire.MAX_CONTROL_LINE + 10),
        b"MSG s 1 " + str(nats_wire.MAX_MESSAGE + 1).encode() + b"\r\n",
        b"HMSG s 1 10 5\r\n",  # header longer than the message
        b"MSG s 1 -4\r\n",
        b"MSG s x 4\r\n",
        b"MSG s\r\n",
        b"WHAT\r\n",
        b"INFO [1]\r\n",
        b"INFO {\r\n",
        b"MSG s 1 2\r\nabc\r\n",  # the length does not match the payload
    ],
)
def test_lengths_and_shapes_from_the_network_are_checked(wire: bytes) -> None:
    with pytest.raises(ProtocolError):
        Parser().feed(wire)


def test_hpub_counts_header_and_total_bytes() -> None:
    headers = nats_wire.msg_id_headers("n-s-1")
    assert headers == b"NATS/1.0\r\nNats-Msg-Id: n-s-1\r\n\r\n"
    command = nats_wire.hpub_command("csms.evt.v1.CP1", "_INBOX.x.1", headers, b"{}")
    assert command == (
        b"HPUB csms.evt.v1.CP1 _INBOX.x.1 "
        + f"{len(headers)} {len(headers) + 2}".encode()
        + b"\r\n"
        + headers
        + b"{}\r\n"
    )


def test_header_status() -> None:
    assert nats_wire.header_status(b"NATS/1.0 503\r\n\r\n") == "503"
    assert nats_wire.header_status(b"NATS/1.0 408 Request Timeout\r\n\r\n") == "408"
    assert nats_wire.header_status(b"NATS/1.0\r\nNats-Msg-Id: 1\r\n\r\n") is None


# -- the Rust half: exchange_message and scan_acks ---------------------------------------------

texts = st.text(max_size=40)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
json_frames = st.builds(
    lambda items, separators, ascii_only: json.dumps(
        items, separators=separators, ensure_ascii=ascii_only
    ),
    st.lists(json_values, max_size=5),
    st.sampled_from([(",", ":"), (", ", ": "), (" ,", " :")]),
    st.booleans(),
)
"""Frames as stations send them: JSON arrays, compact or spaced, with or without \\u escapes."""
other_texts = st.text(max_size=300).filter(lambda t: not (t.startswith("[") and t.endswith("]")))
"""Anything that is not a JSON array on its own: stored as an escaped string (version 1)."""


def _embeddable(frame: str) -> bool:
    return frame.startswith("[") and frame.endswith("]") and "\\u" not in frame


def _body(command: bytes) -> tuple[bytes, bytes]:
    """The headers and body of one HPUB command."""
    line, _, rest = command.partition(b"\r\n")
    header_len, total_len = (int(n) for n in line.split()[-2:])
    assert rest[total_len:] == b"\r\n"
    return rest[:header_len], rest[header_len:total_len]


@settings(max_examples=400, deadline=None)
@given(
    origin=st.builds(Origin, texts, texts, texts.filter(bool), texts),
    seq=st.integers(0, 2**62),
    unique_id=texts,
    action=texts,
    call=json_frames | other_texts,
    answer=json_frames | other_texts,
    answer_type=st.sampled_from([3, 4]),
    times=st.tuples(st.integers(0, 2**62), st.integers(0, 2**62)),
)
def test_the_rust_exchange_message_stores_the_very_events_and_frames(
    origin: Origin,
    seq: int,
    unique_id: str,
    action: str,
    call: str,
    answer: str,
    answer_type: int,
    times: tuple[int, int],
) -> None:
    """Readers get the same events from the Rust-built message as from the Python envelope,
    each frame byte for byte; it is version 2 exactly when both frames can be embedded, and
    otherwise byte for byte what ``encode_many`` + ``hpub_command`` write (version 1)."""
    events = origin.exchange(seq, unique_id, action, call, times[0], answer_type, answer, times[1])
    built = nats_wire.exchange_message(
        "csms.evt.v1.S",
        "_INBOX.p",
        42,
        origin.node_id,
        origin.session_id,
        origin.station_id,
        origin.ocpp_version,
        unique_id,
        action,
        seq,
        call.encode(),
        times[0],
        answer_type,
        answer.encode(),
        times[1],
    )
    headers, body = _body(built)
    assert headers == nats_wire.msg_id_headers(events[0].event_id)
    assert built == nats_wire.hpub_command("csms.evt.v1.S", "_INBOX.p.42", headers, body)
    decoded = envelope.decode_many(body)
    assert decoded == list(events)
    assert [e.raw.encode() for e in decoded] == [call.encode(), answer.encode()]
    if _embeddable(call) and _embeddable(answer):
        assert body.startswith(b'{"type":"csms.exchange","version":2,')
        assert call.encode() in body
    else:
        assert body == envelope.encode_many(events)


def test_version_2_is_smaller_for_a_meter_values_exchange() -> None:
    frame = (Path(__file__).parents[3] / "bench/frames/v16_meter_values_10.json").read_bytes()
    frame = frame.strip()
    origin = Origin("node-1", "0123456789abcdef", "station-0001", "1.6")
    args = (origin.node_id, origin.session_id, origin.station_id, origin.ocpp_version, "1", "A")
    v2 = nats_wire.exchange_message("s", "r", 1, *args, 0, frame, 1, 3, b'[3,"1",{}]', 2)
    v1 = nats_wire.exchange_message("s", "r", 1, *args, 0, b" " + frame, 1, 3, b'[3,"1",{}]', 2)
    assert len(v2) < 0.75 * len(v1)


def test_a_version_2_message_that_is_not_utf8_or_not_an_exchange_is_refused() -> None:
    good = envelope.decode_many(
        _body(
            nats_wire.exchange_message(
                "s", "r", 1, "n", "x", "st", "1.6", "u", "A", 0, b"[2]", 0, 3, b"[3]", 0
            )
        )[1]
    )
    assert [e.raw for e in good] == ["[2]", "[3]"]
    with pytest.raises(msgspec.ValidationError):
        envelope.decode_many(
            b'{"type":"csms.exchange","version":3,"node_id":"n","session_id":"x",'
            b'"station_id":"st","ocpp_version":"1.6","seq":0,"unique_id":"u","action":"A",'
            b'"call_at_ns":0,"answer_type":3,"answer_at_ns":0,"call":[2],"answer":[3]}'
        )
    reordered = (
        b'{"version":2,"type":"csms.exchange","node_id":"n","session_id":"x",'
        b'"station_id":"st","ocpp_version":"1.6","seq":0,"unique_id":"u","action":"A",'
        b'"call_at_ns":0,"answer_type":3,"answer_at_ns":0,"call":[2],"answer":[3]}'
    )
    assert envelope.decode_many(reordered) == good


def test_exchange_message_refuses_frames_that_are_not_utf8() -> None:
    with pytest.raises(ValueError, match="UTF-8"):
        nats_wire.exchange_message(
            "s", "r", 1, "n", "s", "st", "1.6", "u", "A", 0, b"\xff", 0, 3, b"[]", 0
        )


def _ack(token: int, body: bytes, prefix: bytes = b"_INBOX.p") -> bytes:
    return b"MSG %s.%d 1 %d\r\n%s\r\n" % (prefix, token, len(body), body)


def test_scan_acks_reads_successful_acks_and_stops_at_anything_else() -> None:
    wire = (
        _ack(1, b'{"stream":"CSMS_EVENTS","seq":10}')
        + _ack(2, b'{"stream":"CSMS_EVENTS","seq":11,"duplicate":true}')
        + _ack(3, b'{"stream":"CSMS_EVENTS","seq":12,"domain":"hub"}')
        + b"PING\r\n"
        + _ack(4, b'{"stream":"CSMS_EVENTS","seq":13}')
    )
    pos, acks = nats_wire.scan_acks(wire, 0, b"_INBOX.p")
    assert acks == [(1, 10), (2, 11), (3, 12)]
    assert wire[pos:].startswith(b"PING\r\n")
    pos, acks = nats_wire.scan_acks(wire, pos + 6, b"_INBOX.p")
    assert (pos, acks) == (len(wire), [(4, 13)])
    assert nats_wire.scan_acks(wire, len(wire) + 5, b"_INBOX.p") == (len(wire) + 5, [])


@pytest.mark.parametrize(
    "wire",
    [
        _ack(1, b'{"error":{"code":503,"err_code":10077,"description":"x"}}'),
        _ack(1, b'{"stream":"S","seq":1,"unexpected":1}'),
        _ack(1, b'{"stream":"S","seq":99999999999999999999999}'),
        _ack(1, b'{"stream":"S","seq":1}', prefix=b"_INBOX.other"),
        b"MSG _INBOX.p.x 1 2\r\n{}\r\n",
        b"MSG _INBOX.p.1 1 reply 2\r\n{}\r\n",
        b"HMSG _INBOX.p.1 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n",
        b"MSG _INBOX.p.1 1 22\r\n" + b'{"stream":"S","seq":1}' + b"XX",
        _ack(1, b'{"stream":"S","seq":1}')[:-1],
    ],
)
def test_scan_acks_leaves_everything_else_to_the_general_parser(wire: bytes) -> None:
    assert nats_wire.scan_acks(wire, 0, b"_INBOX.p") == (0, [])
