"""The projector as a child process of ``csms serve``: its fetches, folds and inserts never take
the gateway's event loop or GIL. The child (``csms projections run --store-socket PATH``) owns
the store; the parent reads it through :class:`~streams.projections.remote.RemoteStore` (chDB:
one process per engine directory) or opens a server store itself (``http(s)://``).

The composition root passes the child's command line, so this module imports nothing of the
gateway. Stopping sends SIGTERM (the child stops after its batch in flight: an unacked batch is
redelivered next time), then SIGKILL after ``stop_timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field

from streams.children import end_with_parent, relay_output, stop_child
from streams.projections.remote import RemoteStore
from streams.store import Store, StoreError, StoreUrl

log = logging.getLogger(__name__)


@dataclass
class ProjectorProcess:
    store: Store
    """What the API reads (a RemoteStore for chDB)."""
    process: asyncio.subprocess.Process
    socket_dir: str | None = None
    relay: asyncio.Task[None] | None = None
    stop_timeout_s: float = 10.0
    _closed: bool = field(default=False, repr=False)

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    async def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            await self.store.close()
        await stop_child(self.process, self.stop_timeout_s, "projector")
        if self.relay is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.relay, 5)
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)


READY_LINE = b"csms: projecting "
"""What ``csms projections run`` prints once it projects (and serves its store socket)."""


async def start_projector_process(
    command: list[str], clickhouse_url: str
) -> ProjectorProcess | None:
    """Start ``command`` (+ ``--store-socket PATH`` for chDB) without waiting for it: the
    store's first read waits until the child says it projects (its ``READY_LINE``). None
    (logged) if a server store cannot be opened: the gateway runs without analytics."""
    target = StoreUrl.parse(clickhouse_url)
    socket_dir = tempfile.mkdtemp(prefix="csms-proj-") if target.kind == "chdb" else None
    path = os.path.join(socket_dir, "store.sock") if socket_dir else ""
    argv = [*command, "--store-socket", path] if path else command
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, start_new_session=True,
        preexec_fn=end_with_parent,
    )  # fmt: skip
    ready = asyncio.Event()
    relay = asyncio.get_running_loop().create_task(relay_output(process, ready, READY_LINE))
    store: Store
    if path:
        store = RemoteStore(path, target, ready=ready, child=process)
    else:
        try:
            store = await Store.open(clickhouse_url)
        except StoreError:
            log.exception("projections disabled: cannot open %s", clickhouse_url)
            await ProjectorProcess(RemoteStore("", target), process, socket_dir, relay=relay).stop()
            return None
    log.info("projections: projector process %d (%s)", process.pid, clickhouse_url)
    return ProjectorProcess(store, process, socket_dir, relay=relay)
