"""The OCPP WebSocket server: upgrade → one StationSession per station identity."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import picows
from picows import WSUpgradeRequest, WSUpgradeResponse, WSUpgradeResponseWithListener

from csms.gateway.auth import REPLACED_REPEATEDLY, Authenticator, Handshake, Verdict
from csms.gateway.limits import (
    MAX_PENDING_HANDSHAKES_PER_ADDRESS,
    PendingHandshakes,
    ReplacementWatch,
)
from csms.gateway.listener import ListenerOptions, Peer, listen, refusal
from csms.gateway.ports import SessionObserver
from csms.gateway.session import SessionConfig, StationSession
from csms.gateway.upgrade import (
    UpgradeRefusedError,
    choose_subprotocol,
    identity_from_path,
    session_key,
)
from csms.handlers.context import HandlerContext
from csms.ports import EventSink
from csms.protocol import Codec, version_of_subprotocol

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    host: str = "0.0.0.0"
    port: int = 9000
    ping_interval_s: float = 60.0
    ping_timeout_s: float = 30.0
    boot_timeout_s: float = 120.0
    """Close a connection silent this long after its upgrade (D2); 0: never."""
    flood_s: float = 10.0
    """Close a station whose frames keep queueing behind each other this long (D7: CALLs sent
    without waiting for answers, OCPP-J FR.01); 0: never."""
    handshake_timeout_s: float = 5.0
    read_buffer_bytes: int = 2048
    tls_port: int | None = None
    """wss:// listener (profiles 2/3) when a TLS context is given; 0 picks a free port."""
    max_pending_handshakes_per_address: int = MAX_PENDING_HANDSHAKES_PER_ADDRESS
    reuse_port: bool = False
    """Listen with SO_REUSEPORT, beside the other processes of a ``--workers`` group."""


@dataclass(slots=True)
class GatewayCounts:
    """What the gateway counted since it started (``/metrics``); nothing here is per frame."""

    opened: int = 0
    """Sessions opened (upgrades answered 101)."""
    refused: Counter[int] = field(default_factory=Counter)
    """Upgrades refused, by HTTP status (400 subprotocol, 401 authentication, 404 path, 429
    throttled)."""
    replacements: int = 0
    """Live sessions replaced by a newer connection, here or across nodes (D11's watch)."""


