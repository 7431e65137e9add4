"""Small builders shared by the tests (not fixtures: plain functions)."""

from __future__ import annotations

import socket
from collections.abc import Sequence

from watcher.diff import JobState, diff
from watcher.events import BaseEvent
from watcher.models import FineTuningJob


def job(job_id: str, status: str, **fields: object) -> FineTuningJob:
    """A job snapshot with the given status."""
    data: dict[str, object] = {
        "id": job_id,
        "object": "fine_tuning.job",
        "status": status,
        "model": "gpt-4o-mini-2024-07-18",
        "created_at": 1_700_000_000,
    }
    if status == "succeeded":
        data.update(fine_tuned_model=f"ft:gpt-4o-mini-2024-07-18:org::{job_id}", trained_tokens=100)
    if status == "failed":
        data["error"] = {"code": "invalid_training_file", "message": "bad file", "param": None}
    data.update(fields)
    return FineTuningJob.model_validate(data)


def events_for(
    job_id: str, statuses: Sequence[str], *, source: str = "test", start: float = 1000.0
) -> list[BaseEvent]:
    """The events of one job going through ``statuses`` (the first one is a silent baseline)."""
    state: JobState | None = None
    out: list[BaseEvent] = []
    for i, status in enumerate(statuses):
        state, events = diff(
            state, job(job_id, status), source=source, now=start + i, announce_new=False
        )
        out.extend(events)
    return out


def free_port() -> int:
    """A loopback port nobody listens on right now: connecting to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
