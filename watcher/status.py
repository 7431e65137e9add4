"""What the state file says right now: the data behind ``ftwatch status`` (and the ``/jobs`` route).

:func:`read_status` opens the state file read-only (never waiting for, or holding up, a running
daemon) and :func:`gather_status` turns a store's :meth:`~watcher.store.StateStore.overview`
into a :class:`Status`, a pydantic model whose ``model_dump(mode="json")`` is the JSON that
``ftwatch status --json`` prints.
"""

from __future__ import annotations

import json
import os

from pydantic import BaseModel, ConfigDict, ValidationError

from .models import FineTuningJob
from .store import ActiveJobRow, SQLiteStore, StateStore

__all__ = [
    "ActiveJob",
    "SinkStatus",
    "SourceStatus",
    "Status",
    "gather_status",
    "read_status",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ActiveJob(_Frozen):
    """A job not yet finished, as last seen."""

    id: str
    status: str
    model: str | None = None
    #: When the job was first seen in its current status (Unix time), if known.
    status_since: float | None = None
    #: Seconds since then, at the moment the status was read.
    seconds_in_status: float | None = None
    #: The API's estimate of when it finishes (Unix time), if it gave one.
    estimated_finish: int | None = None
    #: Tokens trained so far, if the API says.
    trained_tokens: int | None = None


class SourceStatus(_Frozen):
    """One source: its jobs by status, the unfinished ones, and its last poll."""

    name: str
    baselined: bool
    #: When it last finished a poll cycle (Unix time), None if it never did.
    last_poll: float | None
    seconds_since_poll: float | None
    jobs: dict[str, int]
    active: list[ActiveJob]


class SinkStatus(_Frozen):
    """One sink: its queue, its dead letters, and whether the daemon stopped delivering to it."""

    name: str
    queue_depth: int
    #: When the oldest waiting event was observed (Unix time), None when nothing waits.
    oldest_pending: float | None
    oldest_pending_age_seconds: float | None
    dead_letters: int
    disabled: bool
    #: Why it was disabled (the receiver's answer), when it was.
    disabled_reason: str | None
    #: False for a sink no longer in the config that keeps dead letters.
    configured: bool


class Status(_Frozen):
    """Every source and sink the state file knows, at one moment."""

    state_path: str
    #: When this was read (Unix time).
    read_at: float
    sources: list[SourceStatus]
    sinks: list[SinkStatus]


def _age(now: float, then: float | None) -> float | None:
    return None if then is None else round(max(0.0, now - then), 3)


def _active(row: ActiveJobRow, now: float) -> ActiveJob:
    """The stored snapshot as an :class:`ActiveJob`; an unreadable one keeps its id and status."""
    try:
        job: FineTuningJob | None = FineTuningJob.model_validate_json(row.job)
    except ValidationError:
        job = None
    try:
        since = json.loads(row.since).get(row.status)
    except (ValueError, AttributeError):
        since = None
    since = float(since) if isinstance(since, int | float) else None
    return ActiveJob(
        id=row.job_id,
        status=row.status,
        model=job.model if job else None,
        status_since=since,
        seconds_in_status=_age(now, since),
        estimated_finish=job.estimated_finish if job else None,
        trained_tokens=job.trained_tokens if job else None,
    )


async def gather_status(store: StateStore, *, path: str, now: float) -> Status:
    """Read ``store``'s overview and shape it as a :class:`Status` as of ``now``."""
    overview = await store.overview()
    active: dict[str, list[ActiveJob]] = {}
    for row in overview.active:
        active.setdefault(row.source, []).append(_active(row, now))
    sources = [
        SourceStatus(
            name=s.name,
            baselined=s.baselined,
            last_poll=s.polled_at,
            seconds_since_poll=_age(now, s.polled_at),
            jobs=s.jobs,
            active=active.get(s.name, []),
        )
        for s in overview.sources
    ]
    sinks = [
        SinkStatus(
            name=s.name,
            queue_depth=s.pending,
            oldest_pending=s.oldest_pending_at,
            oldest_pending_age_seconds=_age(now, s.oldest_pending_at),
            dead_letters=s.dead,
            disabled=s.disabled is not None,
            disabled_reason=s.disabled,
            configured=s.configured,
        )
        for s in overview.sinks
    ]
    return Status(state_path=path, read_at=now, sources=sources, sinks=sinks)


async def read_status(path: str | os.PathLike[str], *, now: float) -> Status:
    """Open the state file at ``path`` read-only and return its :class:`Status`.

    Raises :class:`~watcher.errors.StoreError` when there is no state file there or it cannot
    be read. A running daemon is neither waited for nor held up.
    """
    async with await SQLiteStore.open_readonly(path) as store:
        return await gather_status(store, path=str(store.path), now=now)
