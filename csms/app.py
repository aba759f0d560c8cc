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
import ssl
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import nats
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError

from csms import tls_audit
from csms.api.app import ApiServer, build_app
from csms.api.metrics import track_gateways
from csms.api.services import ApiServices
from csms.certificates import CertificateAuthority, ExpiredCertificateRenewals
from csms.domain.events import FrameEvent
from csms.gateway.auth import AuthConfig, Authenticator, Refusal
from csms.gateway.commands import execute as execute_command
from csms.gateway.listener import server_tls_context
from csms.gateway.server import Gateway, GatewayConfig
from csms.gateway.session import SessionConfig, StationSession
from csms.handlers.context import HandlerContext
from csms.ports import EventSink
from csms.protocol import SUPPORTED_VERSIONS, CodecOptions, codec_for
from csms.settings import Settings
from csms.workers import WorkerGroup, worker_settings
from streams import event_writer
from streams.commands import CommandServer
from streams.embedded import EmbeddedNats
from streams.event_writer import EventWriter, UnsupportedServerError
from streams.id_tokens import KvTokens
from streams.nats_servers import servers
from streams.node_figures import FiguresResponder, GatewayFigures, ask_figures
from streams.presence import PresenceReader, PresenceWriter, StationPresence
from streams.presence import open_bucket as open_presence
from streams.projections.process import ProjectorProcess, start_projector_process
from streams.provision import StreamSettings, ensure_stream
from streams.publisher import JetStreamPublisher
from streams.registry import StationRegistry
from streams.replacement import ReplacementNotices
from streams.store import default_url as default_clickhouse_url
from streams.transaction_ids import KvTransactionIds

log = logging.getLogger("csms")
T = TypeVar("T")


@dataclass
class Running:
    """A started CSMS: what tests and the CLI need to reach and stop it."""

    settings: Settings
    gateway: Gateway
    publisher: EventWriter | JetStreamPublisher
    nc: NatsClient
    nats_url: str
    embedded: EmbeddedNats | None
    api: ApiServer | None = None
    services: ApiServices | None = None
    presence: PresenceWriter | None = None
    commands: CommandServer | None = None
    figures: FiguresResponder | None = None
    replacements: ReplacementNotices | None = None
    """Its subscription ends with the final drain (a notice meanwhile closes a closing session)."""
    tokens: KvTokens | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    registry: StationRegistry | None = None
    projections: ProjectorProcess | None = None
    """The projector child process and the store the API reads (None: analytics unavailable)."""
    renewals: ExpiredCertificateRenewals | None = None
    """A18 renewals of expired certificates (None: no CA key, such stations are refused)."""
    workers: WorkerGroup | None = None
    """The other gateway processes of ``--workers N`` (None: this process is the only one)."""

    @property
    def healthy(self) -> bool:
        return self.nc.is_connected and self.publisher.healthy and not self.stopping.is_set()

    async def stop(self) -> None:
        """Drain: stop accepting, close sessions with 1001, flush NATS, stop the children."""
        self.stopping.set()
        workers = None  # they drain beside this process, and are gone before its NATS
        if self.workers is not None:
            workers = asyncio.get_running_loop().create_task(self.workers.stop())
        if self.renewals is not None:
            await self.renewals.stop()
        if self.commands is not None:
            await self.commands.stop(timeout_s=0)  # no new commands
        await self.gateway.stop()
        if isinstance(self.publisher, EventWriter):
            await self.publisher.close()  # after the drain: every session's events are stored
        if self.commands is not None:
            await self.commands.stop()  # running ones answer: their sessions closed
        if self.figures is not None:
            await self.figures.stop()
        # then the rest in this order; the projector after the drain and the API: nothing
        # reads it now
        for part in (self.presence, self.api, self.services, self.tokens, self.registry,
                     self.projections):  # fmt: skip
            if part is not None:
                await part.stop()
        if workers is not None:
            await workers
        with contextlib.suppress(Exception):
            await self.nc.drain()
        if self.embedded is not None:
            await self.embedded.stop()


STARTUP_RETRY_S = 60.0
"""How long start-up keeps retrying a JetStream request that times out or finds no responder
(a cluster electing a leader, a node restarting) before giving up."""


