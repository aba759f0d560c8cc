"""Limits under abuse that are small state machines (reliability.md §5.6). Pure, no I/O.

- :class:`PendingHandshakes`: at most N connections per address between TCP accept and the
  HTTP upgrade request (D1, slowloris); the handshake timeout closes the rest.
- :class:`HandshakeRate`: TLS handshakes per address and second (token bucket, D3): a flood
  from one address is refused before it costs a handshake.
- :class:`PingBudget`: pings a connection may send per second before it is closed with 1008
  (D8); needs picows' auto-pong off (``ListenerOptions.auto_pong``) and the session answering.
- :class:`ReplacementWatch`: a station identity whose session is replaced more than 3 times a
  minute is reported (duplicate station or hijack attempt, A25 / SaiFlow); after 10, further
  replacements are refused with 429 before the upgrade (D11).
- :class:`StrikeBudget`: peer-caused CALLERRORs a connection may earn in a sliding window
  before it is closed with 1008 (D12).
- :class:`EventSampler`: which refusals that no credential check throttles (failed TLS
  handshakes) become security events: one per address per window and a global rate, with the
  number suppressed meanwhile, so that a flood cannot flood the stream.

Frame and message size (D4-D6) are enforced by picows' ``max_frame_size`` (checked on the frame
header, before the payload is buffered) and by the session's reassembly cap.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

MAX_PENDING_HANDSHAKES_PER_ADDRESS = 50
TLS_HANDSHAKES_PER_S = 20.0
REPLACEMENTS_BEFORE_REFUSAL = 10
PINGS_PER_S = 2.0
PING_BURST = 10
TLS_HANDSHAKE_BURST = 50
STRIKES = 20
STRIKE_WINDOW_S = 60.0
SAMPLED_EVENTS_PER_S = 5.0
SAMPLED_EVENTS_BURST = 20
SAMPLE_WINDOW_S = 60.0


class PendingHandshakes:
    """Connections per address that have not sent their upgrade request yet."""

    def __init__(self, per_address: int = MAX_PENDING_HANDSHAKES_PER_ADDRESS) -> None:
        self.per_address = per_address
        self._pending: dict[str, int] = {}

    def admit(self, address: str) -> bool:
        """Count a new connection; False (and not counted) when the address is at its cap."""
        count = self._pending.get(address, 0)
        if count >= self.per_address:
            return False
        self._pending[address] = count + 1
        return True

    def release(self, address: str) -> None:
        count = self._pending.get(address, 0) - 1
        if count > 0:
            self._pending[address] = count
        else:
            self._pending.pop(address, None)

    def pending(self, address: str) -> int:
        return self._pending.get(address, 0)


class HandshakeRate:
    """A token bucket per address: ``burst`` at once, then ``per_s``; bounded memory."""

    def __init__(
        self,
        per_s: float = TLS_HANDSHAKES_PER_S,
        burst: int = TLS_HANDSHAKE_BURST,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = 100_000,
    ) -> None:
        self.per_s = per_s
        self.burst = burst
        self._clock = clock
        self._max = max_addresses
        self._tokens: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, address: str) -> bool:
        now = self._clock()
        tokens, since = self._tokens.get(address, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - since) * self.per_s)
        allowed = tokens >= 1.0
        self._tokens[address] = (tokens - 1.0 if allowed else tokens, now)
        self._tokens.move_to_end(address)
        if len(self._tokens) > self._max:
            self._tokens.popitem(last=False)
        return allowed


class PingBudget:
    """One connection's pings: ``burst`` at once, then ``per_s``. ``allow()`` False: close
    with 1008 (a station pings every WebSocketPingInterval seconds, typically 30 or more)."""

    __slots__ = ("_clock", "_since", "_tokens", "burst", "per_s")

    def __init__(
        self,
        per_s: float = PINGS_PER_S,
        burst: int = PING_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_s = per_s
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._since = clock()

    def allow(self) -> bool:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._since) * self.per_s)
        self._since = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class ReplacementWatch:
    """Replacements of a station identity's live session by a newer connection. ``replaced``
    records one and is True past ``limit`` within ``window_s`` (an alert: duplicate station or
    hijack attempt). ``refusing`` is True once ``refuse_after`` happened within ``window_s``:
    the gateway then refuses a connection that would replace the live session again with 429
    (D11: a replacement storm costs a refused upgrade each, not a session each); the live
    session stays, and the identity's next connection once it is gone is served as usual."""

    def __init__(
        self,
        limit: int = 3,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_identities: int = 100_000,
        refuse_after: int = REPLACEMENTS_BEFORE_REFUSAL,
    ) -> None:
        self.limit = limit
        self.refuse_after = refuse_after
        self.window_s = window_s
        self._clock = clock
        self._max = max_identities
        self._times: OrderedDict[str, deque[float]] = OrderedDict()

    def replaced(self, identity: str) -> bool:
        now = self._clock()
        times = self._times.get(identity)
        if times is None:
            times = deque(maxlen=max(self.limit, self.refuse_after) + 1)
            self._times[identity] = times
            if len(self._times) > self._max:
                self._times.popitem(last=False)
        self._times.move_to_end(identity)
        times.append(now)
        self._expire(times, now)
        return len(times) > self.limit

    def refusing(self, identity: str) -> bool:
        times = self._times.get(identity)
        if times is None or not self.refuse_after:
            return False
        self._expire(times, self._clock())
        return len(times) >= self.refuse_after

    def _expire(self, times: deque[float], now: float) -> None:
        while times and now - times[0] > self.window_s:
            times.popleft()


