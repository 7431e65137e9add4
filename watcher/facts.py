"""What a person reads about an event, in plain text, for every sink that writes for people.

Slack, Teams, Discord and email each render the same facts in their own markup: a title, a
one-line summary, short labelled facts (job, base model, suffix, status change, result or error
code, how long the job queued and ran, source), a longer text (the error or the API's message),
a dashboard link and an outcome that picks a colour. Keeping the wording here means a job reads
the same in every channel, and a sink only escapes and lays it out.

A test event (``ftwatch sinks test``, marked ``metadata.ftwatch_test = "true"``) says so first,
so nobody mistakes it for a real job's news.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal
from urllib.parse import urlsplit

from .events import BaseEvent, JobMessage, JobStalled, JobUnstalled

__all__ = [
    "CODE_LABELS",
    "ELLIPSIS",
    "TEST_MARK",
    "Fact",
    "Outcome",
    "dashboard_link",
    "emoji",
    "facts",
    "fit",
    "human_duration",
    "is_test",
    "long_text",
    "one_line",
    "outcome",
    "queued_for",
    "ran_for",
    "status_change",
    "summary",
    "title",
]

#: What a text cut to fit a limit ends with.
ELLIPSIS: Final = "…"

#: What a test event's title and summary start with, in place of the status emoji.
TEST_MARK: Final = "🧪 Test from ftwatch:"

#: How an event reads at a glance: a sink maps it to a colour or an icon.
Outcome = Literal["good", "bad", "warning", "neutral"]

#: One labelled fact: ``("Base model", "gpt-4o-mini")``.
Fact = tuple[str, str]

_EMOJI: Final = {
    "fine_tuning.job.created": "🆕",
    "fine_tuning.job.status_changed": "🔄",
    "fine_tuning.job.succeeded": "✅",
    "fine_tuning.job.failed": "❌",
    "fine_tuning.job.cancelled": "🚫",
    "fine_tuning.job.stalled": "⏳",
    "fine_tuning.job.unstalled": "▶️",
    "fine_tuning.job.message": "⚠️",
    "fine_tuning.job.progress": "📈",
    "fine_tuning.job.checkpoint_created": "💾",
    "fine_tuning.job.eta_changed": "🕒",
}
_DEFAULT_EMOJI: Final = "🔔"

#: How a stall reads, by its reason.
_STALL_WORDS: Final = {
    "queued_too_long": "stuck in queue",
    "validating_too_long": "stuck validating files",
    "no_progress": "making no progress",
}

_OUTCOMES: Final[dict[str, Outcome]] = {
    "fine_tuning.job.succeeded": "good",
    "fine_tuning.job.unstalled": "good",
    "fine_tuning.job.failed": "bad",
    "fine_tuning.job.cancelled": "warning",
    "fine_tuning.job.stalled": "warning",
}

#: The longest dashboard link a message carries; a longer one is left out rather than cut.
_URL_MAX: Final = 3000


def is_test(event: BaseEvent) -> bool:
    """Whether ``event`` is ``ftwatch sinks test``'s sample rather than a real job's change."""
    return (event.job.metadata or {}).get("ftwatch_test") == "true"


def emoji(event: BaseEvent) -> str:
    """The mark a message starts with: the type's emoji, or :data:`TEST_MARK` for a test."""
    # A test's sample is a success: its ✅ alone would read as real news in the channel.
    return TEST_MARK if is_test(event) else _EMOJI.get(event.type, _DEFAULT_EMOJI)


def title(event: BaseEvent) -> str:
    """What happened, in words: ``Fine-tuning job failed``, ``... stuck in queue for 4h 10m``."""
    match event.type:
        case "fine_tuning.job.created":
            return "New fine-tuning job"
        case "fine_tuning.job.status_changed":
            return f"Fine-tuning job is now {event.job.status}"
        case "fine_tuning.job.succeeded":
            return "Fine-tuning job succeeded"
        case "fine_tuning.job.failed":
            return "Fine-tuning job failed"
        case "fine_tuning.job.cancelled":
            return "Fine-tuning job cancelled"
        case "fine_tuning.job.stalled" if isinstance(event, JobStalled):
            words = _STALL_WORDS.get(event.reason, event.reason.replace("_", " "))
            return f"Fine-tuning job {words} for {human_duration(event.observed_at - event.since)}"
        case "fine_tuning.job.unstalled":
            return "Fine-tuning job moving again"
        case "fine_tuning.job.message" if isinstance(event, JobMessage):
            return "Fine-tuning job error" if event.level == "error" else "Fine-tuning job warning"
        case other:
            # A type added later still reads as words rather than a wire name.
            return "Fine-tuning job: " + other.rsplit(".", 1)[-1].replace("_", " ")


def outcome(event: BaseEvent) -> Outcome:
    """How the event reads at a glance: ``good``, ``bad``, ``warning`` or ``neutral``."""
    if isinstance(event, JobMessage):
        return "bad" if event.level == "error" else "warning"
    return _OUTCOMES.get(event.type, "neutral")


