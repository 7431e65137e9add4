"""The Slack sink: posts each event as a Block Kit message and reads Slack's answer.

Two doors into Slack answer differently. An incoming webhook answers ``200 ok`` or an HTTP
error status with a short error code as its body (``400 invalid_payload``, ``404 no_service``,
``410 channel_is_archived``). ``chat.postMessage`` answers HTTP 200 with JSON,
``{"ok": true}`` or ``{"ok": false, "error": "channel_not_found"}``. Both become the sink
outcomes the dispatcher understands: delivered, :class:`~watcher.errors.SinkRejected`,
:class:`~watcher.errors.SinkUnavailable` (with Slack's ``Retry-After``) or
:class:`~watcher.errors.SinkDisabled`. Error messages carry the sink's name, the HTTP status and
Slack's error code, never the webhook URL or the token.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar, Final, NoReturn

import structlog

from watcher.errors import SinkDisabled, SinkRejected, SinkUnavailable
from watcher.events import BaseEvent
from watcher.http import (
    Answer,
    AsyncBaseTransport,
    AsyncClient,
)
from watcher.retry import parse_retry_after
from watcher.sinks import SinkBase, post_delivery

from ._config import SlackConfig
from ._message import build_message

__all__ = ["SlackSink"]

log = structlog.get_logger(__name__)

#: Slack's error codes are short snake_case words; anything else in a body is not quoted.
_ERROR_CODE = re.compile(r"[a-z0-9_.-]{1,64}")

#: Codes after which no later message can get through until someone changes the config.
_DISABLING_CODES: Final = frozenset(
    {
        # incoming webhooks
        "action_prohibited",
        "channel_is_archived",
        "invalid_token",
        "no_active_hooks",
        "no_service",
        "no_service_id",
        "no_team",
        "posting_to_general_channel_denied",
        "team_disabled",
        # chat.postMessage
        "access_denied",
        "account_inactive",
        "channel_not_found",
        "ekm_access_denied",
        "enterprise_is_restricted",
        "invalid_auth",
        "is_archived",
        "missing_scope",
        "no_permission",
        "not_allowed_token_type",
        "not_authed",
        "not_in_channel",
        "org_login_required",
        "restricted_action",
        "team_access_not_granted",
        "token_expired",
        "token_revoked",
    }
)
#: Codes that say "not now": retried with backoff.
_TRANSIENT_CODES: Final = frozenset(
    {
        "fatal_error",
        "internal_error",
        "ratelimited",
        "rate_limited",
        "request_timeout",
        "service_unavailable",
        "team_added_to_org",
    }
)
#: What to do about a disabling code, for the operator reading the error.
_HINTS: Final = {
    "invalid_token": "the webhook was revoked; create a new incoming webhook",
    "no_service": "the webhook was removed; create a new incoming webhook",
    "no_active_hooks": "the webhook was removed; create a new incoming webhook",
    "channel_is_archived": "the channel is archived; unarchive it or post elsewhere",
    "is_archived": "the channel is archived; unarchive it or post elsewhere",
    "channel_not_found": "check the channel, and that the bot or webhook can see it",
    "not_in_channel": "invite the bot to the channel",
    "invalid_auth": "check the token",
    "not_authed": "check the token",
    "token_revoked": "the token was revoked; issue a new one",
    "token_expired": "the token expired; issue a new one",
    "account_inactive": "the bot's account was deactivated",
    "missing_scope": "give the bot the chat:write scope",
    "action_prohibited": "a workspace admin restricted posting there",
}


def _retry_after(response: Answer) -> float | None:
    """Slack's ``Retry-After`` in seconds, read by the project's one retry policy."""
    return parse_retry_after(response.headers)


def _code_of(value: object) -> str | None:
    """``value`` when it looks like one of Slack's error codes; never echo anything else."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if _ERROR_CODE.fullmatch(value) else None


