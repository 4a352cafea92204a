"""The rate budget: the sliding-window bound, slow-down, Retry-After and recovery."""

from __future__ import annotations

import asyncio
import itertools

import anyio
import pytest
from aiolimiter import AsyncLimiter

from bulkflow import UsageError
from bulkflow.import_ import RateBudget, parse_rate
from bulkflow.import_._limits import max_in_any_window

pytestmark = pytest.mark.anyio


class FakeClock:
    """A clock that moves only when a task sleeps on it, by exactly that long."""

    def __init__(self) -> None:
        self.time = 100.0

    def now(self) -> float:
        """The fake time."""
        return self.time

    async def sleep(self, seconds: float) -> None:
        """Jump ahead instead of waiting; let other tasks run."""
        self.time += max(0.0, seconds)
        await anyio.lowlevel.checkpoint()


def most_in_a_window(times: list[float], period: float = 1.0) -> int:
    """The most ``times`` in any ``[t, t + period)``, counted the slow, obvious way."""
    return max((sum(1 for u in times if t <= u < t + period) for t in times), default=0)


async def grants(
    budget: RateBudget, clock: FakeClock, count: int, tasks: int
) -> list[float]:
    """Have ``tasks`` tasks take ``count`` grants in all; return the grant times."""
    times: list[float] = []

    async def worker(share: int) -> None:
        for _ in range(share):
            await budget.acquire()
            times.append(clock.now())

    async with anyio.create_task_group() as group:
        for index in range(tasks):
            group.start_soon(worker, count // tasks + (index < count % tasks))
    return times


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10/s", (10.0, 1.0)),
        ("300/min", (300.0, 60.0)),
        ("2.5/sec", (2.5, 1.0)),
        ("1000/h", (1000.0, 3600.0)),
        (" 7 / second ", (7.0, 1.0)),
    ],
)
def test_rates_are_read_per_second_minute_or_hour(
    text: str, expected: tuple[float, float]
) -> None:
    """``N/s``, ``N/min`` and ``N/h`` give the budget and its window."""
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["fast", "0/s", "10/day", "-1/s", "10"])
def test_a_rate_that_cannot_be_read_names_the_option(text: str) -> None:
    """A bad rate is a usage error that shows the forms understood."""
    with pytest.raises(UsageError, match=r"--rate .*10/s or 300/min"):
        parse_rate(text)


async def test_aiolimiter_lets_a_second_budget_through_in_the_first_window() -> None:
    """The measurement behind RateBudget: a leaky bucket bursts, then leaks.

    ``AsyncLimiter(5, 1)`` grants 5 at once and the 6th a fifth of a second
    later, so a sliding one-second window holds more than 5. (Counted from
    the times it granted at; only a stall of most of a second would hide it.)
    """
    limiter = AsyncLimiter(5, 1.0)
    loop = asyncio.get_running_loop()
    times: list[float] = []
    for _ in range(7):
        async with limiter:
            times.append(loop.time())
    assert most_in_a_window(times) > 5


async def test_no_window_holds_more_than_the_budget_start_up_included() -> None:
    """60 grants to 6 tasks: never more than 5 in any second, the first included."""
    clock = FakeClock()
    budget = RateBudget(5, 1.0, headroom=0.0, clock=clock)
    times = await grants(budget, clock, 60, tasks=6)
    assert len(times) == 60
    assert most_in_a_window(times) <= 5
    assert most_in_a_window(times[:10]) <= 5
    assert budget.statistics().max_in_window == most_in_a_window(times)


async def test_grants_are_spaced_and_reach_the_budget_less_the_headroom() -> None:
    """Grants come evenly, at max_rate / (1 + headroom) per period."""
    clock = FakeClock()
    budget = RateBudget(10, 1.0, headroom=0.03, startup_margin=0.0, clock=clock)
    times = await grants(budget, clock, 41, tasks=4)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) == pytest.approx(1.03 / 10)
    assert 40 / (times[-1] - times[0]) == pytest.approx(10 / 1.03)


async def test_late_wake_ups_do_not_slow_the_pace_nor_break_the_bound() -> None:
    """Every sleep overshoots by 7 ms: the pace holds, the window bound too."""

    class LateClock(FakeClock):
        async def sleep(self, seconds: float) -> None:
            await super().sleep(seconds + 0.007)

    clock = LateClock()
    budget = RateBudget(5, 1.0, headroom=0.0, startup_margin=0.0, clock=clock)
    times = await grants(budget, clock, 41, tasks=3)

    assert most_in_a_window(times) <= 5
    assert 40 / (times[-1] - times[0]) == pytest.approx(5, rel=0.01)


async def test_after_an_idle_spell_grants_do_not_burst() -> None:
    """Quiet for a minute, then 10 tasks at once: still at most 5 in a second."""
    clock = FakeClock()
    budget = RateBudget(5, 1.0, headroom=0.0, clock=clock)
    first = await grants(budget, clock, 3, tasks=1)
    clock.time += 60.0
    later = await grants(budget, clock, 10, tasks=10)

    assert most_in_a_window(first + later) <= 5
    gaps = [b - a for a, b in itertools.pairwise(later)]
    assert min(gaps) >= 0.75 * 0.2 - 1e-9


async def test_a_per_minute_budget_is_spread_over_the_minute() -> None:
    """120/min is at most 2 a second, not 120 in the first second."""
    clock = FakeClock()
    budget = RateBudget.from_text("120/min", headroom=0.0, clock=clock)
    times = await grants(budget, clock, 30, tasks=3)
    assert most_in_a_window(times, 1.0) <= 2
    assert most_in_a_window(times, 60.0) <= 120


