"""``csms projections rebuild``: replay the whole stream into fresh tables and swap them in.

1. Fresh tables in a shadow database ``<db>__rebuild`` (schema applied from scratch).
2. An ephemeral consumer folds the stream from its first message up to the last sequence at
   the start of the rebuild, with the very code the live projector runs.
3. ``EXCHANGE TABLES`` swaps each projection table with its fresh twin (atomic per table on
   an Atomic database), then the shadow database (holding the old tables) is dropped.
4. The store's durable consumer (``csms-projections-<store id>``) is reset to start after that
   last sequence, so the live projector continues exactly where the rebuild ended (anything it
   re-inserts is deduplicated anyway).

Because folds are deterministic per stream message, the result equals the incremental one.
With the embedded engine, run it while ``csms serve`` is stopped (one process per chDB dir).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from streams import schema
from streams.projections.projector import Projector, ProjectorConfig, durable_for
from streams.store import Store
from streams.subjects import STREAM


@dataclass(frozen=True, slots=True)
class RebuildResult:
    last_seq: int
    messages: int
    rows: int
    poison: int


async def rebuild(
    js: JetStreamContext,
    store: Store,
    config: ProjectorConfig | None = None,
    durable: str | None = None,
) -> RebuildResult:
    """``durable``: the live projector's consumer to reset (default: this store's)."""
    base = config or ProjectorConfig()
    if durable is None:
        durable = await durable_for(store)
    shadow = f"{store.database}__rebuild"
    await store.command(f"DROP DATABASE IF EXISTS `{shadow}`")
    await schema.apply(store, shadow)
    await schema.apply(store)
    info = await js.stream_info(STREAM)
    last_seq = int(info.state.last_seq or 0)
    replay = Projector(js, store, replace(base, durable=None, start_seq=None), database=shadow)
    await replay.run_until(last_seq)
    for table in schema.PROJECTION_TABLES:
        await store.command(
            f"EXCHANGE TABLES `{store.database}`.`{table}` AND `{shadow}`.`{table}`"
        )
    await store.command(f"DROP DATABASE IF EXISTS `{shadow}`")
    with contextlib.suppress(NotFoundError):
        await js.delete_consumer(STREAM, durable)
    live = Projector(js, store, replace(base, durable=durable, start_seq=last_seq + 1))
    await js.add_consumer(STREAM, live.consumer_config())
    s = replay.stats
    return RebuildResult(last_seq, s.messages, s.rows, s.poison)