class SlackSink(SinkBase):
    """Posts each event to Slack as a Block Kit message, by incoming webhook or by bot token.

    Owns an HTTP client, closed by :meth:`aclose`. ``transport`` replaces the network for
    tests and embedding applications.
    """

    config_model: ClassVar[type[SlackConfig]] = SlackConfig
    config: SlackConfig

    def __init__(self, config: SlackConfig, *, transport: AsyncBaseTransport | None = None) -> None:
        super().__init__(config)
        self._client = AsyncClient(
            transport=transport,
            timeout=config.timeout,
            follow_redirects=False,
            headers={"User-Agent": "ftwatch-slack"},
        )

    @property
    def mode(self) -> str:
        """``"webhook"`` or ``"chat.postMessage"``: which door into Slack this sink uses."""
        return "webhook" if self.config.webhook_url is not None else "chat.postMessage"

    async def send(self, event: BaseEvent) -> str:
        """Post ``event``; once Slack accepted it return its status as the receipt (``HTTP 200``).

        Otherwise raise the matching sink error.
        """
        payload = build_message(event)
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if self.config.webhook_url is not None:
            url = self.config.webhook_url.get_secret_value()
        else:
            assert self.config.token is not None  # SlackConfig requires it without webhook_url
            url = f"{self.config.api_url}/chat.postMessage"
            payload["channel"] = self.config.channel
            headers["Authorization"] = f"Bearer {self.config.token.get_secret_value()}"
        body = json.dumps(payload, ensure_ascii=False).encode()
        response = await post_delivery(
            self._client,
            url,
            content=body,
            headers=headers,
            deadline=self.config.timeout,
            sink=self.name,
            peer="Slack",
        )
        if self.config.webhook_url is not None:
            self._check_webhook_answer(response)
        else:
            self._check_api_answer(response)
        log.debug(
            "slack_delivered",
            sink=self.name,
            mode=self.mode,
            event_id=event.id,
            job_id=event.job_id,
        )
        return f"HTTP {response.status_code}"

    def _check_webhook_answer(self, response: Answer) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        code = _code_of(response.text[:100])
        if status == 429 or code in _TRANSIENT_CODES:
            self._unavailable(status, code or "rate_limited", _retry_after(response))
        if status >= 500 or status == 408:
            self._unavailable(status, code, _retry_after(response))
        if status in (401, 403, 404, 410) or code in _DISABLING_CODES:
            self._disabled(status, code)
        self._rejected(status, code)

    def _check_api_answer(self, response: Answer) -> None:
        status = response.status_code
        if status == 429:
            self._unavailable(status, "ratelimited", _retry_after(response))
        if status >= 500 or status == 408:
            self._unavailable(status, None, _retry_after(response))
        answer: Any = response.json()
        if not isinstance(answer, dict):
            if status in (401, 403, 404, 410):
                self._disabled(status, None)
            if 200 <= status < 300:
                # A proxy or a captive portal rather than Slack: worth another try later.
                self._unavailable(
                    status, None, None, what="answered with something other than JSON"
                )
            self._rejected(status, None)
        if answer.get("ok") is True:
            return
        code = _code_of(answer.get("error")) or "unknown_error"
        if code in _TRANSIENT_CODES:
            self._unavailable(status, code, _retry_after(response))
        if code in _DISABLING_CODES:
            self._disabled(status, code)
        self._rejected(status, code)

    def _describe(self, status: int, code: str | None) -> str:
        return f"HTTP {status}, {code}" if code else f"HTTP {status}"

    def _unavailable(
        self,
        status: int,
        code: str | None,
        retry_after: float | None,
        *,
        what: str = "is unavailable",
    ) -> NoReturn:
        hint = f"; it asked to wait {retry_after:g}s" if retry_after is not None else ""
        log.warning(
            "slack_unavailable",
            sink=self.name,
            status_code=status,
            error=code,
            retry_after=retry_after,
        )
        raise SinkUnavailable(
            f"Slack {what} ({self._describe(status, code)}){hint}",
            sink=self.name,
            status_code=status,
            retry_after=retry_after,
        )

    def _disabled(self, status: int, code: str | None) -> NoReturn:
        hint = _HINTS.get(code or "", "check the sink's settings")
        raise SinkDisabled(
            f"Slack will not take messages from this sink ({self._describe(status, code)}); {hint}",
            sink=self.name,
            status_code=status,
        )

    def _rejected(self, status: int, code: str | None) -> NoReturn:
        raise SinkRejected(
            f"Slack rejected the message ({self._describe(status, code)})",
            sink=self.name,
            status_code=status,
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()
