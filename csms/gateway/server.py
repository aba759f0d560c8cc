"""The OCPP WebSocket server: upgrade → one StationSession per station identity."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import picows
from picows import WSUpgradeRequest, WSUpgradeResponse, WSUpgradeResponseWithListener

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
    handshake_timeout_s: float = 5.0
    read_buffer_bytes: int = 2048


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
    ) -> None:
        self.codecs = codecs
        self.observer = observer
        self.context_for = context_for
        self.sink = sink
        self.session_config = session_config
        self.config = config
        self.sessions: dict[str, StationSession] = {}
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        any_codec = next(iter(self.codecs.values()))
        self._server = await picows.ws_create_server(
            self._upgrade,
            self.config.host,
            self.config.port,
            websocket_handshake_timeout=self.config.handshake_timeout_s,
            enable_auto_ping=True,
            auto_ping_idle_timeout=self.config.ping_interval_s,
            auto_ping_reply_timeout=self.config.ping_timeout_s,
            max_frame_size=any_codec.max_frame_bytes,
            read_buffer_init_size=self.config.read_buffer_bytes,
        )
        log.info("OCPP listener on ws://%s:%d/ocpp/{stationId}", self.config.host, self.port)

    def _upgrade(self, request: WSUpgradeRequest) -> WSUpgradeResponseWithListener:
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
        session = StationSession(
            station_id,
            self.codecs[version],
            self.context_for(station_id, version),
            self.sink,
            self.session_config,
            self._closed,
        )
        old = self.sessions.get(station_id)
        if old is not None:
            log.warning("station %s reconnected; closing its previous connection", station_id)
            old.close(picows.WSCloseCode.POLICY_VIOLATION, "replaced by a newer connection")
        self.sessions[station_id] = session
        if self.observer is not None:
            self.observer.opened(station_id, version, session.session_id)
        response = WSUpgradeResponse.create_101_response({"Sec-WebSocket-Protocol": token})
        return WSUpgradeResponseWithListener(response, session)

    def _closed(self, session: StationSession) -> None:
        if self.sessions.get(session.station_id) is session:
            del self.sessions[session.station_id]
        if self.observer is not None:
            self.observer.closed(session.station_id, session.session_id)

    async def stop(self) -> None:
        """Stop accepting, close every session with 1001, let in-flight work finish."""
        if self._server is not None:
            self._server.close()
        await asyncio.gather(*(s.stop() for s in list(self.sessions.values())))
        if self._server is not None:
            await self._server.wait_closed()
