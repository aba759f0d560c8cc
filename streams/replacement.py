"""Session replacement across gateway nodes: the notice that tells a node to close a session.

A station that reconnects to another gateway node leaves its old socket open on the first one
(a half-open TCP connection is only found by pings). The presence writer of the new node sees
the old session in ``CSMS_PRESENCE`` when it writes the new one, and publishes a
:class:`SessionReplaced` on ``csms.ctl.v1.<token(old node)>.replaced``; that node closes the
session if, and only if, it still holds exactly that session (a newer local one stays). A node
is told about its own sessions too: after a local replacement (closed already) that closes
nothing; for an open whose write was delayed past a later session elsewhere it closes the
opening session (``streams.presence.opened_later_elsewhere``).

Fire-and-forget over core NATS: a notice sent while NATS is away, or while the old node is
reconnecting, can be lost. The old node's ping timeout (``ping_interval_s`` +
``ping_timeout_s``) then closes the half-open socket, as it did before notices existed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

import msgspec
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import Error as NatsError

from streams.presence import StationPresence
from streams.subjects import token

log = logging.getLogger(__name__)

CONTROL_PREFIX: Final = "csms.ctl.v1"


class SessionReplaced(msgspec.Struct, kw_only=True):
    """Close ``session_id`` of ``station_id``: a newer session (``by_session_id`` on
    ``by_node_id``) holds the station now."""

    station_id: str
    session_id: str
    by_node_id: str
    by_session_id: str


OnReplaced = Callable[[str, str, str], object]
"""``(station_id, old session_id, new node_id)``: the gateway closes that session if it is
still the one it holds (``csms.gateway.server.Gateway.replaced_elsewhere``)."""

_encode = msgspec.json.Encoder().encode
_notice = msgspec.json.Decoder(SessionReplaced)


def replaced_subject(node_id: str) -> str:
    return f"{CONTROL_PREFIX}.{token(node_id)}.replaced"


class ReplacementNotices:
    """Sends notices to other nodes (:meth:`tell`) and takes this node's own (:meth:`start`)."""

    def __init__(self, nc: NatsClient, node_id: str) -> None:
        self._nc = nc
        self._node_id = node_id
        self.received = 0
        """Notices taken and handed to the gateway so far (tests wait on it)."""

    async def tell(self, old: StationPresence, new: StationPresence) -> None:
        """Ask ``old.node_id`` to close ``old``'s session; never raises (see the module)."""
        notice = SessionReplaced(
            station_id=old.station_id,
            session_id=old.session_id,
            by_node_id=new.node_id,
            by_session_id=new.session_id,
        )
        try:
            await self._nc.publish(replaced_subject(old.node_id), _encode(notice))
        except (NatsError, OSError) as err:
            log.warning("replacement notice for %s not sent: %s", old.station_id, err)

    async def start(self, on_replaced: OnReplaced) -> None:
        """Hand this node's notices to ``on_replaced``; the subscription lives as long as the
        connection (nats-py renews it after a reconnect; its drain ends it)."""

        async def receive(msg: Msg) -> None:
            try:
                notice = _notice.decode(msg.data)
            except msgspec.DecodeError as err:
                log.warning("malformed replacement notice ignored: %s", err)
            else:
                on_replaced(notice.station_id, notice.session_id, notice.by_node_id)
            finally:
                self.received += 1

        await self._nc.subscribe(replaced_subject(self._node_id), cb=receive)
