"""FrameEvent ⇄ bytes on the stream (JSON, readable with any NATS tool). Pure."""

from __future__ import annotations

import msgspec

from csms.domain.events import FrameEvent

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(FrameEvent)


def encode(event: FrameEvent) -> bytes:
    return _encoder.encode(event)


def decode(data: bytes) -> FrameEvent:
    """Decode an event; raises ``msgspec.ValidationError`` for anything that is not one."""
    return _decoder.decode(data)
