"""The poll path's per-job work as it was before fingerprints, pinned here so benches compare.

Copied from the tree at d68170c, changed only where noted: the client validated every item
of every page (``APIClient._page``), the poller diffed and compared every job
(``SourcePoller._cycle``), ``diff`` looked each event's wire name up on its class, and an
event's JSON was ``json.dumps`` of its ``envelope()``, and the journal was written with one
``execute`` per event (``write_cycle``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from watcher.diff import JobState
from watcher.events import (
    BaseEvent,
    JobCancelled,
    JobCreated,
    JobFailed,
    JobStatusChanged,
    JobSucceeded,
    event_id,
)
from watcher.models import FineTuningJob
from watcher.store.schema import transaction

_Terminal = type[JobSucceeded] | type[JobFailed] | type[JobCancelled]
_TERMINAL_EVENT: Mapping[str, _Terminal] = MappingProxyType(
    {"succeeded": JobSucceeded, "failed": JobFailed, "cancelled": JobCancelled}
)


def validate_page(items: list[Any]) -> list[FineTuningJob]:
    """The client's validation of a page's items (the log line of a bad one left out)."""
    out: list[FineTuningJob] = []
    for item in items:
        try:
            out.append(FineTuningJob.model_validate(item))
        except ValidationError:
            continue
    return out


def cycle(
    states: Mapping[str, JobState], items: list[Any], *, source: str, now: float, announce: bool
) -> tuple[dict[str, JobState], list[BaseEvent]]:
    """One cycle's validation and diff loop as the client and the poller ran them."""
    snapshots: dict[str, FineTuningJob] = {}
    for job in validate_page(items):
        snapshots.setdefault(job.id, job)
    changed: dict[str, JobState] = {}
    events: list[BaseEvent] = []
    for job in snapshots.values():
        previous = states.get(job.id)
        state, new_events = diff(previous, job, source=source, now=now, announce_new=announce)
        if previous is None or previous.job != job or previous.seen != state.seen:
            changed[job.id] = state
        events.extend(new_events)
    return changed, events


def to_json(event: BaseEvent) -> str:
    """An event's journal text as it was built."""
    return json.dumps(event.envelope(), separators=(",", ":"), ensure_ascii=False)


def _bump(seen: Mapping[str, int], *keys: str) -> dict[str, int]:
    out = dict(seen)
    for key in keys:
        out[key] = out.get(key, 0) + 1
    return out


def diff(
    previous: JobState | None,
    current: FineTuningJob,
    *,
    source: str,
    now: float,
    announce_new: bool = True,
) -> tuple[JobState, list[BaseEvent]]:
    """``watcher.diff.diff`` as it was."""
    if previous is not None and previous.job.id != current.id:
        raise ValueError(f"cannot diff job {previous.job.id!r} against job {current.id!r}")
    events: list[BaseEvent] = []
    status = current.status
    terminal_cls = _TERMINAL_EVENT.get(status)
    terminal_key = f"={status}"

    if previous is None:
        seen: dict[str, int] = {}
        since = {status: now}
        if announce_new:
            events.append(
                JobCreated(
                    id=event_id(source, current.id, JobCreated.model_fields["type"].default),
                    source=source,
                    observed_at=now,
                    job=current,
                    timeline=since,
                )
            )
            if terminal_cls is not None:
                events.append(_terminal(terminal_cls, source, current, now, None, 0, since))
        if terminal_cls is not None:
            seen = _bump(seen, terminal_key)
        return JobState(current, seen, since), events

    before = previous.job.status
    if before == status:
        return JobState(current, previous.seen, previous.since), events

    since = dict(previous.since)
    since.setdefault(status, now)
    change_key = f"{before}>{status}"
    events.append(
        JobStatusChanged(
            id=event_id(
                source,
                current.id,
                JobStatusChanged.model_fields["type"].default,
                before,
                status,
                previous.count(change_key),
            ),
            source=source,
            observed_at=now,
            previous_status=before,
            job=current,
            timeline=since,
        )
    )
    keys = [change_key]
    if terminal_cls is not None:
        occurrence = previous.count(terminal_key)
        events.append(_terminal(terminal_cls, source, current, now, before, occurrence, since))
        keys.append(terminal_key)
    return JobState(current, _bump(previous.seen, *keys), since), events


def _terminal(
    cls: _Terminal,
    source: str,
    job: FineTuningJob,
    now: float,
    previous_status: str | None,
    occurrence: int,
    since: Mapping[str, float],
) -> BaseEvent:
    wire = cls.model_fields["type"].default
    return cls(
        id=event_id(source, job.id, wire, occurrence),
        source=source,
        observed_at=now,
        previous_status=previous_status,
        job=job,
        timeline=dict(since),
    )


def serialise_cycle(
    source: str, states: Sequence[tuple[str, JobState]], events: Sequence[BaseEvent], now: float
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """``watcher.store.journal.serialise_cycle`` with the old event JSON (:func:`to_json`)."""
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
        for job_id, st in states
    ]
    journal_rows = [
        (ev.id, ev.type, ev.source, ev.job_id, ev.observed_at, to_json(ev)) for ev in events
    ]
    return snapshot_rows, journal_rows


def write_cycle(
    conn: sqlite3.Connection,
    snapshot_rows: list[tuple[Any, ...]],
    journal_rows: list[tuple[Any, ...]],
) -> list[int]:
    """``watcher.store.journal.write_cycle`` as it was: one ``execute`` per event (no flags)."""
    with transaction(conn):
        seqs: list[int] = []
        for row in journal_rows:
            cur = conn.execute(
                "INSERT INTO journal (event_id, type, source, job_id, observed_at, body)"
                " SELECT ?1, ?2, ?3, ?4, ?5, ?6"
                " WHERE NOT EXISTS (SELECT 1 FROM journal WHERE event_id = ?1)",
                row,
            )
            if cur.rowcount == 1 and cur.lastrowid is not None:
                seqs.append(cur.lastrowid)
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
    return seqs
