"""The NATS protocol subset of the event writer: framing, split reads, bounds."""

from __future__ import annotations

import pytest

from streams import nats_wire
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
