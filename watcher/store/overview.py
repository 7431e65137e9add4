"""What ``ftwatch status`` reads from the state file, and the two small writes that feed it.

The reads run in one read transaction (one moment) and write nothing, so they work on a
connection opened read-only beside a running daemon. Everything here runs in the store's
worker thread.
"""

from __future__ import annotations

import sqlite3

from .protocol import ActiveJobRow, Overview, SinkOverview, SourceOverview
from .schema import transaction

__all__ = ["disable_sink", "mark_polled", "overview"]


def mark_polled(conn: sqlite3.Connection, source: str, now: float) -> None:
    """Record when ``source`` last finished a poll cycle."""
    with transaction(conn):
        conn.execute(
            "INSERT INTO sources (source, updated_at, polled_at) VALUES (?1, ?2, ?2)"
            " ON CONFLICT (source) DO UPDATE SET polled_at = excluded.polled_at",
            (source, now),
        )


def disable_sink(conn: sqlite3.Connection, sink: str, reason: str, now: float) -> None:
    """Record why the daemon stopped delivering to ``sink`` (its cursor stays where it is)."""
    with transaction(conn):
        conn.execute(
            "INSERT INTO sinks (name, cursor, added_at, disabled) VALUES (?1, 0, ?2, ?3)"
            " ON CONFLICT (name) DO UPDATE SET disabled = excluded.disabled",
            (sink, now, reason),
        )


def _sources(conn: sqlite3.Connection) -> list[SourceOverview]:
    jobs: dict[str, dict[str, int]] = {}
    for source, status, count in conn.execute(
        "SELECT source, status, count(*) FROM snapshots GROUP BY source, status"
    ):
        jobs.setdefault(str(source), {})[str(status)] = int(count)
    flags = {
        str(source): (bool(baselined), polled_at)
        for source, baselined, polled_at in conn.execute(
            "SELECT source, baselined, polled_at FROM sources"
        )
    }
    return [
        SourceOverview(
            name=name,
            baselined=flags.get(name, (False, None))[0],
            polled_at=flags.get(name, (False, None))[1],
            jobs=dict(sorted(jobs.get(name, {}).items())),
        )
        for name in sorted(jobs.keys() | flags.keys())
    ]


def _sinks(conn: sqlite3.Connection) -> list[SinkOverview]:
    cursors = {
        str(name): (int(cursor), disabled)
        for name, cursor, disabled in conn.execute("SELECT name, cursor, disabled FROM sinks")
    }
    rows: dict[str, tuple[int, float | None]] = {
        str(sink): (int(count), oldest)
        for sink, count, oldest in conn.execute(
            "SELECT d.sink, count(*), min(j.observed_at) FROM deliveries AS d"
            " JOIN journal AS j ON j.seq = d.seq WHERE d.state = 'pending' GROUP BY d.sink"
        )
    }
    dead = {
        str(sink): int(count)
        for sink, count in conn.execute(
            "SELECT sink, count(*) FROM deliveries WHERE state = 'dead' GROUP BY sink"
        )
    }
    out: list[SinkOverview] = []
    for name in sorted(cursors.keys() | rows.keys() | dead.keys()):
        pending, oldest = rows.get(name, (0, None))
        cursor, disabled = cursors.get(name, (None, None))
        if cursor is not None:
            # The fresh queue: journal entries past the cursor that have no row of their own.
            (fresh, first) = conn.execute(
                "SELECT count(*), min(j.observed_at) FROM journal AS j WHERE j.seq > ?1"
                " AND NOT EXISTS (SELECT 1 FROM deliveries AS d"
                " WHERE d.sink = ?2 AND d.seq = j.seq)",
                (cursor, name),
            ).fetchone()
            pending += int(fresh)
            if first is not None:
                oldest = first if oldest is None else min(oldest, first)
        out.append(
            SinkOverview(
                name=name,
                pending=pending,
                oldest_pending_at=oldest,
                dead=dead.get(name, 0),
                disabled=disabled,
                configured=cursor is not None,
            )
        )
    return out


def overview(conn: sqlite3.Connection) -> Overview:
    """Sources, unfinished jobs and sinks, read in one transaction."""
    conn.execute("BEGIN")
    try:
        active = [
            ActiveJobRow(*row)
            for row in conn.execute(
                "SELECT source, job_id, status, job, since FROM snapshots WHERE terminal = 0"
                " ORDER BY source, job_id"
            )
        ]
        return Overview(sources=_sources(conn), active=active, sinks=_sinks(conn))
    finally:
        conn.execute("COMMIT")
