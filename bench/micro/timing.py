"""Timing: calibrate each loop to a time budget, then run the rounds interleaved.

Rounds go round-robin over the contenders (A B C A B C …) so that drift on a shared machine hits
all of them alike. As :mod:`timeit` does, the garbage collector is off inside a timed loop and a
collection runs before each one. The per-frame time of a round is its wall time divided by the
frames it decoded; the loop's own overhead (``for _ in repeat(None, n)``) is included.
"""

from __future__ import annotations

import gc
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from time import perf_counter_ns, thread_time_ns

from bench.micro.candidates import Candidate, Loop


@dataclass(frozen=True, slots=True)
class Settings:
    rounds: int
    round_seconds: float
    slow_round_seconds: float
    """Budget of a round of a ``slow`` contender (the ocpp package)."""


FULL = Settings(rounds=9, round_seconds=0.15, slow_round_seconds=0.3)
QUICK = Settings(rounds=3, round_seconds=0.02, slow_round_seconds=0.05)


@dataclass(frozen=True, slots=True)
class Stats:
    median_ns: float
    """Median over the rounds of the per-frame time."""
    min_ns: float
    rounds: int
    calls_per_round: int
    frames_per_call: int
    cpu_share: float
    """Thread CPU time over wall time of the rounds: below 1 when other work took the core."""


def _timed(loop: Loop, n: int) -> tuple[int, int]:
    """Wall and thread CPU time of ``loop(n)``, in ns."""
    gc.collect()
    gc.disable()
    try:
        start, cpu_start = perf_counter_ns(), thread_time_ns()
        loop(n)
        return perf_counter_ns() - start, thread_time_ns() - cpu_start
    finally:
        gc.enable()


def calibrate(loop: Loop, seconds: float) -> int:
    """Calls per round so that one round lasts about ``seconds``; the doubling warms up."""
    budget_ns = seconds * 1e9
    n = 1
    while (elapsed := _timed(loop, n)[0]) < budget_ns / 4:
        n *= 2
    return max(1, round(n * budget_ns / elapsed))


def measure(contenders: Sequence[Candidate], settings: Settings) -> list[Stats]:
    """Per-frame statistics of each contender, in the order given."""
    calls = [
        calibrate(c.loop, settings.slow_round_seconds if c.slow else settings.round_seconds)
        for c in contenders
    ]
    samples: list[list[float]] = [[] for _ in contenders]
    wall, cpu = [0] * len(contenders), [0] * len(contenders)
    for _ in range(settings.rounds):
        for i, (c, n) in enumerate(zip(contenders, calls, strict=True)):
            elapsed, on_cpu = _timed(c.loop, n)
            samples[i].append(elapsed / (n * c.frames_per_call))
            wall[i] += elapsed
            cpu[i] += on_cpu
    return [
        Stats(
            statistics.median(out),
            min(out),
            settings.rounds,
            n,
            c.frames_per_call,
            cpu[i] / wall[i],
        )
        for i, (c, n, out) in enumerate(zip(contenders, calls, samples, strict=True))
    ]
