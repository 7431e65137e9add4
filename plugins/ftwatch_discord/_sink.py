"""The Discord sink: executes a channel webhook with one embed per event, and waits for the message.

Every post goes to the webhook URL with ``?wait=true``, so Discord answers ``200`` with the
message it created rather than an empty ``204``: a delivery counts only once Discord shows the
message's ``id``, which becomes the receipt (``HTTP 200, message 1234...``). Discord's answers
become the outcomes the dispatcher acts on:

=======================  ========================================================================
answer                   outcome
=======================  ========================================================================
2xx with a message id    delivered
2xx without one          :class:`~watcher.errors.SinkRejected`: not Discord, or not confirmed
429                      :class:`~watcher.errors.SinkUnavailable`, waiting the ``retry_after`` of
                         its JSON body, else its ``Retry-After`` or ``X-RateLimit-Reset-After``
408, 5xx, no answer      :class:`~watcher.errors.SinkUnavailable` (``Retry-After`` honoured)
401, 403, 404, 410       :class:`~watcher.errors.SinkDisabled`: the webhook was deleted, its token
                         is wrong, or it may no longer post; no later message could get through
other 4xx, 3xx           :class:`~watcher.errors.SinkRejected` with Discord's ``message`` and
                         ``code`` (and the first field it complained about), for the dead letter
=======================  ========================================================================

Errors and logs name the sink, the status and what Discord said, never the URL or its token.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import ClassVar, Final, NoReturn
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import structlog

from watcher.errors import SinkDisabled, SinkRejected, SinkUnavailable
from watcher.events import BaseEvent
from watcher.facts import fit, one_line
from watcher.http import (
    Answer,
    AsyncBaseTransport,
    ClientPerRequest,
    Timeout,
)
from watcher.retry import parse_retry_after
from watcher.sinks import SinkBase, SinkConfig, post_delivery

from ._config import DiscordConfig, redact_url
from ._embed import build_message

__all__ = ["DiscordSink"]

log = structlog.get_logger(__name__)

#: The most of Discord's own wording an error quotes.
_REASON_MAX: Final = 200
#: How deep a 400's ``errors`` is searched: Discord's own go four or five levels down.
_ERRORS_DEPTH: Final = 12
#: Statuses after which no message can get through until someone changes the config.
_DISABLING: Final = frozenset({401, 403, 404, 410})
_DISABLED_HINTS: Final = {
    401: "the webhook's token is wrong; copy the webhook URL again",
    403: "the webhook may not post in its channel; check its permissions",
    404: "the webhook was deleted; create a new one and set its URL",
    410: "the webhook is gone; create a new one and set its URL",
}


def _post_url(url: str) -> str:
    """The webhook URL with ``wait=true`` in its query, other parameters (``thread_id``) kept."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "wait"]
    query.append(("wait", "true"))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _seconds(value: object) -> float | None:
    """A finite, non-negative number of seconds, from JSON or a header; None otherwise."""
    if isinstance(value, bool):
        return None
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _first_field_error(errors: object, path: tuple[str, ...] = ()) -> str | None:
    """``embeds.0.fields.3.value: Must be 1024 or fewer in length.`` from a 400's ``errors``."""
    if not isinstance(errors, dict) or len(path) > _ERRORS_DEPTH:
        return None
    found = errors.get("_errors")
    if isinstance(found, list) and found and isinstance(found[0], dict):
        message = found[0].get("message")
        if isinstance(message, str):
            return ".".join(path) + ": " + message if path else message
    for key, value in errors.items():
        if key != "_errors":
            deeper = _first_field_error(value, (*path, str(key)))
            if deeper is not None:
                return deeper
    return None


