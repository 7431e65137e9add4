"""The alert model: ftwatch's events as alerts that fire and resolve, for the on-call sinks.

Alertmanager and PagerDuty think in alerts that open and close, not in a stream of news. An
:class:`Alert` has a stable :class:`AlertKey`, (source, job id, condition), so that a restart,
a replayed event or a second replica never opens a second incident for the same thing:

==============  =====================================  ==========================================
condition       fires on                               resolves on
==============  =====================================  ==========================================
``failed``      ``fine_tuning.job.failed``             never by itself: the on-call tool decides
                                                       (PagerDuty: a person; Alertmanager: after
                                                       the sink's ``failed_resolve_after``)
``stalled``     ``fine_tuning.job.stalled``            ``unstalled``, or the job's end
``cancelled``   ``fine_tuning.job.cancelled``, only    like ``failed``
                with ``alert_on_cancelled = true``
==============  =====================================  ==========================================

``succeeded`` is an info *notice* rather than an alert (PagerDuty's change events), sent only
with ``notify_succeeded = true``. Every other event type maps to nothing. A resolve for an alert
that was never fired is harmless in both tools, so a sink need not remember what it fired.

Severities per condition are config (:class:`AlertingConfig`), defaults in
:data:`DEFAULT_SEVERITY`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import Field

from .events import BaseEvent, JobStalled, JobUnstalled
from .facts import dashboard_link, long_text, one_line, summary
from .sinks import SinkConfig

__all__ = [
    "DEFAULT_SEVERITY",
    "KEY_MAX",
    "Action",
    "Alert",
    "AlertKey",
    "AlertingConfig",
    "Condition",
    "Severity",
    "alerts_for",
]

#: The longest key an alert carries (PagerDuty's ``dedup_key`` limit).
KEY_MAX: Final = 255


class Condition(StrEnum):
    """What an alert is about."""

    FAILED = "failed"
    STALLED = "stalled"
    CANCELLED = "cancelled"
    #: Only ever a notice, never an alert that stays open.
    SUCCEEDED = "succeeded"


class Action(StrEnum):
    """What a sink does with an :class:`Alert`."""

    #: Open the alert (or keep it open: firing again is idempotent by key).
    FIRE = "fire"
    #: Close it; harmless when it was never opened.
    RESOLVE = "resolve"
    #: An informational notice that opens nothing (PagerDuty's change event).
    NOTICE = "notice"


#: PagerDuty's severities, which Alertmanager labels take as they are.
Severity = Literal["critical", "error", "warning", "info"]

#: The severity of each condition unless the sink's ``severity`` table says otherwise.
DEFAULT_SEVERITY: Final[dict[Condition, Severity]] = {
    Condition.FAILED: "error",
    Condition.STALLED: "warning",
    Condition.CANCELLED: "info",
    Condition.SUCCEEDED: "info",
}


@dataclass(frozen=True)
class AlertKey:
    """The stable identity of an alert: the same job, source and condition, the same key."""

    source: str
    job_id: str
    condition: Condition

    def __str__(self) -> str:
        text = f"ftwatch/{self.source}/{self.job_id}/{self.condition.value}"
        if len(text) <= KEY_MAX:
            return text
        # Still deterministic when a source or job id is absurdly long: a readable head and a
        # digest of the whole.
        digest = hashlib.sha256(text.encode()).hexdigest()[:32]
        return f"{text[: KEY_MAX - len(digest) - 1]}~{digest}"


@dataclass(frozen=True)
class Alert:
    """One thing an alerting sink does for one event: fire, resolve or notice an alert."""

    key: AlertKey
    action: Action
    severity: Severity
    #: The event this alert comes from (its job snapshot, source, dashboard link).
    event: BaseEvent

    @property
    def condition(self) -> Condition:
        """The condition of the alert's key."""
        return self.key.condition

    @property
    def started_at(self) -> float:
        """When the condition began: a stall's ``since``, else when the event was seen."""
        if isinstance(self.event, JobStalled | JobUnstalled):
            return self.event.since
        finished = self.event.job.finished_at
        if self.condition is not Condition.STALLED and finished is not None:
            return float(finished)
        return self.event.observed_at

    def summary(self) -> str:
        """The one-line summary of the alert (a sink cuts it to its tool's limit)."""
        if self.action is Action.RESOLVE and self.condition is Condition.STALLED:
            job = self.event.job
            return one_line(f"Fine-tuning job {job.id} is no longer stalled ({job.status})")
        return summary(self.event)

    def details(self) -> dict[str, Any]:
        """The facts an on-call person wants in the incident, as plain JSON-ready data."""
        event, job = self.event, self.event.job
        found: dict[str, Any] = {
            "job": job.id,
            "source": event.source,
            "status": job.status,
            "condition": self.condition.value,
            "event_id": event.id,
            "event_type": event.type,
        }
        optional = {
            "model": job.model,
            "suffix": job.user_provided_suffix,
            "fine_tuned_model": job.fine_tuned_model,
            "dashboard_url": dashboard_link(event),
        }
        found.update({k: v for k, v in optional.items() if v})
        if job.failure is not None and job.failure.code:
            found["error_code"] = job.failure.code
        text = long_text(event)
        if text is not None:
            found["error" if event.type == "fine_tuning.job.failed" else "message"] = text[1]
        if isinstance(event, JobStalled):
            found.update(reason=event.reason, since=event.since, threshold=event.threshold)
        if isinstance(event, JobUnstalled):
            found.update(reason=event.reason, since=event.since, stalled_for=event.stalled_for)
        return found


