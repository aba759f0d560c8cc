"""A progress display for long benchmark runs: one line per step on stderr, with the step count,
the time spent and a rough estimate of the time left (the mean step so far times the steps left)."""

from __future__ import annotations

import sys
import time


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
