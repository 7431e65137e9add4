"""The Alertmanager sink: fires and resolves alerts with ``POST /api/v2/alerts``, and keeps them up.

Each event's alerts (:meth:`~watcher.alerts.AlertingConfig.alerts_for`) go out in one post, to
every configured Alertmanager at once. The answers decide the outcome:

=====================  =================================================================
answer                 outcome
=====================  =================================================================
2xx from at least one  delivered (the others are logged, and caught up by the keep-alive)
408, 429, 5xx, none    :class:`~watcher.errors.SinkUnavailable` (``Retry-After`` honoured)
401, 403, 404, 405     :class:`~watcher.errors.SinkDisabled`: wrong credentials or URL
other 4xx, 3xx         :class:`~watcher.errors.SinkRejected`, with Alertmanager's reason
=====================  =================================================================

(when no Alertmanager accepted: unavailable if any was, else disabled if all were, else
rejected). Alertmanager ends an alert that is not posted again before its ``endsAt`` and
forgets its alerts when it restarts, so while the daemon runs (:meth:`AlertmanagerSink.run`)
the sink posts every firing alert again every ``resend_interval``, from a state file that
outlives restarts. Errors and logs name an Alertmanager by its host and port, never its URL's
path or query, nor a credential.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal, NoReturn

import anyio
import structlog

from watcher.alerts import Action
from watcher.errors import SinkDisabled, SinkRejected, SinkUnavailable
from watcher.events import BaseEvent
from watcher.facts import is_test, one_line
from watcher.http import (
    AsyncBaseTransport,
    AsyncClient,
)
from watcher.retry import parse_retry_after
from watcher.sinks import SinkBase, SinkContext, post_delivery

from ._config import AlertmanagerConfig, shown_url
from ._payload import Held, held_for, resolve_variants, test_alert
from ._state import read_state, write_state

__all__ = ["AlertmanagerSink"]

log = structlog.get_logger(__name__)

#: How far past each post a firing alert's ``endsAt`` lies, in resend intervals (Prometheus: 4).
ENDS_AFTER_RESENDS = 4
#: Statuses that say "wrong URL or credentials": no later post can get through either.
_DISABLING = frozenset({401, 403, 404, 405})
_REASON_MAX = 200

Kind = Literal["ok", "unavailable", "disabled", "rejected"]


@dataclass(frozen=True)
class _Outcome:
    """What one Alertmanager answered to one post."""

    where: str
    kind: Kind
    status: int | None = None
    reason: str = ""
    retry_after: float | None = None


def _quoted_reason(content: bytes) -> str:
    """Alertmanager's own words (a JSON string, or ``{"message": ...}``), short, on one line."""
    text = content.decode("utf-8", errors="replace")
    try:
        data: Any = json.loads(text)
    except (ValueError, RecursionError):
        data = text
    if isinstance(data, dict):
        data = data.get("message") or data.get("error") or ""
    return one_line(str(data))[:_REASON_MAX]


