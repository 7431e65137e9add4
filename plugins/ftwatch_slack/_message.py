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

from datetime import UTC, datetime
from typing import Any, Final

from watcher.events import BaseEvent
from watcher.facts import (
    CODE_LABELS,
    TEST_MARK,
    dashboard_link,
    emoji,
    facts,
    fit,
    human_duration,
    is_test,
    long_text,
    one_line,
    queued_for,
    ran_for,
    summary,
    title,
)

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
#: Our own cap on the notification text: one line someone reads on a lock screen.
FALLBACK_TEXT_MAX: Final = 300


def _escape(text: str) -> str:
    # The three characters Slack's mrkdwn gives a meaning to (links, mentions, entities).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: str) -> str:
    # A backtick inside would end the code span early.
    return "`" + _escape(text.replace("`", "'")) + "`"


def _quote(text: str) -> str:
    lines = text.splitlines() or [""]
    # The quote marker is a literal ">" at the start of each line; the text after it is escaped.
    return "\n".join("> " + _escape(line) for line in lines)


def _field(label: str, value: str) -> dict[str, Any]:
    head = f"*{label}*\n"
    render = _code if label in CODE_LABELS else _escape
    return {"type": "mrkdwn", "text": head + fit(value, FIELD_TEXT_MAX - len(head), render)}


def _fields(event: BaseEvent) -> list[dict[str, Any]]:
    return [_field(label, value) for label, value in facts(event)][:FIELDS_MAX]


def _error_section(event: BaseEvent) -> dict[str, Any] | None:
    found = long_text(event)
    if found is None:
        return None
    label, message = found
    head = f"*{label}*\n"
    text = head + fit(message, SECTION_TEXT_MAX - len(head), _quote)
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _dashboard_button(event: BaseEvent) -> dict[str, Any] | None:
    url = dashboard_link(event)
    if url is None:
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
    test = "a test message, no job changed · " if is_test(event) else ""
    text = f"ftwatch · {test}event {_code(event.id)} · seen {when}"
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def fallback_text(event: BaseEvent) -> str:
    """The one-line summary Slack shows in notifications and where blocks cannot be shown."""
    return fit(summary(event), FALLBACK_TEXT_MAX, _escape)


def _header(event: BaseEvent) -> dict[str, Any]:
    suffix = event.job.user_provided_suffix
    text = f"{emoji(event)} {title(event)}"
    if suffix:
        text += f" · {suffix}"
    # plain_text is shown as is: no mrkdwn, no mentions, so nothing to escape.
    text = fit(one_line(text), HEADER_TEXT_MAX)
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
