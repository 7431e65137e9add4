"""Tests for watcher.store: the StateStore protocol (snapshots, journal, deliveries), run
against every implementation, then what is particular to the SQLite file."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from watcher.diff import JobState, diff
from watcher.errors import StoreError
from watcher.events import BaseEvent, JobCreated
from watcher.known import LeanJob, lean
from watcher.models import FineTuningJob
from watcher.store import SCHEMA_VERSION, SQLiteStore, StateStore, Store, job_key
from watcher.store.lock import exclusive
from watcher.store.schema import MIGRATIONS

T0 = 1_700_000_000.0
SRC = "openai"


def make_job(job_id: str, status: str = "running", **extra: Any) -> FineTuningJob:
    """A job as the API would return it."""
    return FineTuningJob.model_validate(
        {"id": job_id, "status": status, "model": "gpt-4o-mini", "created_at": 1, **extra}
    )


def created(job_id: str, *, now: float = T0, status: str = "running") -> JobCreated:
    """The `created` event diff() emits for a job seen for the first time."""
    _, events = diff(None, make_job(job_id, status), source=SRC, now=now)
    event = events[0]
    assert isinstance(event, JobCreated)
    return event


def state_of(job_id: str, status: str = "running", **extra: Any) -> JobState:
    """A JobState with a history: a baseline then one status change."""
    first, _ = diff(None, make_job(job_id, "queued"), source=SRC, now=T0, announce_new=False)
    state, _ = diff(first, make_job(job_id, status, **extra), source=SRC, now=T0 + 5)
    return state


def mode(path: Path) -> int:
    """The permission bits of a file."""
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Where the state file lives (in a directory that does not exist yet)."""
    return tmp_path / "state" / "ftwatch.db"


#: Every StateStore implementation: name -> how to open a fresh one in a directory.
IMPLEMENTATIONS: dict[str, Callable[[Path], Any]] = {"sqlite": SQLiteStore.open}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
async def store(request: pytest.FixtureRequest, db: Path) -> AsyncIterator[StateStore]:
    """An open, empty store of each implementation."""
    opened: StateStore = await IMPLEMENTATIONS[request.param](db)
    async with opened:
        yield opened


async def journal(store: StateStore) -> list[tuple[int, str]]:
    """(seq, event id) of every journal entry, read the way a new sink sees them."""
    return [(d.seq, d.event_id) for d in await store.pending("__journal__", limit=10_000)]


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Run with a umask that lets anyone read new files, so only our own modes protect them."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


# -- snapshots ------------------------------------------------------------------------------------


async def test_states_round_trip(store: StateStore) -> None:
    """Committed snapshots come back equal: the job (unknown fields too), counts and times."""
    states = {
        "ftjob-1": state_of("ftjob-1", "running", vendor_field={"x": [1, 2]}),
        "ftjob-2": state_of("ftjob-2", "succeeded", fine_tuned_model="ft:abc"),
    }
    await store.commit(SRC, states=states, events=[], now=T0)

    loaded = await store.load_states(SRC)

    # Loaded lean (id, status, creation time, counts, times); the snapshot is read on demand.
    assert loaded == {job_id: lean(state) for job_id, state in states.items()}
    assert loaded["ftjob-2"].seen == {"queued>succeeded": 1, "=succeeded": 1}
    assert loaded["ftjob-2"].since == {"queued": T0, "succeeded": T0 + 5}
    assert await store.load_states("other") == {}
    snapshot = await store.snapshot(SRC, "ftjob-1")
    assert snapshot == states["ftjob-1"].job
    assert snapshot is not None and snapshot.model_extra == {"vendor_field": {"x": [1, 2]}}
    assert await store.snapshot(SRC, "ftjob-3") is None
    assert await store.snapshot("other", "ftjob-1") is None


async def test_later_snapshot_replaces_earlier(store: StateStore) -> None:
    """Committing a job again replaces its stored snapshot."""
    await store.commit(SRC, states={"j": state_of("j", "running")}, events=[], now=T0)
    newer = state_of("j", "failed", error={"code": "bad", "message": "no"})
    await store.commit(SRC, states={"j": newer}, events=[], now=T0 + 1)

    assert await store.load_states(SRC) == {"j": lean(newer)}
    assert await store.snapshot(SRC, "j") == newer.job