async def until_ready(
    what: str, attempt: Callable[[], Awaitable[T]], retry_s: float = STARTUP_RETRY_S
) -> T:
    """``attempt()`` until it succeeds; JetStream timeouts and NATS errors are retried with
    back-off for ``retry_s`` (the fault battery saw ``csms serve`` exit on one during an
    election), anything else, or the last failure after the deadline, is raised."""
    deadline = time.monotonic() + retry_s
    delay = 0.1
    while True:
        try:
            return await attempt()
        except (TimeoutError, NatsError) as err:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("%s not ready (%r); retrying in %.1fs", what, err, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def _event_sink(nc: NatsClient, url: str) -> EventWriter | JetStreamPublisher:
    """The lean event writer where the URL allows it (plain nats://), else nats-py."""
    if event_writer.supports(url):
        writer = EventWriter(url)
        try:
            await writer.start()
        except UnsupportedServerError as err:
            log.info("event writer not usable (%s); publishing events with nats-py", err)
        else:
            return writer
    publisher = JetStreamPublisher(nc)
    await publisher.start()
    return publisher


async def start(settings: Settings) -> Running:
    embedded = None
    url = settings.nats_url
    if url is None:
        embedded = EmbeddedNats(settings.data_dir / "nats")
        await embedded.start()
        url = embedded.url
    nc = await nats.connect(
        servers(url), max_reconnect_attempts=-1, reconnect_time_wait=0.5, name="csms"
    )
    js = nc.jetstream()
    stream = StreamSettings(
        replicas=settings.stream_replicas,
        max_age_s=settings.stream_max_age_s,
        duplicate_window_s=settings.stream_duplicate_window_s,
    )
    await until_ready("the event stream", lambda: ensure_stream(js, stream))
    publisher = await _event_sink(nc, url)
    transaction_ids = await until_ready(
        "the transaction-id bucket",
        lambda: KvTransactionIds.open(js, replicas=settings.stream_replicas),
    )
    tokens = await until_ready(
        "the token bucket",
        lambda: KvTokens.open(
            js, settings.stream_replicas, accept_unknown=settings.accept_unknown_tokens
        ),
    )
    await until_ready("the token watch", tokens.start)
    options = CodecOptions(max_frame_bytes=settings.max_frame_bytes)
    codecs = {v: codec_for(v, options) for v in reversed(SUPPORTED_VERSIONS)}

    def context_for(station_id: str, version: str) -> HandlerContext:
        # SignCertificate is Accepted only with a CA key to sign with (csms.certificates);
        # ``registry`` is bound below, before the gateway opens its first session.
        return HandlerContext(
            station_id,
            version,
            transaction_ids,
            tokens,
            settings.heartbeat_interval_s,
            certificates=registry if settings.tls_ca_key_file is not None else None,
        )

    node_id = settings.node_id or f"{socket.gethostname()}-{os.getpid()}"
    registry = await until_ready(
        "the station registry",
        lambda: StationRegistry.open(js, replicas=settings.stream_replicas),
    )
    await until_ready("the registry watch", registry.start)
    if settings.unknown_stations not in ("accept", "reject"):
        raise ValueError("unknown_stations is accept or reject")
    authority = None  # the CSO CA signs renewed station certificates (A02, A18)
    if settings.tls_ca_file is not None and settings.tls_ca_key_file is not None:
        authority = CertificateAuthority(
            settings.tls_ca_file, settings.tls_ca_key_file, settings.cso_name
        )
    auth = Authenticator(
        registry,
        AuthConfig(
            unknown_stations="reject" if settings.unknown_stations == "reject" else "accept",
            cso_name=settings.cso_name,
            certificate_renewal=authority is not None,
        ),
        on_refused=_security_recorder(publisher, node_id),
    )
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
            boot_timeout_s=settings.boot_timeout_s,
            tls_port=settings.tls_port,
            max_pending_handshakes_per_address=settings.max_pending_handshakes_per_address,
            reuse_port=settings.reuse_port or settings.workers > 1,
        ),
        auth=auth,
        tls=_tls_context(settings),
    )
    presence_bucket = await until_ready(
        "the presence bucket", lambda: open_presence(js, settings.stream_replicas)
    )
    replacements = ReplacementNotices(nc, node_id)  # one live session per station, all nodes
    presence = PresenceWriter(
        presence_bucket, node_id, on_replaced=_on_replaced(gateway, replacements, node_id)
    )
    gateway.observer = presence
    await replacements.start(gateway.replaced_elsewhere)
    await gateway.start()
    presence.start(lambda: len(gateway.sessions), settings.presence_beat_s)
    commands = CommandServer(
        nc, node_id, lambda request: execute_command(gateway.sessions, node_id, request)
    )
    await commands.start()
    figures = FiguresResponder(
        nc,
        lambda: GatewayFigures(
            node_id=node_id,
            stations=len(gateway.sessions),
            events_stored=publisher.published,
            event_store_retries=publisher.failures,
            events_in_flight=publisher.in_flight,
            healthy=publisher.healthy,
            sessions_opened=gateway.counts.opened,
            upgrades_refused={str(k): v for k, v in gateway.counts.refused.items()},
            replacements=gateway.counts.replacements,
        ),
    )
    await figures.start()
    running = Running(settings, gateway, publisher, nc, url, embedded, registry=registry)
    running.presence, running.commands, running.tokens = presence, commands, tokens
    running.replacements, running.figures = replacements, figures
    if authority is not None:
        renewals = ExpiredCertificateRenewals(
            nc, registry, PresenceReader(presence_bucket), authority, presence.flush
        )

        def on_probation(session: StationSession) -> None:
            station_id = session.station_id

            def renewed() -> None:  # the station's probation connection now (it may have
                current = gateway.sessions.get(station_id)  # reconnected meanwhile)
                if current is not None and current.context.boot_status == "Pending":
                    current.close(reason=RENEWED)

            renewals.start(station_id, renewed)

        gateway.on_probation = on_probation
        running.renewals = renewals
    if settings.workers > 1:
        running.workers = await _start_workers(settings, gateway, node_id, url)
    if settings.projections:
        clickhouse_url = settings.clickhouse_url or default_clickhouse_url(settings.data_dir)
        running.projections = await start_projector_process(
            _projector_command(url, clickhouse_url), clickhouse_url
        )
    if settings.api:
        running.services, running.api = await _serve_api(running)
    return running


