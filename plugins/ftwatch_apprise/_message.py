"""What an Apprise notification says: a title, a body and a type, from the shared event facts.

The wording is :mod:`watcher.facts`' (the same as the Slack message): the title is the event's
emoji and what happened, the body the one-line summary, the labelled facts, the error or API
message, the dashboard link and a footer with the event id. The type (``success``,
``failure``, ``warning``, ``info``) follows the event's outcome, so a service that colours or
prioritises by type does so. A test event (``ftwatch sinks test``) says so in its title, its
summary and its footer.

``text`` bodies go out as plain text (Apprise escapes them for services that take HTML);
``markdown`` bodies set identifiers in code style and escape everything that comes from the
API, so an error message can neither format nor inject HTML.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from watcher.events import BaseEvent
from watcher.facts import (
    CODE_LABELS,
    dashboard_link,
    emoji,
    facts,
    fit,
    is_test,
    long_text,
    one_line,
    outcome,
    summary,
    title,
)

__all__ = ["LONG_TEXT_MAX", "SUMMARY_MAX", "TITLE_MAX", "Notification", "build_notification"]

#: Our caps, in characters: a title and the summary line fit on a lock screen, and a long
#: error message (cut in the summary, longer below the facts) does not drown the facts.
#: Apprise splits or cuts a body further where a service needs it.
TITLE_MAX: Final = 250
SUMMARY_MAX: Final = 300
LONG_TEXT_MAX: Final = 2000

#: Apprise's notification types, by the event's outcome.
_TYPES: Final = {"good": "success", "bad": "failure", "warning": "warning", "neutral": "info"}

#: Characters with a meaning in Markdown, escaped with a backslash in values from the API.
_MARKDOWN_SPECIALS: Final = frozenset("\\`*_{}[]()#+-.!|~")


@dataclass(frozen=True)
class Notification:
    """One notification as Apprise's ``notify`` takes it."""

    title: str
    body: str
    #: ``success``, ``failure``, ``warning`` or ``info``.
    notify_type: str
    #: ``text`` or ``markdown``.
    body_format: str


def _escape(text: str) -> str:
    # HTML first, as entities: Apprise turns Markdown into HTML for some services, and the
    # Markdown converter passes raw HTML through.
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "".join("\\" + c if c in _MARKDOWN_SPECIALS else c for c in text)


def _code(text: str) -> str:
    # A backtick inside would end the code span early; entities are not decoded in code spans.
    return "`" + text.replace("`", "'") + "`"


def _quote(text: str) -> str:
    return "\n".join("> " + _escape(line) for line in text.splitlines() or [""])


def _title(event: BaseEvent) -> str:
    suffix = event.job.user_provided_suffix
    text = f"{emoji(event)} {title(event)}" + (f" · {suffix}" if suffix else "")
    # A title is plain text for every service: Apprise does not format it.
    return fit(one_line(text), TITLE_MAX)


def _text_body(event: BaseEvent) -> list[str]:
    lines = [fit(summary(event), SUMMARY_MAX), ""]
    lines += [f"{label}: {value}" for label, value in facts(event)]
    found = long_text(event)
    if found is not None:
        label, message = found
        lines += ["", f"{label}:", fit(message, LONG_TEXT_MAX)]
    link = dashboard_link(event)
    if link is not None:
        lines += ["", f"Dashboard: {link}"]
    return lines


def _markdown_body(event: BaseEvent) -> list[str]:
    lines = [fit(summary(event), SUMMARY_MAX, _escape), ""]
    for label, value in facts(event):
        shown = _code(value) if label in CODE_LABELS else _escape(value)
        # Two trailing spaces: a line break in Markdown without a paragraph between facts.
        lines.append(f"**{label}:** {shown}  ")
    found = long_text(event)
    if found is not None:
        label, message = found
        lines += ["", f"**{label}:**", "", fit(message, LONG_TEXT_MAX, _quote)]
    link = dashboard_link(event)
    if link is not None:
        lines += ["", f"[Open in dashboard]({link.replace(')', '%29')})"]
    return lines


def build_notification(
    event: BaseEvent, body_format: Literal["text", "markdown"] = "text"
) -> Notification:
    """The notification for ``event``, its body in ``body_format``."""
    lines = _markdown_body(event) if body_format == "markdown" else _text_body(event)
    test = "a test message, no job changed · " if is_test(event) else ""
    footer = f"ftwatch · {test}event {event.id}"
    lines += ["", _escape(footer) if body_format == "markdown" else footer]
    return Notification(
        title=_title(event),
        body="\n".join(lines),
        notify_type=_TYPES[outcome(event)],
        body_format=body_format,
    )
