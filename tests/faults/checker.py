"""The checker of reliability.md §5.0 after healing: the stations' journals (what they sent, what
answers they received and when) against the JetStream stream (read whole, with each message's
stored timestamp) and the projections (read with ``csms query`` once the projector stopped).

I3 (no CALLRESULT before its PubAck) is checked as: the stored timestamp of the stream message
holding the answered CALL (and the answer: the gateway stores both in one message) is not later
than the wall-clock time the station received the answer. JetStream stamps a message when its
leader stores it, before the PubAck; the station stamps after reading the answer. Both clocks are
this machine's CLOCK_REALTIME, so they are comparable to well under a millisecond; across hosts
the check would need a bound on clock skew. A gateway that answered before the PubAck would show
up here only if the store were later than the delivery, so the canary proves I1, not I3.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from streams import envelope
from streams.queries import transactions_cte
from streams.subjects import ALL_EVENTS, STREAM, station_of
from tests.faults.station import StationLog


@dataclass
class StoredEvent:
    seq: int
    stored_ns: int
    station_id: str
    direction: str
    message_type: int
    unique_id: str | None
    action: str | None
    event_id: str
    session_id: str
    session_seq: int
    raw: str


@dataclass
class StreamCopy:
    messages: int = 0
    events: list[StoredEvent] = field(default_factory=list)


def _ack_metadata(reply: str) -> tuple[int, int]:
    """(stream sequence, stored time in ns) from a JetStream ack subject (both token layouts)."""
    tokens = reply.split(".")
    if len(tokens) == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>
        return int(tokens[5]), int(tokens[7])
    return int(tokens[7]), int(tokens[9])  # with domain and account hash


async def read_stream(urls: list[str], timeout_s: float = 60.0) -> StreamCopy:
    """Every message of the event stream, in stream order (an ephemeral, unacked consumer)."""
    nc = await nats.connect(urls, connect_timeout=2)
    try:
        js = nc.jetstream(timeout=10)
        info = await js.stream_info(STREAM)
        last_seq = info.state.last_seq
        copy = StreamCopy()
        if info.state.messages == 0:
            return copy
        config = ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL)
        sub = await js.pull_subscribe(ALL_EVENTS, stream=STREAM, config=config)
        seq = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while seq < last_seq and loop.time() < deadline:
            try:
                batch = await sub.fetch(2000, timeout=2)
            except nats.errors.TimeoutError:
                continue
            for msg in batch:
                seq, stored_ns = _ack_metadata(msg.reply)
                copy.messages += 1
                # 2.x identities are case-insensitive (the gateway stores them lower-cased);
                # battery identities differ in more than case, so the checker compares lower.
                station = station_of(msg.subject.rsplit(".", 1)[1]).lower()
                for event in envelope.decode_many(msg.data):
                    copy.events.append(
                        StoredEvent(
                            seq,
                            stored_ns,
                            station,
                            event.direction,
                            event.message_type,
                            event.unique_id,
                            event.action,
                            event.event_id,
                            event.session_id,
                            event.seq,
                            event.raw,
                        )
                    )
        if seq < last_seq:
            raise TimeoutError(f"read {seq} of {last_seq} stream messages in {timeout_s} s")
        await sub.unsubscribe()
        return copy
    finally:
        await nc.close()


async def csms_query(clickhouse_url: str, data_dir: str, sql: str) -> list[dict[str, Any]]:
    """``csms query --format json`` in a child process (chDB: one engine per process)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csms", "query", "--clickhouse-url", clickhouse_url,
        "--data-dir", data_dir, "--format", "json", sql,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"csms query failed: {err.decode()[-2000:]}")
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


@dataclass
class Projected:
    calls: set[tuple[str, str]]
    duplicate_event_ids: int
    rows: int
    rows_final: int
    transactions: list[dict[str, Any]]