def _on_replaced(
    gateway: Gateway, replacements: ReplacementNotices, node_id: str
) -> Callable[[StationPresence, StationPresence], Awaitable[None]]:
    """What the presence writer calls when an open displaced a session: the notice to its node,
    and, when this node took the station over from another one, D11's count here."""

    async def replaced(old: StationPresence, new: StationPresence) -> None:
        if old.node_id != new.node_id and new.node_id == node_id:
            gateway.replacement_seen(old.station_id)
        await replacements.tell(old, new)

    return replaced


async def _start_workers(
    settings: Settings, gateway: Gateway, node_id: str, nats_url: str
) -> WorkerGroup:
    """The other ``settings.workers - 1`` gateway processes, on this one's ports and NATS."""
    tls_port = gateway.tls_port if gateway.tls is not None else None
    group = WorkerGroup([
        worker_settings(settings, i, node_id, nats_url, gateway.port, tls_port)
        for i in range(1, settings.workers)
    ])  # fmt: skip
    await group.start()
    return group


RENEWED = "certificate renewed: reconnect with the new certificate"
"""Why an A18 probation connection is closed once its renewal was accepted."""


def _projector_command(nats_url: str, clickhouse_url: str) -> list[str]:
    """The projector as a child process (``csms projections run``): the gateway's loop and GIL
    never wait for a fold or an insert."""
    return [
        sys.executable,
        "-m",
        "csms",
        "projections",
        "run",
        "--nats-url",
        nats_url,
        "--clickhouse-url",
        clickhouse_url,
    ]


def _tls_context(settings: Settings) -> ssl.SSLContext | None:
    """Profiles 2/3: the wss:// listener's context, or None without a TLS port."""
    if settings.tls_port is None:
        return None
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        raise ValueError("tls_port needs tls_cert_file and tls_key_file")
    pairs = [(settings.tls_cert_file, settings.tls_key_file)]
    if settings.tls_ecdsa_cert_file is not None and settings.tls_ecdsa_key_file is not None:
        pairs.append((settings.tls_ecdsa_cert_file, settings.tls_ecdsa_key_file))
    if settings.tls_client_certificate not in ("optional", "required"):
        raise ValueError("tls_client_certificate is optional or required")
    required = settings.tls_client_certificate == "required"
    for cert_file, _ in pairs:  # A16: say what stations may refuse, do not refuse to start
        for problem in tls_audit.audit_files(cert_file, settings.tls_ca_file):
            log.warning("server certificate %s: %s (csms check-cert)", cert_file, problem)
    return server_tls_context(pairs, settings.tls_ca_file, required)