def human_duration(seconds: float) -> str:
    """Render seconds the way a person says them: ``45s``, ``4m 12s``, ``1h 03m``, ``2d 05h``."""
    total = int(max(0.0, seconds) + 0.5)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def queued_for(event: BaseEvent) -> float | None:
    """Seconds from the job's creation (or first sight queued) until it was first seen running."""
    running = event.timeline.get("running")
    if running is None:
        return None
    created = event.job.created_at
    start = float(created) if created is not None else event.timeline.get("queued")
    if start is None or running < start:
        return None
    return running - start


def ran_for(event: BaseEvent) -> float | None:
    """Seconds from first sight running until the job finished (or this event, if it has not).

    None while the job is still running (the time so far would always read ``0s``) and when it
    was never seen running.
    """
    running = event.timeline.get("running")
    if running is None or event.job.status == "running":
        return None
    finished = event.job.finished_at
    end = float(finished) if finished is not None else event.observed_at
    return end - running if end >= running else None


def one_line(text: str) -> str:
    """``text`` with every run of whitespace, newlines included, made one space."""
    return " ".join(text.split())


def fit(text: str, limit: int, render: Callable[[str], str] = str) -> str:
    """``render(text)``, or ``render`` of the longest prefix of ``text`` that fits with ``…``.

    ``render`` escapes or decorates, so the limit applies to what the receiver gets; cutting the
    raw text rather than the rendered one never splits an escape such as ``&amp;`` in half.
    Rendering must never shorten text.
    """
    whole = render(text)
    if len(whole) <= limit:
        return whole
    # Rendering never shortens text, so no prefix longer than the limit can fit.
    lo, hi = 0, min(len(text), limit)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(render(text[:mid].rstrip()) + ELLIPSIS) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return render(text[:lo].rstrip()) + ELLIPSIS


def status_change(event: BaseEvent) -> str:
    """``running → succeeded`` when the status changed, else the status alone."""
    if event.previous_status is not None and event.previous_status != event.job.status:
        return f"{event.previous_status} → {event.job.status}"
    return event.job.status


def facts(event: BaseEvent) -> list[Fact]:
    """The short labelled facts of ``event``, most important first, as plain text.

    Values that are identifiers (job, model names, error codes) are marked by their labels
    (:data:`CODE_LABELS`) so that a sink may set them in code style.
    """
    job = event.job
    found: list[Fact] = [("Job", job.id)]
    if job.model:
        found.append(("Base model", job.model))
    if job.user_provided_suffix:
        found.append(("Suffix", job.user_provided_suffix))
    found.append(("Status", status_change(event)))
    if isinstance(event, JobStalled):
        found.append(("Stalled since", human_duration(event.observed_at - event.since)))
        found.append(("Threshold", human_duration(event.threshold)))
    if isinstance(event, JobUnstalled):
        found.append(("Was stalled for", human_duration(event.stalled_for)))
    if event.type == "fine_tuning.job.succeeded":
        if job.fine_tuned_model:
            found.append(("Fine-tuned model", job.fine_tuned_model))
        if job.trained_tokens is not None:
            found.append(("Trained tokens", f"{job.trained_tokens:,}"))
    failure = job.failure
    if event.type == "fine_tuning.job.failed" and failure is not None:
        if failure.code:
            found.append(("Error code", failure.code))
        if failure.param:
            found.append(("Parameter", failure.param))
    queued = queued_for(event)
    if queued is not None:
        found.append(("Queued for", human_duration(queued)))
    ran = ran_for(event)
    if ran is not None:
        found.append(("Ran for", human_duration(ran)))
    if event.source:
        found.append(("Source", event.source))
    return found


#: The labels of :func:`facts` whose values are identifiers, best shown in code style.
CODE_LABELS: Final = frozenset(
    {"Job", "Base model", "Suffix", "Fine-tuned model", "Error code", "Parameter", "Source"}
)


def long_text(event: BaseEvent) -> tuple[str, str] | None:
    """The longer text worth showing whole, with its label: the error message or API message."""
    if isinstance(event, JobMessage) and event.message:
        return f"Message ({event.level})", event.message
    failure = event.job.failure
    if event.type == "fine_tuning.job.failed" and failure is not None and failure.message:
        return "Error message", failure.message
    return None


def summary(event: BaseEvent) -> str:
    """One plain line that says it all: ``❌ Fine-tuning job failed: ftjob-abc (x): code: why``."""
    job = event.job
    who = job.id + (f" ({job.user_provided_suffix})" if job.user_provided_suffix else "")
    line = f"{emoji(event)} {title(event)}: {who}"
    if event.type == "fine_tuning.job.succeeded" and job.fine_tuned_model:
        line += f" → {job.fine_tuned_model}"
    elif event.type == "fine_tuning.job.failed" and job.failure is not None:
        failure = job.failure
        line += ": " + ": ".join(p for p in (failure.code, failure.message) if p)
    elif isinstance(event, JobMessage):
        line += ": " + event.message
    elif isinstance(event, JobStalled):
        line += f" ({job.status})"
    elif event.previous_status is not None and event.previous_status != job.status:
        line += f" ({event.previous_status} → {job.status})"
    return one_line(line)


def dashboard_link(event: BaseEvent) -> str | None:
    """The event's dashboard URL when it is a plain http(s) link a message may carry, else None."""
    url = event.dashboard_url
    if not url or len(url) > _URL_MAX:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return url
