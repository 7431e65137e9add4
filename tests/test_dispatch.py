"""Delivery: at least once, per-job order, retries with backoff, dead letters, isolation."""

from __future__ import annotations

import collections
import random
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from structlog.testing import capture_logs
from tests.helpers import events_for

from watcher.clock import ManualClock
from watcher.dispatch import SinkWorker, backoff_delay
from watcher.errors import SinkDisabled, SinkRejected, SinkUnavailable, StoreError
from watcher.events import BaseEvent
from watcher.sinks import RetryPolicy, SinkConfig
from watcher.store import Delivery, Store
from watcher.testing import CollectingSink


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A real SQLite store in a temporary directory."""
    async with await Store.open(tmp_path / "state.db") as s:
        yield s


def _sink(name: str = "collect", **config: object) -> CollectingSink:
    return CollectingSink(SinkConfig(name=name, type="collect", **config))  # type: ignore[arg-type]


async def _journal(store: Store, events: Sequence[BaseEvent], sinks: Sequence[str]) -> None:
    await store.commit("test", states={}, events=list(events), now=1000.0)


def _worker(sink: CollectingSink, store: Store, clock: ManualClock) -> SinkWorker:
    return SinkWorker(sink, sink.config, store, clock=clock, rng=random.Random(1))


async def test_events_are_delivered_once_in_journal_order(store: Store) -> None:
    """Every journaled event reaches the sink once, in order, and is then acknowledged."""
    clock = ManualClock(2000.0)
    sink = _sink()
    events = events_for("ftjob-a", ["queued", "running", "succeeded"])
    await _journal(store, events, ["collect"])
    worker = _worker(sink, store, clock)
    assert await worker.drain_once()
    assert [e.id for e in sink.events] == [e.id for e in events]
    assert await store.pending("collect") == []
    assert not await worker.drain_once()


async def test_a_failing_receiver_is_retried_with_backoff_then_catches_up_in_order(
    store: Store,
) -> None:
    """A sink failing its first deliveries gets them again after backoff, job order intact."""
    clock = ManualClock(2000.0)
    sink = _sink(retry=RetryPolicy(initial_backoff=1, max_backoff=10))
    failures = {"left": 3}

    def fail(event: BaseEvent) -> None:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise SinkUnavailable("receiver down", sink="collect", status_code=503)

    sink.fail = fail
    a = events_for("ftjob-a", ["queued", "running", "succeeded"])
    b = events_for("ftjob-b", ["queued", "running", "failed"])
    await _journal(store, [*a, *b], ["collect"])
    worker = _worker(sink, store, clock)
    for _ in range(20):
        if not await worker.drain_once():
            if worker.next_due is None:
                break
            clock.set(worker.next_due)
    got_a = [e.id for e in sink.events if e.job_id == "ftjob-a"]
    got_b = [e.id for e in sink.events if e.job_id == "ftjob-b"]
    assert got_a == [e.id for e in a]
    assert got_b == [e.id for e in b]
    assert await store.dead_letters() == []


async def test_a_retry_waits_for_its_backoff_on_the_clock(store: Store) -> None:
    """After a transient failure nothing is sent again until the clock reaches the retry time."""
    clock = ManualClock(2000.0)
    sink = _sink(retry=RetryPolicy(initial_backoff=30, max_backoff=30))
    sink.fail = lambda e: (_ for _ in ()).throw(SinkUnavailable("down", sink="collect"))
    await _journal(store, events_for("ftjob-a", ["queued", "running"]), ["collect"])
    worker = _worker(sink, store, clock)
    await worker.drain_once()
    [row] = await store.pending("collect")
    assert row.attempts == 1
    assert 2000.0 <= row.next_attempt_at <= 2030.0
    assert not await worker.drain_once() or row.next_attempt_at == 2000.0
    sink.fail = None
    clock.set(row.next_attempt_at)
    await worker.drain_once()
    assert len(sink.events) == 1


@pytest.mark.parametrize(
    ("retry_after", "due"),
    [
        (120, 2120.0),  # within max_backoff
        (900, 2900.0),  # beyond max_backoff (300 s): still honoured
        (10**9, 2000.0 + 3600),  # beyond max_age: one last attempt at max_age at most
    ],
)
async def test_retry_after_from_the_receiver_is_a_floor(
    store: Store, retry_after: float, due: float
) -> None:
    """A receiver's Retry-After is honoured, past max_backoff too, but never past max_age."""
    clock = ManualClock(2000.0)
    sink = _sink(retry=RetryPolicy(initial_backoff=0.01, max_backoff=300, max_age=3600))
    sink.fail = lambda e: (_ for _ in ()).throw(
        SinkUnavailable("slow down", sink="collect", status_code=429, retry_after=retry_after)
    )
    await _journal(store, events_for("ftjob-a", ["queued", "running"], start=2000.0), ["collect"])
    worker = _worker(sink, store, clock)
    await worker.drain_once()
    [row] = await store.pending("collect")
    assert row.next_attempt_at == pytest.approx(due, abs=0.02)
    assert worker.next_due == row.next_attempt_at


