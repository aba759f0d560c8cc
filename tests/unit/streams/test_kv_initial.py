"""The end of a watch's initial values, read from the values, not from nats-py's marker (which
can come first: ``streams.kv_initial``). A fake watcher replays the update orders a real one
delivers; the integration tests (presence, registry, tokens) run the real thing."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from nats.js.kv import KeyValue

from streams.kv_initial import current_entries, current_keys


def _entry(key: str, delta: int, operation: str | None = None) -> Any:
    return KeyValue.Entry(
        bucket="B", key=key, value=b"" if operation else b"v", revision=1, delta=delta,
        created=None, operation=operation,
    )  # fmt: skip


@dataclass
class FakeWatcher:
    updates_in_order: list[Any]
    delivered: int
    stopped: bool = False
    _sub: Any = field(init=False)

    def __post_init__(self) -> None:
        info = SimpleNamespace(
            delivered=SimpleNamespace(consumer_seq=self.delivered), num_pending=0
        )

        async def consumer_info() -> Any:
            return info

        self._sub = SimpleNamespace(consumer_info=consumer_info)

    async def updates(self, timeout: float) -> Any:
        if not self.updates_in_order:
            raise TimeoutError
        return self.updates_in_order.pop(0)

    async def stop(self) -> None:
        self.stopped = True


@dataclass
class FakeKv:
    watcher: FakeWatcher

    async def watch(self, keys: str) -> FakeWatcher:
        return self.watcher


async def test_a_marker_before_the_values_does_not_end_them() -> None:
    a, b = _entry("a", 2), _entry("b", 1)
    gone = _entry("c", 0, operation="DEL")
    watcher = FakeWatcher([None, a, b, gone, None], delivered=3)
    assert await current_entries(FakeKv(watcher)) == [a, b, gone]  # type: ignore[arg-type]
    assert watcher.stopped
    watcher = FakeWatcher([None, a, b, gone, None], delivered=3)
    assert await current_keys(FakeKv(watcher)) == ["a", "b"]  # type: ignore[arg-type]


async def test_the_usual_order_and_an_empty_bucket() -> None:
    a = _entry("a", 0)
    assert await current_entries(FakeKv(FakeWatcher([a, None], delivered=1))) == [a]  # type: ignore[arg-type]
    assert await current_entries(FakeKv(FakeWatcher([None], delivered=0))) == []  # type: ignore[arg-type]


async def test_values_that_never_come_are_a_timeout_not_an_empty_bucket() -> None:
    with pytest.raises(TimeoutError):
        await current_entries(FakeKv(FakeWatcher([None], delivered=2)))  # type: ignore[arg-type]
