"""A progress display for long benchmark runs: one line per step on stderr, with the step count,
the time spent and a rough estimate of the time left (the mean step so far times the steps left)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return (
        f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"
        if minutes >= 60
        else f"{minutes}:{secs:02d}"
    )


class Progress:
    def __init__(self, steps: int) -> None:
        self.steps = max(steps, 1)
        self.done = 0
        self.started = time.monotonic()

    def step(self, what: str) -> None:
        """Say that step ``what`` begins."""
        spent = time.monotonic() - self.started
        left = (
            f", ~{_clock(spent / self.done * (self.steps - self.done))} left" if self.done else ""
        )
        self.done += 1
        print(
            f"[{self.done}/{self.steps} {_clock(spent)}{left}] {what}", file=sys.stderr, flush=True
        )


def run_watched(argv: list[str], log: Path, timeout_s: float, every_s: float = 10.0) -> str:
    """Run a simulator child whose stderr (its progress lines) goes to ``log``; every
    ``every_s`` say its last line on stderr, so that a long step shows it advances. Returns its
    stdout; RuntimeError if it fails, TimeoutExpired (after killing it) if it runs too long."""
    out = log.with_suffix(".out")
    with log.open("wb") as err, out.open("wb") as stdout:
        child = subprocess.Popen(
            argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=stdout, stderr=err
        )
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    child.wait(min(every_s, max(deadline - time.monotonic(), 0.1)))
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() >= deadline:
                        raise
                    _say_last_line(log)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    if child.returncode != 0:
        raise RuntimeError(f"simulator exited with {child.returncode}; see {log}")
    return out.read_text()


def _say_last_line(log: Path) -> None:
    lines = log.read_bytes()[-2000:].decode(errors="replace").replace("\r", "\n").splitlines()
    last = next((line.strip() for line in reversed(lines) if line.strip()), "")
    if last:
        print(f"    {last}", file=sys.stderr, flush=True)