async def test_a_damaged_snapshot_leaves_the_job_known(db: Path) -> None:
    """A snapshot that is not JSON still loads its job's state; unreadable counts forget it."""
    async with await Store.open(db) as store:
        await store.commit(SRC, states={"a": state_of("a"), "b": state_of("b")}, events=[], now=T0)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE snapshots SET job = '{not json' WHERE job_id = 'a'")
        conn.execute("UPDATE snapshots SET seen = '[1]' WHERE job_id = 'b'")
    conn.close()
    async with await Store.open(db) as reopened:
        with capture_logs() as logs:
            loaded = await reopened.load_states(SRC)
            assert await reopened.snapshot(SRC, "a") is None
    assert list(loaded) == ["a"]
    assert loaded["a"].job == LeanJob("a", "running", None)
    assert [e["job_id"] for e in logs if e["event"] == "snapshot_unreadable"] == ["b", "a"]


async def test_baseline_flag(store: StateStore) -> None:
    """A source is baselined only once a commit says so, and can be reset."""
    assert not await store.is_baselined(SRC)
    await store.commit(SRC, states={}, events=[], now=T0, baselined=True)
    assert await store.is_baselined(SRC)
    assert not await store.is_baselined("azure")
    await store.commit(SRC, states={}, events=[], now=T0)  # None leaves it alone
    assert await store.is_baselined(SRC)
    await store.commit(SRC, states={}, events=[], now=T0, baselined=False)
    assert not await store.is_baselined(SRC)


async def test_catch_up_cursors(store: StateStore) -> None:
    """Gaps are per source, replaced only when a commit gives them, and keep the baseline flag."""
    assert await store.gaps(SRC) == []
    await store.commit(SRC, states={}, events=[], now=T0, baselined=True)
    await store.commit(SRC, states={}, events=[], now=T0, gaps=["ftjob-b", "ftjob-a"])
    assert await store.gaps(SRC) == ["ftjob-b", "ftjob-a"]
    assert await store.gaps("azure") == []
    await store.commit(SRC, states={}, events=[], now=T0)  # None leaves them alone
    assert await store.gaps(SRC) == ["ftjob-b", "ftjob-a"]
    assert await store.is_baselined(SRC)
    await store.commit(SRC, states={}, events=[], now=T0, gaps=[])
    assert await store.gaps(SRC) == []
    assert await store.is_baselined(SRC)


async def test_a_version_1_file_is_migrated_and_keeps_its_data(db: Path) -> None:
    """A state file from the first schema gains the catch-up cursors and loses nothing."""
    db.parent.mkdir(mode=0o700)
    conn = sqlite3.connect(db, isolation_level=None)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("INSERT INTO sources (source, baselined, updated_at) VALUES (?, 1, ?)", (SRC, T0))
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    async with await Store.open(db) as store:
        assert await store.is_baselined(SRC)
        assert await store.gaps(SRC) == []
        assert (await store.stats())["schema_version"] == SCHEMA_VERSION == 6
    conn = sqlite3.connect(db)
    indexes = {
        row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
    }
    conn.close()
    assert "deliveries_due" not in indexes  # version 3 dropped it
    assert {"deliveries_pending", "deliveries_dead", "deliveries_seq"} <= indexes


