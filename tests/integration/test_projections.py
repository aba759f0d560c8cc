"""Projector against a real nats-server and the real ClickHouse engine (chDB).

chDB hosts one engine per process: every test here uses the process-wide engine directory of
``tests.chdb_engine`` with its own database(s); the restart test runs the second life of the
store in a subprocess (a fresh engine over the same directory). No sleeps as synchronisation:
conditions are polled with a deadline.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from csms import app
from csms.domain.events import FrameEvent
from streams import envelope, queries, schema
from streams.embedded import EmbeddedNats
from streams.projections.projector import (
    InjectedCrashError,
    Projector,
    ProjectorConfig,
    fold_batch,
    write_rows,
)
from streams.projections.rebuild import rebuild
from streams.provision import StreamSettings, ensure_stream
from streams.store import Store
from streams.subjects import ALL_EVENTS, STREAM, subject
from tests.chdb_engine import ENGINE_DIR, engine_url, fresh_database
from tests.integration.conftest import loopback_settings, ws_url
from tests.integration.station import Station
from tests.projection_events import ScriptedStation, meter_value, sampled_16

FAST = ProjectorConfig(max_messages=50, max_delay_s=0.05, fetch_timeout_s=0.1, ack_wait_s=1.0)
REPLAY = dataclasses.replace(FAST, durable=None)
"""An ephemeral consumer from the first event: a replay."""


async def until(condition: Callable[[], Awaitable[bool]], timeout_s: float = 120.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.02)


@pytest.fixture
async def js(nats_server: EmbeddedNats) -> AsyncIterator[JetStreamContext]:
    nc: NatsClient = await nats.connect(nats_server.url)
    context = nc.jetstream()
    await ensure_stream(context, StreamSettings())
    yield context
    await nc.close()


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    s = await Store.open(engine_url(), database=fresh_database("proj"))
    await schema.apply(s)
    yield s
    await s.command(f"DROP DATABASE IF EXISTS `{s.database}`")
    await s.close()


def history(stations: int = 3, transactions: int = 4) -> list[list[FrameEvent]]:
    """Messages as the gateway writes them: 1.6 and 2.0.1 stations, transactions with meter
    values, a poison event, status and boot."""
    messages: list[list[FrameEvent]] = []
    for n in range(stations):
        st = ScriptedStation(f"CP{n}", version="1.6", session_id=f"s{n}")
        messages.append([st.connected()])
        boot = {"chargePointVendor": "ACME", "chargePointModel": f"M{n % 2}"}
        messages.append(st.answered("BootNotification", boot, {"status": "Accepted"}))
        for t in range(transactions):
            tx = n * 100 + t
            start = {
                "connectorId": 1,
                "idTag": "T",
                "meterStart": 1000 * t,
                "timestamp": f"2026-01-0{t + 1}T10:00:00Z",
            }
            messages.append(st.answered("StartTransaction", start, {"transactionId": tx}))
            mv = {
                "connectorId": 1,
                "transactionId": tx,
                "meterValue": [
                    meter_value(f"2026-01-0{t + 1}T10:30:00Z", sampled_16(str(t + 0.5), unit="kWh"))
                ],
            }
            messages.append(st.answered("MeterValues", mv, {}))
            stop = {
                "transactionId": tx,
                "meterStop": 1000 * t + 900,
                "timestamp": f"2026-01-0{t + 1}T11:00:00Z",
            }
            messages.append(st.answered("StopTransaction", stop, {}))
        status = {"connectorId": 1, "errorCode": "GroundFailure", "status": "Faulted"}
        messages.append(st.answered("StatusNotification", status, {}))
        messages.append([st.call("StopTransaction", {"meterStop": 1})])  # poison: no id
    v2 = ScriptedStation("CS-2", version="2.0.1", session_id="v2")
    started = {
        "eventType": "Started",
        "timestamp": "2026-01-01T08:00:00Z",
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "A"},
        "meterValue": [
            {
                "timestamp": "2026-01-01T08:00:00Z",
                "sampledValue": [{"value": 1.0, "unitOfMeasure": {"unit": "kWh"}}],
            }
        ],
    }
    messages.append(v2.answered("TransactionEvent", started, {}))
    return messages


async def publish(
    js: JetStreamContext, messages: list[list[FrameEvent]], *, exchanges: bool = False
) -> int:
    return (await published(js, messages, exchanges=exchanges))[-1][0]


async def published(
    js: JetStreamContext, messages: list[list[FrameEvent]], *, exchanges: bool = False
) -> list[tuple[int, str, bytes, int]]:
    """Publish; ``exchanges``: each CALL and answer as the gateway writes them (envelope
    version 2, which the compiled fold takes) instead of version 1 arrays. The messages as
    the projector folds them (stream sequence, subject, data, stored ms = 0)."""
    out = []
    for events in messages:
        data = as_exchange(events) if exchanges else envelope.encode_many(events)
        ack = await js.publish(subject(events[0].station_id), data)
        out.append((ack.seq, subject(events[0].station_id), data, 0))
    return out


def as_exchange(events: list[FrameEvent]) -> bytes:
    if len(events) != 2 or events[0].direction != "in" or events[0].message_type != 2:
        return envelope.encode_many(events)
    call, answer = events
    assert call.unique_id is not None
    assert call.action is not None
    return msgspec.json.encode(
        envelope.Exchange(
            type=envelope.EXCHANGE_TYPE,
            version=2,
            node_id=call.node_id,
            session_id=call.session_id,
            station_id=call.station_id,
            ocpp_version=call.ocpp_version,
            seq=call.seq,
            unique_id=call.unique_id,
            action=call.action,
            call_at_ns=call.received_at_ns,
            answer_type=answer.message_type,
            answer_at_ns=answer.received_at_ns,
            call=msgspec.Raw(call.raw.encode()),
            answer=msgspec.Raw(answer.raw.encode()),
        )
    )


async def snapshot(store: Store) -> dict[str, Any]:
    """Everything the API can return, in a fixed order."""
    tables = {}
    for table in schema.PROJECTION_TABLES:
        if table == "transaction_agg":
            continue  # partial aggregates: compared through `transactions` below
        if table == "poison_events":
            sql = "SELECT stream_seq, idx, error FROM poison_events FINAL ORDER BY ALL"
        else:
            sql = f"SELECT * FROM {table} FINAL ORDER BY ALL"
        tables[table] = await store.query(sql)
    page = await queries.list_transactions(store, limit=1000)
    tables["transactions"] = page.items
    tables["station_status"] = await queries.station_status(store)
    return tables


async def projected(store: Store, projector: Projector, last_seq: int) -> None:
    async def done() -> bool:
        return projector.stats.last_seq >= last_seq

    await until(done)


async def test_published_events_become_rows(js: JetStreamContext, store: Store) -> None:
    last = await publish(js, history())
    projector = Projector(js, store, FAST)
    projector.start()
    try:
        await projected(store, projector, last)
    finally:
        await projector.stop()
    page = await queries.list_transactions(store, limit=1000)
    assert len(page.items) == 3 * 4 + 1
    tx = await queries.get_transaction(store, "102", "CP1")
    assert tx is not None
    assert (tx["status"], tx["energy_wh"]) == ("completed", 900.0)
    assert [m["value_base"] for m in tx["meter_values"]] == [2500.0]
    (poison,) = await store.query("SELECT count() AS n FROM poison_events FINAL")
    assert poison["n"] == 3
    status = await queries.station_status(store, "CP0")
    assert status[0]["connected"] is True
    assert status[0]["boot"]["vendor"] == "ACME"
    assert status[0]["connectors"][0]["status"] == "Faulted"
    events = await queries.list_events(store, station_id="CP0", action="StartTransaction", limit=2)
    assert [e["message_type"] for e in events.items] == [3, 2]
    assert events.items[0]["payload"] == {"transactionId": 3}
    assert events.next_cursor is not None


WIRE = pytest.mark.parametrize("wire", [False, True], ids=["nats-py", "wire"])
"""Both data paths of the projector: nats-py's fetch, and streams.projections.pull."""