async def read_projections(clickhouse_url: str, data_dir: str) -> Projected:
    calls = await csms_query(
        clickhouse_url,
        data_dir,
        "SELECT station_id, unique_id FROM events FINAL "
        "WHERE direction = 'in' AND message_type = 2",
    )
    dups = await csms_query(
        clickhouse_url,
        data_dir,
        "SELECT count() AS n FROM "
        "(SELECT event_id FROM events FINAL GROUP BY event_id HAVING count() > 1)",
    )
    counts = await csms_query(
        clickhouse_url,
        data_dir,
        "SELECT (SELECT count() FROM events) AS rows, (SELECT count() FROM events FINAL) AS final",
    )
    transactions = await csms_query(
        clickhouse_url,
        data_dir,
        transactions_cte(False)
        + "SELECT station_id, transaction_id, status, toString(started_at) AS started_at, "
        "meter_start_wh FROM transactions",
    )
    return Projected(
        {(r["station_id"].lower(), r["unique_id"]) for r in calls},
        int(dups[0]["n"]),
        int(counts[0]["rows"]),
        int(counts[0]["final"]),
        transactions,
    )


def _examples(items: Any, n: int = 5) -> list[Any]:
    return sorted(items, key=str)[:n]


def check(
    logs: list[StationLog],
    stream: StreamCopy,
    projected: Projected | None,
    healed_ns: int,
    projection_drained_s: float | None = 0.0,
) -> dict[str, Any]:
    """The six invariants as numbers, with a few examples of each violation.
    ``projection_drained_s``: how long the projector took to catch up after healing (None: it
    did not within the deadline, an I5 failure)."""
    call_stored: dict[tuple[str, str], list[StoredEvent]] = defaultdict(list)
    result_stored: dict[tuple[str, str], list[StoredEvent]] = defaultdict(list)
    for event in stream.events:
        if event.unique_id is None:
            continue
        key = (event.station_id, event.unique_id)
        if event.direction == "in" and event.message_type == 2:
            call_stored[key].append(event)
        elif event.direction == "out" and event.message_type == 3:
            result_stored[key].append(event)

    sent: Counter[tuple[str, str]] = Counter()
    answered: dict[tuple[str, str], int] = {}  # key -> received_ns of the first CALLRESULT
    call_no: dict[tuple[str, str], int] = {}
    for log in logs:
        station = log.station_id.lower()
        for call in log.calls:
            for unique_id in call.ids:
                sent[(station, unique_id)] += 1
                call_no[(station, unique_id)] = call.n
        for unique_id, answer in log.results().items():
            answered[(station, unique_id)] = answer.received_ns

    # I1: answered => stored (stream), and projected.
    lost = [k for k in answered if k not in call_stored]
    lost_projection = [] if projected is None else [k for k in answered if k not in projected.calls]

    # I2: duplicates in the stream and the projections; identical 1.6 transaction ids.
    event_ids = Counter(e.event_id for e in stream.events)
    duplicate_events = [i for i, c in event_ids.items() if c > 1]
    over_attempts = [k for k, stored in call_stored.items() if len(stored) > sent.get(k, 0) > 0]
    tx = _transactions(logs)
    early, unstored_answer = _write_ahead(answered, call_stored, result_stored)
    # I4: phantoms: stored CALLs no station sent.
    phantoms = [k for k in call_stored if k not in sent]
    # I5: stations with an answer after healing.
    reconnected = sum(1 for log in logs if log.last_result_ns() > healed_ns)
    # I6: per-station order of answered CALLs in the stream, sessions in order, seqNo gaps.
    order = _order_violations(stream, answered, call_no)

    projection: dict[str, Any] = {"checked": projected is not None}
    if projected is not None:
        projection.update(_projection_checks(projected, tx, stream))
    invariants = {
        "I1_acknowledged_is_durable": {
            "answered_calls": len(answered),
            "lost_in_stream": len(lost),
            "lost_in_projection": len(lost_projection) if projected else "not checked",
            "lost_transactions_in_projection": projection.get("lost_transactions", 0),
            "examples": _examples(lost) + _examples(lost_projection),
            "completed_transactions_not_completed_in_projection": projection.get(
                "completed_not_shown_completed", 0
            ),
            "pass": not lost
            and not lost_projection
            and not projection.get("lost_transactions")
            and not projection.get("completed_not_shown_completed"),
        },
        "I2_no_duplicates": {
            "duplicate_events_in_stream": len(duplicate_events),
            "calls_stored_more_often_than_sent": len(over_attempts),
            "duplicate_events_in_projection": projection.get("duplicate_event_ids", 0),
            "duplicate_transactions_in_projection": projection.get("duplicate_transactions", 0),
            "start_retries": tx["start_retries"],
            "start_retries_with_a_different_id": len(tx["different_ids"]),
            "examples": _examples(duplicate_events)
            + _examples(over_attempts)
            + tx["different_ids"][:5],
            "pass": not duplicate_events
            and not over_attempts
            and not tx["different_ids"]
            and not projection.get("duplicate_event_ids")
            and not projection.get("duplicate_transactions"),
        },
        "I3_no_answer_before_puback": {
            "answers_received_before_store": len(early),
            "answered_calls_without_stored_answer": len(unstored_answer),
            "examples": _examples(early) + _examples(unstored_answer),
            "pass": not early and not unstored_answer,
        },
        "I4_no_phantoms": {
            "stored_calls_never_sent": len(phantoms),
            "projected_transactions_not_in_stream": projection.get("phantom_transactions", 0),
            "examples": _examples(phantoms),
            "pass": not phantoms and not projection.get("phantom_transactions"),
        },
        "I5_liveness": {
            "stations": len(logs),
            "answered_after_healing": reconnected,
            "fraction": round(reconnected / len(logs), 4) if logs else 0.0,
            "projection_caught_up_s": projection_drained_s if projected else "not checked",
            "pass": bool(logs)
            and reconnected >= 0.99 * len(logs)
            and (projected is None or projection_drained_s is not None),
        },
        "I6_order": {**order, "pass": not any(order[k] for k in order if k != "examples")},
    }
    return {
        "counts": {
            "stations": len(logs),
            "calls": sum(len(log.calls) for log in logs),
            "attempts": sum(sent.values()),
            "answered": len(answered),
            "transactions_started": len(tx["known"]),
            "transactions_completed": len(tx["completed"]),
            "longest_time_without_any_answer_s": _longest_silence_s(logs),
            "stream_messages": stream.messages,
            "stream_events": len(stream.events),
        },
        "projection": projection,
        "invariants": invariants,
        "pass": all(v["pass"] for v in invariants.values()),
    }


