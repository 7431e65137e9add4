"""Durable state on SQLite: the last snapshot of every job, the event journal, sink deliveries.

One file, no server. Three things live in it:

- **snapshots**: per ``(source, job_id)`` the last job JSON, its status, whether it is terminal,
  and the :class:`~watcher.diff.JobState` counts (``seen``) and times (``since``); plus, per
  source, whether its silent first baseline is done;
- **the journal**: every event ever emitted, ``seq``-numbered, with the exact envelope JSON the
  sinks send (``event.to_json()``); an event id is stored once, which is how the duplicates seen
  again after a restart are absorbed;
- **deliveries**: one row per ``(sink, seq)`` that is ``pending``, ``done`` or ``dead``.

:meth:`Store.commit` writes a cycle's events, their delivery rows and the snapshots that caused
them in one transaction, so an event is in the journal before its snapshot counts as seen
(DESIGN.md, promise 1).

The stdlib ``sqlite3`` module is blocking, so every call runs in a worker thread through a
``CapacityLimiter(1)``: one statement sequence at a time on the one connection, never on the
event loop. A call that is cancelled still finishes its transaction in the thread, so a write
is all or nothing. The write-ahead log is copied back into the file by a thread of its own
(:mod:`watcher.wal`), so no commit waits for a checkpoint's fsyncs.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import anyio
import anyio.to_thread
import structlog

from .diff import JobState
from .errors import StoreError
from .events import BaseEvent, event_from_envelope
from .models import FineTuningJob
from .wal import WalCheckpointer

__all__ = [
    "SCHEMA_VERSION",
    "DeadLetter",
    "Delivery",
    "JournalEntry",
    "Store",
    "job_key",
]

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: Separates the source from the job id in a delivery's ``job_key`` (it cannot occur in either).
_KEY_SEP: Final = "\x1f"

#: How long a call waits for another process's write lock before giving up (milliseconds).
_BUSY_TIMEOUT_MS: Final = 10_000

# Each migration is a list of statements run in order, in one transaction with the bump of
# `PRAGMA user_version` to its number (its index + 1). Append new ones; never edit a shipped one.
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """
        CREATE TABLE sources (
            source     TEXT PRIMARY KEY,
            baselined  INTEGER NOT NULL DEFAULT 0,
            updated_at REAL NOT NULL
        )
        """,
        """
        CREATE TABLE snapshots (
            source     TEXT NOT NULL,
            job_id     TEXT NOT NULL,
            status     TEXT NOT NULL,
            terminal   INTEGER NOT NULL,
            job        TEXT NOT NULL,
            seen       TEXT NOT NULL,
            since      TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (source, job_id)
        ) WITHOUT ROWID
        """,
        # AUTOINCREMENT: a seq is never reused, even after prune() emptied the tail, so a reader
        # that remembers "everything up to seq N" is never handed a different event as N + 1.
        """
        CREATE TABLE journal (
            seq         INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id    TEXT NOT NULL UNIQUE,
            type        TEXT NOT NULL,
            source      TEXT NOT NULL,
            job_id      TEXT NOT NULL,
            observed_at REAL NOT NULL,
            body        TEXT NOT NULL
        )
        """,
        "CREATE INDEX journal_observed_at ON journal (observed_at)",
        """
        CREATE TABLE deliveries (
            sink             TEXT NOT NULL,
            seq              INTEGER NOT NULL REFERENCES journal (seq) ON DELETE CASCADE,
            job_key          TEXT NOT NULL,
            state            TEXT NOT NULL CHECK (state IN ('pending', 'done', 'dead')),
            attempts         INTEGER NOT NULL DEFAULT 0,
            next_attempt_at  REAL NOT NULL,
            first_attempt_at REAL,
            last_error       TEXT,
            updated_at       REAL NOT NULL,
            PRIMARY KEY (sink, seq)
        ) WITHOUT ROWID
        """,
        # Partial indexes stay as small as the backlog, however many done rows pile up: a
        # sink's queue in seq order, its earliest due time (dropped in version 3), and its
        # dead letters.
        "CREATE INDEX deliveries_pending ON deliveries (sink, seq) WHERE state = 'pending'",
        """
        CREATE INDEX deliveries_due ON deliveries (sink, next_attempt_at)
        WHERE state = 'pending'
        """,
        "CREATE INDEX deliveries_dead ON deliveries (sink, seq) WHERE state = 'dead'",
        # The foreign key's child lookup: without it, deleting a journal row scans deliveries.
        "CREATE INDEX deliveries_seq ON deliveries (seq)",
    ),
    (
        # Where each source's catch-up reads resume: the cursor below which the job list has
        # not been read since more new jobs appeared than one cycle may read (JSON list).
        "ALTER TABLE sources ADD COLUMN gaps TEXT NOT NULL DEFAULT '[]'",
    ),
    (
        # Sink workers keep their retry times in memory and never ask for the earliest one;
        # the index only cost every commit, ack and retry one more b-tree write.
        "DROP INDEX deliveries_due",
    ),
)

#: The schema version this ftwatch writes (``PRAGMA user_version``).
SCHEMA_VERSION: Final = len(_MIGRATIONS)

# SQLite's primary result codes that mean "this file is not a usable database".
_SQLITE_CORRUPT: Final = 11
_SQLITE_NOTADB: Final = 26


def job_key(source: str, job_id: str) -> str:
    """The key that orders one job's deliveries: ``source + '\\x1f' + job_id``."""
    return f"{source}{_KEY_SEP}{job_id}"


