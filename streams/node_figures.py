"""A gateway node's figures, asked for over NATS: how ``/metrics`` covers a ``--workers`` group.

Only the first process of ``csms serve --workers N`` has the API port; the other gateway
processes have no HTTP listener of their own. Every gateway process answers requests on
``csms.ctl.v1.<token(node)>.figures`` with its :class:`GatewayFigures`, read at that moment
(nothing is counted per frame for it), and the API's ``/metrics`` asks its own group's nodes at
each scrape, one request each, all at once, with a short timeout. A node that does not answer in
time is reported as down for that scrape (``csms_gateway_up 0``), never waited for longer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import msgspec
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

from streams.replacement import CONTROL_PREFIX
from streams.subjects import token

log = logging.getLogger(__name__)

ASK_TIMEOUT_S = 0.5
"""How long a scrape waits for a node's figures (Prometheus' default scrape timeout is 10 s)."""


class GatewayFigures(msgspec.Struct, kw_only=True, frozen=True):
    """One gateway process, read when asked."""

    node_id: str
    stations: int
    """Station sessions it holds."""
    events_stored: int
    """Event messages JetStream acknowledged."""
    event_store_retries: int
    """Event writes retried (ack timeout, error ack, no stream, lost connection)."""
    events_in_flight: int
    """Event messages written and not acknowledged yet (answers waiting on them)."""
    healthy: bool = True
    """Its event stream is up (the ``/healthz`` of a child; its NATS connection is, or it
    could not have answered)."""
    sessions_opened: int = 0
    """Since the process started: sessions opened (upgrades answered 101)."""
    upgrades_refused: dict[str, int] = msgspec.field(default_factory=dict)
    """Since the process started: upgrades refused, by HTTP status ("400", "429", ...)."""
    replacements: int = 0
    """Since the process started: live sessions replaced, here or across nodes."""


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(GatewayFigures).decode


def figures_subject(node_id: str) -> str:
    return f"{CONTROL_PREFIX}.{token(node_id)}.figures"


class FiguresResponder:
    """Answers this node's figure requests with ``read()``."""

    def __init__(self, nc: NatsClient, read: Callable[[], GatewayFigures]) -> None:
        self._nc = nc
        self.read = read
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(figures_subject(self.read().node_id), cb=self._answer)

    async def _answer(self, msg: Msg) -> None:
        if not msg.reply:
            return
        try:
            await msg.respond(_encode(self.read()))
        except (NatsError, OSError) as err:  # the asker times out and reports this node down
            log.debug("figures not sent: %s", err)

    async def stop(self) -> None:
        if self._sub is not None:
            sub, self._sub = self._sub, None
            try:
                await sub.unsubscribe()
            except (NatsError, OSError) as err:
                log.debug("figures subscription not ended cleanly: %s", err)


async def ask_figures(
    nc: NatsClient, node_ids: Sequence[str], timeout_s: float = ASK_TIMEOUT_S
) -> list[tuple[str, GatewayFigures | None]]:
    """Each node's figures, in ``node_ids``' order; None for a node that did not answer (no
    responder, timeout, an answer that is not figures, or one that names another node)."""

    async def one(node_id: str) -> GatewayFigures | None:
        try:
            reply = await nc.request(figures_subject(node_id), b"", timeout=timeout_s)
            figures = _decode(reply.data)
        except (NatsError, OSError, TimeoutError, msgspec.ValidationError, msgspec.DecodeError):
            return None
        return figures if figures.node_id == node_id else None

    answers = await asyncio.gather(*(one(node_id) for node_id in node_ids))
    return list(zip(node_ids, answers, strict=True))
