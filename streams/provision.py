"""The stream and buckets the CSMS needs, declared as data and applied idempotently."""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

from streams.subjects import ALL_EVENTS, STREAM


@dataclass(frozen=True, slots=True)
class StreamSettings:
    replicas: int = 1
    max_age_s: float = 0.0
    """0 keeps events forever: the stream is the truth the projections are rebuilt from."""
    duplicate_window_s: float = 120.0


async def ensure_stream(js: JetStreamContext, settings: StreamSettings) -> None:
    """Create the event stream, or update it to these settings."""
    config = StreamConfig(
        name=STREAM,
        subjects=[ALL_EVENTS],
        storage=StorageType.FILE,
        num_replicas=settings.replicas,
        max_age=settings.max_age_s,
        duplicate_window=settings.duplicate_window_s,
    )
    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(config)
    else:
        await js.update_stream(config)
