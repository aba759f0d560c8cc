"""``build_app``: the litestar application of the operator API, and :class:`ApiServer`, which
serves it with uvicorn inside an already running event loop (``csms serve``, ``csms api``)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import socket
from collections.abc import Generator
from typing import Any

import msgspec
import uvicorn
from litestar import Litestar, Response, Router, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from csms import __version__
from csms.api import commands, configuration, convenience, registry, stations, tokens
from csms.api.auth import require_api_key
from csms.api.metrics import metrics, metrics_middleware
from csms.api.problems import EXCEPTION_HANDLERS
from csms.api.services import Services

log = logging.getLogger(__name__)


class Health(msgspec.Struct, kw_only=True):
    status: str
    components: dict[str, bool]


@get("/healthz", summary="Liveness and readiness")
async def healthz(services: Services) -> Response[Health]:
    """200 only when every component (OCPP listener, NATS, stream; with ``--workers``, every
    gateway process answering) is up; 503 otherwise."""
    components = await services.health()
    ok = all(components.values())
    body = Health(status="ok" if ok else "unavailable", components=components)
    return Response(body, status_code=200 if ok else 503)


def build_app(services: Services, store: Any = None) -> Litestar:
    """The API over ``services``. ``store`` (a ``streams.store.Store``): when given, the
    projections' analytics routes (``csms.api.analytics.router``) are mounted too."""
    api_handlers: list[Any] = [
        stations.list_stations,
        stations.get_station,
        commands.send_command,
        commands.get_command,
        commands.bulk_command,
        *convenience.HANDLERS,
        *configuration.HANDLERS,
        *tokens.HANDLERS,
        *registry.HANDLERS,
    ]
    dependencies: dict[str, Provide] = {
        "services": Provide(lambda: services, use_cache=True, sync_to_thread=False)
    }
    routers: list[Any] = [Router("/api/v1", route_handlers=api_handlers, guards=[require_api_key])]
    services.store = store
    if store is not None:
        # The projections' routes (their module; imported only when a store exists).
        analytics = importlib.import_module("csms.api.analytics")
        dependencies["store"] = Provide(lambda: store, use_cache=True, sync_to_thread=False)
        routers.append(Router("/", route_handlers=[analytics.router], guards=[require_api_key]))
    return Litestar(
        route_handlers=[healthz, metrics, *routers],
        dependencies=dependencies,
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        middleware=[metrics_middleware],
        state=State({"services": services}),
        openapi_config=OpenAPIConfig(
            title="csms operator API",
            version=__version__,
            path="/schema",
            security=[{"BearerAuth": []}],
            components=Components(
                security_schemes={
                    "BearerAuth": SecurityScheme(
                        type="http", scheme="bearer", description="csms apikey add NAME"
                    )
                }
            ),
        ),
        debug=False,
    )


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the host process owns SIGTERM and the drain."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        except SystemExit:  # uvicorn exits the process when it cannot bind: not ours to end
            raise RuntimeError(f"cannot listen on {self.config.host}:{self.config.port}") from None


class ApiServer:
    """Serve an app on ``host:port`` as a task of the running loop; ``stop`` is bounded."""

    def __init__(self, app: Litestar, host: str, port: int) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, loop="none", lifespan="off", log_level="warning"
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Return once the socket listens; raise if it cannot (e.g. the port is in use)."""
        self._task = asyncio.get_running_loop().create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                reason = self._task.exception() if not self._task.cancelled() else None
                raise RuntimeError(f"the API server did not start: {reason}")
            await asyncio.sleep(0.01)  # uvicorn offers no start event to await

    async def stop(self, timeout_s: float = 5.0) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except TimeoutError:
            self._server.force_exit = True
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._task, 1.0)
