"""Limits under abuse (reliability.md §5.6, issue 7): other stations' latency under each attack.

    .venv/bin/python -m bench.abuse [--stations 200] [--rate 1]
        [--attacks NONE,D1,D3,D7,D7-40K,D8,D11,D12,D4,D9] [--attack-s 12] [--baseline-s 8]
        [--settle-s 3]
        [--json OUT] [--readme README] [--no-readme] [--render JSON] [--keep]

A real ``csms serve`` (its own nats-server, ``projections = false``, the gateway's default limits,
a wss:// port with a certificate made here) pinned to CPU 0; this process pinned to CPU 1 runs the
legitimate load: ``--stations`` OCPP 1.6 stations from 127.0.0.1, each in a transaction sending
one MeterValues (ten sampled values) every 1/``--rate`` s, plus a fresh station connecting and
booting every 0.25 s. Then per attack, one at a time: a settle pause, a baseline window, and the
attack window, while the attacker (``bench.abuse.attacker``, its own process, also on CPU 1,
connecting from 127.0.0.3) runs. Per window: the legitimate meter values' p50/p99, the fresh
stations' connect and boot times, the server's CPU and RSS; per attack, what the attacker saw
(close codes, refusals, times). Same-run ratios: attack window / the baseline just before it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys
import tempfile
from pathlib import Path

import msgspec
import uvloop

from bench.abuse import report
from bench.abuse.legit import Legit, after_attack
from bench.abuse.model import AbuseReport, AttackRun, Observed
from bench.fleet.proc import raise_nofile
from bench.load import report as load_report
from bench.load.environment import environment
from bench.load.progress import Progress
from bench.load.servers import HOST, SIM_CPU, Launcher, pinned
from bench.load.tls import TlsFiles, make_server_certificate
from streams.embedded import free_port, nats_environment, nats_server_binary

ATTACKS = ["NONE", "D1", "D3", "D7", "D7-40K", "D8", "D11", "D12", "D4", "D9"]
"""NONE first: a window with the attacker idle, the control of every ratio after it."""
WARMUP_S = 5.0
PROBE_EVERY_S = 0.25
ATTACKER = "127.0.0.3"
AFTER_CONNECTIONS = report.AFTER
LOG_MARKS = {
    "pending cap drops": "too many pending handshakes",
    "TLS drops (rate or cap)": "dropped: handshake rate or cap",
    "TLS handshake failures": "TLS handshake from",
    "handshake timeouts": "Handshake timeout",
    "replaced sessions": "closing its previous connection",
    "CALL-flood closes": "floods CALLs",
    report.SERVER_1009: "payload size exceeding max allowed size",
}
TOPOLOGY = (
    "csms serve and its nats-server pinned to CPU 0; the legitimate load (this process) and the "
    "attacker (a separate process) both pinned to CPU 1; loopback, legit from 127.0.0.1, "
    "attacker from 127.0.0.3"
)


class Ports(msgspec.Struct):
    ws: int
    wss: int


def start_server(launcher: Launcher, tls: TlsFiles) -> tuple[Ports, dict[str, int]]:
    """nats-server and ``csms serve`` with the default limits (unlike bench.load, which lifts the
    pending-handshake cap for its one-address fleet) and a wss:// port."""
    scratch = launcher.scratch
    nats_port = free_port(HOST)
    store = str(scratch / "nats")
    nats_argv = [str(nats_server_binary()), "-js", "-sd", store, "-a", HOST, "-p", str(nats_port)]
    nats = launcher.launch("nats-server", nats_argv, "Server is ready", env=nats_environment())
    ports = Ports(free_port(HOST), free_port(HOST))
    config = scratch / "csms.toml"
    config.write_text(
        "projections = false\n"
        f"tls_port = {ports.wss}\n"
        f'tls_cert_file = "{tls.cert_file}"\ntls_key_file = "{tls.key_file}"\n'
    )
    argv = [sys.executable, "-m", "csms", "serve", "--host", HOST, "--ocpp-port", str(ports.ws)]
    argv += ["--api-port", str(free_port(HOST)), "--data-dir", str(scratch / "csms")]
    argv += ["--nats-url", f"nats://{HOST}:{nats_port}", "--config", str(config)]
    csms = launcher.launch("csms", argv, "csms: OCPP on ws://")
    return ports, {"csms": csms.process.pid, "nats-server": nats.process.pid}


def count_marks(log: Path, start: int) -> dict[str, int]:
    with log.open("rb") as f:
        f.seek(start)
        text = f.read().decode(errors="replace")
    found = {name: text.count(mark) for name, mark in LOG_MARKS.items()}
    return {name: n for name, n in found.items() if n}


