"""The Teams sink: posts each event as an Adaptive Card to a Workflows webhook and reads the answer.

The workflow's trigger answers ``202 Accepted`` once it has the message. Other answers map to
outcomes as the webhook sink's do:

=====================  =================================================================
answer                 outcome
=====================  =================================================================
2xx                    delivered; ``send`` returns the receipt ``"HTTP 202"``
410 Gone               :class:`~watcher.errors.SinkDisabled`: stop until restarted
408, 409, 429, 5xx     :class:`~watcher.errors.SinkUnavailable` (``Retry-After`` honoured)
other 4xx, 3xx         :class:`~watcher.errors.SinkRejected`: permanent for this event
no answer              :class:`~watcher.errors.SinkUnavailable` (refused, DNS, timeout)
=====================  =================================================================

A rejection names the workflow's error code when its answer has one (``{"error": {"code":
"DirectApiAuthorizationRequired", ...}}``), so the dead letter says why. Errors and logs name
the sink, the status and that code, never the URL: its ``sig=`` lets anyone post.
"""

from __future__ import annotations

import re
import time
from typing import Any, ClassVar, Final

import structlog

from watcher.errors import SinkDisabled, SinkError, SinkRejected, SinkUnavailable
from watcher.events import BaseEvent
from watcher.http import (
    Answer,
    AsyncBaseTransport,
    ClientPerRequest,
    Timeout,
)
from watcher.retry import parse_retry_after
from watcher.sinks import SinkBase, SinkConfig, post_delivery

from ._card import build_message, encode_message
from ._config import TeamsConfig

__all__ = ["TeamsSink"]

log = structlog.get_logger(__name__)

#: Statuses that say "not now": the same delivery may succeed later.
_TRANSIENT: Final = frozenset({408, 409, 429})
#: Workflow error codes are CamelCase words; anything else in an answer is not quoted.
_ERROR_CODE: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _error_code(answer: Answer) -> str | None:
    """The workflow's error code (``{"error": {"code": ...}}``) when it looks like one."""
    body: Any = answer.json()
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else None


class TeamsSink(SinkBase):
    """Posts every event to a Microsoft Teams channel or chat through a Workflows webhook.

    Built from its :class:`TeamsConfig`; it owns an HTTP client, closed by :meth:`aclose` (or by
    leaving ``async with``). ``transport`` replaces the network for tests and embedding
    applications.
    """

    config_model: ClassVar[type[SinkConfig]] = TeamsConfig
    config: TeamsConfig

    def __init__(self, config: TeamsConfig, *, transport: AsyncBaseTransport | None = None) -> None:
        super().__init__(config)
        self._client = ClientPerRequest(
            transport=transport,
            timeout=Timeout(config.timeout),
            # A redirect would carry the card (and the answer's verdict) somewhere unconfigured.
            follow_redirects=False,
            headers={"user-agent": "ftwatch-teams"},
        )
        self._closed = False

    async def send(self, event: BaseEvent) -> str:
        """Post ``event`` as an Adaptive Card; return ``"HTTP 202"`` (or the 2xx) once accepted.

        Raises :class:`~watcher.errors.SinkDisabled` on 410,
        :class:`~watcher.errors.SinkUnavailable` when the workflow is busy, failing or
        unreachable, and :class:`~watcher.errors.SinkRejected` when it refuses this message.
        """
        if self._closed:
            raise RuntimeError(f"teams sink {self.name!r} is closed; it cannot send")
        body = encode_message(build_message(event))
        started = time.monotonic()
        answer = await post_delivery(
            self._client,
            self.config.url.get_secret_value(),
            content=body,
            headers={"content-type": "application/json; charset=utf-8"},
            deadline=self.config.timeout,
            sink=self.name,
            peer="Teams",
        )
        status = answer.status_code
        log.debug(
            "teams_answered",
            sink=self.name,
            event_id=event.id,
            event_type=event.type,
            status_code=status,
            bytes_sent=len(body),
            elapsed_s=round(time.monotonic() - started, 3),
        )
        error = self._outcome(answer)
        if error is not None:
            raise error
        return f"HTTP {status}"

    def _outcome(self, answer: Answer) -> SinkError | None:
        """Map the workflow's answer to None (delivered) or the error that says why not."""
        status = answer.status_code
        if 200 <= status < 300:
            return None
        code = _error_code(answer)
        said = f"HTTP {status}, {code}" if code else f"HTTP {status}"
        if status == 410:
            return SinkDisabled(
                f"Teams answered {said}: the workflow is gone; create a new one and set url",
                sink=self.name,
                status_code=status,
            )
        if status in _TRANSIENT or 500 <= status < 600:
            retry_after = parse_retry_after(answer.headers)
            hint = f"; it asked to wait {retry_after:g}s" if retry_after is not None else ""
            log.warning(
                "teams_unavailable",
                sink=self.name,
                status_code=status,
                error=code,
                retry_after=retry_after,
            )
            return SinkUnavailable(
                f"Teams is unavailable ({said}){hint}",
                sink=self.name,
                status_code=status,
                retry_after=retry_after,
            )
        if 300 <= status < 400:
            return SinkRejected(
                f"Teams answered redirect HTTP {status}, which the sink does not follow; "
                "set url to the workflow's own URL",
                sink=self.name,
                status_code=status,
            )
        return SinkRejected(f"Teams rejected the card ({said})", sink=self.name, status_code=status)

    async def aclose(self) -> None:
        """Close the HTTP client and its connections; safe to call more than once."""
        if not self._closed:
            self._closed = True
            await self._client.aclose()

    def __repr__(self) -> str:
        # The URL is the secret (its sig= lets anyone post): the name says which sink this is.
        return f"<{type(self).__name__} {self.name!r} type={self.config.type!r}>"
