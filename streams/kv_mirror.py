"""An in-memory copy of a small JetStream key-value bucket, kept current by a watch.

For buckets read on every request or every Authorize (API keys, id tokens): a dictionary lookup
instead of a NATS round trip. ``start`` returns once the current values are loaded; later
changes arrive within milliseconds. Callers that must not miss a write made an instant ago fall
back to a direct ``get`` (see ``streams.api_keys``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.errors import Error as NatsError
from nats.js.kv import KeyValue

from streams.kv_initial import ends_initial

log = logging.getLogger(__name__)


class KvMirror:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        self.values: dict[str, bytes] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout_s: float = 10.0) -> None:
        loaded = asyncio.get_running_loop().create_future()
        self._task = asyncio.get_running_loop().create_task(self._run(loaded))
        await asyncio.wait_for(asyncio.shield(loaded), timeout_s)

    async def _run(self, loaded: asyncio.Future[None]) -> None:
        while True:
            try:
                watcher = await self.kv.watch(">")
                async for entry in watcher:
                    if entry is not None:
                        if entry.operation is not None or not entry.value:
                            self.values.pop(entry.key, None)
                        else:
                            self.values[entry.key] = entry.value
                    if not loaded.done() and await ends_initial(watcher, entry):
                        loaded.set_result(None)
            except (
                NatsError,
                OSError,
                TimeoutError,
            ) as err:  # NATS away: the watch is rebuilt when it returns
                log.warning("key-value watch failed (%s); retrying", err)
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
