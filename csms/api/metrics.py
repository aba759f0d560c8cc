"""Prometheus metrics of the API. Labels are bounded: route templates (never a concrete path),
methods, status classes, OCPP action names (a fixed set) and outcomes; never a station id."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from litestar import Response, get
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

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

GATEWAY_STATIONS = Gauge(
    "csms_gateway_stations", "Station sessions held by this process's gateway (0: API only)"
)


def track_gateway_stations(count: Callable[[], int]) -> None:
    """Report the gateway's session count at each scrape (``csms serve``)."""
    GATEWAY_STATIONS.set_function(count)


@dataclass(frozen=True, slots=True)
class EventSinkFigures:
    stored: int
    """Stream messages JetStream acknowledged."""
    retries: int
    """Writes retried (ack timeout, error ack, no stream, lost connection)."""
    in_flight: int
    """Messages written and not acknowledged yet (answers waiting on them)."""


class _EventSinkCollector(Collector):
    """Read at scrape time from the gateway's event sink: nothing is counted per frame."""

    source: Callable[[], EventSinkFigures] | None = None

    def collect(self) -> Iterator[Metric]:
        if self.source is None:
            return
        figures = self.source()
        yield CounterMetricFamily(
            "csms_events_stored", "Event messages acknowledged by JetStream", figures.stored
        )
        yield CounterMetricFamily(
            "csms_event_store_retries", "Event writes retried until stored", figures.retries
        )
        yield GaugeMetricFamily(
            "csms_events_in_flight", "Event messages awaiting their PubAck", figures.in_flight
        )


_EVENT_SINK = _EventSinkCollector()
REGISTRY.register(_EVENT_SINK)


def track_event_sink(read: Callable[[], EventSinkFigures]) -> None:
    """Report the gateway's event sink at each scrape (``csms serve``)."""
    _EVENT_SINK.source = read


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


@get("/metrics", include_in_schema=False, sync_to_thread=False)
def metrics() -> Response[Any]:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