async def test_retry_after_pauses_every_grant_for_that_long() -> None:
    """After ``slow_down(3)`` no grant comes for 3 seconds."""
    clock = FakeClock()
    budget = RateBudget(5, 1.0, headroom=0.0, clock=clock)
    await grants(budget, clock, 5, tasks=1)
    refused_at = clock.now()
    budget.slow_down(retry_after=3.0)
    assert budget.statistics().paused_for == pytest.approx(3.0)
    times = await grants(budget, clock, 3, tasks=3)
    assert min(times) >= refused_at + 3.0


async def test_a_refusal_without_retry_after_pauses_one_window() -> None:
    """Error 10 names no delay: the budget waits one time_period."""
    clock = FakeClock()
    budget = RateBudget(5, 1.0, headroom=0.0, clock=clock)
    await budget.acquire()
    refused_at = clock.now()
    budget.slow_down()
    assert await budget.acquire() >= refused_at + 1.0


async def test_a_slow_down_halves_the_pace_and_recovery_is_gradual() -> None:
    """Halved at once, then one step of max_rate / 10 per recovery period."""
    clock = FakeClock()
    budget = RateBudget(
        8, 1.0, headroom=0.0, recovery_period=2.0, recovery_step=0.25, clock=clock
    )
    start = clock.now()
    budget.slow_down(retry_after=0.0)
    rates = [budget.current_rate(start + offset) for offset in (0, 1.9, 2, 4, 6, 9)]
    assert rates == [4.0, 4.0, 6.0, 8.0, 8.0, 8.0]
    assert budget.statistics().slowdowns == 1


async def test_grants_slow_down_to_the_halved_pace() -> None:
    """Right after a slow-down the gaps between grants double."""
    clock = FakeClock()
    budget = RateBudget(5, 1.0, headroom=0.0, recovery_period=100.0, clock=clock)
    await grants(budget, clock, 3, tasks=1)
    budget.slow_down(retry_after=0.0)
    times = await grants(budget, clock, 4, tasks=2)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps == pytest.approx([0.4, 0.4, 0.4])


async def test_refusals_within_one_window_halve_the_pace_once() -> None:
    """Four requests refused together are one signal, not four halvings."""
    clock = FakeClock()
    # Slow recovery, so that the 1.5 s below regains nothing.
    budget = RateBudget(8, 1.0, clock=clock, recovery_period=2.0, recovery_step=0.1)
    for _ in range(4):
        budget.slow_down(retry_after=1.0)
    assert budget.current_rate() == 4.0
    assert budget.statistics().slowdowns == 1
    clock.time += 1.5
    budget.slow_down()
    assert budget.current_rate() == 2.0


async def test_the_pace_never_falls_below_min_rate() -> None:
    """Repeated refusals stop halving at ``min_rate``."""
    clock = FakeClock()
    budget = RateBudget(
        8, 1.0, min_rate=1.5, clock=clock, recovery_period=2.0, recovery_step=0.1
    )
    for _ in range(6):
        budget.slow_down(retry_after=0.0)
        clock.time += 1.0
    assert budget.statistics().current_rate == 1.5


async def test_a_cancelled_waiter_takes_nothing_from_the_budget() -> None:
    """Cancelled while paused, a task leaves the count of grants unchanged."""

    class StoppedClock(FakeClock):
        async def sleep(self, seconds: float) -> None:
            await anyio.sleep_forever()

    clock = StoppedClock()
    budget = RateBudget(5, 1.0, clock=clock)
    await budget.acquire()
    budget.slow_down(retry_after=60.0)
    with anyio.move_on_after(0.05):
        await budget.acquire()
    assert budget.statistics().granted == 1
    assert budget.statistics().waiting == 0


async def test_statistics_and_repr_show_live_state() -> None:
    """The snapshot and the repr carry rate, pace, grants and pause."""
    clock = FakeClock()
    budget = RateBudget(4, 2.0, clock=clock)
    await grants(budget, clock, 3, tasks=1)
    budget.slow_down(retry_after=5.0)
    stats = budget.statistics()
    assert (stats.max_rate, stats.time_period, stats.granted) == (4, 2.0, 3)
    assert (stats.current_rate, stats.slowdowns) == (2.0, 1)
    assert stats.paused_for == pytest.approx(5.0)
    text = repr(budget)
    assert "4/2s" in text and "granted=3" in text and "slowdowns=1" in text


def test_bad_budgets_are_refused() -> None:
    """A budget needs a positive rate and period and a headroom below 1."""
    for args in ((0, 1.0), (5, 0.0)):
        with pytest.raises(UsageError):
            RateBudget(*args)
    with pytest.raises(UsageError):
        RateBudget(5, 1.0, headroom=1.0)


def test_window_counting_matches_the_obvious_count() -> None:
    """``max_in_any_window`` counts half-open windows as the slow method does."""
    times = [0.0, 0.1, 0.5, 0.99, 1.0, 1.05, 2.5, 2.6, 3.49, 3.5]
    assert max_in_any_window(times) == most_in_a_window(times)
    assert max_in_any_window([]) == 0


async def test_the_first_full_window_keeps_a_start_up_margin() -> None:
    """The request after the first max_rate waits a tenth of a period more, once."""
    clock = FakeClock()
    budget = RateBudget(5, 1.0, headroom=0.0, clock=clock)
    times = await grants(budget, clock, 11, tasks=2)

    assert times[5] - times[0] == pytest.approx(1.1)
    assert times[10] - times[5] == pytest.approx(1.0)
