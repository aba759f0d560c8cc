"""``csms query``, ``csms report`` and ``csms projections rebuild``.

They open the ClickHouse store themselves (``--clickhouse-url``, default the embedded engine
under ``--data-dir``). chDB hosts one engine per process and locks its directory, so while
``csms serve`` runs on the same data dir these commands cannot open it: pass
``--api http://HOST:PORT`` (and ``--api-key`` or ``CSMS_API_KEY``) to run ``query`` and
``report`` through the running server's read-only API instead. ``projections rebuild`` with
the embedded engine needs ``csms serve`` stopped; with a ClickHouse server it can run beside it.
``projections run`` is the projector alone, for gateways started with ``projections = false``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import io
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import uvloop

from csms import settings as settings_module
from csms.settings import Settings
from streams.nats_servers import servers

Command = Callable[[argparse.Namespace], int]
FORMATS = ("table", "csv", "json")
REPORT_NAMES = (
    "energy-per-station-per-day",
    "sessions-per-hour",
    "connector-utilisation",
    "average-session-duration",
    "faults",
    "silent-stations",
)


def add_parsers(sub: Any) -> dict[str, Command]:
    """Register ``query``, ``report`` and ``projections`` on the ``csms`` parser."""
    query = sub.add_parser("query", help="read-only SQL over the projections")
    query.add_argument("sql", help="SELECT, WITH, SHOW, DESCRIBE or EXPLAIN")
    _common(query)
    report = sub.add_parser("report", help="a ready-made report (see docs/adr/0003)")
    report.add_argument("name", choices=REPORT_NAMES)
    report.add_argument("--since", help="RFC 3339 or a date (UTC)")
    report.add_argument("--until", help="RFC 3339 or a date (UTC), exclusive")
    report.add_argument("--station-id")
    report.add_argument("--minutes", type=int, default=60, help="silent-stations threshold")
    _common(report)
    projections = sub.add_parser("projections", help="maintain the ClickHouse projections")
    actions = projections.add_subparsers(dest="action", required=True)
    rebuild = actions.add_parser(
        "rebuild", help="replay the whole stream into fresh tables and swap them in"
    )
    run = actions.add_parser(
        "run", help="run the projector alone (beside gateways started with projections = false)"
    )
    for action in (rebuild, run):
        action.add_argument("--data-dir")
        action.add_argument("--clickhouse-url")
        action.add_argument("--nats-url", help="default: the embedded nats-server of --data-dir")
        action.add_argument("--config", help="a csms.toml file")
    run.add_argument(
        "--store-socket",
        help="also answer reads of the store on this Unix socket (how csms serve's API reads "
        "the embedded engine its projector child holds)",
    )
    return {"query": _query, "report": _report, "projections": _projections}


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument("--data-dir")
    parser.add_argument("--clickhouse-url")
    parser.add_argument("--config", help="a csms.toml file")
    parser.add_argument("--api", help="ask a running csms serve at this URL instead")
    parser.add_argument("--api-key", help="operator API key (default: CSMS_API_KEY)")


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        "data_dir": args.data_dir,
        "clickhouse_url": args.clickhouse_url,
        "nats_url": getattr(args, "nats_url", None),
    }
    return settings_module.load(Path(args.config) if args.config else None, overrides)


def _store_url(config: Settings) -> str:
    from streams.store import default_url

    return config.clickhouse_url or default_url(config.data_dir)


class _CannotOpenError(Exception):
    pass


async def _open(config: Settings) -> Any:
    from streams import schema
    from streams.store import Store, StoreError

    url = _store_url(config)
    try:
        store = await Store.open(url)
    except StoreError as err:
        hint = ""
        if url.startswith("chdb://"):
            hint = (
                "\n(the embedded engine allows one process per directory: is `csms serve` "
                "running on this data dir? use --api http://HOST:PORT, or stop it)"
            )
        raise _CannotOpenError(f"{err}{hint}") from err
    await schema.apply(store)
    return store


# -- query / report ---------------------------------------------------------------------------


def _query(args: argparse.Namespace) -> int:
    if args.api:
        body = _api(args, "POST", "/api/v1/query", {"sql": args.sql})
        return _print(body["columns"], [tuple(r) for r in body["rows"]], args.format)
    from streams import queries

    async def run() -> tuple[list[str], list[tuple[Any, ...]]]:
        store = await _open(_settings(args))
        try:
            return await queries.read_only_query(store, args.sql)
        finally:
            await store.close()

    return _local(run, args.format)


def _report(args: argparse.Namespace) -> int:
    if args.api:
        params = {
            k: v
            for k, v in {
                "since": args.since,
                "until": args.until,
                "station_id": args.station_id,
                "minutes": str(args.minutes),
            }.items()
            if v is not None
        }
        path = f"/api/v1/reports/{args.name}?{urllib.parse.urlencode(params)}"
        items = _api(args, "GET", path, None)["items"]
        names = list(items[0]) if items else []
        return _print(names, [tuple(i[n] for n in names) for i in items], args.format)
    from streams import queries
    from streams.reports import ReportFilters, run_report

    async def run() -> tuple[list[str], list[tuple[Any, ...]]]:
        filters = ReportFilters(
            queries.parse_time(args.since),
            queries.parse_time(args.until),
            args.station_id,
            args.minutes,
        )
        store = await _open(_settings(args))
        try:
            rows = await run_report(store, args.name, filters)
        finally:
            await store.close()
        names = list(rows[0]) if rows else []
        return names, [tuple(r[n] for n in names) for r in rows]

    return _local(run, args.format)


def _local(run: Callable[[], Any], fmt: str) -> int:
    from streams.queries import QueryError

    try:
        names, rows = asyncio.run(run())
    except (QueryError, _CannotOpenError) as err:
        print(f"csms: {err}", file=sys.stderr)
        return 2
    return _print(names, rows, fmt)


def _api(args: argparse.Namespace, method: str, path: str, body: Any) -> Any:
    url = args.api.rstrip("/") + path
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    key = args.api_key or os.environ.get("CSMS_API_KEY")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=300) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as err:
        detail = err.read().decode(errors="replace")
        print(f"csms: {url}: HTTP {err.code}: {detail}", file=sys.stderr)
        raise SystemExit(2) from err


# -- output -----------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=str)
    return str(value)


def render(names: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    """Rows as an aligned table, CSV with a header, or a JSON array of objects."""
    if fmt == "json":
        objects = [dict(zip(names, row, strict=True)) for row in rows]
        return msgspec.json.encode(objects, enc_hook=str).decode()
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([_text(v) for v in row] for row in rows)
        return out.getvalue().rstrip("\n")
    cells = [[_text(v) for v in row] for row in rows]
    widths = [max([len(n), *(len(r[i]) for r in cells)]) for i, n in enumerate(names)]
    line = "  ".join("-" * w for w in widths)
    head = "  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)).rstrip()
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join([head, line, *body, f"({len(rows)} rows)"])


def _print(names: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> int:
    print(render(names, rows, fmt))
    return 0


# -- projections rebuild ----------------------------------------------------------------------


def _projections(args: argparse.Namespace) -> int:
    config = _settings(args)
    if args.action == "run":
        return uvloop.run(_run_projector(config, args.store_socket))
    return asyncio.run(_rebuild(config))


async def _run_projector(config: Settings, store_socket: str | None = None) -> int:
    """The projector in a process of its own until SIGTERM/SIGINT: the gateways keep their CPU
    for stations, and with a ClickHouse server any number of API processes can read. With
    ``store_socket`` (``csms serve`` starts it so) reads of the store are answered there."""
    import signal

    from streams.projections.remote import serve_store
    from streams.projections.service import start_projections

    if config.nats_url is None:
        print("csms: projections run needs --nats-url (the gateways' NATS)", file=sys.stderr)
        return 2
    projections = await start_projections(config.nats_url, _store_url(config))
    if projections is None:
        print(f"csms: cannot open the store {_store_url(config)} (see the log)", file=sys.stderr)
        return 2
    server = None
    if store_socket:
        server = await serve_store(projections.store, store_socket)
    print(f"csms: projecting {config.nats_url} into {_store_url(config)}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if server is not None:
        await server.close()
    await projections.stop()
    stats = projections.projector.stats
    print(f"csms: stopped after {stats.messages} messages, {stats.rows} rows", flush=True)
    return 0


async def _rebuild(config: Settings) -> int:
    import nats
    from nats.js.errors import NotFoundError

    from streams.embedded import EmbeddedNats
    from streams.projections.rebuild import rebuild

    embedded = None
    url = config.nats_url
    if url is None:
        embedded = EmbeddedNats(config.data_dir / "nats")
        await embedded.start()
        url = embedded.url
    try:
        store = await _open(config)
    except _CannotOpenError as err:
        print(f"csms: {err}", file=sys.stderr)
        if embedded is not None:
            await embedded.stop()
        return 2
    nc = await nats.connect(servers(url))
    try:
        try:
            result = await rebuild(nc.jetstream(), store)
        except NotFoundError:
            print("csms: no event stream on this NATS: nothing to rebuild", file=sys.stderr)
            return 2
        print(
            f"csms: rebuilt {store.database} from {result.messages} messages "
            f"(stream sequence 1..{result.last_seq}): {result.rows} rows, "
            f"{result.poison} poison events"
        )
        return 0
    finally:
        await nc.close()
        await store.close()
        if embedded is not None:
            await embedded.stop()