async def test_a_version_3_file_gets_cursors_and_keeps_every_queue(db: Path) -> None:
    """Rows per sink and event become cursors: pending and dead stay, done rows go."""
    db.parent.mkdir(mode=0o700)
    conn = sqlite3.connect(db, isolation_level=None)
    for migration in MIGRATIONS[:3]:
        for statement in migration:
            conn.execute(statement)
    events = [created(x) for x in "abcde"]  # e: journaled after both sinks were removed
    for ev in events:
        conn.execute(
            "INSERT INTO journal (event_id, type, source, job_id, observed_at, body)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (ev.id, ev.type, ev.source, ev.job_id, ev.observed_at, ev.to_json()),
        )
    # hook: 1 and 3 done, 2 pending (a retry), 4 pending (never tried); slack, added
    # later: only 3 and 4, 3 dead, 4 done.
    rows = [
        ("hook", 1, "done", 1),
        ("hook", 2, "pending", 2),
        ("hook", 3, "done", 1),
        ("hook", 4, "pending", 0),
        ("slack", 3, "dead", 5),
        ("slack", 4, "done", 1),
    ]
    for sink, seq, state, attempts in rows:
        conn.execute(
            "INSERT INTO deliveries (sink, seq, job_key, state, attempts, next_attempt_at,"
            " last_error, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'no', ?)",
            (sink, seq, job_key(SRC, "x"), state, attempts, T0, T0),
        )
    conn.execute("PRAGMA user_version = 3")
    conn.close()

    async with await Store.open(db) as store:
        assert [(d.seq, d.attempts) for d in await store.pending("hook")] == [(2, 2), (4, 0)]
        assert await store.pending("slack") == []
        assert [(d.sink, d.seq) for d in await store.dead_letters()] == [("slack", 3)]
        stats = await store.stats()
        assert stats["cursors"] == {"hook": 5, "slack": 5}
        # A new entry goes to both sinks.
        await store.commit(SRC, states={}, events=[created("f")], now=T0)
        assert [d.seq for d in await store.pending("slack")] == [6]
        assert [d.seq for d in await store.pending("hook")] == [2, 4, 6]
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM deliveries WHERE state = 'done'").fetchone() == (0,)
    conn.close()


# -- commit and the journal -----------------------------------------------------------------------


async def test_commit_journals_events_with_exact_body(store: StateStore) -> None:
    """Each event is journaled once, in order, with the exact JSON sinks send."""
    events: list[BaseEvent] = [created("a"), created("b")]

    seqs = await store.commit(SRC, states={}, events=events, now=T0)

    entries = await store.pending("__journal__")
    assert seqs == [entry.seq for entry in entries] == [1, 2]
    assert [entry.event_id for entry in entries] == [e.id for e in events]
    assert [entry.body for entry in entries] == [e.to_json() for e in events]
    assert (entries[0].job_key, entries[0].observed_at) == (job_key(SRC, "a"), T0)
    assert entries[1].event() == events[1]
    assert (await store.stats())["last_seq"] == 2


async def test_duplicate_event_ids_are_ignored(store: StateStore) -> None:
    """An event already journaled is ignored: no new entry, nothing queued twice."""
    await store.set_sinks(["hook", "slack"], now=T0)
    first = created("a")
    await store.commit(SRC, states={}, events=[first], now=T0)

    again = created("a", now=T0 + 60)  # same change seen after a restart: same id
    fresh = created("b", now=T0 + 60)
    seqs = await store.commit(SRC, states={}, events=[again, fresh, fresh], now=T0 + 60)

    assert seqs == [2]
    assert [e for _, e in await journal(store)] == [first.id, fresh.id]
    for sink in ("hook", "slack"):
        assert [d.event_id for d in await store.pending(sink)] == [first.id, fresh.id]
    # The first journaling wins: the stored body is the one first seen.
    assert (await store.pending("hook"))[0].observed_at == T0


async def test_failed_commit_leaves_nothing_behind(store: StateStore) -> None:
    """A commit that fails part-way writes nothing: no journal entry, delivery or snapshot."""
    # A job without a status cannot be stored; it fails after the events were inserted.
    no_status: dict[str, Any] = {"id": "bad", "status": None}
    broken = JobState(FineTuningJob.model_construct(**no_status))
    with pytest.raises(StoreError, match="record a poll cycle"):
        await store.commit(
            SRC,
            states={"ok": state_of("ok"), "bad": broken},
            events=[created("ok")],
            now=T0,
            baselined=True,
        )

    assert await journal(store) == []
    assert await store.load_states(SRC) == {}
    assert not await store.is_baselined(SRC)
    # The store is still usable afterwards.
    assert await store.commit(SRC, states={}, events=[created("ok")], now=T0) == [1]


