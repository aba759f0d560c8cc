"""The projector child of ``csms serve`` ends with its parent (a killed gateway must not leave a
projector holding the chDB directory that its restart needs), and stops on ``stop()``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from streams.projections.process import start_projector_process

CHILD = [
    sys.executable,
    "-c",
    "import time; print('csms: projecting x', flush=True); time.sleep(600)",
]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_the_child_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import asyncio, sys
                from streams.projections.process import start_projector_process
                async def main():
                    p = await start_projector_process({CHILD!r}, "chdb://{tmp_path}/ch")
                    print("child", p.process.pid, flush=True)
                    await asyncio.sleep(600)
                asyncio.run(main())
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    line = parent.stdout.readline()
    while not line.startswith("child"):
        line = parent.stdout.readline()
    child = int(line.split()[1])
    assert _alive(child)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    parent.stdout.close()
    deadline = time.monotonic() + 30
    while _alive(child):
        assert time.monotonic() < deadline, "the projector child outlived its parent"
        time.sleep(0.05)


async def test_stop_ends_the_child(tmp_path: Path) -> None:
    started = await start_projector_process(CHILD, f"chdb://{tmp_path}/ch")
    assert started is not None
    pid = started.process.pid
    await asyncio.wait_for(started.stop(), 30)
    assert started.process.returncode is not None
    assert not _alive(pid)