class StrikeBudget:
    """``strike()`` once per CALLERROR the peer caused (malformed frame, unknown action, schema
    violation: not our InternalError); True once the connection has exceeded ``strikes`` in
    ``window_s`` and must be closed with 1008 (policy violation). One per session; a session
    that never earns a strike holds no deque (idle connections stay small)."""

    __slots__ = ("_clock", "_times", "strikes", "window_s")

    def __init__(
        self,
        strikes: int = STRIKES,
        window_s: float = STRIKE_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.strikes = strikes
        self.window_s = window_s
        self._clock = clock
        self._times: deque[float] | None = None

    def strike(self) -> bool:
        now = self._clock()
        if self._times is None:
            self._times = deque(maxlen=self.strikes + 1)
        times = self._times
        times.append(now)
        while times and now - times[0] > self.window_s:
            times.popleft()
        return len(times) > self.strikes


class EventSampler:
    """``sample(address)``: None (suppress) or the number of events suppressed for that address
    since the last recorded one (record, mentioning them). At most one recorded event per
    address per ``window_s`` and ``per_s`` (burst ``burst``) over all addresses; bounded memory
    (the least recently seen addresses are forgotten, so a forgotten one is recorded again)."""

    def __init__(
        self,
        window_s: float = SAMPLE_WINDOW_S,
        per_s: float = SAMPLED_EVENTS_PER_S,
        burst: int = SAMPLED_EVENTS_BURST,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = 10_000,
    ) -> None:
        self.window_s = window_s
        self._rate = HandshakeRate(per_s, burst, clock, max_addresses=1)
        self._clock = clock
        self._max = max_addresses
        self._last: OrderedDict[str, tuple[float, int]] = OrderedDict()
        """address → (when its last event was recorded, suppressed since)."""

    def sample(self, address: str) -> int | None:
        now = self._clock()
        last = self._last.get(address)
        if (last is not None and now - last[0] < self.window_s) or not self._rate.allow(""):
            recorded_at, suppressed = last if last is not None else (now - self.window_s, 0)
            self._remember(address, recorded_at, suppressed + 1)
            return None
        self._remember(address, now, 0)
        return last[1] if last is not None else 0

    def _remember(self, address: str, recorded_at: float, suppressed: int) -> None:
        self._last[address] = (recorded_at, suppressed)
        self._last.move_to_end(address)
        if len(self._last) > self._max:
            self._last.popitem(last=False)
