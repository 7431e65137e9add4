"""Clocks: the one seam through which ftwatch reads time and waits.

Every stage that waits (the poller's interval, the dispatcher's backoff, the simulator's jobs)
takes a :class:`Clock`, so tests drive time with :class:`ManualClock` instead of sleeping.
"""

from __future__ import annotations

import math
import time
from typing import Protocol, runtime_checkable

import anyio

__all__ = ["Clock", "ManualClock", "ScaledClock", "SystemClock", "sleep_or_wake"]


@runtime_checkable
class Clock(Protocol):
    """Reads the time (unix seconds) and waits for it to pass."""

    def now(self) -> float:
        """Return the current time in unix seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` have passed on this clock."""
        ...


class SystemClock:
    """The wall clock and anyio's sleep."""

    def now(self) -> float:
        """Return ``time.time()``."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """Sleep for real."""
        await anyio.sleep(max(0.0, seconds))


class ScaledClock:
    """A clock that runs ``speed`` times faster than the wall clock, from ``start``.

    The demo and the benchmarks use it so that a job's hour passes in seconds.
    """

    def __init__(self, speed: float = 1.0, start: float | None = None) -> None:
        self.speed = speed
        self._wall0 = time.monotonic()
        self._wall_t0 = time.time()
        self._t0 = self._wall_t0 if start is None else start

    def now(self) -> float:
        """Return the scaled time."""
        return self._t0 + (time.monotonic() - self._wall0) * self.speed

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of scaled time."""
        await anyio.sleep(max(0.0, seconds) / self.speed)

    def wall_time(self, scaled: float) -> float:
        """The wall-clock time (unix seconds) at which this clock reads ``scaled``.

        The simulator shows its jobs' times this way, so that a run at 60x speed does not
        print timestamps an hour in the future after a minute.
        """
        return self._wall_t0 + (scaled - self._t0) / self.speed


class ManualClock:
    """A clock that moves only when a test calls :meth:`advance` or :meth:`set`.

    Sleepers wake, in deadline order, as soon as time reaches their deadline. With
    ``autojump=True`` a sleep moves the clock to its own deadline at once, so code that backs off
    (API retries) runs through its waits instantly and deterministically.
    """

    def __init__(self, start: float = 1_700_000_000.0, *, autojump: bool = False) -> None:
        self._now = start
        self._sleepers: list[tuple[float, anyio.Event]] = []
        self.autojump = autojump

    def now(self) -> float:
        """Return the current manual time."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has been advanced by ``seconds``."""
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        if self.autojump:
            self.advance(seconds)
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        entry = (self._now + seconds, event)
        self._sleepers.append(entry)
        try:
            await event.wait()
        finally:
            if entry in self._sleepers:
                self._sleepers.remove(entry)

    @property
    def sleepers(self) -> int:
        """How many tasks are waiting on this clock (tests use it to know a loop is idle)."""
        return len(self._sleepers)

    def next_deadline(self) -> float | None:
        """The earliest deadline anyone waits for, or None."""
        return min((d for d, _ in self._sleepers), default=None)

    def set(self, when: float) -> None:
        """Jump to ``when`` (never backwards) and wake every sleeper whose deadline passed."""
        self._now = max(self._now, when)
        for deadline, event in sorted(self._sleepers, key=lambda s: s[0]):
            if deadline <= self._now:
                event.set()

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        self.set(self._now + seconds)


async def sleep_or_wake(clock: Clock, seconds: float | None, wake: anyio.Event) -> bool:
    """Wait until ``seconds`` pass on ``clock`` (forever when None) or ``wake`` is set.

    Returns True when woken by the event. Lets loops that wait on a clock also react at once to
    new work (a new event in the journal, a poke from a test) without polling.
    """
    if wake.is_set():
        return True
    if isinstance(clock, SystemClock | ScaledClock):
        # A clock that runs on its own needs no task of its own: one timeout on the event.
        # This wait runs for every new event a sink worker is woken for.
        real = None if seconds is None else max(0.0, seconds)
        if real is not None and isinstance(clock, ScaledClock):
            real /= clock.speed
        with anyio.move_on_after(math.inf if real is None else real):
            await wake.wait()
        return wake.is_set()
    woken = False
    async with anyio.create_task_group() as tg:

        async def _sleeper() -> None:
            if seconds is None:
                await anyio.sleep_forever()
            else:
                await clock.sleep(seconds)
            tg.cancel_scope.cancel()

        async def _waker() -> None:
            nonlocal woken
            await wake.wait()
            woken = True
            tg.cancel_scope.cancel()

        tg.start_soon(_sleeper)
        tg.start_soon(_waker)
    return woken
