"""The NATS protocol subset of the event writer: framing, split reads, bounds."""

from __future__ import annotations

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


@settings(max_examples=300, deadline=None)
@given(
    origin=st.builds(Origin, texts, texts, texts.filter(bool), texts),
    seq=st.integers(0, 2**62),
    unique_id=texts,
    action=texts,
    call=st.text(max_size=300),
    answer=st.text(max_size=300),
    answer_type=st.sampled_from([3, 4]),
    times=st.tuples(st.integers(0, 2**62), st.integers(0, 2**62)),
)
def test_the_rust_exchange_message_is_byte_for_byte_the_envelope_encoding(
    origin: Origin,
    seq: int,
    unique_id: str,
    action: str,
    call: str,
    answer: str,
    answer_type: int,
    times: tuple[int, int],
) -> None:
    events = origin.exchange(seq, unique_id, action, call, times[0], answer_type, answer, times[1])
    body = envelope.encode_many(events)
    headers = nats_wire.msg_id_headers(events[0].event_id)
    expected = nats_wire.hpub_command("csms.evt.v1.S", "_INBOX.p.42", headers, body)
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
    assert built == expected
    assert envelope.decode_many(body) == list(events)


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