async def test_pending_pages_after_seq(store: StateStore) -> None:
    """pending(after=, limit=) pages through a queue in seq order, rows and fresh merged."""
    await store.set_sinks(["h"], now=T0)
    await store.commit(SRC, states={}, events=[created(f"j{i}") for i in range(5)], now=T0)
    await store.schedule_retry(
        "h", 2, attempts=1, next_attempt_at=T0, first_attempt_at=T0, error="x", now=T0
    )
    await store.ack("h", [1], cursor=2, now=T0)  # 2 has a row: the cursor may pass it

    assert [d.seq for d in await store.pending("h", after=1, limit=2)] == [2, 3]
    assert [(d.seq, d.stored) for d in await store.pending("h", after=3)] == [
        (4, False),
        (5, False),
    ]
    assert [(d.seq, d.stored) for d in await store.pending("h", limit=2)] == [
        (2, True),
        (3, False),
    ]
    assert await store.pending("h", after=5) == []


# -- deliveries -----------------------------------------------------------------------------------


async def test_pending_is_per_sink_in_seq_order(store: StateStore) -> None:
    """pending() lists one sink's queue in seq order, with what a worker needs."""
    await store.set_sinks(["hook"], now=T0)
    await store.commit(SRC, states={}, events=[created("a")], now=T0)
    await store.set_sinks(["hook", "slack"], now=T0)  # slack starts at the end
    await store.commit(SRC, states={}, events=[created("b"), created("c")], now=T0 + 1)

    hook = await store.pending("hook")
    assert [d.seq for d in hook] == [1, 2, 3]
    assert [d.seq for d in await store.pending("slack")] == [2, 3]
    assert [d.seq for d in await store.pending("hook", limit=2)] == [1, 2]

    first = hook[0]
    assert first.sink == "hook"
    assert first.job_key == job_key(SRC, "a") == "openai\x1fa"
    assert (first.attempts, first.next_attempt_at, first.first_attempt_at) == (0, 0.0, None)
    assert first.observed_at == T0
    assert first.event().id == first.event_id == created("a").id


async def test_a_new_sink_starts_at_the_end_or_replays_from_a_time(store: StateStore) -> None:
    """A sink added later gets only what is journaled after, unless it replays from a time."""
    await store.set_sinks(["hook"], now=T0)
    await store.commit(
        SRC, states={}, events=[created(x, now=T0 + i) for i, x in enumerate("abc")], now=T0
    )

    await store.set_sinks(["hook", "late"], now=T0 + 10)
    await store.set_sinks(["hook", "late", "replay"], now=T0 + 10, replay_from=T0 + 1)
    await store.commit(SRC, states={}, events=[created("d", now=T0 + 20)], now=T0 + 20)

    assert [d.seq for d in await store.pending("late")] == [4]
    assert [d.seq for d in await store.pending("replay")] == [2, 3, 4]
    assert [d.seq for d in await store.pending("hook")] == [1, 2, 3, 4]


async def test_ack_marks_done(store: StateStore) -> None:
    """Acked deliveries leave the sink's queue, in or out of order; other sinks keep theirs."""
    await store.set_sinks(["hook", "slack"], now=T0)
    await store.commit(SRC, states={}, events=[created(x) for x in "abcd"], now=T0)

    # 3 went out while 2 is still out: the cursor stays at 1, 3 is remembered as done.
    await store.ack("hook", [1, 3], cursor=1, now=T0 + 1)
    await store.ack("hook", [], cursor=1, now=T0 + 1)
    assert [d.seq for d in await store.pending("hook")] == [2, 4]
    await store.ack("hook", [2], cursor=3, now=T0 + 2)
    assert [d.seq for d in await store.pending("hook")] == [4]
    await store.ack("hook", [], cursor=0, now=T0 + 2)  # a cursor never moves back
    assert [d.seq for d in await store.pending("hook")] == [4]

    assert [d.seq for d in await store.pending("slack")] == [1, 2, 3, 4]