async def test_spent_retries_make_a_dead_letter_and_the_job_goes_on(store: Store) -> None:
    """After max_attempts the event is a dead letter with its last error; later events flow."""
    clock = ManualClock(2000.0)
    sink = _sink(retry=RetryPolicy(max_attempts=2, initial_backoff=1, max_backoff=1))
    events = events_for("ftjob-a", ["queued", "running", "succeeded"])
    first = events[0].id

    def fail(event: BaseEvent) -> None:
        if event.id == first:
            raise SinkUnavailable("503 from receiver", sink="collect", status_code=503)

    sink.fail = fail
    await _journal(store, events, ["collect"])
    worker = _worker(sink, store, clock)
    with capture_logs() as logs:
        for _ in range(5):
            await worker.drain_once()
            clock.advance(5)
    [dead] = await store.dead_letters("collect")
    assert dead.event_id == first
    assert dead.attempts == 2
    assert "503 from receiver" in dead.last_error
    assert [e.id for e in sink.events] == [e.id for e in events[1:]]
    assert any(entry["event"] == "delivery_dead_lettered" for entry in logs)


async def test_max_age_dead_letters_old_events(store: Store) -> None:
    """An event older than retry.max_age is dead-lettered at its next failure."""
    clock = ManualClock(1000.0 + 7200)
    sink = _sink(retry=RetryPolicy(max_age=3600))
    sink.fail = lambda e: (_ for _ in ()).throw(SinkUnavailable("down", sink="collect"))
    await _journal(store, events_for("ftjob-a", ["queued", "running"]), ["collect"])
    await _worker(sink, store, clock).drain_once()
    assert len(await store.dead_letters("collect")) == 1


async def test_a_running_worker_picks_up_dead_letters_retried_from_outside(store: Store) -> None:
    """`ftwatch deadletters retry` from another process reaches a running worker in a minute."""
    clock = ManualClock(2000.0)
    sink = _sink()
    rejected: list[str] = []

    def reject_once(event: BaseEvent) -> None:
        if not rejected:
            rejected.append(event.id)
            raise SinkRejected("422 from the receiver", sink="collect", status_code=422)

    sink.fail = reject_once
    [event] = events_for("ftjob-a", ["queued", "running"])
    await _journal(store, [event], ["collect"])
    worker = _worker(sink, store, clock)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            while not await store.dead_letters("collect"):  # a store call lets the worker run
                pass
            assert await store.retry_dead_letters(sink="collect", now=clock.now()) == 1
            clock.advance(61)
            await sink.wait_for(1)
            tg.cancel_scope.cancel()
    assert rejected == [event.id]
    assert [e.id for e in sink.events] == [event.id]
    assert await store.pending("collect") == []


async def test_a_rejected_event_is_dead_at_once(store: Store) -> None:
    """SinkRejected is permanent: no retry, a dead letter, and the next event is delivered."""
    clock = ManualClock(2000.0)
    sink = _sink()
    events = events_for("ftjob-a", ["queued", "running", "cancelled"])
    sink.fail = lambda e: (
        (_ for _ in ()).throw(SinkRejected("422", sink="collect", status_code=422))
        if e.id == events[0].id
        else None
    )
    await _journal(store, events, ["collect"])
    await _worker(sink, store, clock).drain_once()
    assert [d.event_id for d in await store.dead_letters()] == [events[0].id]
    assert len(sink.events) == 2


async def test_a_disabled_sink_stops_and_keeps_its_queue(store: Store) -> None:
    """SinkDisabled (HTTP 410) stops the worker with a clear log; the queue is kept."""
    clock = ManualClock(2000.0)
    sink = _sink()
    sink.fail = lambda e: (_ for _ in ()).throw(SinkDisabled("410 Gone", sink="collect"))
    await _journal(store, events_for("ftjob-a", ["queued", "running"]), ["collect"])
    worker = _worker(sink, store, clock)
    with capture_logs() as logs, anyio.fail_after(5):
        await worker.run()
    assert worker.disabled == "410 Gone"
    assert len(await store.pending("collect")) == 1
    assert any(entry["event"] == "sink_disabled" for entry in logs)


