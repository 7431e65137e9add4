"""The journal and the snapshots in SQLite: one poll cycle's write, reading states back, pruning.

Everything here runs in the store's worker thread.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from ..diff import JobState
from ..events import (
    BaseEvent,
    JobCancelled,
    JobCreated,
    JobFailed,
    JobStatusChanged,
    JobSucceeded,
)
from ..models import FineTuningJob
from .schema import transaction

__all__ = ["prune", "serialise_cycle", "stats", "write_cycle"]

log = structlog.get_logger("watcher.store")

Rows = list[tuple[Any, ...]]

# Event ids per ``IN (...)`` read: under SQLite's default limit of variables per statement.
_CHUNK = 500


def serialise_cycle(
    source: str,
    states: Sequence[tuple[str, JobState]],
    events: Sequence[BaseEvent],
    now: float,
) -> tuple[Rows, Rows]:
    """The snapshot rows and journal rows of one cycle (done before taking the connection).

    Each job is serialised once: its snapshot and every event that carries it (a finished
    job's ``status_changed`` and terminal event) share that text.
    """
    jobs_text: dict[int, str] = {}

    def job_json(job: Any) -> str:
        # By identity: the states and events of a cycle hold the very same job objects, alive
        # for the whole call.
        text = jobs_text.get(id(job))
        if text is None:
            text = jobs_text[id(job)] = job.__pydantic_serializer__.to_json(
                job, by_alias=True
            ).decode()
        return text

    snapshot_rows: Rows = [
        (
            source,
            job_id,
            st.job.status,
            int(st.job.is_terminal),
            job_json(st.job),
            _compact(dict(st.seen)),
            _compact(dict(st.since)),
            now,
        )
        for job_id, st in states
    ]
    texts = journal_texts(events, job_json)
    journal_rows: Rows = [
        (ev.id, ev.type, ev.source, ev.job_id, ev.observed_at, text)
        for ev, text in zip(events, texts, strict=True)
    ]
    return snapshot_rows, journal_rows


def _compact_python(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _compact_c() -> Callable[[Any], str] | None:
    # json.dumps builds its C encoder on every call, most of its cost for a small mapping; this
    # is the same encoder (json.dumps's defaults, compact separators), built once. Without a
    # circular check, which only the counts and times of a state pass through.
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    encode = make(
        None,
        json.JSONEncoder().default,
        json.encoder.encode_basestring_ascii,
        None,
        ":",
        ",",
        False,
        False,
        True,
    )
    return lambda value: "".join(encode(value, 0))


_compact: Callable[[Any], str] = _compact_c() or _compact_python


# What an id or a type may be for its text to be spliced into an envelope without escaping.
_PLAIN = re.compile(r"[A-Za-z0-9_.:-]+")


def journal_texts(
    events: Sequence[BaseEvent], job_json: Callable[[FineTuningJob], str]
) -> list[str]:
    """Each event's :meth:`~BaseEvent.to_json`, for a cycle's journal, sharing what repeats.

    ``job_json`` gives a job's text (see ``to_json``), once per job. A lifecycle event whose
    envelope differs from the one before it only in its id and type (a finished job's
    ``status_changed`` then its terminal event) takes the rest of that one's text.
    """
    texts: list[str] = []
    last: BaseEvent | None = None
    last_text = ""
    for event in events:
        if event._wire is not None:
            text = event._wire
        elif last is not None and _same_data(event, last):
            head = _head(last)
            if last_text.startswith(head):
                text = _head(event) + last_text[len(head) :]
            else:
                text = event.to_json(job_json=job_json(event.job))
        else:
            text = event.to_json(job_json=job_json(event.job))
        texts.append(text)
        last, last_text = event, text
    return texts


def _same_data(event: BaseEvent, other: BaseEvent) -> bool:
    """True when the two envelopes can differ only in their id and type."""
    return (
        other._wire is None
        and type(event) in _LIFECYCLE
        and type(other) in _LIFECYCLE
        and event.job is other.job
        and event.observed_at == other.observed_at
        and event.source == other.source
        and event.previous_status == other.previous_status
        and event.dashboard_url == other.dashboard_url
        # Items, in order: the same keys spelt in the same order (the values are floats).
        and list(event.timeline.items()) == list(other.timeline.items())
        and _PLAIN.fullmatch(event.id) is not None
        and _PLAIN.fullmatch(other.id) is not None
    )


def _head(event: BaseEvent) -> str:
    # The envelope's text up to its data (ids and types are plain: nothing to escape).
    return (
        f'{{"id":"{event.id}","object":"event","created_at":{int(event.observed_at)},'
        f'"type":"{event.type}",'
    )


# The events whose envelope is the same shape: no fields of their own.
_LIFECYCLE = frozenset({JobCreated, JobStatusChanged, JobSucceeded, JobFailed, JobCancelled})


def write_cycle(
    conn: sqlite3.Connection,
    source: str,
    snapshot_rows: Rows,
    journal_rows: Rows,
    now: float,
    baselined: bool | None,
    gaps: Sequence[str] | None,
) -> list[int]:
    """Journal the events and write the snapshots and source flags in ONE transaction."""
    with transaction(conn):
        seqs = _journal(conn, journal_rows)
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
        # When the source last polled, for `ftwatch status` (a commit ends a poll cycle).
        conn.execute(
            "INSERT INTO sources (source, updated_at, polled_at) VALUES (?1, ?2, ?2)"
            " ON CONFLICT (source) DO UPDATE SET polled_at = excluded.polled_at",
            (source, now),
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


def _journal(conn: sqlite3.Connection, rows: Rows) -> list[int]:
    """Insert the rows whose event id is not journaled yet, in order; return their seqs.

    Set operations instead of one statement per event: the ids already there are found with a
    few chunked ``IN`` reads and the rest go in with one ``executemany``. Not ON CONFLICT DO
    NOTHING: with AUTOINCREMENT that burns a seq per duplicate, and every restart would leave
    gaps in the journal.
    """
    if not rows:
        return []
    ids = [row[0] for row in rows]
    known: set[str] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        # Only placeholders go into the text; the ids are bound.
        query = f"SELECT event_id FROM journal WHERE event_id IN ({','.join('?' * len(chunk))})"  # noqa: S608
        known.update(event_id for (event_id,) in conn.execute(query, chunk))
    fresh: Rows = []
    for row in rows:
        if row[0] not in known:
            known.add(row[0])  # the same id twice in one cycle is journaled once
            fresh.append(row)
    if not fresh:
        return []
    # Inside the write transaction nobody else inserts, so AUTOINCREMENT hands out the seqs
    # after the last one ever used, one by one, in the order of the rows.
    (last,) = conn.execute(
        "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'journal'),"
        " (SELECT max(seq) FROM journal), 0)"
    ).fetchone()
    conn.executemany(
        "INSERT INTO journal (event_id, type, source, job_id, observed_at, body)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        fresh,
    )
    return list(range(int(last) + 1, int(last) + 1 + len(fresh)))


def prune(conn: sqlite3.Connection, older_than: float) -> int:
    """Delete old entries that every sink's cursor has passed and that no row points at.

    A retry or a dead letter keeps its entry (a ``done`` row goes with it, by the foreign
    key's cascade); a retired sink has no cursor and pins nothing but its dead letters.
    Snapshots are never pruned: they keep a finished job from being announced again.
    """
    with transaction(conn):
        return conn.execute(
            "DELETE FROM journal WHERE observed_at < ?"
            " AND seq <= coalesce((SELECT min(cursor) FROM sinks), seq)"
            " AND NOT EXISTS (SELECT 1 FROM deliveries AS d"
            " WHERE d.seq = journal.seq AND d.state != 'done')",
            (older_than,),
        ).rowcount


def stats(conn: sqlite3.Connection) -> dict[str, Any]:
    """The counts of :meth:`SQLiteStore.stats`, read in one transaction (one moment)."""
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
            src: bool(flag) for src, flag in conn.execute("SELECT source, baselined FROM sources")
        }
        (entries,) = conn.execute("SELECT count(*) FROM journal").fetchone()
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'journal'").fetchone()
        pending: dict[str, int] = dict(
            conn.execute(
                "SELECT sink, count(*) FROM deliveries WHERE state = 'pending' GROUP BY sink"
            ).fetchall()
        )
        # Plus each sink's fresh queue: the entries past its cursor that have no row.
        for sink, fresh in conn.execute(
            "SELECT s.name, (SELECT count(*) FROM journal AS j WHERE j.seq > s.cursor"
            " AND NOT EXISTS (SELECT 1 FROM deliveries AS d"
            " WHERE d.sink = s.name AND d.seq = j.seq)) FROM sinks AS s"
        ):
            if fresh:
                pending[sink] = pending.get(sink, 0) + int(fresh)
        dead = dict(
            conn.execute(
                "SELECT sink, count(*) FROM deliveries WHERE state = 'dead' GROUP BY sink"
            ).fetchall()
        )
        cursors = dict(conn.execute("SELECT name, cursor FROM sinks").fetchall())
    finally:
        conn.execute("COMMIT")
    return {
        "jobs": jobs,
        "terminal_jobs": terminal,
        "baselined": baselined,
        "journal_entries": int(entries),
        "last_seq": int(row[0]) if row else 0,
        "pending": pending,
        "dead": dead,
        "cursors": cursors,
    }