async def test_schedule_retry_keeps_the_delivery_pending(store: StateStore) -> None:
    """A retry keeps the delivery pending with its attempts, due time and first attempt."""
    await store.set_sinks(["h"], now=T0)
    await store.commit(SRC, states={}, events=[created("a"), created("b")], now=T0)
    assert [d.next_attempt_at for d in await store.pending("h")] == [0.0, 0.0]

    await store.schedule_retry(
        "h", 1, attempts=1, next_attempt_at=T0 + 30, first_attempt_at=T0 + 1, error="503", now=T0
    )
    await store.schedule_retry(
        "h", 2, attempts=2, next_attempt_at=T0 + 10, first_attempt_at=T0 + 2, error="503", now=T0
    )
    await store.ack("h", [], cursor=2, now=T0)  # both have rows: the cursor passes them

    one, two = await store.pending("h")
    assert (one.attempts, one.next_attempt_at, one.first_attempt_at) == (1, T0 + 30, T0 + 1)
    assert (two.attempts, two.next_attempt_at) == (2, T0 + 10)
    await store.ack("h", [1, 2], cursor=2, now=T0 + 40)
    assert await store.pending("h") == []


async def test_dead_letter_then_retry_and_drop(store: StateStore) -> None:
    """Dead letters leave the queue, are listed with their error, and can be retried or dropped."""
    events = [created("a"), created("b"), created("c")]
    await store.set_sinks(["hook", "slack"], now=T0)
    await store.commit(SRC, states={}, events=events, now=T0)

    await store.dead_letter("hook", 1, attempts=5, error="HTTP 400", now=T0 + 9)
    await store.dead_letter("hook", 2, attempts=1, error="HTTP 422", now=T0 + 10)
    await store.dead_letter("slack", 2, attempts=3, error="gone", now=T0 + 11)

    assert [d.seq for d in await store.pending("hook")] == [3]
    dead = await store.dead_letters("hook")
    assert [(d.seq, d.attempts, d.last_error, d.died_at) for d in dead] == [
        (1, 5, "HTTP 400", T0 + 9),
        (2, 1, "HTTP 422", T0 + 10),
    ]
    assert (dead[0].event_id, dead[0].type, dead[0].source, dead[0].job_id) == (
        events[0].id,
        "fine_tuning.job.created",
        SRC,
        "a",
    )
    assert dead[0].body == events[0].to_json()
    assert [(d.sink, d.seq) for d in await store.dead_letters()] == [
        ("hook", 1),
        ("hook", 2),
        ("slack", 2),
    ]

    retried = await store.retry_dead_letters(sink="hook", event_ids=[events[1].id], now=T0 + 20)
    assert retried == 1
    pending = await store.pending("hook")
    assert [(d.seq, d.attempts, d.next_attempt_at) for d in pending] == [
        (2, 0, T0 + 20),
        (3, 0, 0.0),
    ]
    assert pending[0].first_attempt_at is None
    assert [(d.sink, d.seq) for d in await store.dead_letters()] == [("hook", 1), ("slack", 2)]

    assert await store.drop_dead_letters(sink="hook") == 1
    assert [(d.sink, d.seq) for d in await store.dead_letters()] == [("slack", 2)]
    assert await store.retry_dead_letters(now=T0 + 30) == 1
    assert await store.dead_letters() == []
    assert [d.seq for d in await store.pending("slack")] == [1, 2, 3]


async def test_dead_letter_filters(store: StateStore) -> None:
    """retry/drop touch only dead letters matching the sink and event ids given."""
    events = [created("a"), created("b")]
    await store.commit(SRC, states={}, events=events, now=T0)
    for sink in ("hook", "slack"):
        for seq in (1, 2):
            await store.dead_letter(sink, seq, attempts=1, error="no", now=T0)

    assert await store.retry_dead_letters(event_ids=[], now=T0) == 0
    assert await store.retry_dead_letters(event_ids=["evt_unknown"], now=T0) == 0
    assert await store.drop_dead_letters(event_ids=[events[0].id, events[0].id]) == 2
    assert await store.retry_dead_letters(sink="slack", now=T0) == 1
    assert [(d.sink, d.seq) for d in await store.dead_letters()] == [("hook", 2)]
    # A pending delivery is never touched by the dead-letter commands.
    assert await store.drop_dead_letters(sink="slack") == 0
    assert [d.seq for d in await store.pending("slack")] == [2]


