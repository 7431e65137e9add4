"""The SQLite implementation of :class:`~watcher.store.protocol.StateStore`: one file, no server.

:meth:`SQLiteStore.commit` writes a cycle's events and the snapshots that caused them in one
transaction, so an event is in the journal before its snapshot counts as seen (DESIGN.md,
promise 1).

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
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Self, TypeVar

import anyio
import anyio.abc
import anyio.to_thread

from ..diff import JobState
from ..errors import StoreError
from ..events import BaseEvent
from ..models import FineTuningJob
from ..wal import WalCheckpointer
from . import deliveries, journal
from . import overview as reads
from .protocol import DeadLetter, Delivery, Overview, RetiredSink
from .schema import SCHEMA_VERSION, connect, connect_readonly, transaction
from .states import read_snapshot, read_states

__all__ = ["SQLiteStore"]

T = TypeVar("T")


class SQLiteStore(anyio.abc.AsyncResource):
    """The state file: snapshots, the event journal and every sink's delivery state.

    Open it with ``await SQLiteStore.open(path)`` and close it with :meth:`aclose`, or use it
    as an async context manager. Every method is safe to call from many tasks at once: calls
    run one at a time in a worker thread.
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
        is another program's database, is damaged (``PRAGMA quick_check``), or was written by
        a newer ftwatch. A file that exists keeps its permissions.
        """
        target, conn = await anyio.to_thread.run_sync(connect, Path(path))
        return cls(target, conn)

    @classmethod
    async def open_readonly(cls, path: str | os.PathLike[str]) -> Self:
        """Open the state file at ``path`` for reading only, even while a daemon holds it.

        Nothing is created, migrated or locked; a write through this store raises StoreError.
        Raises :class:`StoreError` when the file is missing, is not an ftwatch state file, or
        has another schema version.
        """
        target, conn = await anyio.to_thread.run_sync(connect_readonly, Path(path))
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

    def __repr__(self) -> str:
        """Name the file and whether it is open."""
        state = "open" if self._conn is not None else "closed"
        return f"<SQLiteStore {str(self.path)!r} {state}>"

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

    # -- snapshots and the journal ----------------------------------------------------------------

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
        """Every job remembered for ``source``, lean: see the protocol."""
        # Read row by row in the worker thread: no list of every row is held meanwhile.
        return await self._run("read the job states", partial(read_states, source=source))

    async def snapshot(self, source: str, job_id: str) -> FineTuningJob | None:
        """The last snapshot stored of one job of ``source``, or None."""
        read = partial(read_snapshot, source=source, job_id=job_id)
        return await self._run("read a job snapshot", read)

    async def commit(
        self,
        source: str,
        *,
        states: Mapping[str, JobState],
        events: Sequence[BaseEvent],
        now: float,
        baselined: bool | None = None,
        gaps: Sequence[str] | None = None,
    ) -> list[int]:
        """Record one cycle of ``source`` in ONE transaction; return the seqs of new events.

        Events go into the journal, in order (one whose id is already there is ignored: that is
        how the duplicates seen again after a restart are absorbed); the snapshots in ``states``
        (job id -> state) replace the stored ones; the baseline flag is set when ``baselined``
        is given, and the catch-up cursors are replaced when ``gaps`` is. Journal rows carry
        each event's own ``source``. The sinks read the new entries past their cursors.
        """
        # Serialising a big cycle takes a while: do it in a thread, but before taking the
        # connection, so the sinks' workers are not held up meanwhile. The copies are taken on
        # the event loop: the caller may change its mappings once we yield.
        snapshot_rows, journal_rows = await anyio.to_thread.run_sync(
            journal.serialise_cycle, source, list(states.items()), list(events), now
        )
        write = partial(
            journal.write_cycle,
            source=source,
            snapshot_rows=snapshot_rows,
            journal_rows=journal_rows,
            now=now,
            baselined=baselined,
            gaps=None if gaps is None else list(gaps),
        )
        return await self._run("record a poll cycle", write)

    async def mark_polled(self, source: str, *, now: float) -> None:
        """Record that ``source`` finished a poll cycle at ``now`` (shown by ``ftwatch status``)."""
        await self._run("record a poll", partial(reads.mark_polled, source=source, now=now))

    async def load_progress(self, source: str) -> dict[str, dict[str, Any]]:
        """Every running job's progress track of ``source``; an unreadable one is forgotten."""

        def read(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            return conn.execute(
                "SELECT job_id, track FROM progress WHERE source = ?", (source,)
            ).fetchall()

        out: dict[str, dict[str, Any]] = {}
        for job_id, text in await self._run("read the progress tracks", read):
            with contextlib.suppress(ValueError):
                data = json.loads(text)
                if isinstance(data, dict):
                    out[job_id] = data
        return out

    async def save_progress(
        self, source: str, tracks: Mapping[str, dict[str, Any] | None], *, now: float
    ) -> None:
        """Replace the tracks of the jobs in ``tracks``; None forgets that job's track."""
        keep = [(source, j, json.dumps(t), now) for j, t in tracks.items() if t is not None]
        drop = [(source, j) for j, t in tracks.items() if t is None]

        def write(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.executemany(
                    "INSERT INTO progress (source, job_id, track, updated_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (source, job_id) DO UPDATE SET track = excluded.track,"
                    " updated_at = excluded.updated_at",
                    keep,
                )
                conn.executemany("DELETE FROM progress WHERE source = ? AND job_id = ?", drop)

        await self._run("record the progress tracks", write)

    # -- deliveries -------------------------------------------------------------------------------

    async def set_sinks(
        self, names: Sequence[str], *, now: float, replay_from: float | None = None
    ) -> list[RetiredSink]:
        """Make ``names`` the configured sinks; return the sinks retired (see the protocol)."""
        write = partial(deliveries.set_sinks, names=list(names), now=now, replay_from=replay_from)
        return await self._run("record the configured sinks", write)

    async def pending(self, sink: str, *, limit: int = 500, after: int = 0) -> list[Delivery]:
        """The sink's pending deliveries in seq order, due or not, at most ``limit``.

        ``after`` skips those with a seq up to it (a reader that holds them already).
        """
        read = partial(deliveries.pending, sink=sink, limit=limit, after=after)
        return await self._run("read pending deliveries", read)

    async def ack(self, sink: str, seqs: Sequence[int], *, cursor: int, now: float) -> None:
        """Record ``seqs`` as delivered and move the sink's cursor up to ``cursor``."""
        write = partial(deliveries.ack, sink=sink, seqs=list(seqs), cursor=cursor, now=now)
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
        write = partial(
            deliveries.schedule_retry,
            sink=sink,
            seq=seq,
            attempts=attempts,
            next_attempt_at=next_attempt_at,
            first_attempt_at=first_attempt_at,
            error=error,
            now=now,
        )
        await self._run("schedule a retry", write)

    async def dead_letter(
        self, sink: str, seq: int, *, attempts: int, error: str, now: float
    ) -> None:
        """Give up on a delivery: it becomes a dead letter with its last error."""
        write = partial(
            deliveries.dead_letter, sink=sink, seq=seq, attempts=attempts, error=error, now=now
        )
        await self._run("record a dead letter", write)

    async def disable_sink(self, sink: str, reason: str, *, now: float) -> None:
        """Record that the daemon stopped delivering to ``sink`` and why, until it restarts."""
        write = partial(reads.disable_sink, sink=sink, reason=reason, now=now)
        await self._run("record a disabled sink", write)

    async def overview(self) -> Overview:
        """Sources, unfinished jobs and sinks at one moment, read without writing anything."""
        return await self._run("read the overview", reads.overview)

    async def dead_letters(self, sink: str | None = None) -> list[DeadLetter]:
        """The dead letters (of one sink, or all), ordered by sink then seq."""
        return await self._run("read the dead letters", partial(deliveries.dead_letters, sink=sink))

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
        write = partial(deliveries.retry_dead_letters, sink=sink, event_ids=event_ids, now=now)
        return await self._run("retry dead letters", write)

    async def drop_dead_letters(
        self, *, sink: str | None = None, event_ids: Sequence[str] | None = None
    ) -> int:
        """Forget dead letters for good; returns how many. Filters as in retry_dead_letters."""
        write = partial(deliveries.drop_dead_letters, sink=sink, event_ids=event_ids)
        return await self._run("drop dead letters", write)

    # -- housekeeping -----------------------------------------------------------------------------

    async def prune(self, *, older_than: float) -> int:
        """Delete journal entries observed before ``older_than`` that no sink still needs.

        An entry is kept while a sink's cursor is below it or a delivery row (a retry or a dead
        letter) points at it. Returns how many entries were deleted. Snapshots are never pruned.
        """
        return await self._run("prune the journal", partial(journal.prune, older_than=older_than))

    async def stats(self) -> dict[str, object]:
        """Counts for a status page: jobs per source, the journal, pending and dead per sink.

        Keys: ``path``, ``schema_version``, ``jobs`` and ``terminal_jobs`` (source -> count),
        ``baselined`` (source -> bool), ``journal_entries``, ``last_seq``, ``pending`` and
        ``dead`` (sink -> count) and ``cursors`` (sink -> seq).
        """
        counts = await self._run("read statistics", journal.stats)
        return {"path": str(self.path), "schema_version": SCHEMA_VERSION, **counts}
