"""Remote start: learn the transaction id the station reports after accepting.

Listens (core NATS, no consumer) on the station's event subject while the command runs: every
event the gateway stores is also delivered to plain subscribers of its subject. 1.6: the
StartTransaction CALL carrying our idTag, then the CSMS's CALLRESULT with the ``transactionId``
(events carry the frames verbatim). 2.x: the TransactionEvent whose ``transactionInfo`` carries
our ``remoteStartId``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from types import TracebackType
from typing import Any

import msgspec
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from csms.domain.events import FrameEvent
from streams import envelope
from streams.presence import StationPresence
from streams.subjects import subject


class TransactionWatch:
    def __init__(self, nc: NatsClient, presence: StationPresence, payload: dict[str, Any]) -> None:
        self._nc = nc
        self._subject = subject(presence.station_id)
        self._v16 = presence.ocpp_version == "1.6"
        self._id_tag = str(payload.get("idTag", "")).casefold()
        self._remote_start_id = payload.get("remoteStartId")
        self._starts: set[str] = set()
        self._found: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._sub: Subscription | None = None

    async def __aenter__(self) -> TransactionWatch:
        self._sub = await self._nc.subscribe(self._subject, cb=self._on_message)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    async def transaction_id(self, timeout_s: float) -> str | None:
        try:
            return await asyncio.wait_for(asyncio.shield(self._found), timeout_s)
        except TimeoutError:
            return None

    async def _on_message(self, msg: Msg) -> None:
        try:
            events = envelope.decode_many(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        for event in events:
            with contextlib.suppress(ValueError, LookupError, TypeError, AttributeError):
                found = self._see(event)
                if found is not None and not self._found.done():
                    self._found.set_result(found)

    def _see(self, event: FrameEvent) -> str | None:
        if event.kind != "frame":
            return None
        call = event.direction == "in" and event.message_type == 2
        if self._v16:
            if call and event.action == "StartTransaction" and event.unique_id is not None:
                payload = json.loads(event.raw)[3]
                if str(payload.get("idTag", "")).casefold() == self._id_tag:
                    self._starts.add(event.unique_id)
            answer = event.direction == "out" and event.message_type == 3
            if answer and event.unique_id in self._starts:
                return str(json.loads(event.raw)[2]["transactionId"])
            return None
        if call and event.action == "TransactionEvent":
            info = json.loads(event.raw)[3].get("transactionInfo", {})
            if info.get("remoteStartId") == self._remote_start_id:
                return str(info["transactionId"])
        return None