async def test_a_removed_sink_is_retired_and_pins_nothing(store: StateStore) -> None:
    """Its queue becomes dead letters (counted, listed), and the journal prunes again."""
    await store.set_sinks(["hook", "old"], now=T0)
    await store.commit(SRC, states={}, events=[created(x) for x in "abcd"], now=T0)
    await store.ack("hook", [1, 2, 3, 4], cursor=4, now=T0)
    await store.ack("old", [1], cursor=1, now=T0)
    await store.schedule_retry(
        "old", 2, attempts=1, next_attempt_at=T0, first_attempt_at=T0, error="503", now=T0
    )
    await store.dead_letter("old", 3, attempts=5, error="HTTP 400", now=T0)

    retired = await store.set_sinks(["hook"], now=T0 + 5)

    assert [(r.name, r.queued, r.dead) for r in retired] == [("old", 2, 3)]
    letters = await store.dead_letters("old")
    assert [(d.seq, d.last_error) for d in letters] == [
        (2, "sink removed from the config"),
        (3, "HTTP 400"),
        (4, "sink removed from the config"),
    ]
    assert await store.set_sinks(["hook"], now=T0 + 6) == []  # retired once
    assert await store.prune(older_than=T0 + 100) == 1  # entry 1; 2-4 wait as dead letters
    assert await store.drop_dead_letters(sink="old") == 3
    assert await store.prune(older_than=T0 + 100) == 3
    assert await journal(store) == []


async def test_concurrent_calls_are_serialised(store: StateStore) -> None:
    """Many tasks using the store at once each get a whole, consistent answer."""
    events = [created(f"j{i}") for i in range(40)]
    await store.commit(SRC, states={}, events=events, now=T0)

    async def ack(seq: int) -> None:
        await store.ack("hook", [seq], cursor=0, now=T0)
        await store.pending("hook")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for seq in range(1, 41):
                tg.start_soon(ack, seq)

    assert await store.pending("hook") == []


# -- housekeeping ---------------------------------------------------------------------------------


async def test_prune_keeps_what_a_sink_still_needs(store: StateStore) -> None:
    """prune drops old fully-delivered entries, keeps pending/dead/new ones, never reuses seqs."""
    await store.set_sinks(["hook", "slack"], now=T0)
    old = [created(x, now=T0) for x in "abcd"]
    await store.commit(SRC, states={}, events=old, now=T0)
    await store.commit(SRC, states={}, events=[created("e", now=T0 + 100)], now=T0)
    await store.ack("hook", [1, 2, 3, 4, 5], cursor=5, now=T0)
    await store.ack("slack", [1, 3], cursor=1, now=T0)  # 2 stays pending
    await store.dead_letter("slack", 4, attempts=1, error="no", now=T0)
    await store.ack("slack", [5], cursor=1, now=T0)

    assert await store.prune(older_than=T0 + 50) == 1  # slack's cursor holds 2 and 3

    assert [seq for seq, _ in await journal(store)] == [2, 3, 4, 5]
    assert [d.seq for d in await store.pending("slack")] == [2]
    assert [d.seq for d in await store.dead_letters()] == [4]
    assert await store.prune(older_than=T0 + 50) == 0
    # Once the last one is pruned, seqs still go on from the highest ever given.
    await store.ack("slack", [2], cursor=5, now=T0)
    assert await store.prune(older_than=T0 + 50) == 2  # 2 and 3; 4 is a dead letter
    await store.drop_dead_letters()
    assert await store.prune(older_than=T0 + 1000) == 2
    assert (await store.stats())["last_seq"] == 5
    assert await store.commit(SRC, states={}, events=[created("f")], now=T0) == [6]


async def test_stats(store: StateStore, db: Path) -> None:
    """stats() counts jobs per source, the journal, and pending and dead deliveries per sink."""
    await store.set_sinks(["hook", "slack"], now=T0)
    await store.commit(
        SRC,
        states={"a": state_of("a", "running"), "b": state_of("b", "succeeded")},
        events=[created("a"), created("b")],
        now=T0,
        baselined=True,
    )
    await store.ack("hook", [1], cursor=1, now=T0)
    await store.dead_letter("slack", 2, attempts=1, error="no", now=T0)

    stats = await store.stats()

    assert stats["schema_version"] == SCHEMA_VERSION
    assert stats["jobs"] == {SRC: 2}
    assert stats["terminal_jobs"] == {SRC: 1}
    assert stats["baselined"] == {SRC: True}
    assert (stats["journal_entries"], stats["last_seq"]) == (2, 2)
    assert stats["pending"] == {"hook": 1, "slack": 1}
    assert stats["dead"] == {"slack": 1}
    assert stats["cursors"] == {"hook": 1, "slack": 0}


