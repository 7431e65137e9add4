"""The Apprise sink: hands each event to Apprise for every configured URL, and reads the outcome.

Apprise answers a call with success or failure and the log lines it wrote on the way; no
status codes, no ``Retry-After``. A failure is therefore :class:`~watcher.errors.SinkUnavailable`
(retried), its reason built from those lines with every part of the URL masked. Apprise's
sending code is synchronous (``requests``), so each call runs in a worker thread and the event
loop never waits on it; ``timeout`` bounds the call. With several URLs, each gets the event
once: a retry goes only to the URLs that failed, so one dead service never repeats the
notification on the others.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from functools import partial
from typing import TYPE_CHECKING, ClassVar, Final
from urllib.parse import parse_qsl, unquote, urlsplit

import anyio
import anyio.to_thread
import structlog

from watcher.errors import ConfigError, SinkUnavailable
from watcher.events import BaseEvent
from watcher.sinks import SinkBase

from . import _library
from ._config import AppriseConfig
from ._message import Notification, build_notification

if TYPE_CHECKING:
    import apprise

__all__ = ["AppriseSink"]

log = structlog.get_logger(__name__)

MASK: Final = "********"
#: Parts of a URL shorter than this are not masked on their own: it would garble ordinary text.
_MIN_SECRET: Final = 6
#: How many events' partial deliveries are remembered (those with some URLs still to go).
_REMEMBERED: Final = 1024
_REASON_MAX: Final = 300


def _secret_parts(url: str) -> list[str]:
    """Every piece of ``url`` that may carry a token, longest first: Apprise's lines quote
    pieces (a bot token, a password, a path) rather than the URL as written."""
    parts = {url}
    try:
        split = urlsplit(url)
        pieces = [split.netloc, split.username, split.password, split.hostname, split.path]
        pieces += split.path.split("/")
        pieces += [value for _, value in parse_qsl(split.query)]
    except ValueError:
        pieces = []
    for piece in pieces:
        if piece:
            parts.update((piece, unquote(piece)))
    return sorted((p for p in parts if len(p) >= _MIN_SECRET), key=len, reverse=True)


class _Service:
    """One configured URL: its Apprise object, its name and what to mask in its log lines."""

    def __init__(self, index: int, notifier: apprise.Apprise, url: str) -> None:
        self.index = index
        self.notifier = notifier
        #: Apprise's name for the service (``JSON``, ``Telegram``, ``ntfy``): not a secret.
        self.name = str(getattr(notifier[0], "service_name", None) or "a service")
        self._mask = re.compile("|".join(re.escape(p) for p in _secret_parts(url)))

    def mask(self, text: str) -> str:
        return self._mask.sub(MASK, text)


class AppriseSink(SinkBase):
    """Sends each event to every configured Apprise URL as a titled notification.

    Building it raises :class:`~watcher.errors.PluginError` when Apprise is not installed
    (saying how to install it) and :class:`~watcher.errors.ConfigError` for a URL Apprise
    cannot use, without quoting it.
    """

    config_model: ClassVar[type[AppriseConfig]] = AppriseConfig
    config: AppriseConfig

    def __init__(self, config: AppriseConfig) -> None:
        super().__init__(config)
        _library.require()
        self._services: list[_Service] = []
        for index, secret in enumerate(config.urls):
            url = secret.get_secret_value()
            notifier = _library.parse(url)
            if notifier is None:
                # The config model checks this when Apprise is installed; a config built
                # without it (model_construct, or Apprise installed since) lands here.
                raise ConfigError(
                    f"sink {config.name!r}: urls[{index}] is not a URL Apprise can use; "
                    "see https://github.com/caronc/apprise/wiki for each service's URL form"
                )
            self._services.append(_Service(index, notifier, url))
        # Event id -> indexes of the URLs that already have it.
        self._delivered: OrderedDict[str, set[int]] = OrderedDict()

    @property
    def services(self) -> list[str]:
        """Apprise's name for each configured URL's service, in order (``["JSON", "ntfy"]``)."""
        return [service.name for service in self._services]

    async def send(self, event: BaseEvent) -> str:
        """Notify every URL that does not have ``event`` yet; return ``"notified JSON, ntfy"``.

        Raises :class:`~watcher.errors.SinkUnavailable` naming each service that failed and why.
        """
        notification = build_notification(event, self.config.body_format)
        done = self._delivered.pop(event.id, set())
        failures: dict[int, str] = {}

        async def notify(service: _Service) -> None:
            reason = await self._notify(service, notification)
            if reason is None:
                done.add(service.index)
            else:
                failures[service.index] = reason

        async with anyio.create_task_group() as group:
            for service in self._services:
                if service.index not in done:
                    group.start_soon(notify, service)
        if failures:
            self._remember(event.id, done)
            reasons = "; ".join(failures[i] for i in sorted(failures))
            log.warning(
                "apprise_unavailable",
                sink=self.name,
                event_id=event.id,
                job_id=event.job_id,
                failed=len(failures),
                of=len(self._services),
                reason=reasons,
            )
            raise SinkUnavailable(reasons, sink=self.name)
        log.debug("apprise_delivered", sink=self.name, event_id=event.id, job_id=event.job_id)
        return "notified " + ", ".join(self.services)

    async def _notify(self, service: _Service, notification: Notification) -> str | None:
        """Notify one service; None once it took the notification, else why not (masked)."""
        call = partial(
            service.notifier.notify,
            body=notification.body,
            title=notification.title,
            notify_type=notification.notify_type,
            body_format=notification.body_format,
            timeout=self.config.timeout,
        )
        # Apprise's own timeout ends the call; a cancelled send (shutdown) leaves the thread to
        # finish on its own rather than holding the daemon up.
        result = await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
        if result:
            return None
        lines = [service.mask(" ".join(entry.message.split())) for entry in result.logs()]
        import apprise

        if result.status == apprise.AppriseResultStatus.TIMEOUT and not any(lines):
            lines.append(f"no answer within {self.config.timeout:g}s")
        said = "; ".join(dict.fromkeys(line for line in lines if line)) or "no reason given"
        if len(said) > _REASON_MAX:
            said = said[: _REASON_MAX - 1] + "…"
        where = f"URL {service.index + 1} of {len(self._services)}"
        return f"Apprise could not notify {service.name} ({where}): {said}"

    def _remember(self, event_id: str, done: set[int]) -> None:
        if not done:
            return
        self._delivered[event_id] = done
        while len(self._delivered) > _REMEMBERED:
            self._delivered.popitem(last=False)