class AlertmanagerSink(SinkBase):
    """Posts ftwatch's alerts to one or more Alertmanagers and keeps the firing ones alive.

    A :class:`~watcher.sinks.BackgroundSink`: the daemon runs :meth:`run`, which loads the
    alerts held firing from the sink's state directory and re-posts them on schedule. Before
    (or without, as in ``ftwatch sinks test``) ``run``, :meth:`send` still posts, and what it
    fires is held in memory and written once ``run`` has the directory. ``transport`` replaces
    the network for tests.
    """

    config_model: ClassVar[type[AlertmanagerConfig]] = AlertmanagerConfig
    config: AlertmanagerConfig

    def __init__(
        self, config: AlertmanagerConfig, *, transport: AsyncBaseTransport | None = None
    ) -> None:
        super().__init__(config)
        self._client = AsyncClient(
            transport=transport,
            timeout=config.timeout,
            follow_redirects=False,
            headers={"User-Agent": "ftwatch-alertmanager"},
        )
        self._endpoints = config.endpoints()
        #: The alerts held firing, by key.
        self._firing: dict[str, Held] = {}
        #: Keys fired or resolved before the state file was read: newer than what it says.
        self._touched: set[str] = set()
        self._context: SinkContext | None = None
        self._now: Callable[[], float] = time.time
        # One post at a time, so that a keep-alive never re-fires an alert a send resolved.
        self._lock = anyio.Lock()
        #: How many keep-alive rounds :meth:`run` has done.
        self.rounds = 0
        self._round_done = anyio.Event()

    @property
    def firing(self) -> dict[str, Held]:
        """The alerts this sink holds firing, by key (a copy)."""
        return dict(self._firing)

    def _ends_at(self, held: Held, now: float) -> float:
        ends = now + ENDS_AFTER_RESENDS * self.config.resend_interval
        return ends if held.expires_at is None else min(ends, held.expires_at)

    async def send(self, event: BaseEvent) -> str:
        """Fire, resolve or notice ``event``'s alerts in one post; return a short receipt.

        Raises the matching sink error when no Alertmanager accepted the post.
        """
        if is_test(event):
            return await self._post([test_alert(self.config, event, self._now())])
        alerts = self.config.alerts_for(event)
        if not alerts:
            return "no alert"
        async with self._lock:
            now = self._now()
            bodies: list[dict[str, Any]] = []
            fired: list[Held] = []
            forgot = False
            for alert in alerts:
                key = str(alert.key)
                if alert.action is Action.RESOLVE:
                    held = self._firing.pop(key, None)
                    self._touch(key)
                    forgot = forgot or held is not None
                    for each in (
                        [held] if held is not None else resolve_variants(self.config, alert)
                    ):
                        bodies.append(each.body(now))
                elif alert.action is Action.NOTICE:
                    bodies.append(
                        held_for(self.config, alert).body(now + self.config.notice_duration)
                    )
                else:
                    held = held_for(self.config, alert)
                    before = self._firing.get(key)
                    if before is not None:
                        # The same alert again (a replay): the same labels and start, fresh text.
                        held = replace(
                            before, annotations=held.annotations, generator_url=held.generator_url
                        )
                    bodies.append(held.body(self._ends_at(held, now)))
                    if held.expires_at is None or held.expires_at > now:
                        fired.append(held)
            if forgot:
                # Forgotten before the post: were it lost, the alert still ends at its endsAt.
                await self._save()
            receipt = await self._post(bodies)
            for held in fired:
                self._firing[held.key] = held
                self._touch(held.key)
            if fired:
                await self._save()
        log.debug("alertmanager_delivered", sink=self.name, event_id=event.id, alerts=len(bodies))
        return receipt

    def _touch(self, key: str) -> None:
        # Only until the state file is read: after that, memory is the newest word.
        if self._context is None:
            self._touched.add(key)

    async def run(self, context: SinkContext) -> None:
        """Load the held alerts, then post them again every ``resend_interval`` until cancelled.

        The first post is at once: an Alertmanager that restarted while the daemon was down
        learns of them again. A ``failed`` alert ends ``failed_resolve_after`` after its
        job's end, when the sink posts its resolve and forgets it.
        """
        async with self._lock:
            self._context = context
            self._now = context.now
            stored = await anyio.to_thread.run_sync(read_state, context.state_dir)
            for key, held in stored.items():
                if key not in self._touched:
                    self._firing[key] = held
            self._touched.clear()
            await self._save()
        log.info("alertmanager_keepalive_started", sink=self.name, firing=len(self._firing))
        while True:
            try:
                await self.resend()
            except Exception:
                # A state file that cannot be written this round must not end the keep-alive.
                log.exception("alertmanager_resend_crashed", sink=self.name)
            self.rounds += 1
            self._round_done.set()
            self._round_done = anyio.Event()
            await context.sleep(self.config.resend_interval)

    async def wait_for_rounds(self, n: int) -> None:
        """Return once the keep-alive has done ``n`` rounds (no time limit: wrap it in one)."""
        while self.rounds < n:
            await self._round_done.wait()

    async def resend(self) -> None:
        """Post every held alert once more now; resolve and forget those whose time is up."""
        async with self._lock:
            now = self._now()
            expired = [h for h in self._firing.values() if h.expires_at and h.expires_at <= now]
            for held in expired:
                del self._firing[held.key]
            if expired:
                await self._save()
            bodies = [h.body(h.expires_at or now) for h in expired]
            bodies += [h.body(self._ends_at(h, now)) for h in self._firing.values()]
            if not bodies:
                return
            try:
                await self._post(bodies)
            except (SinkUnavailable, SinkRejected, SinkDisabled) as exc:
                # The next round tries again; meanwhile Alertmanager holds them to their endsAt.
                log.warning("alertmanager_resend_failed", sink=self.name, error=exc.reason)
            else:
                log.debug("alertmanager_resent", sink=self.name, alerts=len(bodies))

    async def _save(self) -> None:
        if self._context is not None:
            alerts = dict(self._firing)
            await anyio.to_thread.run_sync(write_state, self._context.state_dir, alerts)

    # -- posting -----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.config.bearer_token is not None:
            headers["Authorization"] = f"Bearer {self.config.bearer_token.get_secret_value()}"
        elif self.config.username is not None and self.config.password is not None:
            pair = f"{self.config.username}:{self.config.password.get_secret_value()}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        return headers

    async def _post(self, bodies: list[dict[str, Any]]) -> str:
        """Post ``bodies`` to every Alertmanager at once; the receipt, or the combined error."""
        content = json.dumps(bodies, ensure_ascii=False).encode()
        outcomes: list[_Outcome | None] = [None] * len(self._endpoints)

        async def post_one(index: int, url: str) -> None:
            outcomes[index] = await self._post_one(url, content)

        async with anyio.create_task_group() as tg:
            for index, url in enumerate(self._endpoints):
                tg.start_soon(post_one, index, url)
        done = [o for o in outcomes if o is not None]
        accepted = [o for o in done if o.kind == "ok"]
        failed = [o for o in done if o.kind != "ok"]
        if accepted:
            if failed:
                log.warning(
                    "alertmanager_partly_delivered",
                    sink=self.name,
                    accepted=len(accepted),
                    failed=[f"{o.where}: {o.reason}" for o in failed],
                )
            if len(done) == 1:
                return f"HTTP {accepted[0].status}"
            return f"accepted by {len(accepted)} of {len(done)} Alertmanagers"
        self._raise(failed)

    async def _post_one(self, url: str, content: bytes) -> _Outcome:
        where = shown_url(url)
        try:
            answer = await post_delivery(
                self._client,
                url,
                content=content,
                headers=self._headers(),
                deadline=self.config.timeout,
                sink=self.name,
                peer="Alertmanager",
            )
        except SinkUnavailable as exc:
            return _Outcome(where, "unavailable", reason=exc.reason)
        status = answer.status_code
        if 200 <= status < 300:
            return _Outcome(where, "ok", status)
        said = _quoted_reason(answer.content)
        reason = f"HTTP {status}" + (f", {said}" if said else "")
        if status in (408, 429) or status >= 500:
            wait = parse_retry_after(answer.headers)
            return _Outcome(where, "unavailable", status, reason, wait)
        if status in _DISABLING:
            hint = (
                "check username and password or bearer_token"
                if status in (401, 403)
                else "check that the URL is Alertmanager's base URL, such as http://alertmanager:9093"
            )
            return _Outcome(where, "disabled", status, f"{reason}; {hint}")
        return _Outcome(where, "rejected", status, reason)

    def _raise(self, failed: list[_Outcome]) -> NoReturn:
        several = len(failed) > 1
        words = "; ".join(f"{o.where}: {o.reason}" if several else o.reason for o in failed)
        status = failed[0].status
        transient = [o for o in failed if o.kind == "unavailable"]
        if transient:
            waits = [o.retry_after for o in transient if o.retry_after is not None]
            wait = min(waits) if waits else None
            hint = f"; it asked to wait {wait:g}s" if wait is not None else ""
            raise SinkUnavailable(
                f"Alertmanager is unavailable ({words}){hint}",
                sink=self.name,
                status_code=transient[0].status,
                retry_after=wait,
            )
        if all(o.kind == "disabled" for o in failed):
            raise SinkDisabled(
                f"Alertmanager will not take alerts from this sink ({words})",
                sink=self.name,
                status_code=status,
            )
        raise SinkRejected(
            f"Alertmanager rejected the alerts ({words})", sink=self.name, status_code=status
        )

    async def aclose(self) -> None:
        """Close the HTTP client (the state file is written at each change, nothing is pending)."""
        await self._client.aclose()