async def test_a_plugin_exception_is_retried_and_logged_with_its_traceback(store: Store) -> None:
    """An unexpected exception from a sink is transient: retried, logged with exc_info."""
    clock = ManualClock(2000.0)
    sink = _sink()

    def boom(event: BaseEvent) -> None:
        raise RuntimeError("plugin bug")

    sink.fail = boom
    await _journal(store, events_for("ftjob-a", ["queued", "running"]), ["collect"])
    with capture_logs() as logs:
        await _worker(sink, store, clock).drain_once()
    [row] = await store.pending("collect")
    assert row.attempts == 1
    assert any(e["event"] == "sink_raised" and e.get("exc_info") for e in logs)


async def test_filtered_events_count_as_delivered(store: Store) -> None:
    """Events a sink's routing filters out are acknowledged without being sent."""
    clock = ManualClock(2000.0)
    sink = _sink(events=["fine_tuning.job.failed"])
    await _journal(store, events_for("ftjob-a", ["queued", "running", "failed"]), ["collect"])
    await _worker(sink, store, clock).drain_once()
    assert [e.type for e in sink.events] == ["fine_tuning.job.failed"]
    assert await store.pending("collect") == []


async def test_one_jobs_retry_never_holds_back_another_job(store: Store) -> None:
    """While one job's event waits for a retry, other jobs' events are delivered."""
    clock = ManualClock(2000.0)
    sink = _sink(retry=RetryPolicy(initial_backoff=60, max_backoff=60))
    a = events_for("ftjob-a", ["queued", "running", "succeeded"])
    b = events_for("ftjob-b", ["queued", "running", "succeeded"])
    sink.fail = lambda e: (
        (_ for _ in ()).throw(SinkUnavailable("x", sink="collect"))
        if e.job_id == "ftjob-a"
        else None
    )
    await _journal(store, [*a, *b], ["collect"])
    await _worker(sink, store, clock).drain_once()
    assert [e.id for e in sink.events] == [e.id for e in b]
    pending = await store.pending("collect")
    assert [p.event_id for p in pending] == [e.id for e in a]


async def test_a_hanging_sink_never_delays_a_healthy_one(store: Store) -> None:
    """With one sink hanging forever, another sink's worker delivers everything."""
    clock = ManualClock(2000.0)
    healthy = _sink("healthy")
    hanging = _sink("hanging")
    never = anyio.Event()

    async def hang(event: BaseEvent) -> None:
        await never.wait()

    hanging.send = hang  # type: ignore[method-assign]
    events = [
        *events_for("ftjob-a", ["queued", "running", "succeeded"]),
        *events_for("ftjob-b", ["queued", "failed"]),
    ]
    await _journal(store, events, ["healthy", "hanging"])
    workers = [_worker(healthy, store, clock), _worker(hanging, store, clock)]
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for w in workers:
                tg.start_soon(w.run)
            await healthy.wait_for(len(events))
            tg.cancel_scope.cancel()
    assert [e.id for e in healthy.events] == [e.id for e in events]
    assert len(await store.pending("hanging")) == len(events)


class ReadCountingStore(Store):
    """A real store that counts the rows :meth:`pending` reads for each sink."""

    rows_read: collections.Counter[str]

    async def pending(self, sink: str, *, limit: int = 500, after: int = 0) -> list[Delivery]:
        """Read as a Store does, and count the rows."""
        rows = await super().pending(sink, limit=limit, after=after)
        self.rows_read[sink] += len(rows)
        return rows


@pytest.fixture
async def counting_store(tmp_path: Path) -> AsyncIterator[ReadCountingStore]:
    """A real SQLite store that counts the pending rows each sink reads."""
    async with await ReadCountingStore.open(tmp_path / "state.db") as s:
        s.rows_read = collections.Counter()
        yield s


