"""The ``csms`` command line: one subcommand per operator task, wired as a table."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from csms import __version__, analytics_cli, registry_cli, tls_audit
from csms.api import cli as api_cli
from csms.protocol import (
    SUPPORTED_VERSIONS,
    Call,
    CallError,
    CallResult,
    Codec,
    Ignored,
    OcppError,
    codec_for,
    core_version,
    schema_dir,
)


def _version(_: argparse.Namespace) -> int:
    print(f"csms {__version__} (core {core_version}; OCPP {', '.join(SUPPORTED_VERSIONS)})")
    return 0


def _check(args: argparse.Namespace) -> int:
    """Decode one frame as the CSMS (or a station) would and print the outcome as JSON."""
    codec = (
        codec_for(args.ocpp)
        if args.role == "csms"
        else Codec(args.ocpp, schema_dir(args.ocpp), role="station")
    )
    data = (args.frame if args.frame is not None else sys.stdin.read()).encode()
    try:
        frame = codec.decode(data)
    except OcppError as err:
        reply = codec.encode_call_error(err.unique_id, err.code, err.description)
        print(json.dumps({"accepted": False, "reply": json.loads(reply)}))
        return 1
    print(json.dumps({"accepted": True, "frame": _describe(frame)}))
    return 0


def _check_cert(args: argparse.Namespace) -> int:
    """A16: audit a server certificate file (and its chain) against the CSO's CA file."""
    ca_file = Path(args.ca) if args.ca else None
    problems = tls_audit.audit_files(Path(args.cert), ca_file)
    for problem in problems:
        print(f"{args.cert}: {problem}")
    if not problems:
        print(f"{args.cert}: ok" + ("" if ca_file else " (chain not checked: no --ca)"))
    return 1 if problems else 0


def _describe(frame: Call | CallResult | CallError | Ignored) -> dict[str, object]:
    if isinstance(frame, Call):
        return {"type": frame.message_type_id, "id": frame.unique_id, "action": frame.action}
    if isinstance(frame, CallResult):
        return {"type": frame.message_type_id, "id": frame.unique_id}
    if isinstance(frame, CallError):
        return {"type": frame.message_type_id, "id": frame.unique_id, "code": frame.code}
    return {"type": frame.message_type_id, "ignored": True}


def _serve(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    import uvloop

    from csms import app, settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    overrides = {
        "host": args.host,
        "ocpp_port": args.ocpp_port,
        "api_port": args.api_port,
        "data_dir": args.data_dir,
        "nats_url": args.nats_url,
        "clickhouse_url": args.clickhouse_url,
        "unknown_stations": args.unknown_stations,
        "workers": args.workers,
    }
    config = settings.load(Path(args.config) if args.config else None, overrides)
    _tune_gc()
    uvloop.run(app.serve(config))
    return 0


GC_THRESHOLDS = (50_000, 20, 20)
"""Young-generation collections every 50,000 net allocations instead of 700. Each collection
walks the young objects still alive, which under load are about the same few thousand whatever
the threshold, so rarer collections are less work in all (measured ~3 % of the gateway's CPU at
the default). The frame path makes almost no reference cycles, so little waits longer."""


def _tune_gc() -> None:
    import gc

    gc.collect()
    gc.freeze()  # what start-up loaded is never garbage: keep it out of every collection
    gc.set_threshold(*GC_THRESHOLDS)


Command = Callable[[argparse.Namespace], int]

BENCH_TOOLS = {
    "simulate": "a simulated station fleet against any CSMS (bench/fleet; --help)",
    "bench": "a benchmark beside the references: load, boot-storm, micro, projections (--help)",
}


def _bench_tool(name: str) -> Command:
    """A tool of bench/ (a source checkout only: the wheel does not ship it)."""

    def run(args: argparse.Namespace) -> int:
        try:
            from bench import cli as bench_cli
        except ModuleNotFoundError:
            print(f"csms {name}: needs a source checkout (bench/)", file=sys.stderr)
            return 2
        return bench_cli.run(name, args.rest)

    return run


def _parser() -> tuple[argparse.ArgumentParser, dict[str, Command]]:
    parser = argparse.ArgumentParser(prog="csms", description="Event-sourced OCPP CSMS core")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("version", help="print versions")
    check = sub.add_parser("check", help="decode one OCPP-J frame and print what we would answer")
    check.add_argument("--ocpp", choices=SUPPORTED_VERSIONS, default="1.6")
    check.add_argument("--role", choices=["csms", "station"], default="csms")
    check.add_argument("frame", nargs="?", help="the frame text (default: read stdin)")
    check_cert = sub.add_parser("check-cert", help="audit the CSMS's TLS server certificate")
    check_cert.add_argument("cert", help="PEM file: the server certificate, then its chain")
    check_cert.add_argument("--ca", help="PEM file of the CSO's CA (checks the chain)")
    serve = sub.add_parser("serve", help="run the CSMS (embedded NATS unless --nats-url)")
    serve.add_argument("--host")
    serve.add_argument("--ocpp-port", type=int)
    serve.add_argument("--api-port", type=int)
    serve.add_argument("--data-dir")
    serve.add_argument("--nats-url")
    serve.add_argument("--clickhouse-url")
    serve.add_argument("--config", help="a csms.toml file")
    serve.add_argument(
        "--workers", type=int, help="gateway processes sharing the OCPP port (default 1)"
    )
    api_cli.add_parsers(sub)
    serve.add_argument(
        "--unknown-stations",
        choices=["accept", "reject"],
        help="stations missing from the registry (default accept: demo only)",
    )
    registry_cli.add_parser(sub)
    commands: dict[str, Command] = {
        "version": _version,
        "check": _check,
        "check-cert": _check_cert,
        "serve": _serve,
        "stations": registry_cli.run,
    }
    commands.update(api_cli.COMMANDS)
    commands.update(analytics_cli.add_parsers(sub))
    for name, text in BENCH_TOOLS.items():
        tool = sub.add_parser(name, help=text, add_help=False)
        tool.add_argument("rest", nargs=argparse.REMAINDER)
        commands[name] = _bench_tool(name)
    return parser, commands


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] in BENCH_TOOLS:  # their options are theirs: not parsed here
        return _bench_tool(words[0])(argparse.Namespace(rest=words[1:]))
    parser, commands = _parser()
    args = parser.parse_args(argv)
    return commands[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
