"""The subset of the NATS client protocol the event writer speaks, as pure functions (no I/O).

Reference: https://docs.nats.io/reference/reference-protocols/nats-protocol. The server sends
INFO, MSG, HMSG, PING, PONG, +OK and -ERR; the writer sends CONNECT, SUB, HPUB, PING and PONG.
Lengths read from the wire are bounded (``MAX_CONTROL_LINE``, ``max_payload``) before use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from csms._core import exchange_message, scan_acks

__all__ = ["exchange_message", "scan_acks"]
"""The hot half of the write path, in Rust: the HPUB of a CALL and its answer, and reading
PubAcks without an object per ack (``csms._core``; pure byte work like the rest of this module)."""

CRLF: Final = b"\r\n"
MAX_CONTROL_LINE: Final = 4096
"""The server's own default limit for a protocol line."""
MAX_MESSAGE: Final = 8 * 1024 * 1024
"""Upper bound we accept for one message from the server (acks are ~50 bytes)."""


class ProtocolError(Exception):
    """The server sent something this client cannot read: drop the connection."""


@dataclass(frozen=True, slots=True)
class Info:
    data: dict[str, object]


@dataclass(frozen=True, slots=True)
class Message:
    """A MSG or HMSG: ``headers`` is the raw header block (b"" for MSG)."""

    subject: str
    sid: int
    headers: bytes
    payload: bytes


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Pong:
    pass


@dataclass(frozen=True, slots=True)
class ServerError:
    text: str


Op = Info | Message | Ping | Pong | ServerError

PING: Final = Ping()
PONG: Final = Pong()


def connect_command(options: dict[str, object]) -> bytes:
    return b"CONNECT " + json.dumps(options, separators=(",", ":")).encode() + CRLF


def sub_command(subject: str, sid: int) -> bytes:
    return f"SUB {subject} {sid}\r\n".encode()


def msg_id_headers(msg_id: str) -> bytes:
    return f"NATS/1.0\r\nNats-Msg-Id: {msg_id}\r\n\r\n".encode()


def hpub_command(subject: str, reply: str, headers: bytes, payload: bytes) -> bytes:
    head = f"HPUB {subject} {reply} {len(headers)} {len(headers) + len(payload)}\r\n".encode()
    return b"".join((head, headers, payload, CRLF))


def header_status(headers: bytes) -> str | None:
    """The status code of an HMSG header block (``NATS/1.0 503``), or None."""
    first = headers.split(CRLF, 1)[0]
    parts = first.split(b" ", 2)
    if len(parts) >= 2 and parts[1].isdigit():
        return parts[1].decode()
    return None


def parse_one(data: bytes, pos: int) -> tuple[Op | None, int] | None:
    """The operation starting at ``data[pos]`` and the position after it (the operation is None
    for +OK), or None if it is not complete yet. Raises ProtocolError for what is not NATS."""
    end = data.find(CRLF, pos, pos + MAX_CONTROL_LINE + 2)
    if end < 0:
        if len(data) - pos > MAX_CONTROL_LINE:
            raise ProtocolError("control line too long")
        return None
    line = data[pos:end]
    verb = line[:4].upper()
    if verb == b"MSG " or verb == b"HMSG":
        subject, sid, header_len, total_len = _message_head(line)
        start = end + 2
        if len(data) < start + total_len + 2:
            return None  # wait for the rest of the message
        if data[start + total_len : start + total_len + 2] != CRLF:
            raise ProtocolError("message not followed by CRLF: length mismatch")
        body = data[start : start + total_len]
        return Message(subject, sid, body[:header_len], body[header_len:]), start + total_len + 2
    return _control(verb, line), end + 2


class Parser:
    """Incremental parser: feed bytes, take the complete operations."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[Op]:
        buffer = self._buffer + data if self._buffer else data
        ops: list[Op] = []
        pos = 0
        while pos < len(buffer):
            parsed = parse_one(buffer, pos)
            if parsed is None:
                break
            op, pos = parsed
            if op is not None:
                ops.append(op)
        self._buffer = buffer[pos:]
        return ops


def _control(verb: bytes, line: bytes) -> Op | None:
    """A one-line operation (None for +OK)."""
    if verb == b"PING":
        return PING
    if verb == b"PONG":
        return PONG
    if verb == b"INFO":
        return Info(_json_object(line[5:]))
    if verb == b"-ERR":
        return ServerError(line[5:].decode(errors="replace").strip(" '"))
    if verb.startswith(b"+OK"):
        return None
    raise ProtocolError(f"unknown operation {line[:16]!r}")


def _message_head(line: bytes) -> tuple[str, int, int, int]:
    """``MSG subj sid [reply] len`` or ``HMSG subj sid [reply] hlen len``."""
    parts = line.split()
    try:
        if parts[0].upper() == b"MSG" and len(parts) in (4, 5):
            header_len, total_len = 0, int(parts[-1])
        elif parts[0].upper() == b"HMSG" and len(parts) in (5, 6):
            header_len, total_len = int(parts[-2]), int(parts[-1])
        else:
            raise ProtocolError(f"bad message line {line[:64]!r}")
        sid = int(parts[2])
    except ValueError as err:
        raise ProtocolError(f"bad message line {line[:64]!r}") from err
    if not 0 <= header_len <= total_len <= MAX_MESSAGE:
        raise ProtocolError(f"message length out of bounds {line[:64]!r}")
    return parts[1].decode(errors="replace"), sid, header_len, total_len


def _json_object(text: bytes) -> dict[str, object]:
    try:
        value = json.loads(text)
    except ValueError as err:
        raise ProtocolError("unreadable INFO") from err
    if not isinstance(value, dict):
        raise ProtocolError("INFO is not an object")
    return value
