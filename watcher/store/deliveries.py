"""Delivery state in SQLite: per-sink cursors, retry rows and dead letters.

A sink's queue is the union of two things: its ``pending`` rows (retries, and dead letters put
back) and the journal entries past its cursor that have no row. Both are read in seq order and
merged, so a worker sees one queue. Everything here runs in the store's worker thread.
"""

from __future__ import annotations

import heapq
import itertools
import sqlite3
from collections.abc import Sequence
from typing import Any, Final

from .protocol import DeadLetter, Delivery, RetiredSink
from .schema import transaction

__all__ = [
    "ack",
    "dead_letter",
    "dead_letters",
    "drop_dead_letters",
    "pending",
    "retry_dead_letters",
    "schedule_retry",
    "set_sinks",
]

#: The last error of the dead letters a retired sink leaves behind.
RETIRED_ERROR: Final = "sink removed from the config"

_LAST_SEQ: Final = "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'journal'), 0)"


def set_sinks(
    conn: sqlite3.Connection, names: Sequence[str], now: float, replay_from: float | None
) -> list[RetiredSink]:
    """Start a cursor for each new name, retire every known sink not in ``names``."""
    wanted = list(dict.fromkeys(names))
    with transaction(conn):
        known = {str(name) for (name,) in conn.execute("SELECT name FROM sinks")}
        # A sink with rows but no cursor (retried dead letters of a retired sink) is known too.
        known.update(
            str(name)
            for (name,) in conn.execute(
                "SELECT DISTINCT sink FROM deliveries WHERE state = 'pending'"
            )
        )
        (last,) = conn.execute(_LAST_SEQ).fetchone()
        for name in wanted:
            if replay_from is None:
                start = last
            else:
                (start,) = conn.execute(
                    "SELECT coalesce((SELECT min(seq) - 1 FROM journal WHERE observed_at >= ?), ?)",
                    (replay_from, last),
                ).fetchone()
            # A sink named again is enabled again: the daemon that disabled it has restarted.
            conn.execute(
                "INSERT INTO sinks (name, cursor, added_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET disabled = NULL",
                (name, start, now),
            )
        return [_retire(conn, name, now) for name in sorted(known - set(wanted))]


def _retire(conn: sqlite3.Connection, name: str, now: float) -> RetiredSink:
    queued = conn.execute(
        "UPDATE deliveries SET state = 'dead', last_error = ?, updated_at = ?"
        " WHERE sink = ? AND state = 'pending'",
        (RETIRED_ERROR, now, name),
    ).rowcount
    row = conn.execute("SELECT cursor FROM sinks WHERE name = ?", (name,)).fetchone()
    if row is not None:
        queued += conn.execute(
            "INSERT INTO deliveries (sink, seq, job_key, state, attempts, next_attempt_at,"
            " last_error, updated_at)"
            " SELECT ?1, j.seq, j.source || char(31) || j.job_id, 'dead', 0, ?2, ?3, ?2"
            " FROM journal AS j WHERE j.seq > ?4 AND NOT EXISTS"
            " (SELECT 1 FROM deliveries AS d WHERE d.sink = ?1 AND d.seq = j.seq)",
            (name, now, RETIRED_ERROR, row[0]),
        ).rowcount
        conn.execute("DELETE FROM sinks WHERE name = ?", (name,))
    (dead,) = conn.execute(
        "SELECT count(*) FROM deliveries WHERE sink = ? AND state = 'dead'", (name,)
    ).fetchone()
    return RetiredSink(name=name, queued=queued, dead=int(dead))


def cursor_of(conn: sqlite3.Connection, sink: str) -> int:
    """The sink's cursor; a sink never named reads the journal from the start."""
    row = conn.execute("SELECT cursor FROM sinks WHERE name = ?", (sink,)).fetchone()
    return int(row[0]) if row else 0


def pending(conn: sqlite3.Connection, sink: str, limit: int, after: int) -> list[Delivery]:
    """The sink's rows and its fresh journal entries after ``after``, merged in seq order.

    A fresh entry was never tried: it is due at once (``next_attempt_at`` 0).
    """
    stored = conn.execute(
        "SELECT d.sink, d.seq, j.event_id, d.job_key, d.attempts, d.next_attempt_at,"
        " d.first_attempt_at, j.observed_at, j.body, 1"
        # Forced: without statistics the planner may take the primary key, which walks the
        # sink's dead rows too.
        " FROM deliveries AS d INDEXED BY deliveries_pending"
        " JOIN journal AS j ON j.seq = d.seq"
        " WHERE d.sink = ? AND d.state = 'pending' AND d.seq > ? ORDER BY d.seq LIMIT ?",
        (sink, after, limit),
    ).fetchall()
    fresh = conn.execute(
        "SELECT ?1, j.seq, j.event_id, j.source || char(31) || j.job_id, 0, 0.0,"
        " NULL, j.observed_at, j.body, 0 FROM journal AS j"
        " WHERE j.seq > ?2 AND NOT EXISTS"
        " (SELECT 1 FROM deliveries AS d WHERE d.sink = ?1 AND d.seq = j.seq)"
        " ORDER BY j.seq LIMIT ?3",
        (sink, max(after, cursor_of(conn, sink)), limit),
    ).fetchall()
    rows = heapq.merge(stored, fresh, key=lambda row: int(row[1]))
    return [_delivery(*row) for row in itertools.islice(rows, limit)]


