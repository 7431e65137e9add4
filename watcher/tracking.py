"""What ftwatch remembers of one running job beyond its snapshot, and the pure rules on it.

A :class:`JobTrack` holds a job's cursors into its ``/events`` and ``/checkpoints`` (the newest
entry seen, so a read stops there), the last progress sent (for the throttle), the status's
start (for stalls), the stall announced, and the last ``estimated_finish`` announced. It is
plain JSON in the state (:meth:`JobTrack.to_json`), so a restart neither re-announces what was
announced nor loses a stall's clock.

Everything here is pure (no I/O, no clock): :func:`check_stall` is property-tested against
arbitrary status timelines and restarts (``tests/test_stalls.py``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog

from .events import BaseEvent, JobEtaChanged, JobProgress, JobStalled, JobUnstalled, event_id
from .models import FineTuningJob, JobEventRecord

__all__ = [
    "METRIC_FIELDS",
    "JobTrack",
    "Rules",
    "check_eta",
    "check_stall",
    "note_metrics",
    "note_status",
    "parse_metrics",
    "throttle_allows",
]

log = structlog.get_logger(__name__)

#: The ``metrics`` keys a progress event carries, besides ``step`` and ``total_steps``.
METRIC_FIELDS: tuple[str, ...] = (
    "train_loss",
    "valid_loss",
    "train_mean_token_accuracy",
    "valid_mean_token_accuracy",
    "full_valid_loss",
)

#: Which stall reason each status has; a status not here (paused, pausing...) never stalls.
_STALL_REASON: dict[str, str] = {
    "validating_files": "validating_too_long",
    "queued": "queued_too_long",
    "running": "no_progress",
}


@dataclass(frozen=True)
class Rules:
    """A source's progress settings, in seconds (None: that check is off)."""

    stall_validating: float | None = 3600.0
    stall_queued: float | None = 4 * 3600.0
    stall_no_progress: float | None = 1800.0
    #: Send a progress event when the percent moved this much since the last one sent ...
    every_percent: float | None = 10.0
    #: ... or when this many seconds passed since the last one sent.
    every_seconds: float | None = None
    eta_shift: float = 900.0
    eta_shift_ratio: float = 0.1

    def threshold(self, reason: str) -> float | None:
        """The threshold of a stall ``reason``, or None when that check is off."""
        return {
            "validating_too_long": self.stall_validating,
            "queued_too_long": self.stall_queued,
            "no_progress": self.stall_no_progress,
        }[reason]


@dataclass
class JobTrack:
    """What ftwatch remembers of one non-terminal job for progress, stalls and ETA."""

    status: str
    #: When the current status began: the API's ``created_at`` for a new job still validating
    #: or queued, else when ftwatch first saw the status.
    status_since: float
    #: Whether entries found on the first read are announced (a job new after the baseline)
    #: or only mark where the next read stops (a job already there).
    announce: bool = False
    last_event_id: str | None = None
    last_checkpoint_id: str | None = None
    read_at: float | None = None
    #: The highest metrics ``step`` seen, and when (API time) metrics last came.
    step: int | None = None
    metrics_at: float | None = None
    #: The last progress sent: when (observed), its percent and step.
    sent_at: float | None = None
    sent_percent: float | None = None
    sent_step: int | None = None
    #: The newest progress held back by the throttle (event fields), sent before a terminal one.
    pending: dict[str, Any] | None = None
    #: The stall announced and not yet over: reason, since, threshold.
    stall: dict[str, Any] | None = None
    #: The ``estimated_finish`` last announced (or first seen).
    eta: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The track as plain JSON data, for the state."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobTrack:
        """A track from :meth:`to_json`'s data; unknown keys (a newer ftwatch's) are dropped."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _number(value: Any) -> float | None:
    """A finite float from a number or a numeric string; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def parse_metrics(record: JobEventRecord, *, source: str, job_id: str) -> dict[str, Any] | None:
    """A metrics entry's fields (``step``, ``total_steps``, losses...), or None to skip it.

    The API types ``data`` loosely: a missing or unreadable ``step`` skips the entry (one
    debug line), an unreadable metric is left out, unknown keys are ignored.
    """
    data = record.data or {}
    step = _number(data.get("step"))
    if step is None or step < 0:
        log.debug("metrics_skipped", source=source, job_id=job_id, api_event=record.id, why="step")
        return None
    out: dict[str, Any] = {"step": int(step), "api_event_id": record.id}
    total = _number(data.get("total_steps"))
    if total is not None and total > 0:
        out["total_steps"] = int(total)
        out["percent"] = round(min(100.0, 100.0 * step / total), 2)
    for name in METRIC_FIELDS:
        value = _number(data.get(name))
        if value is not None:
            out[name] = value
    return out


