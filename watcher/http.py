"""The one module that imports httpx.

Everything else, the built-in plugins included, takes its HTTP names from here, so that moving
to httpx's maintained fork (same API) is a one-line change. It also silences httpx's own
request log, which would print every URL at INFO, and a Slack webhook URL is a secret.
"""

from __future__ import annotations

import logging

import httpx
from httpx import (
    ASGITransport,
    AsyncBaseTransport,
    AsyncClient,
    ConnectError,
    HTTPError,
    MockTransport,
    Request,
    Response,
    Timeout,
    TimeoutException,
    TransportError,
)

__all__ = [
    "ASGITransport",
    "AsyncBaseTransport",
    "AsyncClient",
    "ConnectError",
    "HTTPError",
    "MockTransport",
    "Request",
    "Response",
    "Timeout",
    "TimeoutException",
    "TransportError",
    "httpx",
    "quiet_http_logs",
]


def quiet_http_logs() -> None:
    """Keep httpx and httpcore from logging request URLs (they may hold secrets)."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


quiet_http_logs()
