"""``csms simulate`` and ``csms bench``: the command line's door into bench/ (a source checkout;
the wheel does not ship bench/). Each name maps to a tool's ``main(argv) -> int``."""

from __future__ import annotations

import sys


def _simulate(argv: list[str]) -> int:
    from bench.fleet.__main__ import main

    return main(argv)


def _bench(argv: list[str]) -> int:
    from bench.run import main

    return main(argv)


TOOLS = {"simulate": _simulate, "bench": _bench}


def run(name: str, argv: list[str]) -> int:
    try:
        return TOOLS[name](argv)
    except KeyboardInterrupt:
        print(f"csms {name}: interrupted", file=sys.stderr)
        return 130
