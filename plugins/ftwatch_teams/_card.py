"""Adaptive Card messages for fine-tuning events, as a Teams Workflows webhook takes them.

A message is ``{"type": "message", "attachments": [...]}`` holding one Adaptive Card (version
1.4, which Teams renders on every client): a title coloured by the event's outcome (an emoji
per event type, or the test mark), a FactSet of the short facts (job, base model, suffix, status
change, result or error code, how long the job queued and ran, source), the error or API message
in a wrapping TextBlock, a button to the provider's dashboard when the event has a link, and a
small subtle line with the event id and when it was seen. The words come from
:mod:`watcher.facts`, so a job reads as it does in Slack.

Teams renders a markdown subset in TextBlocks and fact values (bold, italics, lists, links) and
replaces ``{{DATE(...)}}``/``{{TIME(...)}}`` in text. Every value that comes from the API is
neutralised (:func:`neutralise`) so that an error message cannot draw a link with a false label,
bold a line that looks like ours, or start a list. The whole message stays under Teams' size
limit for a webhook card (about 28 KB): the long text is cut with an ellipsis to fit.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any, Final

from watcher.events import BaseEvent
from watcher.facts import (
    ELLIPSIS,
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

__all__ = [
    "CARD_CONTENT_TYPE",
    "CARD_SCHEMA",
    "CARD_VERSION",
    "FACT_VALUE_MAX",
    "MESSAGE_MAX_BYTES",
    "TITLE_MAX",
    "build_message",
    "encode_message",
    "neutralise",
]

#: The attachment content type Teams takes an Adaptive Card under.
CARD_CONTENT_TYPE: Final = "application/vnd.microsoft.card.adaptive"
#: The ``$schema`` every card names.
CARD_SCHEMA: Final = "http://adaptivecards.io/schemas/adaptive-card.json"
#: 1.4 is what Teams renders on desktop, web and mobile alike; the card uses nothing newer.
CARD_VERSION: Final = "1.4"
#: Teams refuses a webhook message over about 28 KB; ours stays below with room for the envelope.
MESSAGE_MAX_BYTES: Final = 27_000
#: Our caps, in characters after neutralising: a title reads on one line, a fact on a few.
TITLE_MAX: Final = 200
FACT_VALUE_MAX: Final = 500
#: Where the long text starts before the size check shortens it further, if ever.
_LONG_TEXT_MAX: Final = 8000

#: What the outcome of an event colours its title with (TextBlock ``color`` values).
_COLOURS: Final = {"good": "good", "bad": "attention", "warning": "warning", "neutral": "default"}

#: The punctuation of the markdown subset Adaptive Cards render (``**bold**``, ``_italic_``,
#: ``[label](url)``, code and strike-through where a client has them), and the backslash itself.
#: An underscore inside a word (``invalid_training_file``) starts no emphasis, so it stays bare.
_MARKDOWN = re.compile(r"([\\`*~\[\]]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
#: A list marker at the start of a line: ``- x``, ``+ x``, ``1. x``, ``1) x``.
_BULLET = re.compile(r"(?m)^([ \t]*)([-+])(?=[ \t])")
_NUMBERED = re.compile(r"(?m)^([ \t]*\d+)([.)])(?=[ \t])")
#: Bidirectional overrides and isolates: they can make text read in a different order than it
#: is written (an error that shows ``exe.txt`` for ``txt.exe``).
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


def neutralise(text: str) -> str:
    """``text`` made literal for a TextBlock or a fact value: no link, emphasis, list or date.

    Markdown punctuation is backslash-escaped (CommonMark's escapes), a list marker at the start
    of a line is escaped too, ``{{`` is split with a zero-width space so that ``{{DATE(...)}}``
    stays text, and bidirectional controls show as U+FFFD. Never shortens text (as
    :func:`fit` needs).
    """
    text = _BIDI_CONTROLS.sub("\ufffd", text)
    text = _MARKDOWN.sub(r"\\\1", text)
    text = _BULLET.sub(r"\1\\\2", text)
    text = _NUMBERED.sub(r"\1\\\2", text)
    return text.replace("{{", "{\u200b{")


def _title(event: BaseEvent) -> dict[str, Any]:
    suffix = event.job.user_provided_suffix
    text = f"{emoji(event)} {title(event)}"
    if suffix:
        text += f" · {suffix}"
    return {
        "type": "TextBlock",
        "text": fit(one_line(text), TITLE_MAX, neutralise),
        "size": "large",
        "weight": "bolder",
        "color": _COLOURS[outcome(event)],
        "wrap": True,
    }


def _fact_set(event: BaseEvent) -> dict[str, Any]:
    shown = [
        {"title": label, "value": fit(one_line(value), FACT_VALUE_MAX, neutralise)}
        for label, value in facts(event)
    ]
    return {"type": "FactSet", "facts": shown, "spacing": "medium"}


def _long_text(event: BaseEvent, limit: int) -> list[dict[str, Any]]:
    found = long_text(event)
    if found is None:
        return []
    label, message = found
    return [
        {"type": "TextBlock", "text": label, "weight": "bolder", "wrap": True, "spacing": "medium"},
        {
            "type": "TextBlock",
            "text": fit(message, limit, neutralise),
            "wrap": True,
            "fontType": "monospace",
            "spacing": "small",
        },
    ]


def _context(event: BaseEvent) -> dict[str, Any]:
    seen = datetime.fromtimestamp(int(event.observed_at), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    test = "a test message, no job changed · " if is_test(event) else ""
    text = f"ftwatch · {test}event {event.id} · seen {seen}"
    return {
        "type": "TextBlock",
        "text": fit(text, TITLE_MAX * 2, neutralise),
        "size": "small",
        "isSubtle": True,
        "wrap": True,
        "spacing": "medium",
    }


def _card(event: BaseEvent, long_text_max: int) -> dict[str, Any]:
    body = [_title(event), _fact_set(event), *_long_text(event, long_text_max), _context(event)]
    card: dict[str, Any] = {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        # What a client that cannot render the card shows, and what a notification reads.
        "fallbackText": fit(summary(event), 300, neutralise),
        "body": body,
    }
    url = dashboard_link(event)
    if url is not None:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open in dashboard", "url": url}]
    return card


def _message(card: dict[str, Any]) -> dict[str, Any]:
    attachment = {"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}
    return {"type": "message", "attachments": [attachment]}


def encode_message(message: dict[str, Any]) -> bytes:
    """The bytes posted for ``message``: compact UTF-8 JSON, as counted against Teams' limit."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def build_message(event: BaseEvent, max_bytes: int = MESSAGE_MAX_BYTES) -> dict[str, Any]:
    """The Teams message for ``event``: one Adaptive Card, at most ``max_bytes`` when encoded.

    Only the long text is shortened to fit; every other part has its own small cap, so the
    card always fits with room to spare for the long text.
    """
    limit = _LONG_TEXT_MAX
    while True:
        message = _message(_card(event, limit))
        excess = len(encode_message(message)) - max_bytes
        if excess <= 0 or limit <= len(ELLIPSIS):
            return message
        # Cut as many characters as the excess needs at the long text's bytes per character
        # (four for emoji, six for an escaped control character), so a few rounds suffice.
        shown = _card_long_text(message)
        per_char = max(
            1.0, len(json.dumps(shown, ensure_ascii=False).encode()) / max(1, len(shown))
        )
        limit = max(len(ELLIPSIS), limit - int(excess / per_char) - 1)


def _card_long_text(message: dict[str, Any]) -> str:
    body = message["attachments"][0]["content"]["body"]
    # The title, the facts, [the label, the long text], the context line.
    return str(body[3]["text"]) if len(body) == 5 else ""