class DiscordSink(SinkBase):
    """Posts every event to a Discord channel webhook as one embed, and waits for the message.

    Owns an HTTP client, closed by :meth:`aclose`. ``transport`` replaces the network (tests,
    embedding applications); ``now`` is the wall clock an HTTP-date ``Retry-After`` is read by.
    """

    config_model: ClassVar[type[SinkConfig]] = DiscordConfig
    config: DiscordConfig

    def __init__(
        self,
        config: DiscordConfig,
        *,
        transport: AsyncBaseTransport | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(config)
        self._now = now
        self._url = _post_url(config.url.get_secret_value())
        self._token = urlsplit(config.url.get_secret_value()).path.rstrip("/").rsplit("/", 1)[-1]
        self._client = ClientPerRequest(
            transport=transport,
            timeout=Timeout(config.timeout),
            follow_redirects=False,
            headers={"user-agent": "ftwatch-discord"},
        )
        self._closed = False

    async def send(self, event: BaseEvent) -> str:
        """Post ``event``'s embed; once Discord shows the message, return ``HTTP 200, message ID``.

        Otherwise raise the matching sink error (see the module's table).
        """
        if self._closed:
            raise RuntimeError(f"discord sink {self.name!r} is closed; it cannot send")
        message = build_message(
            event, username=self.config.username, avatar_url=self.config.avatar_url
        )
        body = json.dumps(message, ensure_ascii=False).encode()
        answer = await post_delivery(
            self._client,
            self._url,
            content=body,
            headers={"content-type": "application/json; charset=utf-8"},
            deadline=self.config.timeout,
            sink=self.name,
            peer="Discord",
        )
        status = answer.status_code
        log.debug("discord_answered", sink=self.name, event_id=event.id, status_code=status)
        if 200 <= status < 300:
            return self._receipt(answer)
        if status == 429:
            self._rate_limited(answer)
        if status == 408 or 500 <= status < 600:
            self._unavailable(status, parse_retry_after(answer.headers, now=self._now()))
        if status in _DISABLING:
            raise SinkDisabled(
                f"Discord will not take messages from this webhook ({self._said(answer)}); "
                + _DISABLED_HINTS[status],
                sink=self.name,
                status_code=status,
            )
        if 300 <= status < 400:
            raise SinkRejected(
                f"Discord answered redirect HTTP {status}, which is not followed; "
                "set url to the webhook URL Discord shows",
                sink=self.name,
                status_code=status,
            )
        raise SinkRejected(
            f"Discord rejected the message ({self._said(answer)})",
            sink=self.name,
            status_code=status,
        )

    def _receipt(self, answer: Answer) -> str:
        found = answer.json()
        message_id = found.get("id") if isinstance(found, dict) else None
        if isinstance(message_id, int) and not isinstance(message_id, bool):
            message_id = str(message_id)
        if isinstance(message_id, str) and message_id.isascii() and message_id.isdigit():
            return f"HTTP {answer.status_code}, message {message_id[:20]}"
        # Not retried: the message may well have been posted, and a retry would post it twice.
        raise SinkRejected(
            f"the answer HTTP {answer.status_code} does not confirm a message (no JSON with an "
            "id, as Discord gives for ?wait=true); check that url is a Discord webhook URL",
            sink=self.name,
            status_code=answer.status_code,
        )

    def _rate_limited(self, answer: Answer) -> NoReturn:
        found = answer.json()
        retry_after = _seconds(found.get("retry_after")) if isinstance(found, dict) else None
        if retry_after is None:
            retry_after = parse_retry_after(answer.headers, now=self._now())
        if retry_after is None:
            retry_after = _seconds(answer.headers.get("x-ratelimit-reset-after"))
        scope = " (a global limit)" if isinstance(found, dict) and found.get("global") else ""
        self._unavailable(429, retry_after, what=f"is rate limiting this webhook{scope}")

    def _unavailable(
        self, status: int, retry_after: float | None, *, what: str = "is unavailable"
    ) -> NoReturn:
        hint = f"; it asked to wait {retry_after:g}s" if retry_after is not None else ""
        log.warning(
            "discord_unavailable", sink=self.name, status_code=status, retry_after=retry_after
        )
        raise SinkUnavailable(
            f"Discord {what} (HTTP {status}){hint}",
            sink=self.name,
            status_code=status,
            retry_after=retry_after,
        )

    def _said(self, answer: Answer) -> str:
        """``HTTP 400, 50035 Invalid Form Body: embeds.0.title: ...``, bounded and token-free."""
        found = answer.json()
        words = ""
        if isinstance(found, dict):
            message, code = found.get("message"), found.get("code")
            if isinstance(message, str):
                words = message
            if isinstance(code, int) and not isinstance(code, bool):
                words = f"{code} {words}".strip()
            detail = _first_field_error(found.get("errors"))
            if detail is not None:
                words += ": " + detail
        # Discord's wording, never an HTML page; cut short and stripped of the token should an
        # answer ever echo the URL.
        words = fit(one_line(words.replace(self._token, "***")), _REASON_MAX)
        return f"HTTP {answer.status_code}, {words}" if words else f"HTTP {answer.status_code}"

    async def aclose(self) -> None:
        """Close the HTTP client and its connections; safe to call more than once."""
        if not self._closed:
            self._closed = True
            await self._client.aclose()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} type={self.config.type!r} "
            f"url={redact_url(self.config.url.get_secret_value())!r}>"
        )
