"""Discord embeds for fine-tuning events: the same facts as the Slack message, in Discord's form.

An event becomes one embed: a title (the event type's emoji and what happened, with the job's
suffix), a description (the error or the API's message when there is one, else the one-line
summary), a colour by outcome (green, red, amber, blurple), the labelled facts as fields (short
ones inline, three to a row), a link to the dashboard, the time it was seen, an author line
naming the source and a footer with the event id. ``ftwatch sinks test``'s sample says it is a
test in its title and its footer.

Discord refuses a whole message when one embed text is over its limit, so every text is cut to
fit with an ellipsis instead, and when all of them together would pass the 6,000 characters an
embed may hold, the longest are cut to one common length until they fit: deterministic, and
the short facts always stay whole. Text from the API is escaped so that Discord's markdown
cannot turn an error message into links or headings; mentions never ping anyway, since every
message says ``allowed_mentions: {"parse": []}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from watcher.events import BaseEvent
from watcher.facts import (
    CODE_LABELS,
    Outcome,
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
    "AUTHOR_NAME_MAX",
    "COLOURS",
    "DESCRIPTION_MAX",
    "EMBED_TOTAL_MAX",
    "FIELDS_MAX",
    "FIELD_NAME_MAX",
    "FIELD_VALUE_MAX",
    "FOOTER_TEXT_MAX",
    "TITLE_MAX",
    "build_embed",
    "build_message",
    "embed_length",
]

#: Discord's limits on an embed, in characters
#: (https://discord.com/developers/docs/resources/message#embed-object-embed-limits).
TITLE_MAX: Final = 256
DESCRIPTION_MAX: Final = 4096
FIELDS_MAX: Final = 25
FIELD_NAME_MAX: Final = 256
FIELD_VALUE_MAX: Final = 1024
FOOTER_TEXT_MAX: Final = 2048
AUTHOR_NAME_MAX: Final = 256
#: What title, description, field names and values, footer text and author name add up to.
EMBED_TOTAL_MAX: Final = 6000

#: The colour of each outcome, as the integer Discord takes (its brand green, red and blurple).
COLOURS: Final[dict[Outcome, int]] = {
    "good": 0x57F287,
    "bad": 0xED4245,
    "warning": 0xFAA61A,  # amber
    "neutral": 0x5865F2,  # blurple
}

#: A value up to this long sits inline, three to a row; a longer one gets a row of its own.
_INLINE_MAX: Final = 40
#: The longest label the description starts with (its bold head).
_LABEL_MAX: Final = 100
#: What an empty fact shows: Discord refuses an empty field value.
_EMPTY: Final = "—"
#: Characters Discord's markdown gives a meaning to (emphasis, code, spoilers, quotes, links,
#: headings, mentions and custom emoji); a backslash makes each one literal.
_MARKDOWN: Final = frozenset("\\*_~`|><[]#@")


def _escape(text: str) -> str:
    return "".join("\\" + c if c in _MARKDOWN else c for c in text)


def _code(text: str) -> str:
    # Inside a code span nothing is markdown; a backtick would end it early.
    return "`" + text.replace("`", "'") + "`"


@dataclass(frozen=True)
class _Text:
    """One text of the embed: the raw words, how they are rendered, and the limit they obey."""

    raw: str
    render: Callable[[str], str]
    limit: int

    def at_most(self, limit: int) -> str:
        return fit(self.raw, min(limit, self.limit), self.render)


def _title(event: BaseEvent) -> _Text:
    text = f"{emoji(event)} {title(event)}"
    suffix = event.job.user_provided_suffix
    if suffix:
        text += f" · {suffix}"
    return _Text(one_line(text), _escape, TITLE_MAX)


def _description(event: BaseEvent) -> _Text:
    found = long_text(event)
    if found is None:
        return _Text(summary(event), _escape, DESCRIPTION_MAX)
    label, message = found
    # The label holds the API's level for a message: cut it too, so the head always fits.
    head = f"**{fit(one_line(label), _LABEL_MAX, _escape)}**\n"
    # An all-blank message would leave only the label: say so rather than show nothing.
    shown = message if message.strip() else _EMPTY
    return _Text(shown, lambda t: head + _escape(t), DESCRIPTION_MAX)


def _field_texts(event: BaseEvent) -> list[tuple[_Text, _Text]]:
    texts = []
    for label, value in facts(event)[:FIELDS_MAX]:
        shown = one_line(value) or _EMPTY
        render = _code if label in CODE_LABELS else _escape
        name = _Text(one_line(label) or _EMPTY, str, FIELD_NAME_MAX)
        texts.append((name, _Text(shown, render, FIELD_VALUE_MAX)))
    return texts


def _footer(event: BaseEvent) -> _Text:
    test = "a test message, no job changed · " if is_test(event) else ""
    # Footers are plain text: no markdown to escape.
    return _Text(one_line(f"ftwatch · {test}event {event.id}"), str, FOOTER_TEXT_MAX)


def _author(event: BaseEvent) -> _Text:
    source = one_line(event.source)
    return _Text(f"ftwatch · {source}" if source else "ftwatch", str, AUTHOR_NAME_MAX)


def _common_cap(lengths: list[int], budget: int) -> int:
    """The largest cap such that the lengths, each cut to it, add up to ``budget`` at most."""
    lo, hi = 0, max(lengths, default=0)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(min(n, mid) for n in lengths) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _fitted(texts: list[_Text]) -> list[str]:
    """Each text within its own limit, and all of them within :data:`EMBED_TOTAL_MAX`.

    When the whole would be too long, every text longer than one common cap is cut to it:
    the longest texts give way first, and the same event always gives the same embed.
    """
    shown = [text.at_most(text.limit) for text in texts]
    lengths = [len(s) for s in shown]
    if sum(lengths) <= EMBED_TOTAL_MAX:
        return shown
    cap = _common_cap(lengths, EMBED_TOTAL_MAX)
    # At most 54 texts share 6,000 characters, so the cap (>= 111) always leaves room for a
    # rendered prefix (a bold label, a code span) and the ellipsis.
    return [s if len(s) <= cap else text.at_most(cap) for s, text in zip(shown, texts, strict=True)]


def _timestamp(event: BaseEvent) -> str | None:
    try:
        return datetime.fromtimestamp(event.observed_at, UTC).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return None  # a time no calendar holds: better no timestamp than a refused message


def build_embed(event: BaseEvent) -> dict[str, Any]:
    """The Discord embed for ``event``, within every one of Discord's embed limits."""
    fields = _field_texts(event)
    texts = [_title(event), _description(event), _footer(event), _author(event)]
    for name, value in fields:
        texts += [name, value]
    title_text, description, footer, author, *rest = _fitted(texts)
    embed: dict[str, Any] = {
        "type": "rich",
        "title": title_text,
        "description": description,
        "color": COLOURS[outcome(event)],
        "fields": [
            {"name": name, "value": value, "inline": len(value) <= _INLINE_MAX}
            for name, value in zip(rest[0::2], rest[1::2], strict=True)
        ],
        "author": {"name": author},
        "footer": {"text": footer},
    }
    link = dashboard_link(event)
    if link is not None:
        embed["url"] = link
    when = _timestamp(event)
    if when is not None:
        embed["timestamp"] = when
    return embed


def embed_length(embed: dict[str, Any]) -> int:
    """The characters ``embed`` counts against :data:`EMBED_TOTAL_MAX`, as Discord adds them."""
    total = len(embed.get("title", "")) + len(embed.get("description", ""))
    total += sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
    total += len(embed.get("footer", {}).get("text", ""))
    total += len(embed.get("author", {}).get("name", ""))
    return total


def build_message(
    event: BaseEvent, *, username: str | None = None, avatar_url: str | None = None
) -> dict[str, Any]:
    """The body of one webhook execution: ``event``'s embed, and nobody mentioned.

    ``allowed_mentions`` with an empty ``parse`` list means that an ``@everyone`` or a role
    mention in an error message pings nobody. ``username`` and ``avatar_url`` replace the
    webhook's own name and picture for this message when given.
    """
    message: dict[str, Any] = {"embeds": [build_embed(event)], "allowed_mentions": {"parse": []}}
    if username is not None:
        message["username"] = username
    if avatar_url is not None:
        message["avatar_url"] = avatar_url
    return message
