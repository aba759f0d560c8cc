"""The projections as ``csms serve`` runs them: the store, its schema, and the projector on a
NATS connection of its own (its fetches never queue behind the gateway's publishes).

Failure here never reaches the gateway: a store that cannot be opened (a chDB directory held by
another process, a ClickHouse server away) is logged and the CSMS runs without analytics; a
projector that loses NATS or ClickHouse retries by itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass

import nats
from nats.aio.client import Client as NatsClient

from streams import schema
from streams.nats_servers import servers
from streams.projections.projector import Projector, ProjectorConfig, durable_for
from streams.store import Store

log = logging.getLogger(__name__)


@dataclass
class Projections:
    store: Store
    projector: Projector
    nc: NatsClient

    async def stop(self) -> None:
        """Stop projecting (an unacked batch is redelivered next time), then close."""
        await self.projector.stop()
        with contextlib.suppress(Exception):
            await self.nc.close()
        with contextlib.suppress(Exception):
            await self.store.close()


async def start_projections(
    nats_url: str, clickhouse_url: str, config: ProjectorConfig | None = None
) -> Projections | None:
    """Open the store, apply the schema and start the projector; None (logged) if the store
    cannot be opened."""
    try:
        store = await Store.open(clickhouse_url)
        await schema.apply(store)
    except Exception:  # the gateway runs without analytics rather than not at all
        log.exception("projections disabled: cannot open the ClickHouse store %s", clickhouse_url)
        return None
    try:
        nc = await nats.connect(
            servers(nats_url),
            name="csms-projector",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
        )
    except Exception:
        await store.close()
        raise
    durable = await durable_for(store)
    projector = Projector(
        nc.jetstream(),
        store,
        dataclasses.replace(config or ProjectorConfig(), durable=durable),
        nats_url=nats_url,
    )
    projector.start()
    log.info("projections: %s (database %s, consumer %s)", clickhouse_url, store.database, durable)
    return Projections(store, projector, nc)