async def test_a_hanging_sink_does_not_reread_its_backlog_on_every_wake(
    counting_store: ReadCountingStore,
) -> None:
    """With every puller hung and chains waiting, new events and wakes cost the store nothing.

    A hung sink that re-read its whole backlog on each wake would hold the one store
    connection that the healthy sinks and the poller's commits need (promise 5).
    """
    store = counting_store
    clock = ManualClock(2000.0)
    hanging = _sink("hanging", concurrency=2)
    never = anyio.Event()
    hung = 0
    all_hung = anyio.Event()

    async def hang(event: BaseEvent) -> None:
        nonlocal hung
        hung += 1
        if hung == 2:
            all_hung.set()
        await never.wait()

    hanging.send = hang  # type: ignore[method-assign]
    jobs = [events_for(f"ftjob-{i}", ["validating_files", "queued", "running"]) for i in range(5)]
    await _journal(store, [e for job in jobs for e in job], ["hanging"])
    worker = _worker(hanging, store, clock)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            await all_hung.wait()
            assert store.rows_read["hanging"] == 2 * 5
            for i in range(50):
                new = events_for(f"ftjob-new-{i}", ["validating_files", "queued"])
                await _journal(store, new, ["hanging"])
                worker.wake()
                await store.stats()  # a store call of our own lets the worker run
            assert store.rows_read["hanging"] == 2 * 5
            tg.cancel_scope.cancel()
    assert len(await store.pending("hanging", limit=1000)) == 2 * 5 + 50


async def test_a_failing_sink_reads_its_backlog_once_not_once_per_failure(
    counting_store: ReadCountingStore,
) -> None:
    """Each job's failure puts its retry back in memory: the queue is not read again for it.

    A sink refusing every delivery, with a backlog, would otherwise re-read that backlog
    after each failure and hold the store that the other sinks need (promise 5).
    """
    store = counting_store
    clock = ManualClock(2000.0)
    sink = _sink(concurrency=4)
    tried: list[str] = []

    def refuse(event: BaseEvent) -> None:
        tried.append(event.job_id)
        # An answer (a 503), so that every job is tried: no answer at all would open the
        # sink's circuit after a few (tests/test_breaker.py).
        raise SinkUnavailable("HTTP 503", sink="collect", status_code=503)

    sink.fail = refuse
    jobs = [events_for(f"ftjob-{i}", ["validating_files", "queued", "running"]) for i in range(20)]
    await _journal(store, [e for job in jobs for e in job], ["collect"])
    worker = _worker(sink, store, clock)
    assert await worker.drain_once()
    assert sorted(tried) == sorted(f"ftjob-{i}" for i in range(20))  # each job's first, once
    assert store.rows_read["collect"] == 2 * 20
    assert worker.next_due is not None
    # The retries wait in the store too: a new worker (a restart) finds them with their times.
    pending = await store.pending("collect", limit=100)
    heads = {d.job_key: d for d in reversed(pending)}
    assert all(d.attempts == 1 and d.next_attempt_at > 2000.0 for d in heads.values())
    assert min(d.next_attempt_at for d in heads.values()) == worker.next_due


class FailingAckStore(Store):
    """A real store whose next ``ack_failures`` acknowledgement writes fail (a full disk)."""

    ack_failures = 0

    async def ack(self, sink: str, seqs: Sequence[int], *, cursor: int, now: float) -> None:
        """Fail while failures are left, then write as a Store does."""
        if self.ack_failures:
            self.ack_failures -= 1
            raise StoreError("The state store s.db could not record deliveries: disk I/O error.")
        await super().ack(sink, seqs, cursor=cursor, now=now)


async def test_a_store_failure_restarts_the_worker_and_loses_nothing(tmp_path: Path) -> None:
    """A worker whose store writes fail logs it, starts over after a pause, and delivers all.

    The acknowledgements that could not be written are kept and written once the store works
    again, so nothing is sent twice.
    """
    clock = ManualClock(2000.0)
    sink = _sink(retry=RetryPolicy(initial_backoff=1, max_backoff=10))
    events = events_for("ftjob-a", ["validating_files", "queued", "running", "succeeded"])
    async with await FailingAckStore.open(tmp_path / "state.db") as store:
        await _journal(store, events, ["collect"])
        store.ack_failures = 2  # the write after delivering, and the one on the way out
        worker = _worker(sink, store, clock)
        with capture_logs() as logs, anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(worker.run)
                await sink.wait_for(len(events))
                while await store.pending("collect"):  # a store call lets the worker run
                    deadline = clock.next_deadline()
                    if deadline is not None:
                        clock.set(deadline)
                tg.cancel_scope.cancel()
    failed = [entry for entry in logs if entry["event"] == "sink_worker_failed"]
    assert len(failed) == 1 and failed[0]["sink"] == "collect" and failed[0]["exc_info"]
    ids = [e.id for e in events]
    assert [e.id for e in sink.events] == ids


