"""Composition root: settings → adapters (NATS, codecs, handlers) → gateway; nothing else.

The only module that wires ``streams`` adapters into the gateway's ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
from dataclasses import dataclass, field

import nats
from nats.aio.client import Client as NatsClient

from csms.domain.tokens import TokenPolicy
from csms.gateway.server import Gateway, GatewayConfig
from csms.gateway.session import SessionConfig
from csms.handlers.context import HandlerContext
from csms.protocol import SUPPORTED_VERSIONS, CodecOptions, codec_for
from csms.settings import Settings
from streams.embedded import EmbeddedNats
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
    health: asyncio.Server | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def healthy(self) -> bool:
        return self.nc.is_connected and self.publisher.healthy and not self.stopping.is_set()

    async def stop(self) -> None:
        """Drain: stop accepting, close sessions with 1001, flush NATS, stop the child."""
        self.stopping.set()
        await self.gateway.stop()
        if self.health is not None:
            self.health.close()
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
    tokens = TokenPolicy()
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
    await gateway.start()
    running = Running(settings, gateway, publisher, nc, url, embedded)
    running.health = await _serve_health(running)
    return running


async def _serve_health(running: Running) -> asyncio.Server:
    """``GET /healthz`` on the API port: 200 only when the listener, NATS and the stream are up.
    (The operator API replaces this minimal responder in its own issue.)"""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            request = await asyncio.wait_for(reader.readline(), 5)
            path = request.split(b" ")[1] if request.count(b" ") >= 2 else b""
            body: dict[str, object] = {"error": "not found"}
            status = "404 Not Found"
            if path == b"/healthz":
                ok = running.healthy
                status = "200 OK" if ok else "503 Service Unavailable"
                body = {
                    "status": "ok" if ok else "unavailable",
                    "nats": running.nc.is_connected,
                    "stream": running.publisher.healthy,
                    "stations": len(running.gateway.sessions),
                }
            data = json.dumps(body).encode()
            head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            head += f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
            writer.write(head.encode() + data)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, running.settings.host, running.settings.api_port)


async def serve(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT, then drain within 10 s."""
    running = await start(settings)
    print(f"csms: OCPP on ws://{settings.host}:{running.gateway.port}/ocpp/{{stationId}}")
    print(f"csms: health on http://{settings.host}:{settings.api_port}/healthz")
    print(f"csms: NATS {running.nats_url}" + (" (embedded)" if running.embedded else ""))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("draining")
    await asyncio.wait_for(running.stop(), 10)
