"""FrameEvent ⇄ bytes on the stream (JSON, readable with any NATS tool). Pure.

One stream message carries one event (a JSON object) or several events of the same station, in
order (a JSON array): the gateway stores a CALL and the answer it is about to send in one message,
so each answered CALL costs one JetStream write. Readers use :func:`decode_many`, which accepts
both; an event's stable identity on the stream is (stream sequence, index in the message).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from csms.domain.events import FrameEvent

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(FrameEvent)
_many_decoder = msgspec.json.Decoder(FrameEvent | list[FrameEvent])


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
    decoded = _many_decoder.decode(data)
    return decoded if isinstance(decoded, list) else [decoded]
