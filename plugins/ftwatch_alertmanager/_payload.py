"""Alertmanager's alerts for ftwatch's: labels that name an alert for life, annotations for people.

Alertmanager identifies an alert by its label set, so the labels an alert fires with are the
labels it must keep until it resolves: the sink remembers them (:class:`Held`) and resolves with
the same set. ``status`` is the job's status when the alert fired (a stall's status is the one
the job stalled in). Annotations (``summary``, ``description``, ``alert_key``) and
``generatorURL`` (the dashboard link) may change at every post without making a new alert.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from watcher.alerts import Action, Alert, Condition
from watcher.events import BaseEvent, JobUnstalled
from watcher.facts import dashboard_link, facts, fit, is_test, long_text, one_line, summary

from ._config import AlertmanagerConfig

__all__ = ["Held", "held_for", "resolve_variants", "test_alert", "timestamp"]

#: Per condition, the ``alertname`` when the config gives none.
DEFAULT_ALERTNAMES: Final = {
    Condition.FAILED: "FineTuningJobFailed",
    Condition.STALLED: "FineTuningJobStalled",
    Condition.CANCELLED: "FineTuningJobCancelled",
    Condition.SUCCEEDED: "FineTuningJobSucceeded",
}
#: The ``alertname`` of ``ftwatch sinks test``'s sample when the config gives none.
TEST_ALERTNAME: Final = "FineTuningWatchTest"
#: How long the sample of ``ftwatch sinks test`` stays listed: it is never kept alive.
TEST_ALERT_SECONDS: Final = 300.0
#: The status a stall of each reason happened in (a stall's ``status`` label).
STALL_STATUS: Final = {
    "validating_too_long": "validating_files",
    "queued_too_long": "queued",
    "no_progress": "running",
}
# Our own caps: an annotation is for a notification, not a document.
_SUMMARY_MAX: Final = 1024
_DESCRIPTION_MAX: Final = 4096


def timestamp(seconds: float) -> str:
    """RFC 3339 in UTC with milliseconds, as Alertmanager's API writes its own."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Held:
    """One alert as the sink posts it: what it keeps in its state file while the alert fires."""

    #: ``str(AlertKey)``: ``ftwatch/<source>/<job>/<condition>``.
    key: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float
    generator_url: str | None = None
    #: When the alert resolves by itself (a failed job's), else None: held until resolved.
    expires_at: float | None = None

    def body(self, ends_at: float) -> dict[str, Any]:
        """The alert as ``POST /api/v2/alerts`` takes it, ending at ``ends_at``."""
        found: dict[str, Any] = {
            "labels": self.labels,
            "annotations": self.annotations,
            "startsAt": timestamp(self.starts_at),
            # Alertmanager refuses an end before the start.
            "endsAt": timestamp(max(ends_at, self.starts_at)),
        }
        if self.generator_url:
            found["generatorURL"] = self.generator_url
        return found

    def to_json(self) -> dict[str, Any]:
        """The state file's record of this alert."""
        return {
            "key": self.key,
            "labels": self.labels,
            "annotations": self.annotations,
            "starts_at": self.starts_at,
            "generator_url": self.generator_url,
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_json(cls, data: Any) -> Held:
        """Read one record back; raises ValueError (or TypeError) when it is not one."""
        labels, annotations = data["labels"], data["annotations"]
        if not all(isinstance(v, str) for v in (*labels.values(), *annotations.values())):
            raise ValueError("labels and annotations hold text only")
        expires = data.get("expires_at")
        url = data.get("generator_url")
        return cls(
            key=str(data["key"]),
            labels={str(k): v for k, v in labels.items()},
            annotations={str(k): v for k, v in annotations.items()},
            starts_at=float(data["starts_at"]),
            generator_url=None if url is None else str(url),
            expires_at=None if expires is None else float(expires),
        )


def _description(event: BaseEvent) -> str:
    lines = [f"{label}: {value}" for label, value in facts(event)]
    text = long_text(event)
    if text is not None:
        lines.append(f"{text[0]}: {text[1]}")
    return fit("\n".join(lines), _DESCRIPTION_MAX)


def _labels(
    config: AlertmanagerConfig, event: BaseEvent, condition: str, severity: str, status: str
) -> dict[str, str]:
    job = event.job
    name = config.alertname
    if name is None:
        names = {c.value: n for c, n in DEFAULT_ALERTNAMES.items()}
        name = names.get(condition, TEST_ALERTNAME)
    labels = {
        **config.labels,
        "alertname": name,
        "source": event.source,
        "job": job.id,
        "model": job.model or "",
        "suffix": job.user_provided_suffix or "",
        "status": status,
        "condition": condition,
        "severity": severity,
    }
    # Alertmanager drops a label with an empty value; leaving it out keeps our record the same.
    return {k: v for k, v in labels.items() if v}


def held_for(config: AlertmanagerConfig, alert: Alert) -> Held:
    """What ``alert`` posts when it fires (or is noticed) now."""
    event = alert.event
    expires = None
    if alert.action is Action.FIRE and alert.condition is not Condition.STALLED:
        expires = alert.started_at + config.failed_resolve_after
    return Held(
        key=str(alert.key),
        labels=_labels(config, event, alert.condition.value, alert.severity, event.job.status),
        annotations={
            "summary": fit(alert.summary(), _SUMMARY_MAX),
            "description": _description(event),
            "alert_key": str(alert.key),
        },
        starts_at=alert.started_at,
        generator_url=dashboard_link(event),
        expires_at=expires,
    )


def resolve_variants(config: AlertmanagerConfig, alert: Alert) -> list[Held]:
    """Every label set ``alert`` may have fired with, for a resolve the sink holds no record of.

    Only a stall's ``status`` label is in doubt: an ``unstalled`` event names the stall's
    reason, a job's end does not, so the end resolves a stall in each status it could have been
    in. A resolve for an alert that never fired is harmless in Alertmanager.
    """
    base = held_for(config, alert)
    if alert.condition is not Condition.STALLED:
        return [base]
    event = alert.event
    if isinstance(event, JobUnstalled) and event.reason in STALL_STATUS:
        statuses = [STALL_STATUS[event.reason]]
    else:
        statuses = list(STALL_STATUS.values())
    return [replace(base, labels={**base.labels, "status": status}) for status in statuses]


def test_alert(config: AlertmanagerConfig, event: BaseEvent, now: float) -> dict[str, Any]:
    """``ftwatch sinks test``'s sample as one short alert, marked as a test in labels and text.

    It ends by itself after :data:`TEST_ALERT_SECONDS` and is never kept alive or remembered.
    """
    assert is_test(event)
    labels = _labels(config, event, "test", "info", event.job.status)
    labels["test"] = "true"
    held = Held(
        key=f"ftwatch/{event.source}/{event.job.id}/test",
        labels=labels,
        annotations={
            "summary": fit(one_line(summary(event)), _SUMMARY_MAX),
            "description": "A test alert from `ftwatch sinks test`; no job changed.\n"
            + _description(event),
        },
        starts_at=now,
        generator_url=dashboard_link(event),
    )
    return held.body(now + TEST_ALERT_SECONDS)
