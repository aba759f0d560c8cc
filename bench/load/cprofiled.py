"""Run a Python module under cProfile and write its statistics when it ends, SIGTERM included (the
module's own signal handling decides how it ends: ``csms serve`` drains and returns).

    python -m bench.load.cprofiled OUT.pstats MODULE [ARGS ...]

The profiler starts switched off: SIGUSR1 switches it on, SIGUSR2 off (the benchmark profiles
only while its load runs, not the start-up). Only the main thread is profiled (the event loop:
the gateway's sessions, handlers and publishing); what the module does in other threads is not
seen.
"""

from __future__ import annotations

import cProfile
import runpy
import signal
import sys


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out, module, *args = argv
    sys.argv = [module, *args]
    # Until the module installs its own handler, SIGTERM ends the run through SystemExit, so
    # that the statistics are written either way.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    profiler = cProfile.Profile()
    signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())
    signal.signal(signal.SIGUSR2, lambda *_: profiler.disable())
    code = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 0
    finally:
        profiler.disable()
        profiler.dump_stats(out)
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
