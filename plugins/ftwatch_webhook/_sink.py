"""The webhook sink: POST each event's envelope, signed the way OpenAI signs its own webhooks.

A delivery is ``POST url`` with the envelope JSON as body and the Standard Webhooks headers
(``webhook-id`` is the event id, so receivers drop duplicates; ``webhook-timestamp``;
``webhook-signature`` when a secret is set). The receiver's answer decides the outcome:

=====================  =================================================================
answer                 outcome
=====================  =================================================================
2xx                    delivered; ``send`` returns the receipt ``"HTTP 200"``
410 Gone               :class:`~watcher.errors.SinkDisabled`: stop until restarted
408, 409, 429, 5xx     :class:`~watcher.errors.SinkUnavailable` (``Retry-After`` honoured)
other 4xx, 3xx         :class:`~watcher.errors.SinkRejected`: permanent for this event
no answer              :class:`~watcher.errors.SinkUnavailable` (refused, DNS, timeout)
=====================  =================================================================

Errors and logs name the sink and the status code, never the URL, a header or the secret.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import ClassVar

import structlog
from standardwebhooks.webhooks import Webhook

from watcher.errors import SinkDisabled, SinkError, SinkRejected, SinkUnavailable
from watcher.events import BaseEvent
from watcher.http import (
    AsyncBaseTransport,
    ClientPerRequest,
    Timeout,
)
from watcher.retry import parse_retry_after
from watcher.sinks import SinkBase, SinkConfig, post_delivery

from ._config import WebhookConfig, redact_url

__all__ = ["USER_AGENT", "WebhookSink"]

log = structlog.get_logger(__name__)


def _user_agent() -> str:
    try:
        return f"ftwatch/{version('ftwatch')}"
    except PackageNotFoundError:
        return "ftwatch"


#: The ``user-agent`` every delivery carries (an extra ``User-Agent`` header replaces it).
USER_AGENT = _user_agent()

#: Statuses that say "not now": the same delivery may succeed later.
_TRANSIENT = frozenset({408, 409, 429})


class WebhookSink(SinkBase):
    """POSTs every event to an HTTP endpoint, signed with Standard Webhooks when configured.

    Built from its :class:`WebhookConfig`; it owns an HTTP client, closed by :meth:`aclose` (or
    by leaving ``async with``). ``transport`` replaces the network (an ``ASGITransport`` or
    ``MockTransport`` in tests) and ``now`` the clock that stamps ``webhook-timestamp``.
    """

    config_model: ClassVar[type[SinkConfig]] = WebhookConfig
    config: WebhookConfig

    def __init__(
        self,
        config: WebhookConfig,
        *,
        transport: AsyncBaseTransport | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(config)
        self._now = now
        self._signer = None if config.secret is None else Webhook(config.secret.get_secret_value())
        self._client = ClientPerRequest(
            transport=transport,
            timeout=Timeout(config.timeout),
            follow_redirects=False,
            headers={"user-agent": USER_AGENT},
        )
        self._closed = False

    async def send(self, event: BaseEvent) -> str:
        """POST ``event``'s envelope; return once the receiver answered 2xx, with its status.

        The receipt is ``"HTTP 200"`` (or whichever 2xx came back).

        Raises :class:`~watcher.errors.SinkDisabled` on 410,
        :class:`~watcher.errors.SinkUnavailable` when the receiver is busy, failing or
        unreachable, and :class:`~watcher.errors.SinkRejected` when it refuses this event.
        """
        if self._closed:
            raise RuntimeError(f"webhook sink {self.name!r} is closed; it cannot send")
        payload = event.to_json()
        body = payload.encode()
        started = time.monotonic()
        # httpx's timeout is per read or write; the deadline bounds the whole delivery, and
        # only the first few KiB of the answer are read (its status is what counts).
        response = await post_delivery(
            self._client,
            self.config.url,
            content=body,
            headers=self._headers(event, payload),
            deadline=self.config.timeout,
            sink=self.name,
        )
        status = response.status_code
        elapsed = round(time.monotonic() - started, 3)
        log.debug(
            "webhook_answered",
            sink=self.name,
            event_id=event.id,
            event_type=event.type,
            status_code=status,
            elapsed_s=elapsed,
        )
        error = self._outcome(status, response.headers)
        if error is not None:
            raise error
        return f"HTTP {status}"

    def _headers(self, event: BaseEvent, payload: str) -> dict[str, str]:
        """The headers of one delivery: the extras, then ours, which the config cannot replace."""
        timestamp = int(self._now())
        headers = dict(self.config.headers)
        headers.update(
            {
                "content-type": "application/json",
                "webhook-id": event.id,
                "webhook-timestamp": str(timestamp),
            }
        )
        if self._signer is not None:
            # standardwebhooks reads the datetime's wall time as UTC, so it must be UTC already.
            when = datetime.fromtimestamp(timestamp, tz=UTC)
            headers["webhook-signature"] = self._signer.sign(event.id, when, payload)
        return headers

    def _outcome(self, status: int, headers: Mapping[str, str]) -> SinkError | None:
        """Map the receiver's status code to None (delivered) or the error that says why not."""
        name = self.name
        if 200 <= status < 300:
            return None
        if status == 410:
            # What follows (the sink stops until restart) is the dispatcher's to say, in its log.
            return SinkDisabled(
                "the receiver answered 410 Gone, asking not to be called again",
                sink=name,
                status_code=status,
            )
        if status in _TRANSIENT or 500 <= status < 600:
            return SinkUnavailable(
                f"the receiver answered HTTP {status}, a temporary failure",
                sink=name,
                status_code=status,
                retry_after=parse_retry_after(headers, now=self._now()),
            )
        if 300 <= status < 400:
            return SinkRejected(
                f"the receiver answered redirect HTTP {status}, which "
                "a signed delivery does not follow; set the sink's url to the final address",
                sink=name,
                status_code=status,
            )
        return SinkRejected(
            f"the receiver rejected the event with HTTP {status}",
            sink=name,
            status_code=status,
        )

    async def aclose(self) -> None:
        """Close the HTTP client and its connections; safe to call more than once."""
        if not self._closed:
            self._closed = True
            await self._client.aclose()

    def __repr__(self) -> str:
        signed = "signed" if self._signer is not None else "unsigned"
        return (
            f"<{type(self).__name__} {self.name!r} type={self.config.type!r} "
            f"url={redact_url(self.config.url)!r} {signed}>"
        )