# -- the file -------------------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
async def test_files_are_private(db: Path, open_umask: None) -> None:
    """The database and its -wal and -shm files are 0600 even under a permissive umask."""
    async with await Store.open(db) as store:
        await store.commit(SRC, states={"a": state_of("a")}, events=[created("a")], now=T0)
        wal = db.with_name(db.name + "-wal")
        shm = db.with_name(db.name + "-shm")
        assert {p.name: mode(p) for p in (db, wal, shm)} == {
            db.name: 0o600,
            wal.name: 0o600,
            shm.name: 0o600,
        }
        assert mode(db.parent) == 0o700


async def test_file_settings(db: Path) -> None:
    """The file is in WAL mode and carries our schema version."""
    await (await Store.open(db)).aclose()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    finally:
        conn.close()


async def test_unknown_deliveries_are_ignored(store: StateStore) -> None:
    """Acking, retrying or dead-lettering a delivery that does not exist changes nothing."""
    await store.ack("h", [1], cursor=0, now=T0)
    await store.schedule_retry(
        "h", 1, attempts=1, next_attempt_at=T0, first_attempt_at=T0, error="x", now=T0
    )
    await store.dead_letter("h", 1, attempts=1, error="x", now=T0)

    assert await store.pending("h") == []
    assert await store.dead_letters() == []


async def test_reopen_after_crash_keeps_everything(db: Path) -> None:
    """A second store on a file whose first store never closed sees every commit."""
    first = await Store.open(db)
    try:
        await first.commit(
            SRC,
            states={"a": state_of("a")},
            events=[created("a")],
            now=T0,
            baselined=True,
        )
        await first.dead_letter("hook", 1, attempts=2, error="HTTP 400", now=T0)

        async with await Store.open(db) as second:
            assert await second.load_states(SRC) == {"a": lean(state_of("a"))}
            assert await second.is_baselined(SRC)
            assert [e for _, e in await journal(second)] == [created("a").id]
            assert [d.last_error for d in await second.dead_letters()] == ["HTTP 400"]
    finally:
        await first.aclose()


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
async def test_commit_survives_kill_9(db: Path) -> None:
    """A commit that returned survives the process being killed with SIGKILL right after."""
    child = textwrap.dedent(
        """
        import os, signal, sys
        import anyio
        from watcher.diff import diff
        from watcher.models import FineTuningJob
        from watcher.store import Store

        async def main():
            store = await Store.open(sys.argv[1])
            job = FineTuningJob(id="ftjob-k", status="running")
            state, events = diff(None, job, source="openai", now=1.0)
            await store.commit(
                "openai", states={job.id: state}, events=events, now=1.0
            )
            os.kill(os.getpid(), signal.SIGKILL)

        anyio.run(main)
        """
    )
    with anyio.fail_after(30):
        result = await anyio.run_process(
            [sys.executable, "-c", child, str(db)], check=False, stderr=None
        )
    assert result.returncode == -signal.SIGKILL

    async with await Store.open(db) as store:
        assert list(await store.load_states(SRC)) == ["ftjob-k"]
        assert [d.event().job_id for d in await store.pending("hook")] == ["ftjob-k"]


async def test_newer_schema_is_refused(db: Path) -> None:
    """A file written by a newer ftwatch is refused with advice, and left untouched."""
    await (await Store.open(db)).aclose()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()

    with pytest.raises(StoreError, match="newer ftwatch") as info:
        await Store.open(db)

    assert str(db) in str(info.value)
    assert "upgrade ftwatch or point state.path at another file" in str(info.value)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION + 1,)
    conn.close()


async def test_non_sqlite_file_is_refused(tmp_path: Path) -> None:
    """A file that is not SQLite is refused with a sentence naming it, and left untouched."""
    path = tmp_path / "notes.txt"
    text = "these are my notes, not a database\n" * 100
    path.write_text(text)

    with pytest.raises(StoreError, match="is not an SQLite database") as info:
        await Store.open(path)

    assert str(path) in str(info.value)
    assert path.read_text() == text


