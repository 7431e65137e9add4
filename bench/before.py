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


# -- the poller's bookkeeping before the job index (bench/growth.py runs a daemon with it) ----


def lean(state: JobState) -> JobState:
    """``watcher.snapshots.lean`` as it was: a three-field pydantic model per job."""
    job = state.job
    kept = FineTuningJob.model_validate(
        {"id": job.id, "status": job.status, "created_at": job.created_at}
    )
    return JobState(kept, state.seen, state.since)


def active_jobs(self: Any) -> list[str]:
    """``SourcePoller.active_jobs`` as it was: a scan of every known job."""
    return [
        job_id
        for job_id, st in self.states.items()
        if not st.job.is_terminal and job_id not in self._gone
    ]


def paging_is_cheaper(self: Any, seen: Mapping[str, Any], last: Any) -> bool:
    """``SourcePoller._paging_is_cheaper`` as it was: another scan of every known job."""

    def key(job: Any) -> tuple[int, str]:
        return (job.created_at or 0, job.id)

    unseen = [self.states[j].job for j in self.active_jobs() if j not in seen]
    if not unseen:
        return False
    oldest = min(key(j) for j in unseen)
    last_key = key(last)
    between = sum(1 for st in self.states.values() if oldest <= key(st.job) < last_key)
    return bool(-(-between // self.config.page_size) < len(unseen))


async def load_states(self: Any, source: str) -> dict[str, JobState]:
    """``SQLiteStore.load_states`` as it was: every stored snapshot parsed into a model."""
    import anyio.to_thread

    def read(conn: Any) -> list[tuple[str, str, str, str]]:
        return list(
            conn.execute(
                "SELECT job_id, job, seen, since FROM snapshots WHERE source = ?", (source,)
            ).fetchall()
        )

    rows = await self._run("read the job snapshots", read)

    def rebuild() -> dict[str, JobState]:
        return {
            job_id: JobState(
                FineTuningJob.model_validate_json(job),
                {str(k): int(v) for k, v in json.loads(seen).items()},
                {str(k): float(v) for k, v in json.loads(since).items()},
            )
            for job_id, job, seen, since in rows
        }

    return await anyio.to_thread.run_sync(rebuild)


def remember(self: Any, states: Mapping[str, JobState]) -> dict[str, JobState]:
    """``Fingerprints.remember`` as it was: each loaded snapshot marked, then made lean."""
    from watcher.snapshots import snapshot_mark

    out: dict[str, JobState] = {}
    for job_id, state in states.items():
        self.marks[job_id] = snapshot_mark(state.job)
        out[job_id] = lean(state)
    return out


def pin_old_poller() -> None:
    """Make this process's pollers keep their jobs as before: scans, models, a whole baseline.

    And a restart loads every stored snapshot whole, as it did.
    """
    import watcher.poller
    import watcher.snapshots
    import watcher.store.sqlite

    watcher.store.sqlite.SQLiteStore.load_states = load_states  # type: ignore[method-assign]
    watcher.snapshots.Fingerprints.remember = remember  # type: ignore[method-assign]

    poller = watcher.poller.SourcePoller
    init = poller.__init__

    def old_init(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.baseline_chunk = 1 << 62  # the whole baseline held until its last page

    poller.__init__ = old_init  # type: ignore[method-assign]
    poller.active_jobs = active_jobs  # type: ignore[method-assign]
    poller._paging_is_cheaper = paging_is_cheaper  # type: ignore[method-assign]
    watcher.snapshots.lean = lean  # type: ignore[attr-defined]


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