@dataclass(frozen=True)
class JournalEntry:
    """One event as the journal holds it; ``body`` is the envelope JSON sinks send."""

    seq: int
    event_id: str
    type: str
    source: str
    job_id: str
    observed_at: float
    body: str

    def event(self) -> BaseEvent:
        """Rebuild the typed event from the stored envelope."""
        return event_from_envelope(self.body)


@dataclass(frozen=True)
class Delivery:
    """One pending delivery of a journal entry to one sink."""

    sink: str
    seq: int
    event_id: str
    #: ``source + '\\x1f' + job_id``: deliveries with the same key go out in seq order.
    job_key: str
    #: Attempts made so far (0 for a delivery never tried).
    attempts: int
    next_attempt_at: float
    first_attempt_at: float | None
    #: When the event was observed, for a retry policy's maximum age.
    observed_at: float
    body: str

    def event(self) -> BaseEvent:
        """Rebuild the typed event from the stored envelope."""
        return event_from_envelope(self.body)


@dataclass(frozen=True)
class DeadLetter:
    """A delivery that was given up on: the sink rejected it or its retries ran out."""

    sink: str
    seq: int
    event_id: str
    type: str
    source: str
    job_id: str
    attempts: int
    last_error: str
    died_at: float
    body: str

    def event(self) -> BaseEvent:
        """Rebuild the typed event from the stored envelope."""
        return event_from_envelope(self.body)


