"""Delivery: one worker per sink, reading that sink's queue from the journal.

At least once: a delivery is marked done only after the sink returned. Per-job order: a job's
events go to a sink one at a time, in journal order, and a retry holds back that job's later
events (never other jobs'). Isolation: each sink is its own task with its own queue, so a slow
or dead sink delays neither polling nor the other sinks; within a sink, a slow delivery holds
back only its own job's later events. Retries use exponential backoff with
full jitter; after ``retry.max_attempts`` attempts or ``retry.max_age`` the event becomes a dead
letter with its last error. A sink that answers "gone" (:class:`SinkDisabled`) stops until the
daemon restarts; its queue is kept.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Literal

import anyio
import anyio.lowlevel
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .clock import Clock, SystemClock, sleep_or_wake
from .errors import SinkDisabled, SinkRejected, SinkUnavailable, StoreError
from .events import BaseEvent, event_from_envelope
from .sinks import Sink, SinkConfig
from .store import Delivery, Store

__all__ = ["SinkWorker", "backoff_delay"]

log = structlog.get_logger(__name__)

_BATCH = 2000
_IDLE_RECHECK = 60.0
# How long a stopping worker may spend writing the acknowledgements it still holds.
_ACK_ON_EXIT = 2.0


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


class SinkWorker:
    """Delivers one sink's queue; run :meth:`run` in a task and :meth:`wake` it on new events.

    A feeder reads the sink's pending deliveries from the store, groups them into one chain per
    job and hands each chain to a fixed pool of ``concurrency`` pullers, which deliver a chain
    in order and stop it at its first failure. A job is in at most one chain at a time, so its
    events never overtake each other. The pipeline never waits for a batch to finish: while one
    delivery is slow, the other pullers go on with other jobs, and the feeder reads more work
    as soon as fewer chains are waiting than there are pullers. Successful deliveries are
    acknowledged in the store in batches, before each read (never lost: an acknowledgement not
    yet written only means the event is sent again after a crash).
    """

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
        #: Set while nothing is being delivered and nothing is due.
        self.idle = anyio.Event()
        #: When the earliest waiting delivery becomes due, as of the last read.
        self.next_due: float | None = None
        self._busy_jobs: set[str] = set()  # jobs whose chain is queued or being delivered
        self._queued = 0  # chains handed out that no puller has taken yet
        self._done: list[int] = []  # delivered, acknowledgement not yet written
        self._unwritten: set[int] = set()  # the same, until the write has committed

    @property
    def name(self) -> str:
        """The sink's configured name."""
        return self.config.name

    def wake(self) -> None:
        """Tell the worker that new deliveries may be due."""
        self._wake.set()
        if self.idle.is_set():
            self.idle = anyio.Event()

    async def run(self) -> None:
        """Deliver forever; returns only when the sink disables itself."""
        await self._pipeline(forever=True)

    async def drain_once(self) -> bool:
        """Deliver everything due now, then return whether anything was attempted.

        Each job's chain stops at its first failure, whose retry is scheduled for later, so
        this ends. Sets :attr:`next_due`, the earliest time a job's first waiting delivery
        becomes due (None when nothing waits): rows queued behind a retry wait for it.
        """
        return await self._pipeline(forever=False)

    async def _pipeline(self, *, forever: bool) -> bool:
        attempted = False
        send, receive = anyio.create_memory_object_stream[Sequence[Delivery]](math.inf)
        try:
            async with anyio.create_task_group() as tg:
                for _ in range(self.config.concurrency):
                    tg.start_soon(self._pull_chains, receive.clone())
                receive.close()
                async with send:
                    while self.disabled is None:
                        self._wake = anyio.Event()
                        # With as many chains waiting as there are pullers, a read could only
                        # re-read rows already handed out: a hung sink would re-read its whole
                        # backlog on every wake, taking the store from the healthy sinks.
                        full = self._queued >= self.config.concurrency
                        handed = False if full else await self._feed(send)
                        attempted = attempted or handed
                        if self.disabled is not None:
                            break
                        working = handed or bool(self._busy_jobs)
                        if working and self.idle.is_set():
                            self.idle = anyio.Event()
                        elif not working:
                            if not forever:
                                break
                            self.idle.set()
                        # Pullers wake us when chains run low or the last one ends; the clock
                        # does when a retry falls due, even while other jobs are being sent.
                        if forever and not full:
                            await sleep_or_wake(self.clock, self._idle_wait(), self._wake)
                        else:
                            await self._wake.wait()
        finally:
            self.idle.set()  # nothing is being delivered any more (drained() relies on it)
            # Write what was delivered, even on the way out: otherwise it is sent again.
            with anyio.CancelScope(shield=True), anyio.move_on_after(_ACK_ON_EXIT):
                try:
                    await self._write_acks()
                except StoreError as exc:
                    log.warning("delivery_acks_not_written", sink=self.name, error=str(exc))
        return attempted

    def _idle_wait(self) -> float:
        # Re-check now and then in any case: `deadletters retry` from another process queues
        # rows without waking us.
        if self.next_due is None:
            return _IDLE_RECHECK
        return min(_IDLE_RECHECK, max(0.0, self.next_due - self.clock.now()))

    async def _feed(self, send: MemoryObjectSendStream[Sequence[Delivery]]) -> bool:
        """Hand every due job not already handed out to the pullers; return whether any was."""
        await self._write_acks()
        pending = await self.store.pending(self.name, limit=_BATCH)
        # A store call finishes in its thread even when cancelled: notice a shutdown here,
        # before handing work to pullers that are already gone.
        await anyio.lowlevel.checkpoint_if_cancelled()
        now = self.clock.now()
        chains: dict[str, list[Delivery]] = {}
        for delivery in pending:
            if delivery.job_key in self._busy_jobs or delivery.seq in self._unwritten:
                continue
            chains.setdefault(delivery.job_key, []).append(delivery)
        later: list[float] = []
        handed = False
        for job_key, chain in chains.items():
            if chain[0].next_attempt_at > now:
                later.append(chain[0].next_attempt_at)
                continue
            self._busy_jobs.add(job_key)
            self._queued += 1
            send.send_nowait(chain)
            handed = True
        self.next_due = min(later, default=None)
        return handed

    async def _write_acks(self) -> None:
        done, self._done = self._done, []
        if not done:
            return
        await self.store.ack(self.name, done, now=self.clock.now())
        self._unwritten.difference_update(done)
        self.delivered += len(done)

    async def _pull_chains(self, chains: MemoryObjectReceiveStream[Sequence[Delivery]]) -> None:
        async with chains:
            async for chain in chains:
                self._queued -= 1
                try:
                    await self._deliver_chain(chain)
                finally:
                    self._busy_jobs.discard(chain[0].job_key)
                # Read more before the pullers run dry, and once the last chain ends.
                if self._queued < self.config.concurrency or not self._busy_jobs:
                    self._wake.set()

    async def _deliver_chain(self, chain: Sequence[Delivery]) -> None:
        # One job's deliveries, in order; stop at the first one that has to wait.
        for delivery in chain:
            if self.disabled is not None:
                return
            result = await self._deliver(delivery)
            if result == "stop":
                return
            if result == "ack":
                self._done.append(delivery.seq)
                self._unwritten.add(delivery.seq)

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
