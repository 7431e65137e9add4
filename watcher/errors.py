"""Every error ftwatch raises on purpose, in one tree.

::

    WatcherError
    ├── ConfigError              a config file, key or value is wrong (exit code 2)
    ├── PluginError              a sink plugin cannot be found or loaded
    ├── StoreError               the state file cannot be opened or is from a newer ftwatch
    ├── APIError                 the fine-tuning API answered with an error
    │   ├── AuthenticationError  401 or 403: fatal for that source
    │   ├── NotFoundError        404: the job does not exist
    │   │   └── InvalidJobId     not a plain token (".", "..", a slash): never sent
    │   ├── RateLimited          429 after every retry; carries ``retry_after``
    │   ├── ServerError          5xx or a connection failure after every retry
    │   └── MalformedResponse    the body is not the JSON we expect
    └── SinkError                a sink could not deliver an event
        ├── SinkRejected         permanent for this event: it goes to the dead letters
        ├── SinkUnavailable      transient: retried with backoff; may carry ``retry_after``
        └── SinkDisabled         the receiver asked never to be called again (HTTP 410)

Errors carry context as attributes (sink name, status code) and never a secret: messages are
built from names and codes, never from URLs, headers or keys.
"""

from __future__ import annotations

__all__ = [
    "APIError",
    "AuthenticationError",
    "ConfigError",
    "InvalidJobId",
    "MalformedResponse",
    "NotFoundError",
    "PluginError",
    "RateLimited",
    "ServerError",
    "SinkDisabled",
    "SinkError",
    "SinkRejected",
    "SinkUnavailable",
    "StoreError",
    "WatcherError",
]


class WatcherError(Exception):
    """The root of every error ftwatch raises on purpose."""


class ConfigError(WatcherError):
    """The configuration is wrong; the message names the file, the key and what was expected."""

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.key = key


class PluginError(WatcherError):
    """A sink plugin cannot be found or loaded."""


class StoreError(WatcherError):
    """The state store cannot be opened, or was written by a newer ftwatch."""


class APIError(WatcherError):
    """The fine-tuning API answered with an error; ``status_code`` is None for transport errors."""

    def __init__(self, message: str, *, source: str = "", status_code: int | None = None) -> None:
        super().__init__(message)
        self.source = source
        self.status_code = status_code


class AuthenticationError(APIError):
    """The API refused our credentials (401) or their permissions (403): fatal for that source."""


class NotFoundError(APIError):
    """The API does not know the job (404)."""


class InvalidJobId(NotFoundError, ValueError):
    """A job id that is not a plain token (``.``, ``..``, a slash...): refused before any URL is
    built, as no job can have it. A :class:`ValueError` too, for callers that passed it."""


class RateLimited(APIError):
    """The API kept answering 429; ``retry_after`` is its last hint, in seconds."""

    def __init__(
        self,
        message: str,
        *,
        source: str = "",
        status_code: int | None = 429,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, source=source, status_code=status_code)
        self.retry_after = retry_after


class ServerError(APIError):
    """The API failed (5xx, 408, 409) or could not be reached, after every retry."""


class MalformedResponse(APIError):
    """The API answered 2xx with a body that is not the JSON we expect (an HTML page, say)."""


class SinkError(WatcherError):
    """A sink could not deliver an event.

    ``reason`` says what went wrong without naming the sink; the message adds the name when
    ``sink`` is given: ``sink 'hooks': the receiver refused the connection``.
    """

    def __init__(self, reason: str, *, sink: str = "", status_code: int | None = None) -> None:
        super().__init__(f"sink {sink!r}: {reason}" if sink else reason)
        self.reason = reason
        self.sink = sink
        self.status_code = status_code


class SinkRejected(SinkError):
    """Permanent for this event (a 4xx, say): retrying cannot help, it goes to the dead letters."""


class SinkUnavailable(SinkError):
    """Transient (5xx, timeout, refused connection): retried with backoff."""

    def __init__(
        self,
        reason: str,
        *,
        sink: str = "",
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason, sink=sink, status_code=status_code)
        self.retry_after = retry_after


class SinkDisabled(SinkError):
    """The receiver said it is gone for good (HTTP 410): the sink stops until it is re-enabled."""