def _longest_silence_s(logs: list[StationLog]) -> float:
    """The longest stretch in which no station received any CALLRESULT (F1's publish stall;
    with one node, the whole NATS outage)."""
    times = sorted(
        a.received_ns
        for log in logs
        for answers in log.answers.values()
        for a in answers
        if a.message_type == 3
    )
    gaps = (b - a for a, b in itertools.pairwise(times))
    return round(max(gaps, default=0) / 1e9, 3)


def _write_ahead(
    answered: dict[tuple[str, str], int],
    call_stored: dict[tuple[str, str], list[StoredEvent]],
    result_stored: dict[tuple[str, str], list[StoredEvent]],
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """I3: answers received before the message holding them was stored, and answered CALLs
    whose answer is not in the stream at all."""
    early = []
    unstored_answer = []
    for key, received_ns in answered.items():
        holders = result_stored.get(key) or call_stored.get(key)
        if not holders:
            continue  # lost: I1 counts it
        if not result_stored.get(key):
            unstored_answer.append(key)
        if min(e.stored_ns for e in holders) > received_ns:
            early.append(key)
    return early, unstored_answer


def _transactions(logs: list[StationLog]) -> dict[str, Any]:
    """Transactions the stations know were accepted: (station, id) started and completed, and
    1.6 StartTransaction retries whose answers disagree on the transactionId."""
    known: set[tuple[str, str]] = set()
    completed: set[tuple[str, str]] = set()
    different: list[Any] = []
    retries = 0
    for log in logs:
        station = log.station_id.lower()
        results = log.results()
        for call in log.calls:
            answers = [results[i].payload for i in dict.fromkeys(call.ids) if i in results]
            if not answers:
                continue
            if call.action == "StartTransaction":
                ids = {str(a["transactionId"]) for a in answers}
                retries += len(call.ids) - 1
                if len(ids) > 1:
                    different.append((station, call.n, sorted(ids)))
                known.update((station, i) for i in ids)
            elif call.action == "StopTransaction":
                completed.add((station, str(call.payload["transactionId"])))
            elif call.action == "TransactionEvent":
                tx_id = call.payload["transactionInfo"]["transactionId"]
                if call.payload["eventType"] == "Started":
                    known.add((station, tx_id))
                elif call.payload["eventType"] == "Ended":
                    completed.add((station, tx_id))
    return {
        "known": known,
        "completed": completed,
        "different_ids": different,
        "start_retries": retries,
    }


def _order_violations(
    stream: StreamCopy, answered: dict[tuple[str, str], int], call_no: dict[tuple[str, str], int]
) -> dict[str, Any]:
    last_call: dict[str, int] = {}
    seen: set[tuple[str, str]] = set()
    out_of_order: list[Any] = []
    session_seq: dict[str, int] = {}
    session_violations: list[Any] = []
    seq_nos: dict[tuple[str, str], set[int]] = defaultdict(set)
    ended: set[tuple[str, str]] = set()
    for event in stream.events:
        if event.session_id:
            previous = session_seq.get(event.session_id, -1)
            if event.session_seq <= previous:
                session_violations.append((event.station_id, event.session_id, event.session_seq))
            session_seq[event.session_id] = max(previous, event.session_seq)
        if event.direction != "in" or event.message_type != 2 or event.unique_id is None:
            continue
        key = (event.station_id, event.unique_id)
        if event.action == "TransactionEvent":
            payload = json.loads(event.raw)[3]
            tx_key = (event.station_id, payload["transactionInfo"]["transactionId"])
            seq_nos[tx_key].add(payload["seqNo"])
            if payload["eventType"] == "Ended" and key in answered:
                ended.add(tx_key)
        if key not in answered or key in seen:
            continue
        seen.add(key)
        n = call_no[key]
        if n < last_call.get(event.station_id, 0):
            out_of_order.append((event.station_id, event.unique_id, n))
        last_call[event.station_id] = max(n, last_call.get(event.station_id, 0))
    gaps = [k for k in ended if seq_nos[k] != set(range(max(seq_nos[k]) + 1))]
    return {
        "answered_calls_out_of_station_order": len(out_of_order),
        "session_sequence_violations": len(session_violations),
        "completed_2x_transactions_with_seqno_gaps": len(gaps),
        "examples": _examples(out_of_order) + _examples(session_violations) + _examples(gaps),
    }


def _projection_checks(
    projected: Projected, tx: dict[str, Any], stream: StreamCopy
) -> dict[str, Any]:
    rows = projected.transactions
    by_key = {(r["station_id"].lower(), r["transaction_id"]): r for r in rows}
    lost = [k for k in tx["known"] if k not in by_key]
    not_completed = [
        k for k in tx["completed"] if k in by_key and by_key[k]["status"] != "completed"
    ]
    starts = Counter(
        (r["station_id"].lower(), r["started_at"], r["meter_start_wh"])
        for r in rows
        if r["started_at"]
    )
    duplicates = [k for k, c in starts.items() if c > 1]
    in_stream: set[tuple[str, str]] = set()
    for event in stream.events:
        if event.message_type == 2 and event.action == "TransactionEvent":
            in_stream.add(
                (event.station_id, json.loads(event.raw)[3]["transactionInfo"]["transactionId"])
            )
        elif event.message_type == 3 and event.direction == "out":
            payload = json.loads(event.raw)[2]
            if isinstance(payload, dict) and "transactionId" in payload:
                in_stream.add((event.station_id, str(payload["transactionId"])))
    phantoms = [k for k in by_key if k not in in_stream]
    return {
        "transactions": len(rows),
        "lost_transactions": len(lost),
        "completed_not_shown_completed": len(not_completed),
        "duplicate_transactions": len(duplicates),
        "phantom_transactions": len(phantoms),
        "duplicate_event_ids": projected.duplicate_event_ids,
        "event_rows": projected.rows,
        "event_rows_final": projected.rows_final,
        "stream_events": len(stream.events),
        "examples": _examples(lost)
        + _examples(not_completed)
        + _examples(duplicates)
        + _examples(phantoms),
    }