class Store:
    """The state file: snapshots, the event journal and every sink's deliveries.

    Open it with ``await Store.open(path)`` and close it with :meth:`aclose`, or use it as an
    async context manager. Every method is safe to call from many tasks at once: calls run one
    at a time in a worker thread.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        """Wrap an open, migrated connection; use :meth:`open` instead."""
        #: The state file.
        self.path = path
        self._conn: sqlite3.Connection | None = conn
        self._limiter = anyio.CapacityLimiter(1)
        # Checkpoints run beside our writes, never inside one (see watcher.wal).
        self._checkpointer = WalCheckpointer(path)

    # -- lifecycle --------------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: str | os.PathLike[str]) -> Self:
        """Open (creating it with mode 0600 when missing) and migrate the state file at ``path``.

        Raises :class:`StoreError` when the file cannot be created, is not an SQLite database,
        is another program's database, or was written by a newer ftwatch. A file that exists
        keeps its permissions.
        """
        target, conn = await anyio.to_thread.run_sync(_connect, Path(path))
        return cls(target, conn)

    async def aclose(self) -> None:
        """Close the connection (waiting for a running call); later calls raise StoreError."""

        def close() -> None:
            conn, self._conn = self._conn, None
            if conn is None:
                return
            self._checkpointer.close()
            with contextlib.suppress(sqlite3.Error):
                # Cheap on close, and keeps the planner's statistics fresh for a long-lived file.
                conn.execute("PRAGMA optimize")
            conn.close()

        await anyio.to_thread.run_sync(close, limiter=self._limiter)

    async def __aenter__(self) -> Self:
        """Return the open store."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the store."""
        await self.aclose()

    def __repr__(self) -> str:
        """Name the file and whether it is open."""
        state = "open" if self._conn is not None else "closed"
        return f"<Store {str(self.path)!r} {state}>"

    async def _run(self, what: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the connection in the worker thread; SQLite errors become StoreError."""

        def call() -> T:
            conn = self._conn
            if conn is None:
                raise StoreError(f"The state store {self.path} is closed.")
            try:
                changes = conn.total_changes
                result = fn(conn)
                if conn.total_changes != changes:
                    self._checkpointer.wrote()
                return result
            except sqlite3.Error as exc:
                reason = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
                raise StoreError(
                    f"Could not {what} in the state file {self.path} ({reason}: {exc})."
                ) from exc

        return await anyio.to_thread.run_sync(call, limiter=self._limiter)

    # -- snapshots --------------------------------------------------------------------------------

    async def is_baselined(self, source: str) -> bool:
        """Tell whether ``source`` has recorded its silent first baseline."""

        def read(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT baselined FROM sources WHERE source = ?", (source,)
            ).fetchone()
            return bool(row and row[0])

        return await self._run("read the baseline flag", read)

    async def gaps(self, source: str) -> list[str]:
        """The cursors ``source``'s job list is still to be read from (see :meth:`commit`)."""

        def read(conn: sqlite3.Connection) -> list[str]:
            row = conn.execute("SELECT gaps FROM sources WHERE source = ?", (source,)).fetchone()
            return [str(cursor) for cursor in json.loads(row[0])] if row else []

        return await self._run("read the catch-up cursors", read)

    async def load_states(self, source: str) -> dict[str, JobState]:
        """Every job remembered for ``source``: job id -> its last :class:`JobState`."""

        def read(conn: sqlite3.Connection) -> list[tuple[str, str, str, str]]:
            return conn.execute(
                "SELECT job_id, job, seen, since FROM snapshots WHERE source = ?", (source,)
            ).fetchall()

        rows = await self._run("read the job snapshots", read)
        # Parsing 10,000 snapshots takes a while: do it off the event loop, without holding the
        # connection (the limiter) meanwhile.
        return await anyio.to_thread.run_sync(_rebuild_states, source, rows)

    async def commit(
        self,
        source: str,
        *,
        states: Mapping[str, JobState],
        events: Sequence[BaseEvent],
        sinks: Sequence[str],
        now: float,
        baselined: bool | None = None,
        gaps: Sequence[str] | None = None,
    ) -> list[int]:
        """Record one cycle of ``source`` in ONE transaction; return the seqs of new events.

        Events go into the journal, in order (one whose id is already there is ignored: that is
        how the duplicates seen again after a restart are absorbed); each newly journaled event
        gets a pending delivery row per sink, due at ``now``; the snapshots in ``states`` (job
        id -> state) replace the stored ones; the baseline flag is set when ``baselined`` is
        given, and the catch-up cursors are replaced when ``gaps`` is. Journal rows carry each
        event's own ``source``.
        """
        # Copies taken on the event loop: the caller may change its mappings once we yield.
        state_items = list(states.items())
        event_list = list(events)
        sink_names = list(dict.fromkeys(sinks))

        def serialise() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
            snapshot_rows = [
                (
                    source,
                    job_id,
                    st.job.status,
                    int(st.job.is_terminal),
                    st.job.model_dump_json(by_alias=True),
                    json.dumps(dict(st.seen), separators=(",", ":")),
                    json.dumps(dict(st.since), separators=(",", ":")),
                    now,
                )
                for job_id, st in state_items
            ]
            journal_rows = [
                (ev.id, ev.type, ev.source, ev.job_id, ev.observed_at, ev.to_json())
                for ev in event_list
            ]
            return snapshot_rows, journal_rows

        # Serialising a big cycle takes a while: do it in a thread, but before taking the
        # connection, so the sinks' workers are not held up meanwhile.
        snapshot_rows, journal_rows = await anyio.to_thread.run_sync(serialise)

        def write(conn: sqlite3.Connection) -> list[int]:
            with _transaction(conn):
                seqs: list[int] = []
                delivery_rows: list[tuple[str, int, str, float, float]] = []
                for row, ev in zip(journal_rows, event_list, strict=True):
                    # Not ON CONFLICT DO NOTHING: with AUTOINCREMENT that burns a seq per
                    # duplicate, and every restart would leave gaps in the journal.
                    cur = conn.execute(
                        "INSERT INTO journal (event_id, type, source, job_id, observed_at, body)"
                        " SELECT ?1, ?2, ?3, ?4, ?5, ?6"
                        " WHERE NOT EXISTS (SELECT 1 FROM journal WHERE event_id = ?1)",
                        row,
                    )
                    if cur.rowcount != 1 or cur.lastrowid is None:
                        continue
                    seq = cur.lastrowid
                    seqs.append(seq)
                    key = job_key(ev.source, ev.job_id)
                    delivery_rows.extend((sink, seq, key, now, now) for sink in sink_names)
                if delivery_rows:
                    conn.executemany(
                        "INSERT INTO deliveries (sink, seq, job_key, state, attempts,"
                        " next_attempt_at, updated_at) VALUES (?, ?, ?, 'pending', 0, ?, ?)",
                        delivery_rows,
                    )
                if snapshot_rows:
                    conn.executemany(
                        "INSERT INTO snapshots"
                        " (source, job_id, status, terminal, job, seen, since, updated_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                        " ON CONFLICT (source, job_id) DO UPDATE SET status = excluded.status,"
                        " terminal = excluded.terminal, job = excluded.job,"
                        " seen = excluded.seen, since = excluded.since,"
                        " updated_at = excluded.updated_at",
                        snapshot_rows,
                    )
                if baselined is not None:
                    conn.execute(
                        "INSERT INTO sources (source, baselined, updated_at) VALUES (?, ?, ?)"
                        " ON CONFLICT (source) DO UPDATE SET baselined = excluded.baselined,"
                        " updated_at = excluded.updated_at",
                        (source, int(baselined), now),
                    )
                if gaps is not None:
                    conn.execute(
                        "INSERT INTO sources (source, gaps, updated_at) VALUES (?, ?, ?)"
                        " ON CONFLICT (source) DO UPDATE SET gaps = excluded.gaps,"
                        " updated_at = excluded.updated_at",
                        (source, json.dumps(list(gaps)), now),
                    )
            return seqs

        return await self._run("record a poll cycle", write)

    # -- the journal ------------------------------------------------------------------------------

    async def journal(self, *, after: int = 0, limit: int = 1000) -> list[JournalEntry]:
        """Journal entries with ``seq > after``, oldest first, at most ``limit`` of them."""

        def read(conn: sqlite3.Connection) -> list[JournalEntry]:
            rows = conn.execute(
                "SELECT seq, event_id, type, source, job_id, observed_at, body FROM journal"
                " WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
            return [JournalEntry(*row) for row in rows]

        return await self._run("read the journal", read)

    async def last_seq(self) -> int:
        """The highest seq ever given to an event (0 for an empty journal); survives prune()."""

        def read(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'journal'").fetchone()
            return int(row[0]) if row else 0

        return await self._run("read the journal", read)

    # -- deliveries -------------------------------------------------------------------------------

    async def pending(self, sink: str, *, limit: int = 500, after: int = 0) -> list[Delivery]:
        """The sink's pending deliveries in seq order, due or not, at most ``limit``.

        ``after`` skips those with a seq up to it (a reader that holds them already).
        """

        def read(conn: sqlite3.Connection) -> list[Delivery]:
            rows = conn.execute(
                "SELECT d.sink, d.seq, j.event_id, d.job_key, d.attempts, d.next_attempt_at,"
                " d.first_attempt_at, j.observed_at, j.body"
                # Forced: without statistics the planner takes the primary key, which walks
                # every done row of the sink before the first pending one.
                " FROM deliveries AS d INDEXED BY deliveries_pending"
                " JOIN journal AS j ON j.seq = d.seq"
                " WHERE d.sink = ? AND d.state = 'pending' AND d.seq > ? ORDER BY d.seq LIMIT ?",
                (sink, after, limit),
            ).fetchall()
            return [Delivery(*row) for row in rows]

        return await self._run("read pending deliveries", read)

    async def ack(self, sink: str, seqs: Sequence[int], *, now: float) -> None:
        """Mark the sink's deliveries of ``seqs`` done, in one transaction."""
        rows = [(now, sink, seq) for seq in seqs]
        if not rows:
            return

        def write(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.executemany(
                    "UPDATE deliveries SET state = 'done', updated_at = ?"
                    " WHERE sink = ? AND seq = ?",
                    rows,
                )

        await self._run("record deliveries", write)

    async def schedule_retry(
        self,
        sink: str,
        seq: int,
        *,
        attempts: int,
        next_attempt_at: float,
        first_attempt_at: float,
        error: str,
        now: float,
    ) -> None:
        """Keep a delivery pending with its attempt count, next due time and last error."""

        def write(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.execute(
                    "UPDATE deliveries SET attempts = ?, next_attempt_at = ?,"
                    " first_attempt_at = ?, last_error = ?, updated_at = ?"
                    " WHERE sink = ? AND seq = ? AND state = 'pending'",
                    (attempts, next_attempt_at, first_attempt_at, error, now, sink, seq),
                )

        await self._run("schedule a retry", write)

    async def dead_letter(
        self, sink: str, seq: int, *, attempts: int, error: str, now: float
    ) -> None:
        """Give up on a delivery: it becomes a dead letter with its last error."""

        def write(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.execute(
                    "UPDATE deliveries SET state = 'dead', attempts = ?, last_error = ?,"
                    " updated_at = ? WHERE sink = ? AND seq = ? AND state = 'pending'",
                    (attempts, error, now, sink, seq),
                )

        await self._run("record a dead letter", write)

    async def dead_letters(self, sink: str | None = None) -> list[DeadLetter]:
        """The dead letters (of one sink, or all), ordered by sink then seq."""

        def read(conn: sqlite3.Connection) -> list[DeadLetter]:
            rows = conn.execute(
                "SELECT d.sink, d.seq, j.event_id, j.type, j.source, j.job_id, d.attempts,"
                " coalesce(d.last_error, ''), d.updated_at, j.body"
                " FROM deliveries AS d JOIN journal AS j ON j.seq = d.seq"
                " WHERE d.state = 'dead' AND (:sink IS NULL OR d.sink = :sink)"
                " ORDER BY d.sink, d.seq",
                {"sink": sink},
            ).fetchall()
            return [DeadLetter(*row) for row in rows]

        return await self._run("read the dead letters", read)

    async def retry_dead_letters(
        self,
        *,
        sink: str | None = None,
        event_ids: Sequence[str] | None = None,
        now: float,
    ) -> int:
        """Put dead letters back in the queue (attempts 0, due now); returns how many.

        ``sink`` limits it to one sink and ``event_ids`` to those events; None means all.
        """

        def write(conn: sqlite3.Connection) -> int:
            with _transaction(conn):
                return _update_dead(
                    conn,
                    "UPDATE deliveries SET state = 'pending', attempts = 0,"
                    " next_attempt_at = :now, first_attempt_at = NULL, last_error = NULL,"
                    " updated_at = :now",
                    {"now": now, "sink": sink},
                    event_ids,
                )

        return await self._run("retry dead letters", write)

    async def drop_dead_letters(
        self, *, sink: str | None = None, event_ids: Sequence[str] | None = None
    ) -> int:
        """Forget dead letters for good; returns how many. Filters as in retry_dead_letters."""

        def write(conn: sqlite3.Connection) -> int:
            with _transaction(conn):
                return _update_dead(conn, "DELETE FROM deliveries", {"sink": sink}, event_ids)

        return await self._run("drop dead letters", write)

    async def enqueue_all(self, sink: str, *, after_seq: int, now: float) -> int:
        """Give ``sink`` a pending delivery, due ``now``, for every entry after ``after_seq``
        that it has no row for (a sink added later, a replay); returns how many."""

        def write(conn: sqlite3.Connection) -> int:
            with _transaction(conn):
                cur = conn.execute(
                    "INSERT INTO deliveries (sink, seq, job_key, state, attempts,"
                    " next_attempt_at, updated_at)"
                    " SELECT ?, j.seq, j.source || char(31) || j.job_id, 'pending', 0, ?, ?"
                    " FROM journal AS j WHERE j.seq > ? AND NOT EXISTS"
                    " (SELECT 1 FROM deliveries AS d WHERE d.sink = ? AND d.seq = j.seq)"
                    " ORDER BY j.seq",
                    (sink, now, now, after_seq, sink),
                )
                return cur.rowcount

        return await self._run("queue deliveries", write)

    # -- housekeeping -----------------------------------------------------------------------------

    async def prune(self, *, older_than: float) -> int:
        """Delete journal entries observed before ``older_than`` that no sink still needs.

        An entry is kept while any of its deliveries is pending or dead; otherwise it goes with
        its done rows. Returns how many entries were deleted. Snapshots are never pruned: they
        are what keeps a finished job from being announced again.
        """

        def write(conn: sqlite3.Connection) -> int:
            with _transaction(conn):
                conn.execute(
                    "DELETE FROM deliveries WHERE seq IN (SELECT j.seq FROM journal AS j"
                    " WHERE j.observed_at < ? AND NOT EXISTS (SELECT 1 FROM deliveries AS d"
                    " WHERE d.seq = j.seq AND d.state != 'done'))",
                    (older_than,),
                )
                cur = conn.execute(
                    "DELETE FROM journal WHERE observed_at < ? AND NOT EXISTS"
                    " (SELECT 1 FROM deliveries AS d WHERE d.seq = journal.seq)",
                    (older_than,),
                )
                return cur.rowcount

        return await self._run("prune the journal", write)

    async def stats(self) -> dict[str, object]:
        """Counts for a status page: jobs per source, the journal, pending and dead per sink.

        Keys: ``path``, ``schema_version``, ``jobs`` and ``terminal_jobs`` (source -> count),
        ``baselined`` (source -> bool), ``journal_entries``, ``last_seq``, ``pending`` and
        ``dead`` (sink -> count).
        """

        def read(conn: sqlite3.Connection) -> dict[str, object]:
            # One read transaction: the counts describe the same moment.
            conn.execute("BEGIN")
            try:
                jobs: dict[str, int] = {}
                terminal: dict[str, int] = {}
                for src, total, done in conn.execute(
                    "SELECT source, count(*), sum(terminal) FROM snapshots GROUP BY source"
                ):
                    jobs[src] = total
                    terminal[src] = int(done or 0)
                baselined = {
                    src: bool(flag)
                    for src, flag in conn.execute("SELECT source, baselined FROM sources")
                }
                (entries,) = conn.execute("SELECT count(*) FROM journal").fetchone()
                row = conn.execute(
                    "SELECT seq FROM sqlite_sequence WHERE name = 'journal'"
                ).fetchone()
                pending = dict(
                    conn.execute(
                        "SELECT sink, count(*) FROM deliveries"
                        " WHERE state = 'pending' GROUP BY sink"
                    ).fetchall()
                )
                dead = dict(
                    conn.execute(
                        "SELECT sink, count(*) FROM deliveries WHERE state = 'dead' GROUP BY sink"
                    ).fetchall()
                )
            finally:
                conn.execute("COMMIT")
            return {
                "path": str(self.path),
                "schema_version": SCHEMA_VERSION,
                "jobs": jobs,
                "terminal_jobs": terminal,
                "baselined": baselined,
                "journal_entries": int(entries),
                "last_seq": int(row[0]) if row else 0,
                "pending": pending,
                "dead": dead,
            }

        return await self._run("read statistics", read)


# -- helpers (run in the worker thread) -----------------------------------------------------------


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction; IMMEDIATE takes the write lock up front, so no upgrade deadlock."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        # SQLite may already have rolled back on its own (a full disk, say).
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


# The dead letters of one sink (:sink) or of all (:sink is NULL); optionally of one event.
_DEAD: Final = " WHERE state = 'dead' AND (:sink IS NULL OR sink = :sink)"
_OF_EVENT: Final = " AND seq = (SELECT seq FROM journal WHERE event_id = :event_id)"


def _update_dead(
    conn: sqlite3.Connection,
    statement: str,
    params: dict[str, Any],
    event_ids: Sequence[str] | None,
) -> int:
    """Run an UPDATE/DELETE ``statement`` (a constant) on the matching dead letters."""
    if event_ids is None:
        return conn.execute(statement + _DEAD, params).rowcount
    ids = list(dict.fromkeys(event_ids))
    if not ids:
        return 0
    # One statement per id, so a caller may pass any number of ids; rowcount sums them.
    rows = [{**params, "event_id": event_id} for event_id in ids]
    return conn.executemany(statement + _DEAD + _OF_EVENT, rows).rowcount


def _rebuild_states(source: str, rows: list[tuple[str, str, str, str]]) -> dict[str, JobState]:
    states: dict[str, JobState] = {}
    for job_id, job, seen, since in rows:
        try:
            states[job_id] = JobState(
                job=FineTuningJob.model_validate_json(job),
                seen={str(k): int(v) for k, v in json.loads(seen).items()},
                since={str(k): float(v) for k, v in json.loads(since).items()},
            )
        except (ValueError, TypeError, AttributeError) as exc:
            # A snapshot we cannot read is forgotten, never a crash: the job is seen as new
            # again, and its deterministic `created` id is absorbed by the journal if known.
            log.warning("snapshot_unreadable", source=source, job_id=job_id, error=str(exc))
    return states


def _create_private(path: Path) -> None:
    """Create the state file (and its directory) readable by its owner only, if missing.

    SQLite gives the -wal and -shm files the mode of the database file, so they are 0600 too.
    """
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o600)
    os.close(fd)


def _connect(path: Path) -> tuple[Path, sqlite3.Connection]:
    """Open, configure and migrate the state file (runs in a worker thread)."""
    path = path.expanduser()
    try:
        _create_private(path)
    except OSError as exc:
        raise StoreError(
            f"Cannot create the state file {path}: {exc.strerror or exc}; check state.path."
        ) from exc
    try:
        conn = sqlite3.connect(
            path,
            timeout=_BUSY_TIMEOUT_MS / 1000,
            # Transactions are explicit (BEGIN IMMEDIATE ... COMMIT), never implicit.
            isolation_level=None,
            # Every call runs in some worker thread, one at a time (the CapacityLimiter(1)).
            check_same_thread=False,
        )
    except sqlite3.Error as exc:
        raise StoreError(f"Cannot open the state file {path}: {exc}.") from exc
    try:
        _configure(conn, path)
        _migrate(conn, path)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.Error):
            raise _open_error(path, exc) from exc
        raise
    return path, conn


def _open_error(path: Path, exc: sqlite3.Error) -> StoreError:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        code &= 0xFF  # the primary result code under any extended one
    if code == _SQLITE_NOTADB:
        return StoreError(
            f"The state file {path} is not an SQLite database; point state.path at another file."
        )
    if code == _SQLITE_CORRUPT:
        return StoreError(
            f"The state file {path} is corrupt; restore it from a backup or point state.path"
            " at another file."
        )
    return StoreError(f"Cannot open the state file {path}: {exc}.")


def _configure(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    # Check what the file is before changing anything in it (WAL mode is written to the file):
    # a file that is not SQLite fails this first read with SQLITE_NOTADB.
    _check_version(conn, path, _user_version(conn))
    (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
    if str(mode).lower() != "wal":
        # Some network filesystems cannot do WAL; the rollback journal is slower but as safe.
        log.warning("store_not_wal", path=str(path), journal_mode=mode)
    # WAL + synchronous=NORMAL: a commit survives the process crashing or being killed -9 (the
    # WAL is in the OS page cache before COMMIT returns), which is what we promise. Only a power
    # loss or kernel crash may lose the last commits; the file stays consistent even then.
    conn.execute("PRAGMA synchronous = NORMAL")
    # Checkpoints run on the store's own thread (watcher.wal), not inside a commit.
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("PRAGMA foreign_keys = ON")


def _user_version(conn: sqlite3.Connection) -> int:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    return int(version)


def _check_version(conn: sqlite3.Connection, path: Path, version: int) -> None:
    if version == 0:
        (tables,) = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if tables:
            raise StoreError(
                f"The state file {path} is an SQLite database of another program; point"
                " state.path at another file."
            )
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"The state file {path} was written by a newer ftwatch (schema version {version},"
            f" this one knows up to {SCHEMA_VERSION}); upgrade ftwatch or point state.path at"
            " another file."
        )


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    if _user_version(conn) == SCHEMA_VERSION:
        return
    with _transaction(conn):
        # Read again under the write lock: another process may have migrated meanwhile.
        version = _user_version(conn)
        _check_version(conn, path, version)
        for number in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[number - 1]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
    log.info("store_migrated", path=str(path), from_version=version, to_version=SCHEMA_VERSION)
