"""The PagerDuty sink: each event's alerts as Events API v2 events, and PagerDuty's answers.

An event maps to alerts (:meth:`~watcher.alerts.AlertingConfig.alerts_for`): none (the event is
delivered with the receipt ``no alert``), or one or more sent in order (a failed job resolves
its stall, then triggers ``failed``). Should PagerDuty take the first and refuse the second for
now, the dispatcher retries the whole event and the first is sent again: harmless, because
PagerDuty deduplicates by ``dedup_key`` (a second trigger updates the open incident, a second
resolve finds nothing left to resolve).

PagerDuty answers ``202`` when it took an event, ``400`` with
``{"status": "invalid event", "message": "...", "errors": [...]}`` when it never will (the
errors go into the dead letter's reason, cut short), ``429`` when the routing key sends too
much, and ``5xx`` when it is unwell; the last two are retried, after ``Retry-After`` when it
says so. Error messages carry the sink's name, the status and PagerDuty's words, never the
routing key.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Final, NoReturn

import structlog

from watcher.alerts import Action, Alert, AlertKey, Condition
from watcher.errors import SinkDisabled, SinkRejected, SinkUnavailable
from watcher.events import BaseEvent
from watcher.facts import fit, is_test, one_line
from watcher.http import (
    Answer,
    AsyncBaseTransport,
    AsyncClient,
)
from watcher.retry import parse_retry_after
from watcher.sinks import SinkBase, post_delivery

from ._config import PagerDutyConfig
from ._events import CHANGE_PATH, ENQUEUE_PATH, change_body, event_body

__all__ = ["USER_AGENT", "PagerDutySink"]

log = structlog.get_logger(__name__)

USER_AGENT: Final = "ftwatch-pagerduty"

#: How much of PagerDuty's ``errors`` a dead letter's reason carries: enough to fix the body.
_ERRORS_MAX: Final = 5
_ERROR_TEXT_MAX: Final = 160
_REASON_MAX: Final = 600


def _alerts(config: PagerDutyConfig, event: BaseEvent) -> list[Alert]:
    if is_test(event):
        # `ftwatch sinks test`: a change event proves the routing key and pages nobody.
        key = AlertKey(event.source, event.job.id, Condition.SUCCEEDED)
        return [Alert(key=key, action=Action.NOTICE, severity="info", event=event)]
    return config.alerts_for(event)


def _request(alert: Alert, config: PagerDutyConfig) -> tuple[str, dict[str, Any]]:
    if alert.action is Action.NOTICE:
        return CHANGE_PATH, change_body(alert, config)
    return ENQUEUE_PATH, event_body(alert, config)


class PagerDutySink(SinkBase):
    """Sends each event's alerts to PagerDuty's Events API v2 as trigger, resolve or change events.

    Owns an HTTP client, closed by :meth:`aclose`. ``transport`` replaces the network for
    tests and embedding applications.
    """

    config_model: ClassVar[type[PagerDutyConfig]] = PagerDutyConfig
    config: PagerDutyConfig

    def __init__(
        self, config: PagerDutyConfig, *, transport: AsyncBaseTransport | None = None
    ) -> None:
        super().__init__(config)
        self._client = AsyncClient(
            transport=transport,
            timeout=config.timeout,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )

    async def send(self, event: BaseEvent) -> str:
        """Send ``event``'s alerts in order; return what PagerDuty said of each.

        The receipt reads ``HTTP 202 trigger dedup_key=ftwatch/openai/ftjob-abc/failed``, or
        ``no alert`` for an event that maps to none. Otherwise raise the matching sink error.
        """
        receipts = []
        for alert in _alerts(self.config, event):
            path, body = _request(alert, self.config)
            response = await self._post(path, body)
            self._check(response)
            what = body.get("event_action", "change")
            key = f" dedup_key={body['dedup_key']}" if "dedup_key" in body else ""
            log.debug(
                "pagerduty_delivered",
                sink=self.name,
                event_id=event.id,
                job_id=event.job_id,
                action=what,
                dedup_key=body.get("dedup_key"),
            )
            receipts.append(f"HTTP {response.status_code} {what}{key}")
        return "; ".join(receipts) or "no alert"

    async def _post(self, path: str, body: dict[str, Any]) -> Answer:
        content = json.dumps(body, ensure_ascii=False).encode()
        return await post_delivery(
            self._client,
            self.config.api_url + path,
            content=content,
            headers={"Content-Type": "application/json"},
            deadline=self.config.timeout,
            sink=self.name,
            peer="PagerDuty",
        )

    def _check(self, response: Answer) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        if status == 429:
            self._unavailable(status, "too many events for this routing key", response)
        if status >= 500 or status == 408:
            self._unavailable(status, None, response)
        words = self._words(response)
        if status in (401, 403, 404) or "routing key" in words.lower():
            raise SinkDisabled(
                f"PagerDuty will not take events from this sink (HTTP {status}{words}); "
                "check routing_key and api_url",
                sink=self.name,
                status_code=status,
            )
        raise SinkRejected(
            f"PagerDuty rejected the event (HTTP {status}{words})",
            sink=self.name,
            status_code=status,
        )

    def _words(self, response: Answer) -> str:
        """``: message: error; error`` from PagerDuty's JSON answer, short and without secrets."""
        answer: Any = response.json()
        if not isinstance(answer, dict):
            return ""
        message = answer.get("message")
        head = self._clean(message) if isinstance(message, str) else ""
        errors = answer.get("errors")
        if not isinstance(errors, list):
            errors = []
        texts = [self._clean(e) for e in errors[:_ERRORS_MAX] if isinstance(e, str)]
        # Said after the cut, so that the reason always tells how much was left out.
        more = f"; and {len(errors) - _ERRORS_MAX} more" if len(errors) > _ERRORS_MAX else ""
        listed = "; ".join(texts)
        text = ": ".join(p for p in (head, listed) if p)
        if not text:
            return ""
        return f", {fit(text, _REASON_MAX - len(more))}{more}"

    def _clean(self, text: str) -> str:
        # PagerDuty never echoes the key, but a proxy in between might: the reason is stored.
        text = text.replace(self.config.routing_key.get_secret_value(), "********")
        return fit(one_line(text), _ERROR_TEXT_MAX)

    def _unavailable(self, status: int, what: str | None, response: Answer) -> NoReturn:
        retry_after = parse_retry_after(response.headers)
        hint = f"; it asked to wait {retry_after:g}s" if retry_after is not None else ""
        log.warning(
            "pagerduty_unavailable", sink=self.name, status_code=status, retry_after=retry_after
        )
        raise SinkUnavailable(
            f"PagerDuty is unavailable (HTTP {status}{', ' + what if what else ''}){hint}",
            sink=self.name,
            status_code=status,
            retry_after=retry_after,
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()
