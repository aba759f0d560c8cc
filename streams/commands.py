"""Commands over NATS request/reply, routed by presence to the one gateway holding the station.

Each gateway node serves ``csms.cmd.v1.<token(node)>.*`` (:class:`CommandServer`); an API process
looks the station up in presence and asks ``csms.cmd.v1.<token(node)>.<token(station)>``
(:class:`CommandRouter`). Every wait has a deadline: the gateway bounds the station's answer by
the command's ``timeout_s``, and the request by ``timeout_s`` plus a margin. A station that moved
is answered ``not_here`` by its old node; the router then re-reads presence once (and follows the
station to its new node) before giving up with ``offline``.

:class:`CommandLog` keeps every command's status in a KV bucket (any API process can answer a
poll) and appends one event per finished command to the station's own subject in the stream: a
``FrameEvent`` of kind ``command`` whose ``raw`` is the ``csms.command`` record (who asked, the
payload, the outcome), so the station's timeline shows its commands between its frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

import msgspec
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, InvalidKeyError, KeyNotFoundError
from nats.js.kv import KeyValue

from csms.domain.commands import (
    STATUS_OF,
    CommandOutcome,
    CommandRecord,
    CommandRecorded,
    CommandRequest,
    Status,
)
from csms.domain.events import FrameEvent
from streams import envelope
from streams.presence import PresenceReader, utc_now
from streams.subjects import subject, token

log = logging.getLogger(__name__)

COMMAND_PREFIX: Final = "csms.cmd.v1"
BUCKET: Final = "CSMS_COMMANDS"
REPLY_MARGIN_S: Final = 2.0
"""Added to a command's timeout for the NATS request: the gateway's own deadline comes first."""

_encode = msgspec.json.Encoder().encode
_request = msgspec.json.Decoder(CommandRequest)
_outcome = msgspec.json.Decoder(CommandOutcome)
_record = msgspec.json.Decoder(CommandRecord)

Execute = Callable[[CommandRequest], Awaitable[CommandOutcome]]


def command_subject(node_id: str, station_id: str) -> str:
    return f"{COMMAND_PREFIX}.{token(node_id)}.{token(station_id)}"


class CommandServer:
    """Gateway side: runs each request on its own task (one slow station never blocks others)."""

    def __init__(self, nc: NatsClient, node_id: str, execute: Execute) -> None:
        self._nc = nc
        self._node_id = node_id
        self._execute = execute
        self._sub: Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(
            f"{COMMAND_PREFIX}.{token(self._node_id)}.*", cb=self._on_request
        )

    async def _on_request(self, msg: Msg) -> None:
        task = asyncio.get_running_loop().create_task(self._run(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, msg: Msg) -> None:
        try:
            request = _request.decode(msg.data)
        except msgspec.DecodeError as err:
            outcome = CommandOutcome(
                command_id="", outcome="invalid", code="FormatViolation", description=str(err)
            )
        else:
            outcome = await self._execute(request)
        with contextlib.suppress(Exception):
            await msg.respond(_encode(outcome))

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Stop taking requests; let the running ones answer (their sessions are closing)."""
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)


class CommandRouter:
    """API side: presence → the holding node → its answer (see the module docstring)."""

    def __init__(self, nc: NatsClient, presence: PresenceReader) -> None:
        self._nc = nc
        self._presence = presence

    async def send(
        self, request: CommandRequest, on_sent: Callable[[], Awaitable[None]] | None = None
    ) -> CommandOutcome:
        """The outcome; ``on_sent`` is awaited just before the request leaves for a gateway."""
        for attempt in (1, 2):
            presence = await self._presence.get(request.station_id)
            if presence is None or not presence.connected:
                break
            if on_sent is not None:
                await on_sent()
            try:
                reply = await self._nc.request(
                    command_subject(presence.node_id, request.station_id),
                    _encode(request),
                    timeout=request.timeout_s + REPLY_MARGIN_S,
                )
            except NoRespondersError:
                continue  # the node is gone: presence may already name another one
            except NatsTimeoutError:
                return CommandOutcome(
                    command_id=request.command_id,
                    outcome="timeout",
                    description=f"gateway {presence.node_id} did not answer in time",
                    node_id=presence.node_id,
                )
            outcome = _outcome.decode(reply.data)
            if outcome.outcome != "not_here":
                return outcome
            log.info("station %s moved (attempt %d)", request.station_id, attempt)
        return CommandOutcome(
            command_id=request.command_id,
            outcome="offline",
            description="the station is not connected to any gateway",
        )


class CommandLog:
    """Command status in KV (for polling from any API process) and one event per command."""

    def __init__(self, js: JetStreamContext, kv: KeyValue) -> None:
        self._js = js
        self._kv = kv

    @classmethod
    async def open(
        cls, js: JetStreamContext, replicas: int = 1, keep_s: float = 7 * 86400
    ) -> CommandLog:
        try:
            kv = await js.key_value(BUCKET)
        except BucketNotFoundError:
            kv = await js.create_key_value(
                KeyValueConfig(
                    bucket=BUCKET,
                    history=1,
                    ttl=keep_s,
                    storage=StorageType.FILE,
                    replicas=replicas,
                )
            )
        return cls(js, kv)

    async def put(self, record: CommandRecord) -> None:
        await self._kv.put(record.command_id, _encode(record))

    async def get(self, command_id: str) -> CommandRecord | None:
        try:
            entry = await self._kv.get(command_id)
        except (KeyNotFoundError, InvalidKeyError):
            return None
        return _record.decode(entry.value) if entry.value else None

    async def finish(
        self, record: CommandRecord, outcome: CommandOutcome, ocpp_version: str = ""
    ) -> None:
        """Store the final status, then the stream event (deduplicated by command id)."""
        status: Status = STATUS_OF[outcome.outcome]
        record.status, record.outcome, record.updated_at = status, outcome, utc_now()
        await self.put(record)
        recorded = CommandRecorded(
            command_id=record.command_id,
            station_id=record.station_id,
            action=record.action,
            payload=record.payload,
            requested_by=record.requested_by,
            requested_at=record.requested_at,
            finished_at=record.updated_at,
            outcome=outcome,
        )
        event = FrameEvent(
            event_id=f"cmd-{record.command_id}",
            kind="command",
            station_id=record.station_id,
            ocpp_version=ocpp_version,
            direction="out",
            message_type=0,
            unique_id=record.command_id,
            action=record.action,
            raw=_encode(recorded).decode(),
            received_at_ns=time.time_ns(),
            node_id=outcome.node_id or "",
            session_id="",
            seq=0,
            reason=f"{outcome.outcome}, requested by {record.requested_by}",
        )
        await self._js.publish(
            subject(record.station_id),
            envelope.encode(event),
            headers={"Nats-Msg-Id": event.event_id},
        )
