"""Parse + validate micro benchmark: our codec beside the ocpp package and msgspec, in one run.

    .venv/bin/python -m bench.micro [--quick] [--json OUT] [--readme PATH | --no-readme]

Writes the results as JSON (default ``bench/results/micro.json``) and rewrites the marked section
of ``bench/README.md``, including the Rust criterion results if ``cargo bench`` left any.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
from pathlib import Path

import msgspec

from bench.micro import candidates, environment, report, timing


def _command(argv: list[str]) -> str:
    python = Path(sys.executable)
    if python.is_relative_to(Path.cwd()):
        python = python.relative_to(Path.cwd())
    return shlex.join([str(python), "-m", "bench.micro", *argv])


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.micro", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: few short rounds")
    parser.add_argument(
        "--json",
        type=Path,
        default=environment.ROOT / "bench" / "results" / "micro.json",
        help="where to write the results (default: %(default)s)",
    )
    parser.add_argument(
        "--readme",
        type=Path,
        default=environment.ROOT / "bench" / "README.md",
        help="Markdown file whose marked section is rewritten (default: %(default)s)",
    )
    parser.add_argument("--no-readme", action="store_true", help="leave the README alone")
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = _parse(argv)
    settings = timing.QUICK if args.quick else timing.FULL
    started = dt.datetime.now(dt.UTC)
    env = environment.environment()
    frames = []
    for frame in candidates.load_frames():
        contenders = candidates.candidates(frame)
        stats = timing.measure(contenders, settings)
        measured = [
            report.Measured(c.key, c.label, s) for c, s in zip(contenders, stats, strict=True)
        ]
        frames.append(
            report.FrameResult(frame.name, frame.version, frame.action, len(frame.data), measured)
        )
        ours, ocpp = frames[-1].median("ours"), frames[-1].median("ocpp")
        print(
            f"{frame.name:<24} ours {ours / 1e3:8.2f} µs   ocpp {ocpp / 1e3:9.1f} µs"
            f"   {ocpp / ours:6.0f}x",
            file=sys.stderr,
        )
    run = report.Run(
        started=started.strftime("%Y-%m-%d %H:%M:%S"),
        command=_command(argv),
        settings=settings,
        environment=env,
        load_average_end=os.getloadavg(),
        frames=frames,
        rust=environment.rust_results([f.name for f in frames]),
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_bytes(msgspec.json.format(msgspec.json.encode(run), indent=2) + b"\n")
    print(f"results: {args.json}", file=sys.stderr)
    if not args.no_readme:
        report.update_readme(args.readme, report.render(run))
        print(f"report: {args.readme}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
