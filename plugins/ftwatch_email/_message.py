"""The email for an event: a plain-text and an HTML part built from :mod:`watcher.facts`.

Each event is one message. Its ``Message-ID`` comes from the event id, so a replayed event
carries the same id and a receiver that drops duplicates drops it. Every message of one job
names the same thread root in ``In-Reply-To`` and ``References``: an id derived from the
job's source and id alone (``<ftwatch.SOURCE.JOB@ftwatch>``), so the sink needs no state to
thread a job's messages, across restarts too. No message carries the root id itself; mail
clients thread on the shared reference all the same (Thunderbird shows the missing root as a
placeholder).

Every value from the API is escaped in the HTML part and put on one line where a line matters
(the subject, the facts), so an error message holding markup or line breaks can neither add
headers nor change the page.
"""

from __future__ import annotations

import hashlib
import html
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Final

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

from ._config import EmailConfig

__all__ = [
    "FACT_MAX",
    "LONG_TEXT_MAX",
    "SUBJECT_MAX",
    "TEST_NOTE",
    "build_email",
    "html_body",
    "message_id",
    "plain_body",
    "subject",
    "thread_root",
]

#: The longest subject, prefix included, in characters: a line a mail client shows whole.
SUBJECT_MAX: Final = 200
#: The longest fact value shown, and the longest error or API message.
FACT_MAX: Final = 500
LONG_TEXT_MAX: Final = 10_000
#: What a test message says besides its subject, so nobody takes it for a real job's news.
TEST_NOTE: Final = "This is a test message sent by `ftwatch sinks test`: no job changed."

#: The right-hand side of every id ftwatch makes: not a host, so no id clashes with a real one.
_ID_DOMAIN: Final = "ftwatch"
_ID_PART_MAX: Final = 100
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_-]")
_COLOURS: Final = {"good": "#2eb67d", "bad": "#e01e5a", "warning": "#ecb22e", "neutral": "#8d8d8d"}


def _id_part(text: str) -> str:
    """``text`` as one dot-atom word of a message id; changed or long ones get a digest."""
    safe = _UNSAFE.sub("_", text)
    if safe == text and 0 < len(safe) <= _ID_PART_MAX:
        return safe
    # Two ids that read alike once spelt safely must still differ.
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{safe[: _ID_PART_MAX - 17]}-{digest}" if safe else digest


def message_id(event: BaseEvent) -> str:
    """The event's ``Message-ID``: ``<EVENTID@ftwatch>``, the same every time it is sent."""
    return f"<{_id_part(event.id)}@{_ID_DOMAIN}>"


def thread_root(event: BaseEvent) -> str:
    """The id every message of the event's job refers to: ``<ftwatch.SOURCE.JOB@ftwatch>``."""
    return f"<ftwatch.{_id_part(event.source)}.{_id_part(event.job_id)}@{_ID_DOMAIN}>"


def subject(event: BaseEvent, prefix: str = "") -> str:
    """``prefix`` and the event's one-line summary, cut to :data:`SUBJECT_MAX` characters."""
    text = f"{prefix} {summary(event)}" if prefix else summary(event)
    # one_line again: a line break in a header would start a header of the sender's choosing.
    return fit(one_line(text), SUBJECT_MAX)


def _heading(event: BaseEvent) -> str:
    suffix = event.job.user_provided_suffix
    return one_line(f"{emoji(event)} {title(event)}" + (f" · {suffix}" if suffix else ""))


def _seen(event: BaseEvent) -> str:
    return datetime.fromtimestamp(event.observed_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _facts(event: BaseEvent) -> list[tuple[str, str]]:
    return [(label, fit(one_line(value), FACT_MAX)) for label, value in facts(event)]


def plain_body(event: BaseEvent) -> str:
    """The text part: heading, aligned facts, the error message, the link, a footer."""
    lines = [fit(_heading(event), SUBJECT_MAX), ""]
    if is_test(event):
        lines += [TEST_NOTE, ""]
    shown = _facts(event)
    width = max(len(label) for label, _ in shown) + 2
    lines += [f"{label + ':':<{width}}{value}" for label, value in shown]
    found = long_text(event)
    if found is not None:
        label, text = found
        lines += ["", f"{label}:", fit(text, LONG_TEXT_MAX)]
    link = dashboard_link(event)
    if link is not None:
        lines += ["", f"Open in dashboard: {link}"]
    # "-- " is the signature separator mail clients recognise and fold away.
    lines += ["", "-- ", f"ftwatch · event {event.id} · seen {_seen(event)}"]
    return "\n".join(lines) + "\n"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def html_body(event: BaseEvent, subject_line: str) -> str:
    """The HTML part: the same facts as :func:`plain_body`, every API value escaped."""
    colour = _COLOURS[outcome(event)]
    cell = "padding:2px 12px 2px 0;vertical-align:top;text-align:left"
    rows = "\n".join(
        f'<tr><th style="{cell}">{_e(label)}</th><td style="{cell}">'
        + (f"<code>{_e(value)}</code>" if label in CODE_LABELS else _e(value))
        + "</td></tr>"
        for label, value in _facts(event)
    )
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{_e(subject_line)}</title></head>",
        '<body style="font-family:sans-serif;font-size:14px">',
        f'<div style="border-left:4px solid {colour};padding:0 12px">',
        f'<h2 style="margin:0 0 8px">{_e(fit(_heading(event), SUBJECT_MAX))}</h2>',
    ]
    if is_test(event):
        parts.append(f"<p><strong>{_e(TEST_NOTE)}</strong></p>")
    parts.append(f"<table>\n{rows}\n</table>")
    found = long_text(event)
    if found is not None:
        label, text = found
        parts += [
            f'<h3 style="margin:12px 0 4px">{_e(label)}</h3>',
            f'<pre style="white-space:pre-wrap">{_e(fit(text, LONG_TEXT_MAX))}</pre>',
        ]
    link = dashboard_link(event)
    if link is not None:
        parts.append(f'<p><a href="{_e(link)}">Open in dashboard</a></p>')
    parts += [
        "</div>",
        '<p style="color:#666;font-size:12px">',
        f"ftwatch · event <code>{_e(event.id)}</code> · seen {_e(_seen(event))}</p>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def build_email(event: BaseEvent, config: EmailConfig) -> EmailMessage:
    """The whole message for ``event``: headers, then a multipart/alternative of text and HTML.

    The ``Date`` is when the change was seen, so a retried delivery sends the same message.
    """
    # The SMTP policy ends lines with CRLF and refuses a header value holding a line break.
    message = EmailMessage(policy=SMTP)
    line = subject(event, config.subject_prefix)
    message["Subject"] = line
    message["From"] = config.sender
    message["To"] = ", ".join(config.to)
    if config.cc:
        message["Cc"] = ", ".join(config.cc)
    message["Date"] = format_datetime(datetime.fromtimestamp(event.observed_at, UTC))
    message["Message-ID"] = message_id(event)
    root = thread_root(event)
    message["In-Reply-To"] = root
    message["References"] = root
    # RFC 3834: no vacation responder or auto-reply answers a machine's message.
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message.set_content(plain_body(event))
    message.add_alternative(html_body(event, line), subtype="html")
    return message