@WIRE
async def test_live_events_arrive_while_the_projector_runs(
    js: JetStreamContext, store: Store, nats_server: EmbeddedNats, wire: bool
) -> None:
    projector = Projector(js, store, FAST, nats_url=nats_server.url if wire else None)
    assert (projector.nats_url is not None) == wire
    projector.start()
    try:
        first = await publish(js, history(stations=1, transactions=1))
        await projected(store, projector, first)
        second = await publish(js, history(stations=2, transactions=2)[-6:])
        await projected(store, projector, second)
    finally:
        await projector.stop()
    (row,) = await store.query("SELECT max(stream_seq) AS s FROM events FINAL")
    assert row["s"] == second


@pytest.mark.parametrize("exchanges", [False, True], ids=["v1", "exchanges"])
async def test_replay_twice_gives_identical_results(
    js: JetStreamContext, store: Store, exchanges: bool
) -> None:
    last = await publish(js, history(), exchanges=exchanges)
    for _ in range(2):
        replay = Projector(js, store, REPLAY)
        await replay.run_until(last)
    twice = await snapshot(store)
    other = await Store.open(engine_url(), database=fresh_database("once"))
    try:
        await schema.apply(other)
        await Projector(js, other, REPLAY).run_until(last)
        assert await snapshot(other) == twice
    finally:
        await other.command(f"DROP DATABASE `{other.database}`")
        await other.close()


