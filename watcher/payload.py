"""Reading the API's JSON so that one hostile value costs one item, never the whole answer.

``json.loads`` turns a 100,000-deep nesting into a ``RecursionError`` and a 5,000-digit integer
into a ``ValueError`` for the whole document, so one such job made every page unreadable, every
cycle. Here a list page is read item by item: the page's own fields are walked by hand and each
item of its ``data`` list is decoded on its own (still by the C decoder), so an item that is
nested too deep, holds a number too long to read, is not JSON or is larger than the caller's
limit comes back as a :class:`RawItem` with an ``error`` while the rest of the page is read.
What cannot be read at all raises :class:`PayloadError`, which the client reports as a
malformed response (one log line, no traceback).

Sizes are measured in characters of an item's JSON text (the same as bytes for ASCII; never
more than its bytes).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = [
    "PayloadError",
    "RawItem",
    "RawPage",
    "api_error_message",
    "is_plain_id",
    "parse_document",
    "parse_page",
    "validation_reason",
]

_DECODER: Final = json.JSONDecoder()
_WHITESPACE: Final = re.compile(r"[ \t\n\r]*")
# The next character that matters while skipping a value: a bracket or the start of a string.
_STRUCTURE: Final = re.compile(r'[\[\]{}"]')
_STRING: Final = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_SCALAR: Final = re.compile(r"[^,\]}\s]+")
# The id of an item that could not be decoded, read from its text so the page cursor goes on.
_ID: Final = re.compile(r'"id"\s*:\s*"([A-Za-z0-9_.:-]{1,200})"')
# How much of an undecodable item's text is searched for its id.
_ID_WINDOW: Final = 65536
#: What a job id may be: a plain token, so that it can only ever name one path segment.
_PLAIN_ID: Final = re.compile(r"[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,199}")
#: The longest an error message taken from a response body may be.
_MAX_MESSAGE: Final = 300


class PayloadError(ValueError):
    """A body that cannot be read as the JSON expected; the message says why, in a few words."""


@dataclass(frozen=True)
class RawItem:
    """One item of a list page: its decoded ``value``, or why it could not be read."""

    #: The decoded item; None when ``error`` is set.
    value: Any
    #: Why the item is unreadable ("nested too deep", "larger than 1048576 bytes"...), or None.
    error: str | None
    #: The item's id when it has one (for an unreadable item, as found in its text), else None.
    id: str | None


@dataclass(frozen=True)
class RawPage:
    """A list page's items, read one by one, and its own paging fields."""

    items: list[RawItem]
    #: True only when the page says ``"has_more": true``.
    has_more: bool
    #: The page's own ``last_id`` when it is a non-empty string, else None.
    last_id: str | None


def _text(data: bytes) -> str:
    try:
        return data.decode(json.detect_encoding(data))
    except (UnicodeDecodeError, LookupError):
        raise PayloadError("a body that is not UTF-8 text") from None


def _why(exc: BaseException) -> str:
    """A few words on why the C decoder refused a value (never quoting the value)."""
    if isinstance(exc, RecursionError):
        return "JSON nested too deep"
    if "digits" in str(exc):
        return "a number too long to read"
    return "a body that is not JSON"