async def test_other_programs_database_is_refused(tmp_path: Path) -> None:
    """An SQLite file of another program is refused, not filled with our tables."""
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.close()

    with pytest.raises(StoreError, match="database of another program") as info:
        await Store.open(path)

    assert str(path) in str(info.value)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("users",)]
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    conn.close()


async def test_unusable_path_is_refused(tmp_path: Path) -> None:
    """A path that cannot be a file (a directory) gives a StoreError naming it."""
    with pytest.raises(StoreError, match="Cannot create the state file") as info:
        await Store.open(tmp_path)
    assert str(tmp_path) in str(info.value)


async def test_closed_store_refuses_calls(db: Path) -> None:
    """After aclose() (which may be called twice) every call raises StoreError."""
    store = await Store.open(db)
    await store.aclose()
    await store.aclose()

    with pytest.raises(StoreError, match="is closed"):
        await store.stats()
    assert "closed" in repr(store)


# -- one daemon per file, a private directory, a damaged file --------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")
@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_the_lock_holds_for_the_file_not_the_name(db: Path, link: str) -> None:
    """A second daemon reaching the same file through a symlink or a hard link is refused."""
    other = db.parent / "other-name.db"
    with exclusive(db):
        if link == "symlink":
            other.symlink_to(db)
        else:
            os.link(db, other)
        with pytest.raises(StoreError, match="in use by another ftwatch process"), exclusive(other):
            pass
    with exclusive(other):  # free again once the first let go
        pass


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_a_new_state_directory_is_private_before_the_lock_exists(
    tmp_path: Path, open_umask: None
) -> None:
    """The directory the lock creates is 0700 and the state file in it 0600, whatever the umask."""
    state = tmp_path / "new" / "ftwatch.db"
    with exclusive(state):
        assert (mode(state.parent), mode(state)) == (0o700, 0o600)
    assert not state.with_name(state.name + ".lock").exists()  # no lock file beside it


def _corrupt_table(path: Path, table: str) -> None:
    """Overwrite every page of ``table``'s b-tree except the first with garbage."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    pages = [
        row[0]
        for row in conn.execute(
            "SELECT pageno FROM dbstat WHERE name = ? ORDER BY pageno", (table,)
        )
    ]
    conn.close()
    assert len(pages) > 2, pages
    with path.open("r+b") as f:
        for page in pages[1:]:
            f.seek((page - 1) * page_size)
            f.write(b"\xa5" * page_size)


async def test_a_damaged_deliveries_table_is_refused_at_start(db: Path) -> None:
    """quick_check at open: a damaged file gets one sentence (and `ftwatch` exits 2)."""
    async with await Store.open(db) as store:
        await store.set_sinks(["hook"], now=T0)
        events = [created(f"ftjob-{i}") for i in range(300)]
        await store.commit(SRC, states={}, events=events, now=T0)
        for seq in range(1, 301):
            await store.dead_letter("hook", seq, attempts=1, error="x" * 200, now=T0)
    _corrupt_table(db, "deliveries")

    with pytest.raises(StoreError) as info:
        await Store.open(db)
    assert str(info.value) == (
        f"The state file {db} is corrupt; restore it from a backup or point state.path at"
        " another file."
    )

    config = db.parent / "ftwatch.toml"
    config.write_text(
        f"[state]\npath = {str(db)!r}\n\n[[sources]]\nname = 'openai'\napi_key = 'k'\n"
        "\n[[sinks]]\nname = 'hook'\ntype = 'stdout'\n"
    )
    result = await anyio.run_process(
        [sys.executable, "-m", "watcher", "deadletters", "list", "--config", str(config)],
        check=False,
    )
    assert result.returncode == 2
    assert b"is corrupt" in result.stderr and b"Traceback" not in result.stderr


async def test_watcher_imports_without_fcntl() -> None:
    """`import watcher` works where fcntl does not exist (Windows): the lock imports it late."""
    code = "import sys; sys.modules['fcntl'] = None; import watcher, watcher.app, watcher.cli"
    result = await anyio.run_process([sys.executable, "-c", code], check=False)
    assert result.returncode == 0, result.stderr.decode()
