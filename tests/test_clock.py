"""Clocks: manual time for tests, and waits that end on time or on a wake-up."""

from __future__ import annotations

import anyio
import pytest

from watcher.clock import Clock, ManualClock, ScaledClock, SystemClock, sleep_or_wake


@pytest.mark.parametrize("clock", [SystemClock(), ScaledClock(speed=60), ManualClock()])
async def test_sleep_or_wake_returns_true_when_woken(clock: Clock) -> None:
    """A wait for an hour ends as soon as its event is set, and says it was woken."""
    wake = anyio.Event()
    result: list[bool] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def wait() -> None:
                result.append(await sleep_or_wake(clock, 3600, wake))

            tg.start_soon(wait)
            await anyio.lowlevel.checkpoint()
            wake.set()
    assert result == [True]


@pytest.mark.parametrize("clock", [SystemClock(), ScaledClock(speed=60)])
async def test_sleep_or_wake_on_a_running_clock_times_out(clock: Clock) -> None:
    """With no wake-up, a wait on a clock that runs by itself ends when its time is up."""
    with anyio.fail_after(5):
        assert await sleep_or_wake(clock, 0, anyio.Event()) is False
        assert await sleep_or_wake(clock, 0.001, anyio.Event()) is False


async def test_sleep_or_wake_on_a_manual_clock_ends_when_time_is_moved() -> None:
    """On a manual clock the wait ends when the test moves time past it, not before."""
    clock = ManualClock(1000.0)
    result: list[bool] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def wait() -> None:
                result.append(await sleep_or_wake(clock, 30, anyio.Event()))

            tg.start_soon(wait)
            while clock.sleepers == 0:
                await anyio.lowlevel.checkpoint()
            clock.advance(29)
            await anyio.lowlevel.checkpoint()
            assert result == []
            clock.advance(1)
    assert result == [False]


async def test_an_already_set_event_returns_at_once() -> None:
    """A wake-up that came before the wait makes the wait return True without waiting."""
    wake = anyio.Event()
    wake.set()
    assert await sleep_or_wake(ManualClock(), None, wake) is True
    assert await sleep_or_wake(SystemClock(), None, wake) is True
