"""The pure diff: previous state + current snapshot (+ now) -> the events that change means.

No I/O and no clock of its own, so it is tested exhaustively with hypothesis
(``tests/test_diff.py``) and costs microseconds per job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .events import (
    BaseEvent,
    JobCancelled,
    JobCreated,
    JobFailed,
    JobStatusChanged,
    JobSucceeded,
    event_id,
    event_type_name,
    lifecycle_event,
)
from .models import FineTuningJob

__all__ = ["JobState", "diff"]

_Terminal = type[JobSucceeded] | type[JobFailed] | type[JobCancelled]
_TERMINAL_EVENT: Mapping[str, _Terminal] = MappingProxyType(
    {"succeeded": JobSucceeded, "failed": JobFailed, "cancelled": JobCancelled}
)
# Wire names looked up once: reading a model class's ``model_fields`` costs microseconds each
# time, which was most of the CPU of a burst of events.
_WIRE: Mapping[type[BaseEvent], str] = MappingProxyType(
    {
        cls: event_type_name(cls)
        for cls in (JobCreated, JobStatusChanged, JobSucceeded, JobFailed, JobCancelled)
    }
)

# The fields each event is built with (its fields set, as if given to the class).
_CREATED_FIELDS = frozenset({"id", "source", "observed_at", "job", "timeline", "dashboard_url"})
_CHANGE_FIELDS = _CREATED_FIELDS | {"previous_status"}


@dataclass(frozen=True)
class JobState:
    """What the watcher remembers of one job: its last snapshot and how often each change was seen.

    The counts make event ids deterministic even when a job goes through the same change twice
    (``running -> paused -> running -> paused``): the second ``running -> paused`` gets its own id,
    and a replica that saw the same history computes the same ids.
    """

    job: FineTuningJob
    seen: Mapping[str, int] = field(default_factory=dict)
    #: When the job was first seen in each status it has been in (unix seconds).
    since: Mapping[str, float] = field(default_factory=dict)

    def count(self, key: str) -> int:
        """How many times the change named ``key`` was seen before."""
        return self.seen.get(key, 0)


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
    dashboard_url: str | None = None,
) -> tuple[JobState, list[BaseEvent]]:
    """Compare a job's last known state with its current snapshot.

    Returns the new state to remember and the events, in the order they happened:

    - a job not seen before gives ``created`` when ``announce_new`` (the silent first baseline
      passes False), and also its terminal event when it is already finished;
    - a changed status gives ``status_changed``, then ``succeeded``/``failed``/``cancelled``
      when the new status is one of those;
    - anything else gives no event (the state still takes the new snapshot).

    Each event carries ``dashboard_url``, the job's link in its provider's dashboard, if given.
    """
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
                lifecycle_event(
                    JobCreated,
                    _CREATED_FIELDS,
                    event_id=event_id(source, current.id, _WIRE[JobCreated]),
                    source=source,
                    observed_at=now,
                    previous_status=None,
                    job=current,
                    timeline=since,
                    dashboard_url=dashboard_url,
                )
            )
            if terminal_cls is not None:
                events.append(
                    _terminal(terminal_cls, source, current, now, None, 0, since, dashboard_url)
                )
        # A baseline still counts a terminal status as reached, so a later identical terminal
        # event (a job that is re-run by its provider) gets a fresh id.
        if terminal_cls is not None:
            seen = _bump(seen, terminal_key)
        return JobState(current, seen, since), events

    before = previous.job.status
    if before == status:
        return JobState(current, previous.seen, previous.since), events

    # A status entered again (running -> paused -> running) keeps the time it was first seen.
    since = dict(previous.since)
    since.setdefault(status, now)
    change_key = f"{before}>{status}"
    events.append(
        lifecycle_event(
            JobStatusChanged,
            _CHANGE_FIELDS,
            event_id=event_id(
                source,
                current.id,
                _WIRE[JobStatusChanged],
                before,
                status,
                previous.count(change_key),
            ),
            source=source,
            observed_at=now,
            previous_status=before,
            job=current,
            timeline=since,
            dashboard_url=dashboard_url,
        )
    )
    keys = [change_key]
    if terminal_cls is not None:
        occurrence = previous.count(terminal_key)
        events.append(
            _terminal(terminal_cls, source, current, now, before, occurrence, since, dashboard_url)
        )
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
    dashboard_url: str | None,
) -> BaseEvent:
    # The id leaves out the previous status: two replicas that saw different intermediate
    # statuses (one missed `running`) still agree on the id of the one terminal event.
    return lifecycle_event(
        cls,
        _CHANGE_FIELDS,
        event_id=event_id(source, job.id, _WIRE[cls], occurrence),
        source=source,
        observed_at=now,
        previous_status=previous_status,
        job=job,
        timeline=since,
        dashboard_url=dashboard_url,
    )