def parse_document(data: bytes, *, max_bytes: int | None = None) -> Any:
    """Decode a whole JSON body, or raise :class:`PayloadError` saying why it cannot be read.

    A body longer than ``max_bytes`` is refused before it is decoded.
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise PayloadError(f"a body larger than {max_bytes} bytes")
    text = _text(data)
    try:
        return _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise PayloadError(_why(exc)) from None


def _ws(text: str, index: int) -> int:
    match = _WHITESPACE.match(text, index)
    return match.end() if match else index


def _skip_value(text: str, index: int) -> int:
    """The index just past the JSON value starting at ``index``, found without decoding it.

    Iterative (no recursion, whatever the depth); it only matches brackets and strings, so it
    finds the end of a value the decoder refused and the rest of the page can be read.
    """
    if index >= len(text):
        raise PayloadError("a body that ends in the middle of a value")
    if text[index] not in '[{"':
        scalar = _SCALAR.match(text, index)
        if scalar is None:
            raise PayloadError("a body that is not valid JSON")
        return scalar.end()
    depth = 0
    position = index
    while True:
        found = _STRUCTURE.search(text, position)
        if found is None:
            raise PayloadError("a body that ends in the middle of a value")
        char = found.group()
        if char == '"':
            string = _STRING.match(text, found.start())
            if string is None:
                raise PayloadError("a body with an unterminated string")
            position = string.end()
            if depth == 0:
                return position
            continue
        depth += 1 if char in "[{" else -1
        position = found.end()
        if depth == 0:
            return position
        if depth < 0:
            raise PayloadError("a body with unbalanced brackets")


def _expect(text: str, index: int, chars: str) -> tuple[str, int]:
    index = _ws(text, index)
    char = text[index : index + 1]
    if not char or char not in chars:
        raise PayloadError("a body that is not JSON")
    return char, index + 1


def _item(text: str, start: int, max_chars: int) -> tuple[RawItem, int]:
    try:
        value, end = _DECODER.raw_decode(text, start)
    except (ValueError, RecursionError) as exc:
        end = _skip_value(text, start)
        found = _ID.search(text, start, min(end, start + _ID_WINDOW))
        return RawItem(None, _why(exc), found.group(1) if found else None), end
    item_id = _item_id(value)
    if end - start > max_chars:
        return RawItem(None, f"larger than {max_chars} bytes", item_id), end
    return RawItem(value, None, item_id), end


def _items(text: str, index: int, max_chars: int) -> tuple[list[RawItem], int]:
    """Read the list opening at ``index`` (its ``[``) item by item; return them and its end."""
    items: list[RawItem] = []
    index = _ws(text, index + 1)
    if text.startswith("]", index):
        return items, index + 1
    while True:
        item, index = _item(text, _ws(text, index), max_chars)
        items.append(item)
        char, index = _expect(text, index, ",]")
        if char == "]":
            return items, index


def _item_id(value: Any) -> str | None:
    item_id = value.get("id") if isinstance(value, dict) else None
    return item_id if isinstance(item_id, str) and item_id else None


def _whole_page(body: Any) -> RawPage:
    """The page of an already decoded body, as :func:`parse_page` reads it."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise PayloadError("JSON that has no data list")
    last_id = body.get("last_id")
    return RawPage(
        [RawItem(value, None, _item_id(value)) for value in body["data"]],
        body.get("has_more") is True,
        last_id if isinstance(last_id, str) and last_id else None,
    )


def parse_page(data: bytes, *, max_item_bytes: int) -> RawPage:
    """Read a list page (``{"data": [...], "has_more": ..., ...}``) item by item.

    An item that cannot be read, or is longer than ``max_item_bytes``, is kept as a
    :class:`RawItem` with an ``error`` and the rest of the page is read. Raise
    :class:`PayloadError` when the page itself is not such an object.
    """
    text = _text(data)
    if len(data) <= max_item_bytes:
        # No item can be too large: one C-speed decode of the whole page is the common case,
        # and only a page it refuses is walked item by item below.
        try:
            whole = _DECODER.decode(text)
        except (ValueError, RecursionError):
            pass
        else:
            return _whole_page(whole)
    start = _ws(text, 0)
    if (
        text[start : start + 1] in ("[", '"', "-", "t", "f", "n")
        or text[start : start + 1].isdigit()
    ):
        raise PayloadError("JSON that has no data list")  # JSON, but not an object
    _, index = _expect(text, start, "{")
    items: list[RawItem] | None = None
    has_more = False
    last_id: str | None = None
    index = _ws(text, index)
    if text.startswith("}", index):
        raise PayloadError("JSON that has no data list")
    while True:
        index = _ws(text, index)
        try:
            key, index = _DECODER.raw_decode(text, index)
        except (ValueError, RecursionError):
            raise PayloadError("a body that is not JSON") from None
        if not isinstance(key, str):
            raise PayloadError("a body that is not JSON")
        _, index = _expect(text, index, ":")
        index = _ws(text, index)
        if key == "data" and text.startswith("[", index):
            items, index = _items(text, index, max_item_bytes)
        else:
            try:
                value, index = _DECODER.raw_decode(text, index)
            except (ValueError, RecursionError):
                # A field we may not even need: skip it rather than lose the page.
                value, index = None, _skip_value(text, index)
            if key == "has_more":
                has_more = value is True
            elif key == "last_id":
                last_id = value if isinstance(value, str) and value else None
            elif key == "data":
                items = None  # data that is not a list
        char, index = _expect(text, index, ",}")
        if char == "}":
            break
    if text[_ws(text, index) :]:
        raise PayloadError("a body with text after its JSON")
    if items is None:
        raise PayloadError("JSON that has no data list")
    return RawPage(items, has_more, last_id)


def is_plain_id(value: str) -> bool:
    """True when ``value`` can be a job id: 1-200 letters, digits, ``_-.:``, not starting with
    ``.``, so ``.``, ``..`` and anything with a slash are refused before a URL is built."""
    return _PLAIN_ID.fullmatch(value) is not None


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_MESSAGE else flat[: _MAX_MESSAGE - 3] + "..."


def api_error_message(data: bytes) -> str | None:
    """OpenAI's own error message from an error body, on one short line; None when none."""
    try:
        body = parse_document(data)
    except PayloadError:
        return None
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict):
        error = error.get("message")
    if not isinstance(error, str) or not error.strip():
        message = body.get("message")
        error = message if isinstance(message, str) else None
    return _one_line(error) if error and error.strip() else None


def validation_reason(exc: ValidationError) -> str:
    """Why an item failed validation, as field locations and error kinds only.

    Never the value: pydantic's own message quotes the input, and a job object may hold
    anything (a secret in its metadata, say).
    """
    parts = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(p) for p in err["loc"]) or "item"
        parts.append(f"{where}: {err['type']}")
    return "; ".join(parts) or "invalid"
