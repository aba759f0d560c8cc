"""FrameEvent ⇄ bytes on the stream (JSON, readable with any NATS tool). Pure.

One stream message carries one event (a JSON object), several events of the same station, in
order (a JSON array), or, from the gateway's hot path, a station's CALL and the answer it is
about to send (a ``csms.exchange`` object, envelope version 2): each answered CALL costs one
JetStream write. Version 2 writes the fields both events share once and embeds both frames
verbatim as JSON values instead of escaped strings (a 1.6 MeterValues message: 2.15 KB in
version 1, 1.5 KB in version 2; nats-server's CPU per stored message grows with its size).
Readers use :func:`decode_many`, which accepts all three shapes and yields the same events for
an exchange in either version; an event's stable identity on the stream is (stream sequence,
index in the message).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

from csms.domain.events import FrameEvent, Origin

EXCHANGE_TYPE: Final = "csms.exchange"
_EXCHANGE_START: Final = b'{"type":"csms.exchange"'


class Exchange(msgspec.Struct, frozen=True, kw_only=True):
    """Envelope version 2: a station's CALL (event ``seq``) and our answer (event ``seq + 1``),
    written by ``csms._core.exchange_message``. ``call`` and ``answer`` are the frames' bytes
    exactly as received and sent (each a JSON array, embedded as is)."""

    type: str
    version: int
    node_id: str
    session_id: str
    station_id: str
    ocpp_version: str
    seq: int
    unique_id: str
    action: str
    call_at_ns: int
    answer_type: int
    answer_at_ns: int
    call: msgspec.Raw
    answer: msgspec.Raw

    def events(self) -> list[FrameEvent]:
        origin = Origin(self.node_id, self.session_id, self.station_id, self.ocpp_version)
        return list(
            origin.exchange(
                self.seq,
                self.unique_id,
                self.action,
                bytes(self.call).decode(),
                self.call_at_ns,
                self.answer_type,
                bytes(self.answer).decode(),
                self.answer_at_ns,
            )
        )


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(FrameEvent)
_many_decoder = msgspec.json.Decoder(FrameEvent | list[FrameEvent])
_exchange_decoder = msgspec.json.Decoder(Exchange)


def encode(event: FrameEvent) -> bytes:
    return _encoder.encode(event)


def encode_many(events: Sequence[FrameEvent]) -> bytes:
    """One event as an object, several as an array (all of one station, in order)."""
    if len(events) == 1:
        return _encoder.encode(events[0])
    return _encoder.encode(list(events))


def decode(data: bytes) -> FrameEvent:
    """Decode one event; raises ``msgspec.ValidationError`` for anything that is not one."""
    return _decoder.decode(data)


def decode_many(data: bytes) -> list[FrameEvent]:
    """The events of one stream message, in order (raises ``msgspec.DecodeError`` /
    ``msgspec.ValidationError`` for a message that is not events)."""
    if data.startswith(_EXCHANGE_START):
        return _exchange(data)
    try:
        decoded = _many_decoder.decode(data)
    except msgspec.ValidationError:
        if b'"csms.exchange"' not in data:
            raise
        return _exchange(data)  # an exchange whose fields another writer reordered
    return decoded if isinstance(decoded, list) else [decoded]


def _exchange(data: bytes) -> list[FrameEvent]:
    exchange = _exchange_decoder.decode(data)
    if exchange.type != EXCHANGE_TYPE or exchange.version != 2:
        raise msgspec.ValidationError(f"not a version 2 exchange: {exchange.type!r}")
    try:
        return exchange.events()
    except UnicodeDecodeError as err:
        raise msgspec.ValidationError(f"a frame is not UTF-8: {err}") from err
