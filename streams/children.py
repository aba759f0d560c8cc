"""Child processes of ``csms serve``: the embedded nats-server, the projector, the other gateway
processes of ``--workers``.

Each runs in a session of its own (``start_new_session=True``), so a terminal's Ctrl-C or a
signal to the whole process group reaches only ``csms serve``, which drains and then stops its
children in order, the nats-server last (the drain's events still need it); and each is
ended by the kernel (:func:`end_with_parent`) if ``csms serve`` dies without stopping it.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal

PR_SET_PDEATHSIG = 1


def end_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux), so a killed ``csms
    serve`` never leaves a child behind (a projector holding the chDB directory, a nats-server
    holding the port and the store its restart needs)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
