"""What a report must state besides its numbers: machine, versions, and the Rust criterion results
with the time they were produced."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import msgspec

from csms.protocol import core_version

ROOT = Path(__file__).resolve().parents[2]

RUST_BENCHES = {
    "json_only": ("Rust: serde_json parse only", 1),
    "decode": ("Rust: `Codec::decode` (parse + validate)", 1),
    "decode_batch_256": ("Rust: 256 \N{MULTIPLICATION SIGN} `Codec::decode` per iteration", 256),
}
"""criterion bench id → (row label, frames per iteration)."""


@dataclass(frozen=True, slots=True)
class Environment:
    cpu: str
    cores: int
    cores_usable: int
    kernel: str
    python: str
    rustc: str | None
    versions: dict[str, str]
    load_average: tuple[float, float, float]
    """1, 5 and 15 minute load averages when the run started."""
    extension_built: str
    """mtime of the loaded ``csms._core`` shared library, UTC."""
    extension_stale: bool
    """The shared library is older than a Rust source."""


@dataclass(frozen=True, slots=True)
class RustResult:
    frame: str
    bench: str
    label: str
    median_ns: float
    """Per frame (batch iterations divided by their frame count)."""
    produced: str
    """mtime of criterion's estimates.json, UTC."""
    stale: bool
    """Older than a Rust source or frame it measures."""


def _utc(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _rustc() -> str | None:
    rustc = shutil.which("rustc")
    if rustc is None:
        return None
    done = subprocess.run([rustc, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or None


def _extension_mtime() -> float:
    # Not imported directly: ``csms._core`` is reached only through ``csms.protocol``.
    spec = importlib.util.find_spec("csms._core")
    return 0.0 if spec is None or spec.origin is None else Path(spec.origin).stat().st_mtime


def environment() -> Environment:
    return Environment(
        cpu=_cpu_model(),
        cores=os.cpu_count() or 1,
        cores_usable=len(os.sched_getaffinity(0)),
        kernel=platform.release(),
        python=f"{platform.python_implementation()} {platform.python_version()}",
        rustc=_rustc(),
        versions={
            "csms._core": core_version,
            **{name: version(name) for name in ("ocpp", "msgspec", "jsonschema")},
        },
        load_average=os.getloadavg(),
        extension_built=_utc(_extension_mtime()),
        extension_stale=_extension_mtime() < _newest_mtime(frames=False),
    )


def _newest_mtime(*, frames: bool) -> float:
    inputs = [*(ROOT / "core_rs").rglob("*.rs")]
    inputs += (ROOT / "bench" / "frames").glob("*.json") if frames else []
    return max((p.stat().st_mtime for p in inputs), default=0.0)


def criterion_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "criterion"


def rust_results(frames: list[str]) -> list[RustResult]:
    """The criterion medians found for ``frames`` (none if ``cargo bench`` has not run)."""
    newest_input = _newest_mtime(frames=True)
    results = []
    for frame in frames:
        for bench, (label, per_iteration) in RUST_BENCHES.items():
            path = criterion_dir() / frame / bench / "new" / "estimates.json"
            if not path.is_file():
                continue
            median = float(msgspec.json.decode(path.read_bytes())["median"]["point_estimate"])
            mtime = path.stat().st_mtime
            produced = _utc(mtime)
            results.append(
                RustResult(
                    frame, bench, label, median / per_iteration, produced, mtime < newest_input
                )
            )
    return results
