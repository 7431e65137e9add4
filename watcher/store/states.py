"""The stored snapshots read back in SQLite: lean states for the poller, one snapshot on demand.

Everything here runs in the store's worker thread. A restarted poller needs of each job only
its status, creation time, counts and status times, so :func:`read_states` never parses a
stored snapshot (kilobytes a job, which 100,000 jobs would hold in memory at once): the status
has a column, the creation time is read by SQLite's ``json_extract``.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Final

import structlog

from ..diff import JobState
from ..known import lean_state
from ..models import FineTuningJob

__all__ = ["read_snapshot", "read_states"]

log = structlog.get_logger("watcher.store")

#: Parsed ``seen``/``since`` texts kept while loading: most jobs share a handful of them.
_MAX_PARSED: Final = 4096


def read_states(conn: sqlite3.Connection, source: str) -> dict[str, JobState]:
    """Every job remembered for ``source``, lean; one whose counts cannot be read is forgotten."""
    parsed: dict[str, Any] = {}

    def parse(text: str) -> Any:
        found = parsed.get(text)
        if found is None:
            if len(parsed) >= _MAX_PARSED:
                parsed.clear()
            found = parsed[text] = json.loads(text)
        return found

    states: dict[str, JobState] = {}
    rows = conn.execute(
        "SELECT job_id, status,"
        " CASE WHEN json_valid(job) THEN json_extract(job, '$.created_at') END, seen, since"
        " FROM snapshots WHERE source = ?",
        (source,),
    )
    for job_id, status, created_at, seen, since in rows:
        try:
            states[job_id] = lean_state(
                job_id,
                status,
                created_at if type(created_at) is int else None,
                {str(k): int(v) for k, v in parse(seen).items()},
                {str(k): float(v) for k, v in parse(since).items()},
            )
        except (ValueError, TypeError, AttributeError) as exc:
            # Counts we cannot read are forgotten, never a crash: the job is seen as new
            # again, and its deterministic `created` id is absorbed by the journal if known.
            log.warning("snapshot_unreadable", source=source, job_id=job_id, error=str(exc))
    return states


def read_snapshot(conn: sqlite3.Connection, source: str, job_id: str) -> FineTuningJob | None:
    """The last snapshot stored of one job, or None (unknown, or unreadable: logged)."""
    row = conn.execute(
        "SELECT job FROM snapshots WHERE source = ? AND job_id = ?", (source, job_id)
    ).fetchone()
    if row is None:
        return None
    try:
        return FineTuningJob.model_validate_json(row[0])
    except ValueError as exc:
        log.warning("snapshot_unreadable", source=source, job_id=job_id, error=str(exc))
        return None
