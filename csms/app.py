"""Composition root: settings → adapters (NATS, codecs, handlers) → gateway; nothing else.

The only module that wires ``streams`` adapters into the gateway's ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from dataclasses import dataclass, field

import nats
from nats.aio.client import Client as NatsClient

from csms.api.app import ApiServer, build_app
from csms.api.services import ApiServices
from csms.gateway.commands import execute as execute_command
from csms.gateway.server import Gateway, GatewayConfig
from csms.gateway.session import SessionConfig
from csms.handlers.context import HandlerContext
from csms.protocol import SUPPORTED_VERSIONS, CodecOptions, codec_for
from csms.settings import Settings
from streams.commands import CommandServer
from streams.embedded import EmbeddedNats
from streams.id_tokens import KvTokens
from streams.presence import PresenceWriter
from streams.presence import open_bucket as open_presence
from streams.provision import StreamSettings, ensure_stream
from streams.publisher import JetStreamPublisher
from streams.transaction_ids import KvTransactionIds

log = logging.getLogger("csms")


@dataclass
class Running:
    """A started CSMS: what tests and the CLI need to reach and stop it."""

    settings: Settings
    gateway: Gateway
    publisher: JetStreamPublisher
    nc: NatsClient
    nats_url: str
    embedded: EmbeddedNats | None
    api: ApiServer | None = None
    services: ApiServices | None = None
    presence: PresenceWriter | None = None
    commands: CommandServer | None = None
    tokens: KvTokens | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def healthy(self) -> bool:
        return self.nc.is_connected and self.publisher.healthy and not self.stopping.is_set()

    async def stop(self) -> None:
        """Drain: stop accepting, close sessions with 1001, flush NATS, stop the child."""
        self.stopping.set()
        if self.commands is not None:
            await self.commands.stop(timeout_s=0)  # no new commands
        await self.gateway.stop()
        if self.commands is not None:
            await self.commands.stop()  # running ones answer: their sessions closed
        if self.presence is not None:
            await self.presence.stop()
        if self.api is not None:
            await self.api.stop()
        if self.services is not None:
            await self.services.stop()
        if self.tokens is not None:
            await self.tokens.stop()
        with contextlib.suppress(Exception):
            await self.nc.drain()
        if self.embedded is not None:
            await self.embedded.stop()


async def start(settings: Settings) -> Running:
    embedded = None
    url = settings.nats_url
    if url is None:
        embedded = EmbeddedNats(settings.data_dir / "nats")
        await embedded.start()
        url = embedded.url
    nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.5, name="csms")
    js = nc.jetstream()
    await ensure_stream(
        js, StreamSettings(replicas=settings.stream_replicas, max_age_s=settings.stream_max_age_s)
    )
    publisher = JetStreamPublisher(nc)
    await publisher.start()
    transaction_ids = await KvTransactionIds.open(js, replicas=settings.stream_replicas)
    tokens = await KvTokens.open(
        js, settings.stream_replicas, accept_unknown=settings.accept_unknown_tokens
    )
    await tokens.start()
    options = CodecOptions(max_frame_bytes=settings.max_frame_bytes)
    codecs = {v: codec_for(v, options) for v in reversed(SUPPORTED_VERSIONS)}

    def context_for(station_id: str, version: str) -> HandlerContext:
        return HandlerContext(
            station_id, version, transaction_ids, tokens, settings.heartbeat_interval_s
        )

    node_id = settings.node_id or f"{socket.gethostname()}-{os.getpid()}"
    gateway = Gateway(
        codecs,
        context_for,
        publisher,
        SessionConfig(node_id=node_id, call_timeout_s=settings.call_timeout_s),
        GatewayConfig(
            host=settings.host,
            port=settings.ocpp_port,
            ping_interval_s=settings.ping_interval_s,
            ping_timeout_s=settings.ping_timeout_s,
        ),
    )
    presence = PresenceWriter(await open_presence(js, settings.stream_replicas), node_id)
    gateway.observer = presence
    await gateway.start()
    presence.start(lambda: len(gateway.sessions), settings.presence_beat_s)
    commands = CommandServer(
        nc, node_id, lambda request: execute_command(gateway.sessions, node_id, request)
    )
    await commands.start()
    running = Running(settings, gateway, publisher, nc, url, embedded)
    running.presence, running.commands, running.tokens = presence, commands, tokens
    running.services, running.api = await _serve_api(running)
    return running


async def _serve_api(running: Running) -> tuple[ApiServices, ApiServer]:
    """The operator API (with ``/healthz`` and ``/metrics``) on the API port, in this loop."""
    settings = running.settings

    def health() -> dict[str, bool]:
        return {
            "ocpp_listener": not running.stopping.is_set(),
            "nats": running.nc.is_connected,
            "stream": running.publisher.healthy,
        }

    services = await ApiServices.open(
        running.nc,
        health,
        replicas=settings.stream_replicas,
        beat_interval_s=settings.presence_beat_s,
        default_wait_s=settings.call_timeout_s,
    )
    server = ApiServer(build_app(services), settings.host, settings.api_port)
    await server.start()
    return services, server


async def serve(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT, then drain within 10 s."""
    running = await start(settings)
    print(f"csms: OCPP on ws://{settings.host}:{running.gateway.port}/ocpp/{{stationId}}")
    api_url = f"http://{settings.host}:{settings.api_port}"
    print(f"csms: operator API on {api_url}/api/v1 (OpenAPI {api_url}/schema)")
    print(f"csms: health on {api_url}/healthz, metrics on {api_url}/metrics")
    if running.services is not None and not running.services.keys.required:
        print("csms: no API key configured: the API is OPEN (csms apikey add NAME)")
    print(f"csms: NATS {running.nats_url}" + (" (embedded)" if running.embedded else ""))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("draining")
    await asyncio.wait_for(running.stop(), 10)
