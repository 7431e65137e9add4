"""Delivery: one worker per sink, reading that sink's queue from the journal.

At least once: a delivery is marked done only after the sink returned. Per-job order: a job's
events go to a sink one at a time, in journal order, and a retry holds back that job's later
events (never other jobs'). Isolation: each sink is its own task with its own queue, so a slow
or dead sink delays neither polling nor the other sinks; within a sink, a slow delivery holds
back only its own job's later events. Retries use exponential backoff with
full jitter; after ``retry.max_attempts`` attempts or ``retry.max_age`` the event becomes a dead
letter with its last error. A sink that answers "gone" (:class:`SinkDisabled`) stops until the
daemon restarts; its queue is kept. A sink whose receiver does not answer at all, attempt after
attempt, waits as a whole and probes with one delivery (:mod:`watcher.breaker`).
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import random
from collections import deque
from collections.abc import Sequence

import anyio
import anyio.lowlevel
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .breaker import CircuitBreaker, Outage, release
from .clock import Clock, SystemClock, sleep_or_wake
from .errors import SinkDisabled, SinkRejected, SinkUnavailable, StoreError
from .events import BaseEvent, event_from_envelope
from .retry import retry_delay
from .sinks import Sink, SinkConfig
from .store import Delivery, StateStore

__all__ = ["SinkWorker", "backoff_delay"]

log = structlog.get_logger(__name__)

# Pending deliveries a worker holds in memory at most, bodies included (a few MB).
_WINDOW = 2000
# How often a worker re-reads its whole queue from the store, to find rows queued again from
# outside (a dead letter retried by another process).
_RESYNC_EVERY = 60.0
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
    """Seconds to wait before attempt ``attempts + 1``, by the one rule of :mod:`watcher.retry`.

    Full jitter over an exponential ceiling; a receiver's own ``Retry-After`` is a floor, even
    above ``maximum``: waiting less would only be refused again. (The caller bounds it, so a
    receiver cannot park an event forever.)
    """
    return retry_delay(attempts, initial=initial, maximum=maximum, rng=rng, retry_after=retry_after)


class SinkWorker:
    """Delivers one sink's queue; run :meth:`run` in a task and :meth:`wake` it on new events.

    The worker holds a window of the sink's pending deliveries in memory (at most
    ``_WINDOW``), one queue per job in journal order, and reads from the store only the rows
    journaled since its last read. A feeder hands each job whose first delivery is due to a
    fixed pool of ``concurrency`` pullers as one chain; a puller delivers the chain in order
    and stops at its first failure, whose retry time goes back in memory with the rest of the
    chain. So a job is in at most one chain at a time and its events never overtake each other,
    and however often a broken sink's deliveries fail, each pending row is read once: a sink
    with a long backlog never holds the store that the poller and the other sinks need.

    The pipeline never waits for a batch: while one delivery is slow, the other pullers go on
    with other jobs, and the feeder reads more as soon as fewer chains are waiting than there
    are pullers. Successful deliveries are acknowledged in the store in batches, before each
    read and on the way out (never lost: an acknowledgement not yet written only means the
    event is sent again after a crash). Rows put back in the queue behind the worker's back
    (``ftwatch deadletters retry`` from another process) are found by a full re-read when no
    chain is out, at the start and at least every ``_RESYNC_EVERY`` seconds after.
    """

    def __init__(
        self,
        sink: Sink,
        config: SinkConfig,
        store: StateStore,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        resync_every: float = _RESYNC_EVERY,
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
        #: When the earliest waiting delivery becomes due (None when nothing waits).
        self.next_due: float | None = None
        # The window: per job, the pending deliveries read and not handed out, in seq order.
        self._queues: dict[str, deque[Delivery]] = {}
        # (due time, seq, job key) of the first delivery of every held job not in a chain.
        self._ready: list[tuple[float, int, str]] = []
        self._horizon = 0  # every pending row with a seq up to this has been read
        self._known = 0  # rows read and not yet delivered or dead-lettered
        self._unread = True  # rows may have been journaled past the horizon
        self._resync_at: float | None = None  # when to re-read the whole queue; None: now
        self._busy_jobs: set[str] = set()  # jobs whose chain is queued or being delivered
        self._queued = 0  # chains handed out that no puller has taken yet
        self._done: list[int] = []  # delivered, acknowledgement not yet written
        self._resync_every = resync_every
        # The cursor (see watcher.store.protocol): fresh entries read and not yet settled hold
        # it back; with none, it stands at the highest seq read.
        self._blocking: set[int] = set()
        self._read_to = 0
        self._cursor = 0  # the cursor last written
        # One warning per outage, and the circuit that holds the sink back while its
        # receiver does not answer (watcher.breaker).
        self._outage = Outage(config.name)
        policy = config.retry
        self.breaker = CircuitBreaker(
            config.name, initial=policy.initial_backoff, maximum=min(policy.max_backoff, 60.0)
        )
        self._held: set[str] = set()  # jobs whose head waits for the circuit, not a retry

    @property
    def name(self) -> str:
        """The sink's configured name."""
        return self.config.name

    def wake(self) -> None:
        """Tell the worker that new deliveries may have been journaled."""
        self._unread = True
        self._wake.set()
        if self.idle.is_set():
            self.idle = anyio.Event()

    async def run(self) -> None:
        """Deliver forever; returns only when the sink disables itself.

        A failure of the worker's own (the state file unreadable or unwritable for a while,
        or a bug) is logged with its traceback, and the worker starts over from the store
        after a pause that grows with each failure in a row, as the sink's retries do. It
        never ends the daemon; what was delivered and not yet acknowledged is sent again.
        """
        failures = 0
        while True:
            started = self.clock.now()
            try:
                await self._pipeline(forever=True)
                return
            except Exception:
                # A pipeline that ran a good while before failing starts the count afresh.
                failures = 1 if self.clock.now() - started > self._resync_every else failures + 1
                policy = self.config.retry
                delay = backoff_delay(
                    failures,
                    initial=policy.initial_backoff,
                    maximum=policy.max_backoff,
                    rng=self._rng,
                )
                log.exception(
                    "sink_worker_failed",
                    sink=self.name,
                    failures=failures,
                    retry_in=round(delay, 3),
                )
            await self.clock.sleep(delay)

    async def drain_once(self) -> bool:
        """Deliver everything due now, then return whether anything was attempted.

        Each job's chain stops at its first failure, whose retry is scheduled for later, so
        this ends. Sets :attr:`next_due`, the earliest time a job's first waiting delivery
        becomes due (None when nothing waits): rows queued behind a retry wait for it.
        """
        return await self._pipeline(forever=False)

    async def flush(self) -> None:
        """Deliver everything due now, until a pass attempts nothing (a watcher driven by hand)."""
        while self.disabled is None and await self.drain_once():
            pass

    async def drained(self) -> None:
        """Wait until nothing is due now (retries scheduled later do not count).

        For a worker running in the background (:meth:`run`).
        """
        while self.disabled is None:
            pending = await self.store.pending(self.name, limit=1)
            if not pending or (self.idle.is_set() and self.next_due is not None):
                break
            self.wake()
            await self.idle.wait()

    async def _pipeline(self, *, forever: bool) -> bool:
        attempted = False
        # What the store holds may have changed since the last run, and a run that ended by
        # cancellation or failure left chains out: start from the store.
        self._busy_jobs.clear()
        self._queued = 0
        self._resync_at = None
        send, receive = anyio.create_memory_object_stream[Sequence[Delivery]](math.inf)
        try:
            async with anyio.create_task_group() as tg:
                for _ in range(self.config.concurrency):
                    tg.start_soon(self._pull_chains, receive.clone())
                receive.close()
                async with send:
                    while self.disabled is None:
                        self._wake = anyio.Event()
                        # With as many chains waiting as there are pullers, there is nothing
                        # to gain from a read: wait for a puller instead.
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
                        # Pullers wake us when chains run low or one ends; the clock does when
                        # a retry falls due, even while other jobs are being sent.
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
        # A re-read waits until no chain is out; the end of the last one wakes us anyway.
        resync = None if self._busy_jobs else self._resync_at
        due = [t for t in (self.next_due, resync) if t is not None]
        return max(0.0, min(due) - self.clock.now()) if due else self._resync_every

    async def _feed(self, send: MemoryObjectSendStream[Sequence[Delivery]]) -> bool:
        """Read what is new, hand every due job to the pullers; return whether any was."""
        await self._write_acks()
        now = self.clock.now()
        resync = not self._busy_jobs and (self._resync_at is None or now >= self._resync_at)
        if resync:
            self._queues.clear()
            self._ready.clear()
            self._horizon = self._known = 0
            self._blocking.clear()
            self._unread = True
            self._resync_at = now + self._resync_every
        if self._unread and self._known < _WINDOW:
            await self._read()
        handed = False
        # An open circuit holds the whole sink: nothing is handed out until its probe is due.
        held = self.breaker.holding(now)
        while not held and self._ready and self._ready[0][0] <= now:
            _, _, key = heapq.heappop(self._ready)
            chain = list(self._queues.pop(key))
            self._busy_jobs.add(key)
            self._queued += 1
            send.send_nowait(chain)
            handed = True
        self.next_due = self._ready[0][0] if self._ready else None
        if held and self.next_due is not None:
            self.next_due = max(self.next_due, self.breaker.open_until)
        return handed

    async def _read(self) -> None:
        limit = _WINDOW - self._known
        rows = await self.store.pending(self.name, limit=limit, after=self._horizon)
        # A store call finishes in its thread even when cancelled: notice a shutdown here,
        # before handing work to pullers that are already gone.
        await anyio.lowlevel.checkpoint_if_cancelled()
        self._unread = len(rows) == limit  # a full read may have left rows behind
        if not rows:
            return
        self._horizon = rows[-1].seq
        self._read_to = max(self._read_to, self._horizon)
        # Delivered but not yet acknowledged: still pending in the store, already sent. (A
        # full re-read used to hand them out again: a duplicate without any crash.)
        unacked = set(self._done)
        rows = [delivery for delivery in rows if delivery.seq not in unacked]
        self._known += len(rows)
        self._blocking.update(delivery.seq for delivery in rows if not delivery.stored)
        for delivery in rows:
            queue = self._queues.get(delivery.job_key)
            if queue is None:
                self._queues[delivery.job_key] = deque([delivery])
                if delivery.job_key not in self._busy_jobs:
                    self._push_ready(delivery.job_key)
            else:
                queue.append(delivery)

    def _push_ready(self, key: str) -> None:
        head = self._queues[key][0]
        heapq.heappush(self._ready, (head.next_attempt_at, head.seq, key))

    async def _write_acks(self) -> None:
        # The delivered seqs and the cursor are taken together, with no await between, so the
        # cursor never passes a delivery that is not in this write.
        cursor = min(self._blocking) - 1 if self._blocking else self._read_to
        if not self._done and cursor <= self._cursor:
            return
        done = list(self._done)
        await self.store.ack(self.name, done, cursor=cursor, now=self.clock.now())
        # Dropped only once written: a write cancelled while waiting for the store is done
        # again on the way out. Pullers only append, so the written ones are the first.
        del self._done[: len(done)]
        self._cursor = max(self._cursor, cursor)
        self.delivered += len(done)

    async def _pull_chains(self, chains: MemoryObjectReceiveStream[Sequence[Delivery]]) -> None:
        async with chains:
            async for chain in chains:
                self._queued -= 1
                key = chain[0].job_key
                rest: Sequence[Delivery] = chain
                try:
                    rest = await self._deliver_chain(chain)
                finally:
                    # What is left waits at the head of the job's queue, before anything read
                    # while the chain was out.
                    if rest:
                        self._queues.setdefault(key, deque()).extendleft(reversed(rest))
                    self._busy_jobs.discard(key)
                    if key in self._queues:
                        self._push_ready(key)
                    self._wake.set()

    async def _deliver_chain(self, chain: Sequence[Delivery]) -> Sequence[Delivery]:
        """Deliver one job's deliveries in order; return the rest from the first that waits."""
        for i, delivery in enumerate(chain):
            if self.disabled is not None:
                return chain[i:]
            later = await self._deliver(delivery)
            if later is not None:
                return [later, *chain[i + 1 :]]
            self._known -= 1
        return ()

    async def _deliver(self, delivery: Delivery) -> Delivery | None:
        """Attempt one delivery; return it as it now waits (the chain stops), or None.

        None means settled: acknowledged (delivered, or filtered out) or dead-lettered, and
        the chain goes on.
        """
        try:
            event: BaseEvent = event_from_envelope(delivery.body)
        except Exception as exc:
            await self._dead(delivery, delivery.attempts, f"unreadable journal entry: {exc}")
            return None
        if self.config.wants(event):  # one filtered out counts as delivered
            admission = self.breaker.admit(self.clock.now())
            if not admission.go:  # held in memory: no attempt spent, nothing written
                self._held.add(delivery.job_key)
                return dataclasses.replace(delivery, next_attempt_at=admission.until)
            self._held.discard(delivery.job_key)
            attempts = delivery.attempts + 1
            first = delivery.first_attempt_at or self.clock.now()
            try:
                await self.sink.send(event)
                self._answered()
                self._outage.recovered(self.clock.now())
            # A SinkError's reason: the logs and the dead letter name the sink themselves.
            except SinkRejected as exc:
                self._answered()
                await self._dead(delivery, attempts, exc.reason)
                return None
            except SinkDisabled as exc:
                self.disabled = exc.reason
                log.error(
                    "sink_disabled", sink=self.name, reason=exc.reason, status_code=exc.status_code
                )
                # For `ftwatch status`, read from the state file; set_sinks clears it at restart.
                await self.store.disable_sink(self.name, exc.reason, now=self.clock.now())
                return delivery
            except SinkUnavailable as exc:
                if exc.status_code is None:  # no answer at all: the circuit counts it
                    self.breaker.no_answer(admission, self.clock.now(), exc.reason)
                else:
                    self._answered()
                return await self._retry(delivery, attempts, first, exc.reason, exc.retry_after)
            except anyio.get_cancelled_exc_class():
                raise
            except Exception as exc:
                # A plugin bug is treated as transient: logged with its traceback, retried.
                log.exception("sink_raised", sink=self.name, event_id=delivery.event_id)
                self._answered()  # a plugin bug says nothing about the receiver
                error = f"{type(exc).__name__}: {exc}"
                return await self._retry(delivery, attempts, first, error, None)
        self._done.append(delivery.seq)
        self._blocking.discard(delivery.seq)
        return None

    def _answered(self) -> None:
        """The receiver answered: an open circuit closes, and the jobs it held are due now."""
        if self.breaker.answered():
            self._ready = release(self._held, self._queues, self._ready, self.clock.now())
            self._wake.set()

    async def _retry(
        self,
        delivery: Delivery,
        attempts: int,
        first: float,
        error: str,
        retry_after: float | None,
    ) -> Delivery | None:
        """Schedule the next attempt and return the delivery as it now waits, or dead-letter
        it when the policy is spent (and return None)."""
        policy = self.config.retry
        now = self.clock.now()
        if attempts >= policy.max_attempts or now - delivery.observed_at >= policy.max_age:
            await self._dead(delivery, attempts, error)
            return None
        delay = backoff_delay(
            attempts,
            initial=policy.initial_backoff,
            maximum=policy.max_backoff,
            rng=self._rng,
            # Past max_age the event is dead-lettered anyway: one last attempt there at most.
            retry_after=None if retry_after is None else min(retry_after, policy.max_age),
        )
        self._outage.failing(
            now, error, queued=self._known, waiting_jobs=len(self._ready) + len(self._busy_jobs)
        )
        log.debug(
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
        self._blocking.discard(delivery.seq)  # it has a row now
        return dataclasses.replace(
            delivery,
            attempts=attempts,
            next_attempt_at=now + delay,
            first_attempt_at=first,
            stored=True,
        )

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
        self._blocking.discard(delivery.seq)