async def test_a_slow_delivery_holds_back_only_its_own_job(store: Store) -> None:
    """While one job's delivery hangs, other jobs' events, even ones journaled later, go out.

    Their acknowledgements are written meanwhile too, so a crash would not send them again.
    """
    clock = ManualClock(2000.0)
    sink = _sink()
    deliver = sink.send
    release = anyio.Event()
    slow_started = anyio.Event()

    async def send(event: BaseEvent) -> None:
        if event.job_id == "ftjob-slow":
            slow_started.set()
            await release.wait()
        await deliver(event)

    sink.send = send  # type: ignore[method-assign]
    slow = events_for("ftjob-slow", ["queued", "running", "succeeded"])
    first = events_for("ftjob-b", ["queued", "running"])
    later = events_for("ftjob-c", ["queued", "failed"])
    await _journal(store, [slow[0], first[0], slow[1]], ["collect"])
    worker = _worker(sink, store, clock)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            await slow_started.wait()
            await sink.wait_for(1)
            await _journal(store, later, ["collect"])
            worker.wake()
            await sink.wait_for(1 + len(later))
            assert not release.is_set()
            still_pending = {d.event_id for d in await store.pending("collect")}
            assert first[0].id not in still_pending
            assert {slow[0].id, slow[1].id} <= still_pending
            release.set()
            await sink.wait_for(3 + len(later))
            tg.cancel_scope.cancel()
    ids = [e.id for e in sink.events]
    assert ids[: 1 + len(later)] == [first[0].id, *(e.id for e in later)]
    assert ids[1 + len(later) :] == [slow[0].id, slow[1].id]
    assert await store.pending("collect") == []


class SleepWatchingClock(ManualClock):
    """A manual clock that says when someone starts waiting for less than a minute."""

    def __init__(self, start: float) -> None:
        super().__init__(start)
        self.short_sleep = anyio.Event()

    async def sleep(self, seconds: float) -> None:
        """Note a short wait (a retry's), then wait as a ManualClock does."""
        if 0 < seconds < 60:
            self.short_sleep.set()
        await super().sleep(seconds)


async def test_a_retry_falls_due_on_time_while_another_job_hangs(store: Store) -> None:
    """A job's retry is attempted when due, not when some other job's slow delivery ends."""
    clock = SleepWatchingClock(2000.0)
    sink = _sink(retry=RetryPolicy(initial_backoff=1, max_backoff=10))
    deliver = sink.send
    release = anyio.Event()
    attempts: list[str] = []

    async def send(event: BaseEvent) -> None:
        attempts.append(event.job_id)
        if event.job_id == "ftjob-slow":
            await release.wait()
        elif attempts.count(event.job_id) == 1:
            raise SinkUnavailable("not yet", sink="collect")
        await deliver(event)

    sink.send = send  # type: ignore[method-assign]
    slow = events_for("ftjob-slow", ["queued", "running"])
    flaky = events_for("ftjob-flaky", ["queued", "running"])
    await _journal(store, [*slow, *flaky], ["collect"])
    worker = _worker(sink, store, clock)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            await clock.short_sleep.wait()  # the worker waits for the retry's due time
            clock.advance(60)
            await sink.wait_for(1)
            assert [e.id for e in sink.events] == [flaky[0].id]
            assert not release.is_set()
            release.set()
            await sink.wait_for(2)
            tg.cancel_scope.cancel()
    assert attempts == ["ftjob-slow", "ftjob-flaky", "ftjob-flaky"]


