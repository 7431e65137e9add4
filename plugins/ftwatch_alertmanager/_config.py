"""The ``[[sinks]]`` keys of an Alertmanager sink: where to post, how to label, how long to hold."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, Final
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    ConfigDict,
    Field,
    SecretStr,
    field_serializer,
    field_validator,
    model_validator,
)

from watcher.alerts import AlertingConfig
from watcher.durations import Duration

__all__ = ["RESERVED_LABELS", "AlertmanagerConfig", "shown_url"]

#: The labels the sink sets itself; an extra label may not replace them, or the same alert
#: would no longer match itself (Alertmanager identifies an alert by its labels).
RESERVED_LABELS: Final = frozenset(
    {"alertname", "source", "job", "model", "suffix", "status", "condition", "severity", "test"}
)
# Prometheus' label names: what Alertmanager accepts (names starting with __ are reserved).
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_EXAMPLE_URL = "http://alertmanager:9093"
#: The API path a base URL gets; a URL that already ends with it is taken as it is.
API_PATH: Final = "/api/v2/alerts"


def shown_url(url: str) -> str:
    """``host:port`` of ``url``, to name one Alertmanager in an error without its path or query."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "?", parts.port
    except ValueError:
        return "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port is not None else host


def _redacted(url: str) -> str:
    """``scheme://host:port``, with ``/***`` for a path or query that may hold a token."""
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{shown_url(url)}"
    return shown + ("/***" if parts.path.strip("/") or parts.query else "")


def _check_url(url: str) -> str:
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port  # reading it checks that it is a number in range
    except ValueError:
        raise ValueError(f"expected an Alertmanager URL such as {_EXAMPLE_URL}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        raise ValueError(
            f"expected an Alertmanager URL such as {_EXAMPLE_URL} (http or https, with a host)"
        )
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "put the Alertmanager's credentials in username and password (or bearer_token), "
            "not in the URL"
        )
    if any(c.isspace() for c in url) or parts.fragment:
        raise ValueError(f"expected an Alertmanager URL such as {_EXAMPLE_URL}, without spaces")
    return url.rstrip("/")


class AlertmanagerConfig(AlertingConfig):
    """An Alertmanager sink's keys, besides the alerting, routing and retry keys.

    ``urls``
        Alertmanager base URLs (``http://alertmanager:9093``, with any route prefix); the sink
        posts to ``<url>/api/v2/alerts``. Every URL gets every post (an HA pair); a delivery
        counts once at least one accepted it, and the keep-alive brings the others up to date.
    ``alertname``
        One ``alertname`` for every alert (the ``condition`` label tells them apart); by
        default one per condition: ``FineTuningJobFailed``, ``FineTuningJobStalled``,
        ``FineTuningJobCancelled``, ``FineTuningJobSucceeded``.
    ``labels``
        Extra labels on every alert (``team = "ml"``); they may not replace the sink's own.
    ``username`` + ``password`` / ``bearer_token``
        HTTP basic auth or a bearer token (a proxy in front of Alertmanager); both secrets.
    ``resend_interval``
        How often firing alerts are posted again (Alertmanager resolves an alert not re-sent
        before its ``endsAt``, and forgets alerts when it restarts); each post says
        ``endsAt = now + 4 * resend_interval``, as Prometheus does.
    ``failed_resolve_after``
        When a ``failed`` (or ``cancelled``) alert resolves, counted from the job's end.
    ``notice_duration``
        How long a ``succeeded`` notice (``notify_succeeded = true``) stays listed.
    ``timeout``
        The whole-request deadline of one post to one Alertmanager.
    """

    # A rejected value may be a password, a token or a URL: never echo it in an error.
    model_config = ConfigDict(hide_input_in_errors=True)

    urls: Annotated[list[str], Field(min_length=1)]
    alertname: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    username: str | None = None
    password: SecretStr | None = None
    bearer_token: SecretStr | None = None
    resend_interval: Annotated[Duration, Field(ge=1)] = 60.0
    failed_resolve_after: Annotated[Duration, Field(gt=0)] = 86400.0
    notice_duration: Annotated[Duration, Field(gt=0)] = 3600.0
    timeout: Annotated[Duration, Field(gt=0)] = 10.0

    @field_validator("urls")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        checked = [_check_url(url) for url in urls]
        if len(set(checked)) != len(checked):
            raise ValueError("the same Alertmanager URL is given twice; list each once")
        return checked

    @field_validator("alertname")
    @classmethod
    def _alertname(cls, name: str | None) -> str | None:
        if name is not None and not name.strip():
            raise ValueError("expected a name such as FineTuningJob, or leave alertname out")
        return None if name is None else name.strip()

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for name, value in labels.items():
            if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
                raise ValueError(
                    f"label name {name!r} is not a valid Alertmanager label name "
                    "(letters, digits and _, not starting with a digit or __)"
                )
            if name in RESERVED_LABELS:
                raise ValueError(f"label {name!r} is set by the sink itself; choose another name")
            if not value:
                raise ValueError(f"label {name!r} is empty; give it a value or leave it out")
        return labels

    @model_validator(mode="after")
    def _one_auth(self) -> AlertmanagerConfig:
        if self.bearer_token is not None and (self.username or self.password):
            raise ValueError("give either username and password or bearer_token, not both")
        if (self.username is None) != (self.password is None):
            raise ValueError("basic auth needs both username and password; give both or neither")
        return self

    def endpoints(self) -> list[str]:
        """Where the alerts go: each URL's ``/api/v2/alerts``."""
        found = []
        for url in self.urls:
            parts = urlsplit(url)
            path = parts.path.rstrip("/")
            if not path.endswith(API_PATH):
                path += API_PATH
            found.append(urlunsplit(parts._replace(path=path)))
        return found

    @field_serializer("urls", when_used="json")
    def _json_urls(self, urls: list[str]) -> list[str]:
        # A JSON dump is for showing; Python dumps keep the URLs, for the code that posts.
        return [_redacted(url) for url in urls]

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # A URL may carry a token in its path or query: only host and port are shown.
        for key, value in super().__repr_args__():
            yield key, ([_redacted(u) for u in self.urls] if key == "urls" else value)
