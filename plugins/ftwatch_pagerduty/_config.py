"""The ``[[sinks]]`` keys of a PagerDuty sink: an Events API v2 routing key and where to post."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import ConfigDict, SecretStr, field_validator

from watcher.alerts import AlertingConfig
from watcher.durations import Duration

__all__ = ["DEFAULT_API_URL", "PagerDutyConfig"]

#: Where PagerDuty takes Events API v2 events (``/v2/enqueue``, ``/v2/change/enqueue``).
DEFAULT_API_URL = "https://events.pagerduty.com"

#: An integration key as PagerDuty shows it on a service's Events API v2 integration (or a
#: ruleset's, ``R0...``): 32 letters and digits.
_ROUTING_KEY = re.compile(r"[A-Za-z0-9]{32}")


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        port = parts.port  # reading it checks that it is a number up to 65535
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and port != 0


class PagerDutyConfig(AlertingConfig):
    """A PagerDuty sink's keys, besides the routing, retry and alerting keys.

    ``routing_key`` is the 32-character integration key of a service's Events API v2
    integration: a secret, never shown in ``repr``, errors, logs or ``ftwatch check``.
    ``source`` is the ``payload.source`` of every event (the default is the ftwatch source the
    job came from, such as ``openai``); ``api_url`` is PagerDuty's events host, a setting so
    that tests can point the sink at a local receiver; ``timeout`` bounds each request.
    """

    # pydantic would otherwise quote the rejected input, perhaps a routing key, in its error.
    model_config = ConfigDict(hide_input_in_errors=True)

    routing_key: SecretStr
    source: str | None = None
    api_url: str = DEFAULT_API_URL
    timeout: Duration = 10.0

    @field_validator("routing_key")
    @classmethod
    def _routing_key_has_pagerdutys_shape(cls, value: SecretStr) -> SecretStr:
        key = value.get_secret_value().strip()
        if not _ROUTING_KEY.fullmatch(key):
            raise ValueError(
                "expected the 32-letter-and-digit integration key of a PagerDuty service's "
                "Events API v2 integration (Service > Integrations > Integration Key)"
            )
        return SecretStr(key)

    @field_validator("source")
    @classmethod
    def _source_is_named(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("expected a name for payload.source, such as a host name, or no key")
        return None if value is None else value.strip()

    @field_validator("api_url")
    @classmethod
    def _api_url_is_a_url(cls, value: str) -> str:
        if not _is_http_url(value.strip()):
            raise ValueError(f"expected PagerDuty's events host, such as {DEFAULT_API_URL}")
        return value.strip().rstrip("/")

    @field_validator("timeout")
    @classmethod
    def _timeout_is_positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("expected a positive duration such as 10 or '10s'")
        return value
