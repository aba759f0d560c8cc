"""1.6 transaction ids from the KV bucket: unique across processes, the same for a retry, and a
burst of starts does not contend on the counter (blocks per process)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client as NatsClient

from streams.embedded import EmbeddedNats
from streams.transaction_ids import BLOCK, KvTransactionIds


@pytest.fixture
async def two_processes(
    nats_server: EmbeddedNats,
) -> AsyncIterator[tuple[NatsClient, KvTransactionIds, KvTransactionIds]]:
    """Two connections, as two gateway processes would hold, each with its own id source."""
    connections = [await nats.connect(nats_server.url) for _ in range(2)]
    try:
        first, second = [
            await KvTransactionIds.open(nc.jetstream(), replicas=1) for nc in connections
        ]
        yield connections[0], first, second
    finally:
        for nc in connections:
            await nc.close()


async def test_a_burst_from_two_processes_gets_distinct_ids_and_retries_the_same(
    two_processes: tuple[NatsClient, KvTransactionIds, KvTransactionIds],
) -> None:
    nc, first, second = two_processes
    keys = [f"start-{i}" for i in range(600)]
    ids = await asyncio.wait_for(
        asyncio.gather(*(ids.allocate(k, "CP") for k in keys for ids in (first, second))),
        60,
    )
    by_key: dict[str, set[int]] = {}
    for key, number in zip([k for k in keys for _ in (0, 1)], ids, strict=True):
        by_key.setdefault(key, set()).add(number)
    assert all(len(numbers) == 1 for numbers in by_key.values())  # both saw one id per key
    assert len({n for numbers in by_key.values() for n in numbers}) == len(keys)  # distinct
    assert await first.allocate("start-7", "CP") == next(iter(by_key["start-7"]))  # a retry
    counter = await (await nc.jetstream().key_value("CSMS_TX16")).get("next")
    reserved = int(counter.value or b"0")
    assert reserved % BLOCK == 0  # whole blocks were reserved, not one number per start
    assert reserved <= 2 * len(keys) + 2 * BLOCK


async def test_the_station_an_id_was_allocated_for_is_known_to_every_process(
    two_processes: tuple[NatsClient, KvTransactionIds, KvTransactionIds],
) -> None:
    """M31: a StopTransaction's id is checked against who it was allocated for."""
    _, first, second = two_processes
    number = await first.allocate("start-owner", "CP-A")
    assert await second.started_by(number) == "CP-A"
    assert await second.started_by(number + 10 * BLOCK) is None  # never allocated
    assert await second.started_by(-1) is None
    assert await second.started_by(0) is None
