"""The rate budget: at most ``max_rate`` requests in any window of ``time_period``.

aiolimiter's leaky bucket is not used here, although bulkflow depends on it:
it lets ``max_rate`` requests through at once and then leaks, so the first
window of a run carries almost twice the budget. Measured with
``AsyncLimiter(5, 1)``, 30 acquisitions put 9 in the first second, and
``AsyncLimiter(10, 1)`` put 19. A service that counts requests per sliding
second refuses the excess (error 10 or HTTP 429).

:class:`RateBudget` instead spaces grants evenly, ``time_period / max_rate``
apart, stretched by a small ``headroom``: requests that the client spaces
exactly leave a little room for the network to bunch them on their way to
the server. A log of the last ``max_rate`` grant times keeps the bound true
while the pace changes. When the server says "too many", the budget halves
its pace, pauses for the server's ``Retry-After``, and climbs back to the
full rate step by step.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from typing import NamedTuple, Protocol

import anyio

from bulkflow._exceptions import UsageError

_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*$")


def parse_rate(text: str) -> tuple[float, float]:
    """Read ``"10/s"``, ``"600/min"`` or ``"2.5/s"`` as ``(max_rate, time_period)``.

    Raises:
        UsageError: naming the text and the forms that are understood.
    """
    match = _RATE.match(text.lower())
    unit = _UNITS.get(match.group(2)) if match else None
    if match is None or unit is None or float(match.group(1)) <= 0:
        raise UsageError(
            f"--rate {text!r} is not a rate; write requests per second or per "
            "minute, e.g. 10/s or 300/min"
        )
    return float(match.group(1)), unit


class Clock(Protocol):
    """Where a budget reads the time and how it waits (tests pass a fake one)."""

    def now(self) -> float:
        """Seconds on a monotonic clock."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class SystemClock:
    """The real clock: ``time.monotonic`` and ``anyio.sleep``."""

    def now(self) -> float:
        """Seconds on the monotonic clock."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on the event loop."""
        await anyio.sleep(seconds)


class RateStatistics(NamedTuple):
    """A snapshot of a :class:`RateBudget`.

    Attributes:
        max_rate: the budget, requests per ``time_period``.
        time_period: the window of the budget, in seconds.
        current_rate: the pace now, below ``max_rate`` after a slow-down.
        granted: requests let through so far.
        waiting: tasks waiting for a grant now.
        slowdowns: times the server said "too many" and the pace was halved.
        paused_for: seconds left of a pause the server asked for.
        max_in_window: the most grants seen in any window of ``time_period``.
    """

    max_rate: float
    time_period: float
    current_rate: float
    granted: int
    waiting: int
    slowdowns: int
    paused_for: float
    max_in_window: int