async def test_rebuild_equals_incremental_and_the_live_projector_continues(
    js: JetStreamContext, store: Store
) -> None:
    messages = history()
    last = await publish(js, messages[: len(messages) // 2])
    live = Projector(js, store, FAST)
    live.start()
    await projected(store, live, last)
    last = await publish(js, messages[len(messages) // 2 :])
    await projected(store, live, last)
    await live.stop()
    incremental = await snapshot(store)
    result = await rebuild(js, store, FAST, durable=FAST.durable)
    assert result.last_seq == last
    assert await snapshot(store) == incremental
    # the durable consumer now starts after the rebuild: new events project, old ones do not
    more = await publish(js, [[ScriptedStation("LATE").connected()]])
    again = Projector(js, store, FAST)
    again.start()
    try:
        await projected(store, again, more)
    finally:
        await again.stop()
    assert again.stats.messages == 1


async def test_exchanges_project_as_the_python_fold_folds_them(
    js: JetStreamContext, store: Store
) -> None:
    """Version 2 exchanges through the projector (the compiled fold, Native blocks) give what
    the Python fold (the reference) writes for the same stream messages."""
    messages = await published(js, history(), exchanges=True)
    await Projector(js, store, REPLAY).run_until(messages[-1][0])
    assert store.accepts_native
    reference = await Store.open(engine_url(), database=fresh_database("pyfold"))
    try:
        await schema.apply(reference)
        await write_rows(reference, fold_batch(messages))
        assert await snapshot(store) == await snapshot(reference)
    finally:
        await reference.command(f"DROP DATABASE `{reference.database}`")
        await reference.close()


@WIRE
@pytest.mark.parametrize("exchanges", [False, True], ids=["v1", "exchanges"])
async def test_crash_between_insert_and_ack_gives_no_duplicates_and_nothing_missing(
    js: JetStreamContext, store: Store, nats_server: EmbeddedNats, wire: bool, exchanges: bool
) -> None:
    url = nats_server.url if wire else None
    last = await publish(js, history(), exchanges=exchanges)
    crashes = 0

    async def crash_once(_: int) -> None:
        nonlocal crashes
        if crashes == 0:
            crashes += 1
            raise InjectedCrashError("killed after insert, before ack")

    doomed = Projector(js, store, FAST, after_insert=crash_once, nats_url=url)
    doomed.start()
    with pytest.raises(InjectedCrashError):
        await doomed.wait()
    (inserted,) = await store.query("SELECT count() AS n FROM events")
    assert inserted["n"] > 0  # the batch is in, its ack never left
    restarted = Projector(js, store, FAST, nats_url=url)
    restarted.start()
    try:
        await projected(store, restarted, last)
    finally:
        await restarted.stop()
    assert restarted.stats.messages >= len(history())  # the unacked batch came again
    reference = await Store.open(engine_url(), database=fresh_database("ref"))
    try:
        await schema.apply(reference)
        await Projector(js, reference, REPLAY).run_until(last)
        assert await snapshot(store) == await snapshot(reference)
    finally:
        await reference.command(f"DROP DATABASE `{reference.database}`")
        await reference.close()
    page = await queries.list_transactions(store, limit=1000)
    keys = [(t["station_id"], t["transaction_id"]) for t in page.items]
    assert len(keys) == len(set(keys)) == 13


async def test_data_survives_a_restart_of_the_engine(
    js: JetStreamContext, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    """Two lives of a store directory, each in its own process (chDB: one engine each)."""
    last = await publish(js, history(stations=2, transactions=2))
    data_dir = tmp_path / "clickhouse"
    script = textwrap.dedent(
        """
        import asyncio, json, sys
        import nats
        from streams import schema, queries
        from streams.store import Store
        from streams.projections.projector import Projector, ProjectorConfig

        async def main(url, nats_url, last, project):
            store = await Store.open(url)
            await schema.apply(store)
            if project:
                nc = await nats.connect(nats_url)
                config = ProjectorConfig(max_delay_s=0.05, fetch_timeout_s=0.1)
                await Projector(nc.jetstream(), store, config).run_until(last)
                await nc.close()
            page = await queries.list_transactions(store, limit=1000)
            rows = await store.query("SELECT count() AS n FROM events FINAL")
            print(json.dumps({"transactions": len(page.items), "events": rows[0]["n"]}))
            await store.close()

        asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"))
        """
    )
    outputs = []
    for project in ("1", "0"):
        done = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-c",
                script,
                f"chdb://{data_dir}",
                nats_server.url,
                str(last),
                project,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        outputs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert outputs[0] == outputs[1]
    assert outputs[1]["transactions"] == 2 * 2 + 1
    assert data_dir != ENGINE_DIR


async def test_serve_projects_the_gateway_and_keeps_it_across_a_restart(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    """The real gateway → stream → projector → API, then ``csms serve`` stopped and started
    again on the same data dir: the transaction is still there, nothing doubled."""
    settings = loopback_settings(tmp_path, nats_server.url)
    running = await app.start(settings)
    try:
        assert running.projections is not None
        station = await Station.connect(ws_url(running, "CP-SERVE"), "ocpp1.6")
        boot = {"chargePointVendor": "ACME", "chargePointModel": "X1"}
        await station.call("BootNotification", boot)
        start = {
            "connectorId": 1,
            "idTag": "TAG",
            "meterStart": 100,
            "timestamp": "2026-01-01T10:00:00Z",
        }
        answer = await station.call("StartTransaction", start)
        tx = str(answer[2]["transactionId"])
        stop = {"transactionId": int(tx), "meterStop": 2100, "timestamp": "2026-01-01T11:00:00Z"}
        await station.call("StopTransaction", stop)
        await station.close()
        store = running.projections.store

        async def completed() -> bool:
            found = await queries.get_transaction(store, tx, "CP-SERVE")
            return found is not None and found["status"] == "completed"

        await until(completed)
        api = f"http://127.0.0.1:{settings.api_port}/api/v1"
        async with httpx.AsyncClient() as http:
            listed = (
                await http.get(f"{api}/transactions", params={"station_id": "CP-SERVE"})
            ).json()
        assert [(t["transaction_id"], t["energy_wh"]) for t in listed["items"]] == [(tx, 2000.0)]
    finally:
        await running.stop()
    again = await app.start(settings)
    try:
        assert again.projections is not None
        page = await queries.list_transactions(again.projections.store, station_id="CP-SERVE")
        assert [(t["transaction_id"], t["status"]) for t in page.items] == [(tx, "completed")]
    finally:
        await again.stop()


@WIRE
async def test_redeliveries_behind_newer_messages_still_move_the_projector_on(
    js: JetStreamContext, store: Store, nats_server: EmbeddedNats, wire: bool
) -> None:
    """A batch is not in stream order: the first half was delivered and never acked (what a
    SIGKILLed nats-server does with the acks it had not written down), the projector has the
    second half, then the first half comes again, into the same batch. The projector's
    position is the batch's highest sequence, not its last message's (which left it at the
    first half's end, waiting for messages it had long inserted)."""
    messages = history(stations=2, transactions=2)
    half = len(messages) // 2
    config = dataclasses.replace(
        FAST, max_messages=len(messages), max_delay_s=60.0, fetch_timeout_s=5.0, ack_wait_s=60.0
    )
    projector = Projector(js, store, config, nats_url=nats_server.url if wire else None)
    taker = await js.pull_subscribe(
        ALL_EVENTS, durable=config.durable, stream=STREAM, config=projector.consumer_config()
    )
    first = await publish(js, messages[:half])
    taken: list[Msg] = []
    while len(taken) < half:
        taken += await taker.fetch(half - len(taken), timeout=5.0)
    await taker.unsubscribe()
    assert [m.metadata.sequence.stream for m in taken] == list(range(1, first + 1))
    projector.start()
    try:
        last = await publish(js, messages[half:])

        async def delivered() -> bool:
            info = await js.consumer_info(STREAM, config.durable or "")
            return int(info.delivered.stream_seq or 0) >= last

        await until(delivered)  # the projector holds the second half, the first is unacked
        for m in taken:
            await m.nak()

        async def all_in() -> bool:
            return projector.stats.messages >= len(messages)

        await until(all_in)
        assert projector.stats.batches == 1  # new, then redelivered, in one batch
        assert projector.stats.last_seq == last
    finally:
        await projector.stop()
    (row,) = await store.query("SELECT count() AS n FROM events FINAL")
    assert row["n"] == sum(len(m) for m in messages)


@WIRE
async def test_the_projector_recovers_by_itself_after_nats_dies(
    nats_server: EmbeddedNats, store: Store, wire: bool
) -> None:
    """SIGKILL nats-server under the projector, start it again on the same port and store:
    the projector reconnects, and everything published before and after is projected once."""
    nc: NatsClient = await nats.connect(
        nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1
    )
    js = nc.jetstream()
    await ensure_stream(js, StreamSettings())
    messages = history(stations=2, transactions=2)
    half = len(messages) // 2
    projector = Projector(js, store, FAST, nats_url=nats_server.url if wire else None)
    projector.start()
    again: EmbeddedNats | None = None
    try:
        first = await publish(js, messages[:half])
        await projected(store, projector, first)
        await nats_server.kill()
        again = EmbeddedNats(nats_server.store_dir, port=nats_server.port)
        await again.start()

        async def connected() -> bool:
            return nc.is_connected

        await until(connected)
        last = await publish(js, messages[half:])
        await projected(store, projector, last)
    finally:
        await projector.stop()
        await nc.close()
        if again is not None:
            await again.stop()
    page = await queries.list_transactions(store, limit=100)
    assert len(page.items) == 2 * 2 + 1
    (row,) = await store.query("SELECT count() AS n FROM events FINAL")
    assert row["n"] == sum(len(m) for m in messages)