MAX_SECURITY_EVENTS_IN_FLIGHT = 1000


def _security_recorder(sink: EventSink, node_id: str) -> Callable[[Refusal], None]:
    """Refused connections become ``security`` events on the station's subject (A00.FR.323).
    The gateway decides synchronously; the event is stored in the background, at most
    ``MAX_SECURITY_EVENTS_IN_FLIGHT`` at a time (NATS down under attack: drop, do not pile up)."""
    tasks: set[asyncio.Task[int]] = set()

    def record(refusal: Refusal) -> None:
        if len(tasks) >= MAX_SECURITY_EVENTS_IN_FLIGHT:
            log.warning("security event dropped (store not keeping up): %s", refusal.reason)
            return
        event = FrameEvent(
            event_id=f"{node_id}-refused-{uuid.uuid4().hex}",
            kind="security",
            station_id=refusal.identity,
            ocpp_version="",
            direction="in",
            message_type=0,
            unique_id=None,
            action=None,
            raw="",
            received_at_ns=time.time_ns(),
            node_id=node_id,
            session_id="",
            seq=0,
            reason=f"{refusal.event}: HTTP {refusal.status}, profile {refusal.profile}, "
            f"from {refusal.address}: {refusal.reason}"
            if refusal.status
            else f"{refusal.event}: from {refusal.address}: {refusal.reason}",
        )
        task = asyncio.get_running_loop().create_task(sink.publish(event))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    return record


async def _serve_api(running: Running) -> tuple[ApiServices, ApiServer]:
    """The operator API (with ``/healthz`` and ``/metrics``) on the API port, in this loop."""
    settings = running.settings

    async def health() -> dict[str, bool]:
        components = {
            "ocpp_listener": not running.stopping.is_set(),
            "nats": running.nc.is_connected,
            "stream": running.publisher.healthy,
        }
        if running.workers is not None:  # each child alive, and answering as healthy now
            components["gateway_workers"] = running.workers.running and all(
                figures is not None and figures.healthy
                for _, figures in await ask_figures(running.nc, running.workers.node_ids)
            )
        return components

    services = await ApiServices.open(
        running.nc,
        health,
        replicas=settings.stream_replicas,
        beat_interval_s=settings.presence_beat_s,
        default_wait_s=settings.call_timeout_s,
    )
    track_gateways(lambda: _gateway_figures(running))
    store = running.projections.store if running.projections is not None else None
    server = ApiServer(build_app(services, store), settings.host, settings.api_port)
    await server.start()
    return services, server


async def _gateway_figures(running: Running) -> list[tuple[str, GatewayFigures | None]]:
    """This process's figures, read here, and each worker's, asked over NATS (``/metrics``)."""
    assert running.figures is not None
    own = running.figures.read()
    if running.workers is None:
        return [(own.node_id, own)]
    return [(own.node_id, own), *await ask_figures(running.nc, running.workers.node_ids)]


async def serve(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT, then drain within 10 s."""
    running = await start(settings)
    if not settings.api:  # a child of a --workers group (csms.workers waits for this line)
        print(f"csms: worker {running.gateway.session_config.node_id} listening", flush=True)
    else:
        _print_banner(running)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("draining")
    await asyncio.wait_for(running.stop(), 10)


def _print_banner(running: Running) -> None:
    settings = running.settings
    print(f"csms: OCPP on ws://{settings.host}:{running.gateway.port}/ocpp/{{stationId}}")
    if running.gateway.tls is not None:
        print(f"csms: OCPP on wss://{settings.host}:{running.gateway.tls_port}/ocpp/{{stationId}}")
    api_url = f"http://{settings.host}:{settings.api_port}"
    print(f"csms: operator API on {api_url}/api/v1 (OpenAPI {api_url}/schema)")
    print(f"csms: health on {api_url}/healthz, metrics on {api_url}/metrics")
    if running.services is not None and not running.services.keys.required:
        print("csms: no API key configured: the API is OPEN (csms apikey add NAME)")
    print(f"csms: NATS {running.nats_url}" + (" (embedded)" if running.embedded else ""))
    if running.workers is not None:
        print(f"csms: {settings.workers} gateway processes on the OCPP port "
              f"(this one and {', '.join(map(str, running.workers.pids))})")  # fmt: skip
    sys.stdout.flush()