class RateBudget:
    """At most ``max_rate`` requests in any window of ``time_period`` seconds.

    Share one budget between every task (and every import) that sends to the
    same host: ``async with budget:`` before each request.

    Args:
        max_rate: requests allowed per ``time_period``.
        time_period: the window, in seconds.
        headroom: how much wider than ``time_period`` the spacing is made, as
            a fraction (0.03: a 10/s budget sends at most 9.7/s).
        min_rate: the slowest pace a slow-down may reach, per ``time_period``.
        recovery_period: seconds without a slow-down after which the pace
            grows by ``recovery_step`` × ``max_rate``.
        recovery_step: the fraction of ``max_rate`` regained per period.
        startup_margin: seconds added once, to the first full window: the
            run's first requests open connections and arrive late, which
            bunches them with the next ones at the server (default: a tenth
            of ``time_period``).
        clock: where to read the time and how to sleep (a fake in tests).

    Raises:
        UsageError: for a rate, period or headroom that is not positive.
    """

    def __init__(
        self,
        max_rate: float,
        time_period: float = 1.0,
        *,
        headroom: float = 0.03,
        min_rate: float | None = None,
        recovery_period: float | None = None,
        recovery_step: float = 0.25,
        startup_margin: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        if max_rate <= 0 or time_period <= 0 or not 0 <= headroom < 1:
            raise UsageError(
                f"RateBudget({max_rate}, {time_period}, headroom={headroom}): the "
                "rate and period must be positive and the headroom in [0, 1)"
            )

        self.max_rate = max_rate
        self.time_period = time_period
        self.headroom = headroom
        self.min_rate = min_rate if min_rate is not None else max_rate / 16
        # Quick to recover: a lone refusal (arrival jitter on a loaded
        # machine can cause one) should not hold the import back for long;
        # a server that keeps refusing halves the pace again each time.
        self.recovery_period = recovery_period or time_period
        self.recovery_step = recovery_step
        self.startup_margin = (
            0.1 * time_period if startup_margin is None else startup_margin
        )

        self._clock: Clock = clock or SystemClock()
        self._lock = anyio.Lock()
        # The last grants, as many as the budget allows per window: the next
        # grant waits until the oldest of them has left the window.
        self._grants: deque[float] = deque(maxlen=max(1, math.floor(max_rate)))
        self._recent: deque[float] = deque()
        self._last: float | None = None
        self._paused_until = -math.inf
        self._slowed_at: float | None = None
        self._slowed_rate = max_rate

        self._granted = 0
        self._waiting = 0
        self._slowdowns = 0
        self._max_in_window = 0

    @classmethod
    def from_text(
        cls, text: str, *, headroom: float = 0.03, clock: Clock | None = None
    ) -> RateBudget:
        """A budget from ``"10/s"`` or ``"600/min"`` (see :func:`parse_rate`).

        Raises:
            UsageError: for text that is not a rate.
        """
        max_rate, time_period = parse_rate(text)
        return cls(max_rate, time_period, headroom=headroom, clock=clock)

    def __repr__(self) -> str:
        stats = self.statistics()
        return (
            f"<RateBudget {stats.max_rate:g}/{stats.time_period:g}s "
            f"pace={stats.current_rate:.3g} granted={stats.granted} "
            f"waiting={stats.waiting} slowdowns={stats.slowdowns} "
            f"paused_for={stats.paused_for:.2f}s>"
        )

    async def __aenter__(self) -> float:
        return await self.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    # -- granting -----------------------------------------------------------

    def current_rate(self, now: float | None = None) -> float:
        """The pace at ``now``: ``max_rate``, or less while recovering."""
        if self._slowed_at is None:
            return self.max_rate
        now = self._clock.now() if now is None else now
        steps = math.floor((now - self._slowed_at) / self.recovery_period)
        regained = steps * self.recovery_step * self.max_rate
        return min(self.max_rate, self._slowed_rate + regained)

    def _earliest(self, now: float) -> float:
        """The first moment at which a grant keeps every promise."""
        window = self.time_period * (1 + self.headroom)
        earliest = self._paused_until
        if self._last is not None:
            earliest = max(earliest, self._last + window / self.current_rate(now))
        if len(self._grants) == self._grants.maxlen:
            window_end = self._grants[0] + self.time_period
            if self._granted == self.max_rate:
                # The run's first requests each open a connection, which
                # delays their arrival by a few milliseconds to more: leave
                # them a margin once, at the first full window.
                window_end += self.startup_margin
            earliest = max(earliest, window_end)
        return earliest

    async def acquire(self) -> float:
        """Wait for a grant; return the clock time at which it was given.

        Waiters are served in arrival order. Cancelled while waiting, a task
        takes nothing from the budget.
        """
        self._waiting += 1
        try:
            async with self._lock:
                while True:
                    now = self._clock.now()
                    earliest = self._earliest(now)
                    if earliest <= now:
                        return self._grant(now, earliest)
                    # Woken early or late, look again: a slow-down may have
                    # come in while this task slept.
                    await self._clock.sleep(earliest - now)
        finally:
            self._waiting -= 1

    def _grant(self, now: float, earliest: float) -> float:
        # The pace counts from the planned time, so that a wake-up a little
        # late does not push every later grant back; after an idle spell it
        # counts from (nearly) now. The log of real grant times keeps the
        # bound whatever the pace says.
        interval = self.time_period * (1 + self.headroom) / self.current_rate(now)
        planned = max(earliest, now - interval / 4)
        self._last = now if self._last is None else planned
        self._grants.append(now)
        self._granted += 1
        recent = self._recent
        recent.append(now)
        while recent and recent[0] <= now - self.time_period:
            recent.popleft()
        self._max_in_window = max(self._max_in_window, len(recent))
        return now

    # -- feedback -------------------------------------------------------------

    def slow_down(self, retry_after: float | None = None) -> None:
        """The server said "too many": halve the pace and pause.

        The pause lasts ``retry_after`` seconds when the server named it, else
        one ``time_period``. Several refusals within one window (concurrent
        requests refused together) halve the pace once.
        """
        now = self._clock.now()
        pause = self.time_period if retry_after is None else retry_after
        self._paused_until = max(self._paused_until, now + pause)
        last = self._slowed_at
        if last is not None and now - last < self.time_period:
            return
        self._slowed_rate = max(self.min_rate, self.current_rate(now) / 2)
        self._slowed_at = now
        self._slowdowns += 1

    def statistics(self) -> RateStatistics:
        """A snapshot of the budget's state and counters."""
        now = self._clock.now()
        return RateStatistics(
            max_rate=self.max_rate,
            time_period=self.time_period,
            current_rate=self.current_rate(now),
            granted=self._granted,
            waiting=self._waiting,
            slowdowns=self._slowdowns,
            paused_for=max(0.0, self._paused_until - now),
            max_in_window=self._max_in_window,
        )


def max_in_any_window(times: list[float], period: float = 1.0) -> int:
    """The most of ``times`` that fall in any half-open window ``[t, t + period)``."""
    ordered = sorted(times)
    best = start = 0
    for end, moment in enumerate(ordered):
        while ordered[start] <= moment - period:
            start += 1
        best = max(best, end - start + 1)
    return best
