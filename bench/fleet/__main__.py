"""Run a simulated fleet against any CSMS.

    python -m bench.fleet --url ws://host:port/ocpp --stations N --scenario NAME
        [--version 1.6|2.0.1|2.1] [--duration S] [--prefix ID_PREFIX] [--quiet] [--json OUT]
        [--connect-concurrency K] [--watch NAME=PID ...] [--set KEY=VALUE ...]
        [--ca-file PEM | --insecure] [--password SECRET] [--source-addresses N]
    python -m bench.fleet --list

Station i connects to ``<url>/<prefix><i>``. A progress line goes to stderr every second; at the
end a summary goes to stderr and the ``FleetResult`` as one JSON line to stdout.
"""

from __future__ import annotations

import argparse
import ssl
import sys
from pathlib import Path

import msgspec
import uvloop

from bench.fleet import scenario as scenarios
from bench.fleet.fleet import Fleet
from bench.fleet.model import FleetResult
from bench.fleet.proc import raise_nofile

FD_HEADROOM = 256


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.url.startswith("wss://"):
        return None
    context = ssl.create_default_context(cafile=args.ca_file)
    if args.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _watch(text: str) -> tuple[str, int]:
    name, _, pid = text.partition("=")
    return name, int(pid)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="csms simulate", description=__doc__.split("\n")[0])
    p.add_argument("--url", help="ws://host:port/path; /<prefix><i> is added per station")
    p.add_argument("--stations", type=int, default=10)
    p.add_argument("--scenario", default="steady", help="a name in bench/scenarios or a .toml")
    p.add_argument("--version", choices=["1.6", "2.0.1", "2.1"], default="1.6")
    p.add_argument("--duration", type=float, help="measured seconds (default: the scenario's)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario key (TOML value), e.g. --set authorize=false",
    )
    p.add_argument("--prefix", default="sim", help="station ids are <prefix><index>")
    p.add_argument(
        "--connect-concurrency", type=int, help="handshakes in flight at once (0: no limit)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--ca-file", type=Path, help="wss://: trust this CA (PEM)")
    p.add_argument("--insecure", action="store_true", help="wss://: do not verify the server")
    p.add_argument("--password", help="HTTP Basic auth password of every station (profile 1/2)")
    p.add_argument(
        "--source-addresses",
        type=int,
        default=0,
        metavar="N",
        help="loopback URLs: spread the stations over N source addresses from 127.0.0.2",
    )
    p.add_argument(
        "--watch",
        type=_watch,
        action="append",
        default=[],
        metavar="NAME=PID",
        help="a server process: its CPU share over the window and RSS per station are reported",
    )
    p.add_argument("--json", type=Path, help="also write the result here")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return p


def summary(result: FleetResult) -> str:
    boot = result.boot
    lines = [
        f"{result.scenario}, OCPP {result.version}, {result.stations:,} stations, "
        f"window {result.duration_s:.1f} s",
        f"  boot: {boot.connected:,} connected, {boot.accepted:,} accepted; all connected "
        f"{boot.all_connected_s} s, all accepted {boot.all_accepted_s} s, "
        f"{boot.handshakes_per_s:,.0f} handshakes/s",
        f"  answered in window: {result.window_answered:,} ({result.answered_per_s:,.0f}/s); "
        f"latency p50 {result.latency.p50} ms, p99 {result.latency.p99} ms, "
        f"max {result.latency.max} ms",
        f"  transactions: {result.transactions_started:,} started, "
        f"{result.transactions_completed:,} completed; reconnects {result.reconnects:,}, "
        f"retries {result.retries:,}, replayed {result.replayed:,}",
        f"  CALLERRORs {result.callerrors or 0}, timeouts {result.timeouts or 0}, "
        f"other {result.errors or 0}, commands answered {result.commands or 0}",
    ]
    lines += [
        f"  burst {b.at}: {b.answered:,}/{b.sent:,} answered in {b.all_answered_s} s"
        for b in result.bursts
    ]
    lines += [
        f"  {name}: CPU {cpu:.0%} of a core over the window, RSS "
        f"{result.server_rss_kb.get(name, 0) / 1024:,.0f} MB "
        f"({result.server_rss_kb.get(name, 0) * 1024 / max(result.stations, 1) / 1024:,.1f} KB "
        "per station, all memory counted)"
        for name, cpu in result.server_cpu.items()
    ]
    lines.append(f"  simulator CPU {result.sim_cpu:.0%}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.list:
        for name in scenarios.names():
            found = scenarios.load(name)
            stub = f"  [stub: {found.needs}]" if found.status == "stub" else ""
            print(f"{name}: {found.description}{stub}")
        return 0
    if not args.url:
        print("csms simulate: --url is required", file=sys.stderr)
        return 2
    try:
        scenario = scenarios.load(args.scenario, args.set)
    except (ValueError, msgspec.ValidationError) as err:
        print(f"csms simulate: {err}", file=sys.stderr)
        return 2
    if scenario.status == "stub":
        print(
            f"csms simulate: {scenario.name} is not runnable yet: {scenario.needs}", file=sys.stderr
        )
        return 2
    if args.connect_concurrency is not None:
        scenario = msgspec.structs.replace(scenario, connect_concurrency=args.connect_concurrency)
    raise_nofile(args.stations + FD_HEADROOM)
    fleet = Fleet(
        args.url,
        scenario,
        args.version,
        args.stations,
        args.prefix,
        progress=not args.quiet,
        watch=dict(args.watch),
        ssl_context=_ssl_context(args),
        password=args.password,
        source_addresses=args.source_addresses,
    )
    result = uvloop.run(fleet.run(args.duration))
    print(summary(result), file=sys.stderr)
    encoded = msgspec.json.encode(result)
    if args.json:
        args.json.write_bytes(msgspec.json.format(encoded) + b"\n")
    print(encoded.decode(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