def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    """Backoff spreads over all of [0, min(max, initial * 2^(n-1))]; Retry-After is a floor.

    Full jitter, not a fixed or half-jittered wait: the draws reach both ends of the range
    and average half the ceiling, so retries of many events do not fall due together.
    """
    rng = random.Random(3)
    for attempts in range(1, 12):
        ceiling = min(300.0, 1.0 * 2 ** (attempts - 1))
        delays = [backoff_delay(attempts, initial=1.0, maximum=300.0, rng=rng) for _ in range(500)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert min(delays) < 0.05 * ceiling and max(delays) > 0.95 * ceiling
        assert 0.4 * ceiling < sum(delays) / len(delays) < 0.6 * ceiling
    assert backoff_delay(1, initial=1.0, maximum=300.0, rng=rng, retry_after=42) >= 42
    assert backoff_delay(1, initial=1.0, maximum=300.0, rng=rng, retry_after=900) >= 900


class YieldingSink(CollectingSink):
    """A collecting sink whose deliveries take a moment, like a network send."""

    async def send(self, event: BaseEvent) -> None:
        """Wait for a worker thread (as long as a store call), then record the event."""
        await anyio.to_thread.run_sync(lambda: None)
        await super().send(event)


async def test_steady_load_across_many_rereads_delivers_each_event_once(store: Store) -> None:
    """Without any crash, every sink gets every event exactly once (issue 7, item 6).

    New jobs arrive steadily (10 a second, 6 sinks) for long enough to cross many full
    re-reads of each queue; a delivery whose acknowledgement was not yet written when a
    re-read ran used to be read back as pending and sent again.
    """
    clock = ManualClock(2000.0)
    names = [f"sink-{i}" for i in range(6)]
    await store.set_sinks(names, now=clock.now())
    sinks = [YieldingSink(SinkConfig(name=n, type="collect", concurrency=4)) for n in names]
    workers = [
        SinkWorker(s, s.config, store, clock=clock, rng=random.Random(1), resync_every=0.5)
        for s in sinks
    ]
    seconds, per_second = 30, 10
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for worker in workers:
                tg.start_soon(worker.run)
            for second in range(seconds):
                for i in range(per_second):
                    job = f"ftjob-{second}-{i}"
                    events = events_for(job, ["queued", "running"], start=clock.now())
                    await store.commit("test", states={}, events=events, now=clock.now())
                    for worker in workers:
                        worker.wake()
                    await store.stats()  # a store call of our own lets the workers run
                clock.advance(1.0)
            for sink in sinks:
                await sink.wait_for(seconds * per_second)
            for worker in workers:
                await worker.drained()
            tg.cancel_scope.cancel()
    for sink in sinks:
        ids = [e.id for e in sink.events]
        duplicates = len(ids) - len(set(ids))
        assert (sink.name, len(set(ids)), duplicates) == (sink.name, seconds * per_second, 0)
    for name in names:
        assert await store.pending(name) == []


async def test_an_outage_is_one_warning_a_summary_and_a_recovery_not_a_line_per_event(
    store: Store,
) -> None:
    """Four failing sinks with 30 events log their state changes, not every attempt."""
    clock = ManualClock(2000.0)
    policy = RetryPolicy(initial_backoff=1, max_backoff=30, max_attempts=1000, max_age=10**6)
    sinks = [_sink(f"down-{i}", retry=policy) for i in range(4)]
    await store.set_sinks([s.name for s in sinks], now=clock.now())
    down = True

    def fail(event: BaseEvent) -> None:
        if down:
            raise SinkUnavailable("HTTP 503", sink="?", status_code=503)

    for sink in sinks:
        sink.fail = fail
    events = [e for i in range(30) for e in events_for(f"ftjob-{i}", ["queued", "running"])]
    assert len(events) == 30
    await _journal(store, events, [])
    workers = [_worker(sink, store, clock) for sink in sinks]
    outage = 5 * 60.0  # five minutes of failing
    with capture_logs() as logs:
        while clock.now() < 2000.0 + outage:
            for worker in workers:
                await worker.flush()
            due = [w.next_due for w in workers if w.next_due is not None]
            clock.set(max(min(due), clock.now() + 1))
        down = False
        clock.advance(60)
        for worker in workers:
            await worker.flush()

    for sink in sinks:
        assert sorted(e.id for e in sink.events) == sorted(e.id for e in events)
    # Each attempt is at debug (which a logging setup of another test may filter out here).
    assert all(e["log_level"] == "debug" for e in logs if e["event"] == "delivery_retry")
    shown = [e for e in logs if e["log_level"] != "debug"]
    by_event = collections.Counter(e["event"] for e in shown)
    assert by_event["sink_failing"] == 4
    assert by_event["sink_recovered"] == 4
    # One summary a minute per sink at most, saying what is queued.
    assert 4 <= by_event["sink_still_failing"] <= 4 * (outage / 60 + 1)
    assert set(by_event) == {"sink_failing", "sink_still_failing", "sink_recovered"}
    summary = next(e for e in shown if e["event"] == "sink_still_failing")
    assert summary["queued"] == 30 and summary["since"] == 2000.0
    recovered = next(e for e in shown if e["event"] == "sink_recovered")
    assert recovered["failed_attempts"] >= 30
