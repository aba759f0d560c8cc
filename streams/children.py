"""Child processes of ``csms serve``: the embedded nats-server, the projector, the other gateway
processes of ``--workers``.

Each runs in a session of its own (``start_new_session=True``), so a terminal's Ctrl-C or a
signal to the whole process group reaches only ``csms serve``, which drains and then stops its
children in order, the nats-server last (the drain's events still need it); and each is
ended by the kernel (:func:`end_with_parent`) if ``csms serve`` dies without stopping it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import signal
import sys

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def end_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux), so a killed ``csms
    serve`` never leaves a child behind (a projector holding the chDB directory, a nats-server
    holding the port and the store its restart needs)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


async def relay_output(
    process: asyncio.subprocess.Process, ready: asyncio.Event, ready_line: bytes
) -> None:
    """Pass the child's output (a pipe, so that its ready line can be seen) on to ours; a line
    starting with ``ready_line`` sets ``ready``, and so does its end (the child exited: whoever
    waits learns it at once instead of waiting)."""
    assert process.stdout is not None
    async for line in process.stdout:
        if line.startswith(ready_line):
            ready.set()
        sys.stdout.write(line.decode(errors="replace"))
        sys.stdout.flush()
    ready.set()


async def stop_child(process: asyncio.subprocess.Process, timeout_s: float, what: str) -> None:
    """SIGTERM (the child stops in its own way: drains, finishes a batch), then SIGKILL if it
    is still running after ``timeout_s``."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        log.warning("%s process %d did not stop: killed", what, process.pid)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
