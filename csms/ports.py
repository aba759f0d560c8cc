"""The narrow ports between the gateway/handlers and the outside world (small Protocols).

Adapters live in ``streams`` (NATS) and are wired only in ``csms.app``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from csms.domain.events import FrameEvent, Origin


class EventSink(Protocol):
    """Durable event store: ``publish`` returns only once the events are stored."""

    async def publish(self, *events: FrameEvent) -> int:
        """Store ``events`` (one or more of one station, in order) atomically, as one stream
        message; return its stream sequence. Retries until stored or cancelled."""
        ...

    def submit(self, events: Sequence[FrameEvent], on_stored: Callable[[int], None]) -> None:
        """The same without a coroutine: call ``on_stored(stream_sequence)`` once stored (never
        before; retried until then). The gateway's hot path answers CALLs from this callback."""
        ...

    def submit_exchange(
        self,
        origin: Origin,
        seq: int,
        unique_id: str,
        action: str,
        call: bytes,
        call_at_ns: int,
        answer_type: int,
        answer: bytes,
        answer_at_ns: int,
        on_stored: Callable[[int], None],
    ) -> None:
        """``submit(origin.exchange(...), on_stored)``: a station's CALL (event ``seq``) and our
        answer (event ``seq + 1``) as one message, the frames as UTF-8 bytes. A sink may build
        the message without a Python object per event (the gateway's hottest call)."""
        ...


class TransactionIds(Protocol):
    """1.6 transaction ids, unique across gateway processes and restarts; the same key always
    gets the same id (a retried StartTransaction)."""

    async def allocate(self, key: str, station_id: str) -> int: ...

    async def started_by(self, transaction_id: int) -> str | None:
        """The station an id was allocated for; None: never allocated (M31)."""
        ...


class TokenAuthorizer(Protocol):
    """Decides what Authorize answers for an id token (a status, never an error)."""

    def status(self, id_token: str) -> str: ...
