"""``csms serve --workers N``: N gateway processes serve the OCPP port(s) together.

Every process of the group listens with SO_REUSEPORT, so the kernel spreads new connections
over them; all of them publish to one NATS, where the state the answers need already lives
(transaction ids, tokens, registry, presence: several gateways serve one fleet, ADR 0005). The
first process is ``csms serve`` itself (with the API, the projector and the embedded
nats-server); the others are children started here with its settings (:func:`worker_settings`),
passed as ``CSMS_*`` variables, restarted if they die and drained when it stops.

One process is one core at most (one event loop, one GIL) and has its own open-files limit:
workers are how one machine holds more stations, or answers more of them, than one process can.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import fields

from csms.settings import Settings
from streams.children import end_with_parent, relay_output, stop_child

log = logging.getLogger(__name__)

READY_LINE = b"csms: worker "
"""What a child prints once its listener is up (``csms.app.serve``)."""
RESTART_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0)
"""Back-off between restarts of a worker that keeps dying; reset after a minute of running."""
HEALTHY_RUN_S = 60.0


def worker_settings(
    settings: Settings, index: int, node_id: str, nats_url: str, ocpp_port: int,
    tls_port: int | None,
) -> Settings:  # fmt: skip
    """The settings of child ``index`` (1 .. workers-1): the parent's, on its NATS and its
    actual ports (a port 0 was resolved by the parent), without API or projector, and with a
    node id of its own that stays the same across restarts (presence closes what a restarted
    worker's previous life left open)."""
    return dataclasses.replace(
        settings,
        workers=1,
        reuse_port=True,
        api=False,
        projections=False,
        nats_url=nats_url,
        ocpp_port=ocpp_port,
        tls_port=tls_port,
        node_id=f"{node_id}-w{index}",
    )


def settings_environment(settings: Settings, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` with every setting as its ``CSMS_*`` variable (unset ones removed), so that a
    child's ``settings.load`` (no config file, no flags) gives back exactly ``settings``."""
    names = {f"CSMS_{f.name.upper()}": f.name for f in fields(Settings)}
    env = {key: value for key, value in base.items() if key not in names}
    for key, name in names.items():
        value = getattr(settings, name)
        if value is None:
            continue
        env[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return env


class WorkerError(RuntimeError):
    """A worker exited before its listener was up."""


class WorkerGroup:
    """The children of a ``--workers`` group: started (and waited for), kept running, drained."""

    def __init__(self, children: list[Settings], stop_timeout_s: float = 9.0) -> None:
        self._children = children
        self._stop_timeout_s = stop_timeout_s
        self._processes: list[asyncio.subprocess.Process | None] = [None] * len(children)
        self._supervisors: list[asyncio.Task[None]] = []
        self._relays: set[asyncio.Task[None]] = set()
        self._stopping = False

    @property
    def running(self) -> bool:
        """Every child is up (``/healthz``: a restarting worker is a component down)."""
        return all(p is not None and p.returncode is None for p in self._processes)

    @property
    def node_ids(self) -> list[str]:
        return [settings.node_id or "" for settings in self._children]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p is not None and p.returncode is None]

    async def start(self, ready_timeout_s: float = 60.0) -> None:
        """Start every child and wait until each one listens; then keep them running."""
        try:
            await asyncio.wait_for(
                asyncio.gather(*(self._spawn(i) for i in range(len(self._children)))),
                ready_timeout_s,
            )
        except (WorkerError, TimeoutError):
            await self.stop()
            raise
        loop = asyncio.get_running_loop()
        self._supervisors = [
            loop.create_task(self._supervise(i)) for i in range(len(self._children))
        ]

    async def _spawn(self, index: int) -> None:
        settings = self._children[index]
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "csms", "serve",
            env=settings_environment(settings, os.environ),
            stdout=asyncio.subprocess.PIPE, start_new_session=True, preexec_fn=end_with_parent,
        )  # fmt: skip
        self._processes[index] = process
        ready = asyncio.Event()
        relay = asyncio.get_running_loop().create_task(relay_output(process, ready, READY_LINE))
        self._relays.add(relay)
        relay.add_done_callback(self._relays.discard)
        await ready.wait()
        if relay.done():  # ready because its output ended: it exited before listening
            code = await process.wait()
            raise WorkerError(f"gateway worker {settings.node_id} exited ({code})")
        log.info("gateway worker %s: process %d", settings.node_id, process.pid)

    async def _supervise(self, index: int) -> None:
        """Restart child ``index`` whenever it dies, with back-off while it keeps dying."""
        failures = 0
        started = time.monotonic()
        while True:
            process = self._processes[index]
            assert process is not None
            code = await process.wait()
            if self._stopping:
                return
            failures = 0 if time.monotonic() - started > HEALTHY_RUN_S else failures + 1
            delay = RESTART_DELAYS_S[min(failures, len(RESTART_DELAYS_S) - 1)]
            log.error("gateway worker %s exited (%s); restarting in %.0f s",
                      self._children[index].node_id, code, delay)  # fmt: skip
            await asyncio.sleep(delay)  # stop() cancels this task
            started = time.monotonic()
            with contextlib.suppress(WorkerError):
                await self._spawn(index)

    async def stop(self) -> None:
        """SIGTERM every child (each drains: stop accepting, close with 1001, flush), SIGKILL
        what is still running after ``stop_timeout_s``."""
        self._stopping = True
        for task in self._supervisors:
            task.cancel()
        live = [p for p in self._processes if p is not None]
        await asyncio.gather(
            *(stop_child(process, self._stop_timeout_s, "gateway worker") for process in live)
        )