class Gateway:
    """Accepts station connections; newest connection of an identity replaces the old one."""

    def __init__(
        self,
        codecs: dict[str, Codec],
        context_for: Callable[[str, str], HandlerContext],
        sink: EventSink,
        session_config: SessionConfig,
        config: GatewayConfig,
        observer: SessionObserver | None = None,
        auth: Authenticator | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.auth = auth
        self.tls = tls
        self._tls_server: asyncio.Server | None = None
        self._pending = PendingHandshakes(config.max_pending_handshakes_per_address)
        self._replacements = ReplacementWatch()
        self.codecs = codecs
        self.observer = observer
        self.context_for = context_for
        self.sink = sink
        if auth is not None and session_config.on_abuse is None:
            session_config = replace(session_config, on_abuse=auth.abused)
        self.session_config = session_config
        self.config = config
        self.sessions: dict[str, StationSession] = {}
        self.on_probation: Callable[[StationSession], None] | None = None
        """A18: told of each session let in with an expired certificate (its BootNotification
        is answered Pending); ``csms.app`` starts the certificate renewal there."""
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.counts = GatewayCounts()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def tls_port(self) -> int:
        assert self._tls_server is not None
        port: int = self._tls_server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        any_codec = next(iter(self.codecs.values()))
        options = ListenerOptions(
            handshake_timeout_s=self.config.handshake_timeout_s,
            ping_interval_s=self.config.ping_interval_s,
            ping_timeout_s=self.config.ping_timeout_s,
            max_frame_bytes=any_codec.max_frame_bytes,
            read_buffer_bytes=self.config.read_buffer_bytes,
            auto_pong=False,  # sessions answer pings within a PingBudget (D8)
            reuse_port=self.config.reuse_port,
        )
        host, port = self.config.host, self.config.port
        self._pending = PendingHandshakes(self.config.max_pending_handshakes_per_address)
        self._server = await listen(self._upgrade, host, port, options, self._pending)
        log.info("OCPP listener on ws://%s:%d/ocpp/{stationId}", host, self.port)
        self._sweeper = asyncio.get_running_loop().create_task(self._keepalive())
        if self.tls is not None and self.config.tls_port is not None:
            self._tls_server = await listen(
                self._upgrade, host, self.config.tls_port, options, self._pending, self.tls,
                on_tls_failure=self.auth.tls_failed if self.auth is not None else None,
            )  # fmt: skip
            log.info("OCPP listener on wss://%s:%d/ocpp/{stationId}", host, self.tls_port)

    def _upgrade(
        self, request: WSUpgradeRequest, peer: Peer | None = None
    ) -> WSUpgradeResponseWithListener:
        answer = self._answer_upgrade(request, peer)
        if answer.listener is None:
            self.counts.refused[int(answer.response.status)] += 1
        else:
            self.counts.opened += 1
        return answer

    def _answer_upgrade(
        self, request: WSUpgradeRequest, peer: Peer | None
    ) -> WSUpgradeResponseWithListener:
        try:
            identity = identity_from_path(request.path.decode("latin-1"))
            token = choose_subprotocol(
                request.headers.get("Sec-WebSocket-Protocol"), list(self.codecs)
            )
            version = version_of_subprotocol(token)
            assert version is not None
            station_id = session_key(identity, version)
        except (UpgradeRefusedError, UnicodeDecodeError) as refused:
            status = refused.status if isinstance(refused, UpgradeRefusedError) else 404
            log.info("upgrade refused (%d): %s", status, refused)
            response = WSUpgradeResponse.create_error_response(status, str(refused).encode())
            return WSUpgradeResponseWithListener(response, None)
        probation = False
        if self.auth is not None:  # before anything else happens: no OCPP, no displacement
            peer = peer or Peer()
            verdict = self.auth.decide(
                Handshake(
                    station_id,  # 2.x: lower-cased, so events land on the station's subject
                    peer.address,
                    request.headers.get("Authorization"),
                    peer.tls,
                    peer.certificate,
                    case_insensitive=version != "1.6",
                )
            )
            if not verdict.accepted:
                log.info("upgrade of %s from %s refused (%d): %s", identity, peer.address,
                         verdict.status, verdict.reason)  # fmt: skip
                return refusal(verdict, self.auth.config.realm)
            probation = verdict.probation
        old = self.sessions.get(station_id)
        if old is not None and self._replacements.refusing(station_id):
            # D11: a replacement storm is refused before the upgrade; the live session stays.
            log.info("upgrade of %s refused (429): replaced too often", identity)
            return refusal(Verdict(429, "session replaced too often; retry later"), "")
        context = self.context_for(station_id, version)
        if probation:  # A18: an expired certificate let in, renewed before it is Accepted
            context = replace(context, boot_status="Pending")
        session = StationSession(
            station_id,
            self.codecs[version],
            context,
            self.sink,
            self.session_config,
            self._closed,
        )
        if old is not None:
            log.warning("station %s reconnected; closing its previous connection", station_id)
            old.close(picows.WSCloseCode.POLICY_VIOLATION, "replaced by a newer connection")
            self.replacement_seen(station_id, peer.address if peer is not None else "")
        self.sessions[station_id] = session
        if self.observer is not None:
            self.observer.opened(station_id, version, session.session_id)
        if probation and self.on_probation is not None:
            self.on_probation(session)
        response = WSUpgradeResponse.create_101_response({"Sec-WebSocket-Protocol": token})
        return WSUpgradeResponseWithListener(response, session)

    def replaced_elsewhere(self, station_id: str, session_id: str, node_id: str) -> bool:
        """The station holds a newer session on ``node_id`` (told by that node through
        presence, ``csms.app`` wires the transport): close ours with 1008 if ``session_id`` is
        still the one held here. A newer local session (the station came back here), or none
        (it closed first), stays as it is. A notice that never arrives (NATS away) leaves the
        old socket to the ping timeout, as before; True: a session was closed."""
        session = self.sessions.get(station_id)
        if session is None or session.session_id != session_id:
            return False
        log.warning(
            "station %s reconnected on %s; closing its previous connection", station_id, node_id
        )
        reason = f"replaced by a newer connection on {node_id}"
        # a close frame's reason is at most 123 bytes of UTF-8
        session.close(
            picows.WSCloseCode.POLICY_VIOLATION,
            reason.encode()[:123].decode(errors="ignore"),
        )
        self.replacement_seen(station_id)
        return True

    def replacement_seen(self, station_id: str, address: str = "") -> None:
        """One replacement of the station's live session: here (a newer connection to this
        node), or across nodes, seen by both of them (the node whose session was closed, in
        :meth:`replaced_elsewhere`; the node that took the station over, told by its presence
        writer, ``csms.app``). D11's watch counts them all: past 3 within 60 s the alert, and
        from :data:`~csms.gateway.limits.REPLACEMENTS_BEFORE_REFUSAL` on this node refuses a
        connection that would replace the session it holds. A station bouncing between nodes
        thus counts on each of them; a connection to a node that holds no session of the
        station is not refused (whether one is live elsewhere is not known before the upgrade
        without a read of presence)."""
        self.counts.replacements += 1
        if self._replacements.replaced(station_id) and self.auth is not None:
            self.auth.alert(station_id, address, REPLACED_REPEATEDLY,
                            "more than 3 replacements within 60 s")  # fmt: skip

    def _closed(self, session: StationSession) -> None:
        if self.sessions.get(session.station_id) is session:
            del self.sessions[session.station_id]
        if self.observer is not None:
            self.observer.closed(session.station_id, session.session_id)

    async def _keepalive(self) -> None:
        """One sweep over all sessions a few times per ping interval: idle stations are pinged
        and dead ones dropped without a timer or task per connection (memory per idle
        connection is a target: picows' own auto-ping runs a task per connection)."""
        interval_s, timeout_s = self.config.ping_interval_s, self.config.ping_timeout_s
        silent_s, flood_s = self.config.boot_timeout_s, self.config.flood_s
        shortest = min(interval_s, timeout_s, silent_s or interval_s, flood_s or interval_s)
        tick_s = min(max(shortest / 4, 0.05), 5.0)
        while True:
            await asyncio.sleep(tick_s)
            now = time.monotonic()
            for session in list(self.sessions.values()):
                session.keepalive(now, interval_s, timeout_s, silent_s, flood_s)

    async def stop(self) -> None:
        """Stop accepting, close every session with 1001, let in-flight work finish."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for server in (self._server, self._tls_server):
            if server is not None:
                server.close()
        await asyncio.gather(*(s.stop() for s in list(self.sessions.values())))
        for server in (self._server, self._tls_server):
            if server is not None:
                await server.wait_closed()
