"""Gateway figures over NATS (streams.node_figures), on a real nats-server: what ``/metrics`` of a
``--workers`` group reads from the processes without an API port of their own."""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec
import nats
from nats.aio.msg import Msg

from streams.embedded import EmbeddedNats
from streams.node_figures import FiguresResponder, GatewayFigures, ask_figures, figures_subject


def _figures(node_id: str, stations: int) -> GatewayFigures:
    return GatewayFigures(
        node_id=node_id,
        stations=stations,
        events_stored=10 * stations,
        event_store_retries=0,
        events_in_flight=1,
    )


async def test_each_node_answers_with_figures_read_when_asked(nats_server: EmbeddedNats) -> None:
    nc = await nats.connect(nats_server.url)
    held = {"gw": 3, "gw-w1": 5}

    def reader(node: str) -> Callable[[], GatewayFigures]:
        return lambda: _figures(node, held[node])

    responders = [FiguresResponder(nc, reader(node)) for node in held]
    try:
        for responder in responders:
            await responder.start()
        assert await ask_figures(nc, ["gw", "gw-w1"]) == [
            ("gw", _figures("gw", 3)),
            ("gw-w1", _figures("gw-w1", 5)),
        ]
        held["gw-w1"] = 6  # read at each request, not when the responder started
        [(_, figures)] = await ask_figures(nc, ["gw-w1"])
        assert figures is not None
        assert figures.stations == 6
    finally:
        for responder in responders:
            await responder.stop()
        await nc.close()


async def test_a_node_that_does_not_answer_is_none_without_holding_up_the_others(
    nats_server: EmbeddedNats,
) -> None:
    nc = await nats.connect(nats_server.url)
    live = FiguresResponder(nc, lambda: _figures("gw", 2))
    # an answer on gw-w9's subject that names another node never stands for gw-w9
    wrong = _figures("gw-w8", 1)

    async def impersonate(msg: Msg) -> None:
        await msg.respond(msgspec.json.encode(wrong))

    impostor = await nc.subscribe(figures_subject("gw-w9"), cb=impersonate)
    try:
        await live.start()
        answers = await ask_figures(nc, ["gw", "gw-w9"], timeout_s=5.0)
        assert answers == [("gw", _figures("gw", 2)), ("gw-w9", None)]
        await impostor.unsubscribe()
        started = time.monotonic()
        answers = await ask_figures(nc, ["gw", "gw-w9"], timeout_s=5.0)
        assert answers == [("gw", _figures("gw", 2)), ("gw-w9", None)]
        assert time.monotonic() - started < 2.5  # no responders: known at once, not timed out
        await live.stop()
        assert await ask_figures(nc, ["gw"], timeout_s=5.0) == [("gw", None)]
    finally:
        await live.stop()
        await nc.close()
