"""The one chDB engine of a pytest process.

chDB hosts one engine per process and refuses a second path while one is open, so every test of
a run shares this directory and isolates itself with its own database (:func:`fresh_database`).
A test that needs a fresh engine (a restart) runs it in a subprocess.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid
from pathlib import Path

ENGINE_DIR = Path(tempfile.mkdtemp(prefix="csms-chdb-"))
atexit.register(shutil.rmtree, ENGINE_DIR, ignore_errors=True)


def engine_url() -> str:
    return f"chdb://{ENGINE_DIR}"


def fresh_database(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"