def _delivery(
    sink: str,
    seq: int,
    event_id: str,
    key: str,
    attempts: int,
    next_attempt_at: float,
    first_attempt_at: float | None,
    observed_at: float,
    body: str,
    stored: int,
) -> Delivery:
    return Delivery(
        sink=sink,
        seq=seq,
        event_id=event_id,
        job_key=key,
        attempts=attempts,
        next_attempt_at=next_attempt_at,
        first_attempt_at=first_attempt_at,
        observed_at=observed_at,
        body=body,
        stored=bool(stored),
    )


def ack(conn: sqlite3.Connection, sink: str, seqs: Sequence[int], cursor: int, now: float) -> None:
    """Settle delivered ``seqs`` and move the cursor up, in one transaction.

    A delivery at or below the cursor leaves nothing behind. One above it (delivered out of
    order, while an earlier entry of another job is still out) keeps a ``done`` row until the
    cursor passes it, so a re-read never hands it out again.
    """
    with transaction(conn):
        (current,) = conn.execute(
            "SELECT max(coalesce((SELECT cursor FROM sinks WHERE name = ?), 0), ?)",
            (sink, cursor),
        ).fetchone()
        conn.executemany(
            "DELETE FROM deliveries WHERE sink = ? AND seq = ? AND state = 'pending'",
            [(sink, seq) for seq in seqs if seq <= current],
        )
        conn.executemany(
            "INSERT INTO deliveries (sink, seq, job_key, state, attempts, next_attempt_at,"
            " updated_at)"
            " SELECT ?1, seq, source || char(31) || job_id, 'done', 0, ?2, ?2"
            " FROM journal WHERE seq = ?3"
            " ON CONFLICT (sink, seq) DO UPDATE SET state = 'done',"
            " updated_at = excluded.updated_at WHERE state = 'pending'",
            [(sink, now, seq) for seq in seqs if seq > current],
        )
        conn.execute(
            "INSERT INTO sinks (name, cursor, added_at) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor",
            (sink, current, now),
        )
        conn.execute(
            "DELETE FROM deliveries WHERE sink = ? AND state = 'done' AND seq <= ?",
            (sink, current),
        )


def schedule_retry(
    conn: sqlite3.Connection,
    sink: str,
    seq: int,
    attempts: int,
    next_attempt_at: float,
    first_attempt_at: float,
    error: str,
    now: float,
) -> None:
    """Write (or update) the retry row of a pending delivery."""
    with transaction(conn):
        conn.execute(
            "INSERT INTO deliveries (sink, seq, job_key, state, attempts, next_attempt_at,"
            " first_attempt_at, last_error, updated_at)"
            " SELECT ?1, seq, source || char(31) || job_id, 'pending', ?2, ?3, ?4, ?5, ?6"
            " FROM journal WHERE seq = ?7"
            " ON CONFLICT (sink, seq) DO UPDATE SET attempts = excluded.attempts,"
            " next_attempt_at = excluded.next_attempt_at,"
            " first_attempt_at = excluded.first_attempt_at, last_error = excluded.last_error,"
            " updated_at = excluded.updated_at WHERE state = 'pending'",
            (sink, attempts, next_attempt_at, first_attempt_at, error, now, seq),
        )


def dead_letter(
    conn: sqlite3.Connection, sink: str, seq: int, attempts: int, error: str, now: float
) -> None:
    """Write (or turn a retry row into) a dead letter."""
    with transaction(conn):
        conn.execute(
            "INSERT INTO deliveries (sink, seq, job_key, state, attempts, next_attempt_at,"
            " last_error, updated_at)"
            " SELECT ?1, seq, source || char(31) || job_id, 'dead', ?2, ?3, ?4, ?3"
            " FROM journal WHERE seq = ?5"
            " ON CONFLICT (sink, seq) DO UPDATE SET state = 'dead', attempts = excluded.attempts,"
            " last_error = excluded.last_error, updated_at = excluded.updated_at"
            " WHERE state = 'pending'",
            (sink, attempts, now, error, seq),
        )


def dead_letters(conn: sqlite3.Connection, sink: str | None) -> list[DeadLetter]:
    """The dead letters (of one sink, or all), ordered by sink then seq."""
    rows = conn.execute(
        "SELECT d.sink, d.seq, j.event_id, j.type, j.source, j.job_id, d.attempts,"
        " coalesce(d.last_error, ''), d.updated_at, j.body"
        " FROM deliveries AS d JOIN journal AS j ON j.seq = d.seq"
        " WHERE d.state = 'dead' AND (:sink IS NULL OR d.sink = :sink)"
        " ORDER BY d.sink, d.seq",
        {"sink": sink},
    ).fetchall()
    return [DeadLetter(*row) for row in rows]


def retry_dead_letters(
    conn: sqlite3.Connection, sink: str | None, event_ids: Sequence[str] | None, now: float
) -> int:
    """Put matching dead letters back in the queue, due now."""
    with transaction(conn):
        return _update_dead(
            conn,
            "UPDATE deliveries SET state = 'pending', attempts = 0,"
            " next_attempt_at = :now, first_attempt_at = NULL, last_error = NULL,"
            " updated_at = :now",
            {"now": now, "sink": sink},
            event_ids,
        )


def drop_dead_letters(
    conn: sqlite3.Connection, sink: str | None, event_ids: Sequence[str] | None
) -> int:
    """Forget matching dead letters: they count as settled.

    Marked ``done`` rather than deleted: one above its sink's cursor would otherwise read as
    pending again. The sink's next ack (or the journal's pruning) removes the row.
    """
    with transaction(conn):
        return _update_dead(
            conn,
            "UPDATE deliveries SET state = 'done', last_error = NULL",
            {"sink": sink},
            event_ids,
        )


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
