"""``csms api`` (the operator API alone, for scaled deployments) and ``csms apikey``.

``csms api --nats-url URL`` serves the same API as ``csms serve`` against the NATS of the
gateways: commands reach whichever gateway holds a station, so any number of API processes can
run. ``csms apikey add|list|revoke`` manages the keys in their KV bucket (``--nats-url``, or the
embedded store under ``--data-dir`` while ``csms serve`` is not running).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
from pathlib import Path
from typing import Any

log = logging.getLogger("csms.api")


def add_parsers(sub: Any) -> None:
    """Register ``api`` and ``apikey`` on the ``csms`` parser."""
    api = sub.add_parser("api", help="run the operator API alone (needs --nats-url)")
    api.add_argument("--host")
    api.add_argument("--api-port", type=int)
    api.add_argument("--nats-url")
    api.add_argument(
        "--clickhouse-url", help="the projections' store: analytics routes and station facts"
    )
    api.add_argument("--config", help="a csms.toml file")
    keys = sub.add_parser("apikey", help="operator API keys (add, list, revoke)")
    keys.add_argument("--nats-url")
    keys.add_argument("--data-dir")
    keys.add_argument("--config", help="a csms.toml file")
    actions = keys.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="create a key; prints it once")
    add.add_argument("name")
    actions.add_parser("list", help="keys as JSON lines (never the secret)")
    revoke = actions.add_parser("revoke", help="delete a key by id, or every key of a name")
    revoke.add_argument("key")


def run_api(args: argparse.Namespace) -> int:
    import uvloop

    from csms import settings as settings_module

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    overrides = {
        "host": args.host,
        "api_port": args.api_port,
        "nats_url": args.nats_url,
        "clickhouse_url": args.clickhouse_url,
    }
    config = settings_module.load(Path(args.config) if args.config else None, overrides)
    if config.nats_url is None:
        print("csms api: --nats-url is required (the NATS of the gateways)")
        return 2
    uvloop.run(serve_api(config))
    return 0


async def serve_api(settings: Any) -> None:
    """Run until SIGTERM/SIGINT, then stop within 10 s."""
    import nats

    from csms.api.app import ApiServer, build_app
    from csms.api.services import ApiServices
    from streams.nats_servers import servers
    from streams.subjects import STREAM

    nc = await nats.connect(
        servers(settings.nats_url),
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        name="csms-api",
    )
    js = nc.jetstream()
    stream_up = {"ok": False}

    async def watch_stream() -> None:
        while True:
            try:
                await js.stream_info(STREAM)
                stream_up["ok"] = True
            except Exception:  # noqa: BLE001 - any failure means "not up"
                stream_up["ok"] = False
            await asyncio.sleep(2.0)

    watcher = asyncio.get_running_loop().create_task(watch_stream())

    async def health() -> dict[str, bool]:
        return {"nats": nc.is_connected, "stream": stream_up["ok"]}

    services = await ApiServices.open(
        nc,
        health,
        replicas=settings.stream_replicas,
        beat_interval_s=settings.presence_beat_s,
        default_wait_s=settings.call_timeout_s,
    )
    store = None
    if settings.clickhouse_url:  # a ClickHouse server (or a chDB dir no other process uses)
        from streams import schema
        from streams.store import Store

        store = await Store.open(settings.clickhouse_url)
        await schema.apply(store)  # idempotent: the projector's process applies it too
    server = ApiServer(build_app(services, store), settings.host, settings.api_port)
    await server.start()
    url = f"http://{settings.host}:{settings.api_port}"
    print(f"csms: operator API on {url}/api/v1 (OpenAPI {url}/schema)", flush=True)
    if not services.keys.required:
        print("csms: no API key configured: the API is OPEN (csms apikey add NAME)", flush=True)
    print(f"csms: NATS {settings.nats_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    async def shutdown() -> None:
        await server.stop()
        await services.stop()
        watcher.cancel()
        await nc.drain()
        if store is not None:
            await store.close()

    await asyncio.wait_for(shutdown(), 10)


def run_apikey(args: argparse.Namespace) -> int:
    return asyncio.run(_apikey(args))


async def _apikey(args: argparse.Namespace) -> int:
    from csms import settings as settings_module
    from streams.api_keys import ApiKeys
    from streams.embedded import admin_connection

    overrides = {"nats_url": args.nats_url, "data_dir": args.data_dir}
    config = settings_module.load(Path(args.config) if args.config else None, overrides)
    async with admin_connection(config.nats_url, config.data_dir, "csms-apikey") as nc:
        keys = await ApiKeys.open(nc.jetstream(), replicas=config.stream_replicas)
        if args.action == "add":
            record, text = await keys.add(args.name)
            print(f"key id {record.key_id} ({record.name}); the key, shown only now:")
            print(text)
            return 0
        if args.action == "list":
            for record in await keys.list():
                row = {
                    "key_id": record.key_id,
                    "name": record.name,
                    "created_at": record.created_at,
                }
                print(json.dumps(row))
            return 0
        revoked = await keys.revoke(args.key)
        print(f"revoked {revoked} key(s)")
        return 0 if revoked else 1


COMMANDS = {"api": run_api, "apikey": run_apikey}
