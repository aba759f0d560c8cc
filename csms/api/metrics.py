"""Prometheus metrics of the API. Labels are bounded: route templates (never a concrete path),
methods, status classes, OCPP action names (a fixed set) and outcomes; never a station id."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from litestar import Response, get
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.node_figures import GatewayFigures

REQUESTS = Counter(
    "csms_api_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram("csms_api_request_seconds", "HTTP request latency", ["method", "route"])
COMMANDS = Counter("csms_commands_total", "Commands finished", ["action", "outcome"])
COMMAND_LATENCY = Histogram(
    "csms_command_seconds",
    "Time from request to outcome of a command",
    ["outcome"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

GatewayReader = Callable[[], Awaitable[list[tuple[str, GatewayFigures | None]]]]
"""Each gateway process of this ``csms serve`` (a ``--workers`` group: all of them), by node
id, with its figures, or None if it did not answer (``streams.node_figures.ask_figures``)."""

_gateways: GatewayReader | None = None


def track_gateways(read: GatewayReader) -> None:
    """Report the gateway processes at each scrape (``csms serve``; an API without a gateway
    reports none)."""
    global _gateways
    _gateways = read


class _GatewayCollector(Collector):
    """One scrape's gateway figures, one sample per process labelled with its node id."""

    def __init__(self, gateways: list[tuple[str, GatewayFigures | None]]) -> None:
        self.gateways = gateways

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "csms_gateway_up",
            "1 if the gateway process answered this scrape (its figures below), else 0",
            labels=["node"],
        )
        stations = GaugeMetricFamily(
            "csms_gateway_stations", "Station sessions held by the gateway process", labels=["node"]
        )
        stored = CounterMetricFamily(
            "csms_events_stored", "Event messages acknowledged by JetStream", labels=["node"]
        )
        retries = CounterMetricFamily(
            "csms_event_store_retries", "Event writes retried until stored", labels=["node"]
        )
        in_flight = GaugeMetricFamily(
            "csms_events_in_flight", "Event messages awaiting their PubAck", labels=["node"]
        )
        opened = CounterMetricFamily(
            "csms_gateway_sessions_opened", "Station sessions opened", labels=["node"]
        )
        refused = CounterMetricFamily(
            "csms_gateway_upgrades_refused",
            "WebSocket upgrades refused, by HTTP status",
            labels=["node", "status"],
        )
        replaced = CounterMetricFamily(
            "csms_gateway_replacements",
            "Live sessions replaced by a newer connection (here or on another node)",
            labels=["node"],
        )
        for node_id, figures in self.gateways:
            up.add_metric([node_id], 0 if figures is None else 1)
            if figures is None:
                continue
            stations.add_metric([node_id], figures.stations)
            stored.add_metric([node_id], figures.events_stored)
            retries.add_metric([node_id], figures.event_store_retries)
            in_flight.add_metric([node_id], figures.events_in_flight)
            opened.add_metric([node_id], figures.sessions_opened)
            for status, count in sorted(figures.upgrades_refused.items()):
                refused.add_metric([node_id, status], count)
            replaced.add_metric([node_id], figures.replacements)
        yield from (up, stations, stored, retries, in_flight, opened, refused, replaced)


def metrics_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_wrapper)
        finally:
            route = scope.get("path_template") or "unmatched"
            method = scope.get("method", "")
            REQUESTS.labels(method, route, f"{status // 100}xx").inc()
            LATENCY.labels(method, route).observe(time.perf_counter() - started)

    return middleware


@get("/metrics", include_in_schema=False)
async def metrics() -> Response[Any]:
    body = generate_latest(REGISTRY)
    if _gateways is not None:
        scrape = CollectorRegistry(auto_describe=False)
        scrape.register(_GatewayCollector(await _gateways()))
        body += generate_latest(scrape)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