def throttle_allows(track: JobTrack, fields: dict[str, Any], now: float, rules: Rules) -> bool:
    """Whether a progress with ``fields`` may be sent now, given the last one sent."""
    if track.sent_at is None:
        return True
    if rules.every_seconds is not None and now - track.sent_at >= rules.every_seconds:
        return True
    percent = fields.get("percent")
    if rules.every_percent is not None:
        if percent is None:
            return True  # no total to measure against: one per read (progress_interval)
        return float(percent) - (track.sent_percent or 0.0) >= rules.every_percent
    return False


def mark_sent(track: JobTrack, fields: dict[str, Any], now: float) -> None:
    """Remember that a progress with ``fields`` was sent."""
    track.sent_at = now
    track.sent_percent = fields.get("percent")
    track.sent_step = fields.get("step")
    track.pending = None


def progress_event(
    fields: dict[str, Any], job: FineTuningJob, *, source: str, now: float, link: str | None
) -> JobProgress:
    """The progress event of one metrics entry (its id from the API event's id)."""
    return JobProgress(
        id=event_id(source, job.id, "progress", fields.get("api_event_id")),
        source=source,
        observed_at=now,
        job=job,
        dashboard_url=link,
        estimated_finish=job.estimated_finish,
        **fields,
    )


def note_status(track: JobTrack, status: str, now: float) -> bool:
    """Record the job's status seen at ``now``; return whether it changed (its clock restarts)."""
    if status == track.status:
        return False
    track.status = status
    track.status_since = now
    return True


def note_metrics(track: JobTrack, step: int, at: float) -> bool:
    """Record a metrics entry; False (and nothing recorded) when it is not newer than the last."""
    if track.step is not None and step <= track.step:
        return False
    track.step = step
    track.metrics_at = at
    return True


def _stamp(seconds: Any) -> str:
    """A time as an id part, spelt the same after a round trip through JSON."""
    return f"{float(seconds):.3f}"


def check_stall(
    track: JobTrack,
    job: FineTuningJob,
    *,
    now: float,
    rules: Rules,
    source: str,
    link: str | None = None,
) -> list[BaseEvent]:
    """The stall or unstall ``job`` shows now, updating ``track``; call after each observation.

    A stall is announced once (its id from job, status, reason and start) and followed by an
    unstall when the status changes, new metrics come, or the job ends.
    """
    events: list[BaseEvent] = []
    reason = None if job.is_terminal else _STALL_REASON.get(job.status)
    since = track.status_since
    if reason == "no_progress" and track.metrics_at is not None:
        since = max(since, track.metrics_at)
    stall = track.stall
    if stall is not None and (stall["reason"] != reason or stall["since"] != since):
        events.append(
            JobUnstalled(
                id=event_id(source, job.id, "unstalled", stall["reason"], _stamp(stall["since"])),
                source=source,
                observed_at=now,
                job=job,
                dashboard_url=link,
                reason=stall["reason"],
                since=stall["since"],
                stalled_for=max(0.0, now - float(stall["since"])),
            )
        )
        track.stall = stall = None
    if reason is None or stall is not None:
        return events
    threshold = rules.threshold(reason)
    if threshold is not None and now - since >= threshold:
        events.append(
            JobStalled(
                id=event_id(source, job.id, "stalled", job.status, reason, _stamp(since)),
                source=source,
                observed_at=now,
                job=job,
                dashboard_url=link,
                reason=reason,
                since=since,
                threshold=threshold,
            )
        )
        track.stall = {"reason": reason, "since": since, "threshold": threshold}
    return events


def check_eta(
    track: JobTrack,
    job: FineTuningJob,
    *,
    now: float,
    rules: Rules,
    source: str,
    link: str | None = None,
) -> list[BaseEvent]:
    """An ETA change when ``estimated_finish`` moved past both thresholds since the last one."""
    new = job.estimated_finish
    if new is None or job.status != "running":
        return []
    old = track.eta
    if old is None:
        track.eta = new  # the first one seen is the reference, not a change
        return []
    shift = float(new - old)
    remaining = max(float(old) - now, 0.0)
    if abs(shift) < rules.eta_shift or abs(shift) < rules.eta_shift_ratio * remaining:
        return []
    track.eta = new
    return [
        JobEtaChanged(
            id=event_id(source, job.id, "eta", old, new),
            source=source,
            observed_at=now,
            job=job,
            dashboard_url=link,
            previous_estimated_finish=old,
            estimated_finish=new,
            shift=shift,
        )
    ]
