"""Block Kit messages for fine-tuning events: what a person reads in the channel at a glance.

A message is a header (an emoji per event type and what happened), a section of short fields
(job, base model, suffix, status change, result or error code, how long the job queued and ran,
source), the error message when the job failed, a button to the provider's dashboard when the
event has a link, and a context line with the event id and when it was seen. A test event
(``ftwatch sinks test``, marked ``metadata.ftwatch_test = "true"``) says so first in its header
and its fallback text, so nobody mistakes it for a real job's news. Every text obeys
Slack's limits, and every value that comes from the API is escaped, so that an error message
holding ``<!channel>`` cannot ping a channel.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from watcher.events import BaseEvent, JobMessage, JobStalled, JobUnstalled

__all__ = [
    "FALLBACK_TEXT_MAX",
    "FIELDS_MAX",
    "FIELD_TEXT_MAX",
    "HEADER_TEXT_MAX",
    "SECTION_TEXT_MAX",
    "TEST_MARK",
    "build_message",
    "fallback_text",
    "human_duration",
    "queued_for",
    "ran_for",
]

#: Slack's limits on Block Kit texts, in characters (https://api.slack.com/reference/block-kit).
HEADER_TEXT_MAX: Final = 150
SECTION_TEXT_MAX: Final = 3000
FIELDS_MAX: Final = 10
FIELD_TEXT_MAX: Final = 2000
_BUTTON_TEXT_MAX: Final = 75
_URL_MAX: Final = 3000
#: Our own cap on the notification text: one line someone reads on a lock screen.
FALLBACK_TEXT_MAX: Final = 300

_ELLIPSIS: Final = "…"

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
#: How a stall reads, by its reason.
_STALL_WORDS: Final = {
    "queued_too_long": "stuck in queue",
    "validating_too_long": "stuck validating files",
    "no_progress": "making no progress",
}
_DEFAULT_EMOJI: Final = "🔔"

#: What a test event's header and fallback text start with, in place of the status emoji.
TEST_MARK: Final = "🧪 Test from ftwatch:"


def _is_test(event: BaseEvent) -> bool:
    """Whether ``event`` is ``ftwatch sinks test``'s sample rather than a real job's change."""
    return (event.job.metadata or {}).get("ftwatch_test") == "true"


def _lead(event: BaseEvent) -> str:
    # A test's sample is a success: its ✅ alone would read as real news in the channel.
    return TEST_MARK if _is_test(event) else _EMOJI.get(event.type, _DEFAULT_EMOJI)


def _title(event: BaseEvent) -> str:
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


def _escape(text: str) -> str:
    # The three characters Slack's mrkdwn gives a meaning to (links, mentions, entities).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _code(text: str) -> str:
    # A backtick inside would end the code span early.
    return "`" + _escape(text.replace("`", "'")) + "`"


def _quote(text: str) -> str:
    lines = text.splitlines() or [""]
    # The quote marker is a literal ">" at the start of each line; the text after it is escaped.
    return "\n".join("> " + _escape(line) for line in lines)


def _fit(text: str, limit: int, render: Callable[[str], str]) -> str:
    """``render(text)``, or ``render`` of the longest prefix of ``text`` that fits with ``…``.

    ``render`` escapes or decorates, so the limit applies to what Slack receives; cutting the raw
    text rather than the rendered one never splits an ``&amp;`` in half.
    """
    whole = render(text)
    if len(whole) <= limit:
        return whole
    # Rendering never shortens text, so no prefix longer than the limit can fit.
    lo, hi = 0, min(len(text), limit)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(render(text[:mid].rstrip()) + _ELLIPSIS) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return render(text[:lo].rstrip()) + _ELLIPSIS


def _field(label: str, value: str, render: Callable[[str], str] = _escape) -> dict[str, Any]:
    head = f"*{label}*\n"
    return {"type": "mrkdwn", "text": head + _fit(value, FIELD_TEXT_MAX - len(head), render)}


def _status_change(event: BaseEvent) -> str:
    if event.previous_status is not None and event.previous_status != event.job.status:
        return f"{event.previous_status} → {event.job.status}"
    return event.job.status


def _fields(event: BaseEvent) -> list[dict[str, Any]]:
    job = event.job
    fields = [_field("Job", job.id, _code)]
    if job.model:
        fields.append(_field("Base model", job.model, _code))
    if job.user_provided_suffix:
        fields.append(_field("Suffix", job.user_provided_suffix, _code))
    fields.append(_field("Status", _status_change(event)))
    if isinstance(event, JobStalled):
        fields.append(_field("Stalled since", human_duration(event.observed_at - event.since)))
        fields.append(_field("Threshold", human_duration(event.threshold)))
    if isinstance(event, JobUnstalled):
        fields.append(_field("Was stalled for", human_duration(event.stalled_for)))
    if event.type == "fine_tuning.job.succeeded":
        if job.fine_tuned_model:
            fields.append(_field("Fine-tuned model", job.fine_tuned_model, _code))
        if job.trained_tokens is not None:
            fields.append(_field("Trained tokens", f"{job.trained_tokens:,}"))
    failure = job.failure
    if event.type == "fine_tuning.job.failed" and failure is not None:
        if failure.code:
            fields.append(_field("Error code", failure.code, _code))
        if failure.param:
            fields.append(_field("Parameter", failure.param, _code))
    queued = queued_for(event)
    if queued is not None:
        fields.append(_field("Queued for", human_duration(queued)))
    ran = ran_for(event)
    if ran is not None:
        fields.append(_field("Ran for", human_duration(ran)))
    if event.source:
        fields.append(_field("Source", event.source, _code))
    return fields[:FIELDS_MAX]


def _error_section(event: BaseEvent) -> dict[str, Any] | None:
    failure = event.job.failure
    if isinstance(event, JobMessage) and event.message:
        head, message = f"*Message ({event.level})*\n", event.message
    elif event.type != "fine_tuning.job.failed" or failure is None or not failure.message:
        return None
    else:
        head, message = "*Error message*\n", failure.message
    text = head + _fit(message, SECTION_TEXT_MAX - len(head), _quote)
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _dashboard_button(event: BaseEvent) -> dict[str, Any] | None:
    url = event.dashboard_url
    if not url or len(url) > _URL_MAX:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    button = {
        "type": "button",
        "text": {"type": "plain_text", "text": "Open in dashboard"[:_BUTTON_TEXT_MAX]},
        "url": url,
        "action_id": "ftwatch_open_dashboard",
    }
    return {"type": "actions", "elements": [button]}


def _context(event: BaseEvent) -> dict[str, Any]:
    seen = int(event.observed_at)
    fallback = datetime.fromtimestamp(seen, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    # Slack renders <!date^...> in each reader's own time zone; the text after | is the fallback.
    when = f"<!date^{seen}^{{date_short_pretty}} at {{time_secs}}|{fallback}>"
    test = "a test message, no job changed · " if _is_test(event) else ""
    text = f"ftwatch · {test}event {_code(event.id)} · seen {when}"
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def fallback_text(event: BaseEvent) -> str:
    """The one-line summary Slack shows in notifications and where blocks cannot be shown."""
    job = event.job
    who = job.id + (f" ({job.user_provided_suffix})" if job.user_provided_suffix else "")
    line = f"{_lead(event)} {_title(event)}: {who}"
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
    return _fit(_one_line(line), FALLBACK_TEXT_MAX, _escape)


def _header(event: BaseEvent) -> dict[str, Any]:
    suffix = event.job.user_provided_suffix
    text = f"{_lead(event)} {_title(event)}"
    if suffix:
        text += f" · {suffix}"
    # plain_text is shown as is: no mrkdwn, no mentions, so nothing to escape.
    text = _fit(_one_line(text), HEADER_TEXT_MAX, lambda s: s)
    return {"type": "header", "text": {"type": "plain_text", "text": text, "emoji": True}}


def build_message(event: BaseEvent) -> dict[str, Any]:
    """The Slack message for ``event``: ``text`` (the fallback line) and Block Kit ``blocks``.

    The same body suits an incoming webhook and ``chat.postMessage`` (which also needs
    ``channel``).
    """
    blocks: list[dict[str, Any]] = [
        _header(event),
        {"type": "section", "fields": _fields(event)},
    ]
    error = _error_section(event)
    if error is not None:
        blocks.append(error)
    button = _dashboard_button(event)
    if button is not None:
        blocks.append(button)
    blocks.append(_context(event))
    return {
        "text": fallback_text(event),
        "blocks": blocks,
        # A link in an error message is not worth a preview card.
        "unfurl_links": False,
        "unfurl_media": False,
    }
