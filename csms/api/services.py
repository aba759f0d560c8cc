"""What the API handlers use: NATS adapters from ``streams`` and a health probe, built once per
process (``ApiServices.open``) and handed to :func:`csms.api.app.build_app`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from litestar.di import NamedDependency
from nats.aio.client import Client as NatsClient

from streams.api_keys import ApiKeys
from streams.commands import CommandLog, CommandRouter
from streams.id_tokens import KvTokens
from streams.presence import PresenceReader
from streams.presence import open_bucket as open_presence
from streams.registry import StationRegistry

Health = Callable[[], Awaitable[dict[str, bool]]]
"""Component → up; ``/healthz`` answers 200 only when every component is up."""


@dataclass
class ApiServices:
    nc: NatsClient
    presence: PresenceReader
    router: CommandRouter
    log: CommandLog
    keys: ApiKeys
    tokens: KvTokens
    health: Health
    registry: StationRegistry | None = None
    """The station registry, read and written through NATS (no in-memory copy here)."""
    default_wait_s: float = 30.0
    max_wait_s: float = 300.0
    bulk_concurrency: int = 64
    store: Any = None
    """The projections' ``streams.store.Store`` (boot info, connector status), if any."""
    background: set[asyncio.Task[None]] = field(default_factory=set)
    background_gate: asyncio.Semaphore = field(init=False)
    """At most ``bulk_concurrency`` commands of ``?wait=0`` run at once (the rest: pending)."""

    def __post_init__(self) -> None:
        self.background_gate = asyncio.Semaphore(self.bulk_concurrency)

    @classmethod
    async def open(
        cls,
        nc: NatsClient,
        health: Health,
        replicas: int = 1,
        beat_interval_s: float = 10.0,
        default_wait_s: float = 30.0,
    ) -> ApiServices:
        js = nc.jetstream()
        presence = PresenceReader(await open_presence(js, replicas), beat_interval_s)
        services = cls(
            nc=nc,
            presence=presence,
            router=CommandRouter(nc, presence),
            log=await CommandLog.open(js, replicas),
            keys=await ApiKeys.open(js, replicas),
            tokens=await KvTokens.open(js, replicas),
            health=health,
            registry=await StationRegistry.open(js, replicas),
            default_wait_s=default_wait_s,
        )
        await services.keys.start()
        return services

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run a command in the background (``?wait=0``), keeping a reference until done."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def stop(self, timeout_s: float = 5.0) -> None:
        if self.background:
            await asyncio.wait(list(self.background), timeout=timeout_s)
        for task in list(self.background):
            task.cancel()
        with contextlib.suppress(Exception):
            await self.keys.stop()


Services = NamedDependency[ApiServices]
"""How a handler asks for the services: ``services: Services``."""
