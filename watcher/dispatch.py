"""Delivery: one worker per sink, reading that sink's queue from the journal.

At least once: a delivery is marked done only after the sink returned. Per-job order: a job's
events go to a sink one at a time, in journal order, and a retry holds back that job's later
events (never other jobs'). Isolation: each sink is its own task with its own queue, so a slow
or dead sink delays neither polling nor the other sinks. Retries use exponential backoff with
full jitter; after ``retry.max_attempts`` attempts or ``retry.max_age`` the event becomes a dead
letter with its last error. A sink that answers "gone" (:class:`SinkDisabled`) stops until the
daemon restarts; its queue is kept.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import anyio
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream

from .clock import Clock, SystemClock, sleep_or_wake
from .errors import SinkDisabled, SinkRejected, SinkUnavailable
from .events import BaseEvent, event_from_envelope
from .sinks import Sink, SinkConfig
from .store import Delivery, Store

__all__ = ["DeliveryOutcome", "SinkWorker", "backoff_delay"]

log = structlog.get_logger(__name__)

_BATCH = 2000
_IDLE_RECHECK = 60.0


def backoff_delay(
    attempts: int,
    *,
    initial: float,
    maximum: float,
    rng: random.Random,
    retry_after: float | None = None,
) -> float:
    """Seconds to wait before attempt ``attempts + 1``: full jitter over an exponential ceiling.

    A receiver's own ``Retry-After`` is a floor: waiting less would only be refused again.
    """
    ceiling = min(maximum, initial * (2 ** max(0, attempts - 1)))
    delay = rng.uniform(0.0, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, maximum))
    return delay


@dataclass(frozen=True)
class DeliveryOutcome:
    """What happened to one delivery attempt (for hooks and tests)."""

    sink: str
    event_id: str
    outcome: str  # "delivered" | "filtered" | "retry" | "dead" | "disabled"
    attempts: int
    error: str | None = None


class SinkWorker:
    """Delivers one sink's queue; run :meth:`run` in a task and :meth:`wake` it on new events."""

    def __init__(
        self,
        sink: Sink,
        config: SinkConfig,
        store: Store,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.sink = sink
        self.config = config
        self.store = store
        self.clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._wake = anyio.Event()
        #: Why the sink was disabled, once it was.
        self.disabled: str | None = None
        self.delivered = 0
        self.idle = anyio.Event()
        #: When the earliest waiting delivery becomes due, as of the last drain.
        self.next_due: float | None = None

    @property
    def name(self) -> str:
        """The sink's configured name."""
        return self.config.name

    def wake(self) -> None:
        """Tell the worker that new deliveries may be due."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver forever; returns only when the sink disables itself."""
        while self.disabled is None:
            self._wake = anyio.Event()
            did_work = await self.drain_once()
            if self.disabled is not None:
                return
            if did_work:
                continue
            # Re-check now and then even when idle: `deadletters retry` from another process
            # queues rows without waking us.
            wait = _IDLE_RECHECK
            if self.next_due is not None:
                wait = min(wait, max(0.0, self.next_due - self.clock.now()))
            self.idle.set()
            await sleep_or_wake(self.clock, wait, self._wake)
            self.idle = anyio.Event()

    async def drain_once(self) -> bool:
        """Attempt every due delivery once (one batch); returns whether anything was attempted.

        Sets :attr:`next_due`, the earliest time a job's first waiting delivery becomes due
        (None when nothing waits): rows queued behind a retry do not count, they wait for it.
        """
        pending = await self.store.pending(self.name, limit=_BATCH)
        now = self.clock.now()
        chains: OrderedDict[str, list[Delivery]] = OrderedDict()
        for delivery in pending:
            chains.setdefault(delivery.job_key, []).append(delivery)
        due: list[list[Delivery]] = []
        later: list[float] = []
        for chain in chains.values():
            if chain[0].next_attempt_at <= now:
                due.append(chain)
            else:
                later.append(chain[0].next_attempt_at)
        self.next_due = min(later, default=None)
        if not due:
            return False
        done: list[int] = []
        # A fixed pool of `concurrency` pullers over a queue of job chains: no task per chain,
        # and no limiter to queue on, which costs more CPU than the deliveries at high rates.
        send, receive = anyio.create_memory_object_stream[Sequence[Delivery]](len(due))
        for chain in due:
            send.send_nowait(chain)
        send.close()
        async with anyio.create_task_group() as tg:
            for _ in range(min(self.config.concurrency, len(due))):
                tg.start_soon(self._pull_chains, receive.clone(), done)
        receive.close()
        if done:
            await self.store.ack(self.name, done, now=self.clock.now())
            self.delivered += len(done)
        return True

    async def _pull_chains(
        self, chains: MemoryObjectReceiveStream[Sequence[Delivery]], done: list[int]
    ) -> None:
        async with chains:
            async for chain in chains:
                await self._deliver_chain(chain, done)

    async def _deliver_chain(self, chain: Sequence[Delivery], done: list[int]) -> None:
        # One job's deliveries, in order; stop at the first one that has to wait.
        for delivery in chain:
            if self.disabled is not None:
                return
            result = await self._deliver(delivery)
            if result == "stop":
                return
            if result == "ack":
                done.append(delivery.seq)

    async def _deliver(self, delivery: Delivery) -> Literal["ack", "dead", "stop"]:
        """Attempt one delivery: ack it, dead-letter it (the chain goes on) or stop the chain."""
        try:
            event: BaseEvent = event_from_envelope(delivery.body)
        except Exception as exc:
            await self._dead(delivery, delivery.attempts, f"unreadable journal entry: {exc}")
            return "dead"
        if not self.config.wants(event):
            return "ack"  # filtered out: counts as delivered
        attempts = delivery.attempts + 1
        first = delivery.first_attempt_at or self.clock.now()
        try:
            await self.sink.send(event)
        except SinkRejected as exc:
            await self._dead(delivery, attempts, str(exc))
            return "dead"
        except SinkDisabled as exc:
            self.disabled = str(exc)
            log.error("sink_disabled", sink=self.name, reason=str(exc), status_code=exc.status_code)
            return "stop"
        except SinkUnavailable as exc:
            dead = await self._retry(delivery, attempts, first, str(exc), exc.retry_after)
            return "dead" if dead else "stop"
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            # A plugin bug is treated as transient: logged with its traceback, retried.
            log.exception("sink_raised", sink=self.name, event_id=delivery.event_id)
            error = f"{type(exc).__name__}: {exc}"
            dead = await self._retry(delivery, attempts, first, error, None)
            return "dead" if dead else "stop"
        return "ack"

    async def _retry(
        self,
        delivery: Delivery,
        attempts: int,
        first: float,
        error: str,
        retry_after: float | None,
    ) -> bool:
        """Schedule the next attempt, or dead-letter when the policy is spent (returns True)."""
        policy = self.config.retry
        now = self.clock.now()
        if attempts >= policy.max_attempts or now - delivery.observed_at >= policy.max_age:
            await self._dead(delivery, attempts, error)
            return True
        delay = backoff_delay(
            attempts,
            initial=policy.initial_backoff,
            maximum=policy.max_backoff,
            rng=self._rng,
            retry_after=retry_after,
        )
        log.warning(
            "delivery_retry",
            sink=self.name,
            event_id=delivery.event_id,
            attempts=attempts,
            retry_in=round(delay, 3),
            error=error,
        )
        await self.store.schedule_retry(
            self.name,
            delivery.seq,
            attempts=attempts,
            next_attempt_at=now + delay,
            first_attempt_at=first,
            error=error,
            now=now,
        )
        return False

    async def _dead(self, delivery: Delivery, attempts: int, error: str) -> None:
        log.error(
            "delivery_dead_lettered",
            sink=self.name,
            event_id=delivery.event_id,
            attempts=attempts,
            error=error,
        )
        await self.store.dead_letter(
            self.name, delivery.seq, attempts=attempts, error=error, now=self.clock.now()
        )