async def attack(
    name: str, ports: Ports, args: argparse.Namespace, legit: Legit, tls: TlsFiles, log: Path
) -> AttackRun:
    run = AttackRun(attack=name)
    if name == "D3":  # fresh stations come over wss:// around this attack
        legit.probe_url = f"wss://{HOST}:{ports.wss}/ocpp"
        legit.probe_tls = ssl.create_default_context(cafile=str(tls.ca_file))
    try:
        await asyncio.sleep(args.settle_s)
        run.baseline = await legit.window(args.baseline_s, PROBE_EVERY_S)
        argv = [sys.executable, "-m", "bench.abuse.attacker", name, "--port", str(ports.ws)]
        argv += ["--tls-port", str(ports.wss), "--duration", str(args.attack_s)]
        argv += ["--source", ATTACKER]
        child = await asyncio.create_subprocess_exec(
            *pinned(argv, SIM_CPU, False),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert child.stdout is not None
        first = await asyncio.wait_for(child.stdout.readline(), 30)
        if first.strip() != b"go":
            raise RuntimeError(f"attacker did not start: {first!r}")
        rest = asyncio.ensure_future(child.communicate())
        log_from = log.stat().st_size
        run.during = await legit.window(rest, PROBE_EVERY_S)
        run.server_log = count_marks(log, log_from)
        out, err = await rest
        for source in (ATTACKER, HOST):
            run.after[source] = await after_attack(HOST, ports.ws, source, AFTER_CONNECTIONS)
        if child.returncode != 0:
            raise RuntimeError(f"attacker exited {child.returncode}: {err.decode()[-2000:]}")
        run.observed = msgspec.json.decode(out.strip().splitlines()[-1], type=Observed)
    except (RuntimeError, OSError, TimeoutError, msgspec.DecodeError, IndexError) as err:
        run.failure = f"{type(err).__name__}: {err}"
    finally:
        legit.probe_url, legit.probe_tls = legit.url, None
    return run


async def measure(
    result: AbuseReport,
    ports: Ports,
    pids: dict[str, int],
    args: argparse.Namespace,
    tls: TlsFiles,
    log: Path,
) -> None:
    legit = Legit(f"ws://{HOST}:{ports.ws}/ocpp", args.stations, args.rate, pids)
    progress = Progress(len(args.attacks) + 1)
    progress.step(f"{args.stations} legitimate stations, {args.rate:g} MeterValues/s each")
    result.connected = await legit.start()
    try:
        await asyncio.sleep(args.warmup_s)
        for name in args.attacks:
            progress.step(f"attack {name}")
            run = await attack(name, ports, args, legit, tls, log)
            result.runs.append(run)
            print(f"  {report.summary(run)}", file=sys.stderr, flush=True)
    finally:
        await legit.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.abuse", description=__doc__)
    parser.add_argument("--stations", type=int, default=200)
    parser.add_argument("--rate", type=float, default=1.0, help="MeterValues/s per station")
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--attack-s", type=float, default=12.0)
    parser.add_argument("--baseline-s", type=float, default=8.0)
    parser.add_argument("--settle-s", type=float, default=3.0)
    parser.add_argument("--warmup-s", type=float, default=WARMUP_S)
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs)")
    load_report.add_output_arguments(parser, "abuse")
    args = parser.parse_args(argv)
    if load_report.render_only(args, report.SECTION):
        return 0
    args.attacks = [a.strip().upper() for a in args.attacks.split(",") if a.strip()]
    unknown = set(args.attacks) - set(ATTACKS)
    if unknown:
        parser.error(f"unknown attacks {sorted(unknown)}; known: {ATTACKS}")
    os.sched_setaffinity(0, {SIM_CPU})
    raise_nofile(args.stations + 4096)
    result = AbuseReport(
        started=load_report.utc_now(),
        command=load_report.command("bench.abuse", argv),
        environment=environment(False),
        stations=args.stations,
        rate_per_station=args.rate,
        version="1.6",
        settle_s=args.settle_s,
        baseline_s=args.baseline_s,
        attack_s=args.attack_s,
        probe_interval_s=PROBE_EVERY_S,
        topology=TOPOLOGY,
    )
    scratch = Path(tempfile.mkdtemp(prefix="bench-abuse-"))
    launcher = Launcher(scratch, False, args.stations + 4096)
    failed = False
    try:
        tls = make_server_certificate(scratch / "tls")
        ports, pids = start_server(launcher, tls)
        uvloop.run(measure(result, ports, pids, args, tls, scratch / "csms.log"))
    except (RuntimeError, OSError) as err:
        failed = True
        print(f"bench.abuse: {type(err).__name__}: {err}", file=sys.stderr)
    finally:
        launcher.stop_all()
    failed = failed or any(r.failure for r in result.runs)
    load_report.clean_scratch(scratch, failed or args.keep)
    load_report.finish_run(result, args, report.SECTION)
    return 1 if failed and not result.runs else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