class AlertingConfig(SinkConfig):
    """The keys every alerting sink shares on top of :class:`~watcher.sinks.SinkConfig`.

    ``severity`` maps a condition to ``critical``, ``error``, ``warning`` or ``info`` (defaults
    in :data:`DEFAULT_SEVERITY`); ``alert_on_cancelled`` opens an alert for a cancelled job;
    ``notify_succeeded`` sends an info notice for a job that succeeded.
    """

    severity: dict[Condition, Severity] = Field(default_factory=dict)
    alert_on_cancelled: bool = Field(default=False, strict=True)
    notify_succeeded: bool = Field(default=False, strict=True)

    def severity_of(self, condition: Condition) -> Severity:
        """The configured severity of ``condition``, else its default."""
        return self.severity.get(condition, DEFAULT_SEVERITY[condition])

    def alerts_for(self, event: BaseEvent) -> list[Alert]:
        """What ``event`` means for the alerts of its job, in the order to send them."""
        return alerts_for(
            event,
            severity=self.severity_of,
            cancelled=self.alert_on_cancelled,
            succeeded=self.notify_succeeded,
        )


def alerts_for(
    event: BaseEvent,
    *,
    severity: Callable[[Condition], Severity] | None = None,
    cancelled: bool = False,
    succeeded: bool = False,
) -> list[Alert]:
    """The alerts ``event`` fires, resolves or notices, in order (often none).

    ``severity`` is a callable from :class:`Condition` to a severity (default
    :data:`DEFAULT_SEVERITY`); ``cancelled`` and ``succeeded`` turn on the optional alert for a
    cancelled job and the notice for a succeeded one. A job's end resolves its stall, since a job
    that ended is not stuck, whether or not an ``unstalled`` event came first.
    """
    rate = severity if severity is not None else DEFAULT_SEVERITY.__getitem__

    def alert(condition: Condition, action: Action) -> Alert:
        key = AlertKey(event.source, event.job.id, condition)
        return Alert(key=key, action=action, severity=rate(condition), event=event)

    match event.type:
        case "fine_tuning.job.stalled":
            return [alert(Condition.STALLED, Action.FIRE)]
        case "fine_tuning.job.unstalled":
            return [alert(Condition.STALLED, Action.RESOLVE)]
        case "fine_tuning.job.failed":
            return [alert(Condition.STALLED, Action.RESOLVE), alert(Condition.FAILED, Action.FIRE)]
        case "fine_tuning.job.cancelled":
            found = [alert(Condition.STALLED, Action.RESOLVE)]
            if cancelled:
                found.append(alert(Condition.CANCELLED, Action.FIRE))
            return found
        case "fine_tuning.job.succeeded":
            found = [alert(Condition.STALLED, Action.RESOLVE)]
            if succeeded:
                found.append(alert(Condition.SUCCEEDED, Action.NOTICE))
            return found
        case _:
            return []
