"""Logging: quiet in a host program, set up by the CLI, with every secret masked on the way out.

As a library, ftwatch configures no output of its own: unless the host has configured structlog
itself, structlog events go to the standard :mod:`logging` module as records of the loggers
``watcher.*`` and ``ftwatch_*`` (the module that logged), message ``event key=value ...``, secrets
masked. The host's logging set-up decides what is shown and where; with none, Python shows
warnings and errors on stderr and nothing else.

The ``ftwatch`` command calls :func:`configure_logging`, which sends structlog events and the
standard library's log records (uvicorn's, say) to one stream in one format: JSON lines when the
stream is not a terminal (or when asked), structlog's console renderer on a terminal. Every line
carries an ISO 8601 UTC ``timestamp``, the ``level`` and the ``logger`` name. Standard-library
records pass at WARNING and above only, and httpx and httpcore stay at WARNING, because their
INFO lines print request URLs.

Secrets are masked in every chain, twice: the event dictionary is redacted before it is rendered
(so a secret inside a field, a message or a formatted traceback becomes ``********``), and the
rendered line is scanned again (so one that hid in an object's ``repr`` is caught too). What
counts as a secret:

- every string passed to :func:`register_secret` (API keys, webhook secrets, Slack URLs, tokens);
- the value of any key named like a credential (see :func:`is_secret_key`): ``api_key``,
  ``authorization``, ``secret``, ``token``, ``password``, ``webhook_url``, ...;
- strings shaped like well-known credentials even when nobody registered them: OpenAI keys
  (``sk-...``), Slack tokens (``xoxb-...``), Slack webhook URLs, Standard Webhooks secrets
  (``whsec_...``) and ``Bearer`` tokens.

Tracebacks are rendered as plain text without local variables, which could hold any secret.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import structlog
from pydantic import SecretBytes, SecretStr

__all__ = [
    "MASK",
    "configure_logging",
    "is_secret_key",
    "redact",
    "register_secret",
    "reset_logging",
    "route_to_standard_logging",
]

#: What a masked secret looks like in logs and in redacted config.
MASK = "********"

#: Shorter strings are not remembered: masking them would garble ordinary words and numbers.
_MIN_SECRET_LENGTH = 6

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_FORMATS = ("auto", "json", "console")
_QUIET_LOGGERS = ("httpx", "httpcore")

# Anchored at the end so that `trained_tokens` or `max_tokens` (counts, not credentials) pass.
_SECRET_KEY = re.compile(
    r"(?:^|_)(?:api_?key|authorization|secret|secret_key|private_key|token|password|passwd"
    r"|cookie|credentials?|webhook_url)$"
)

# Credentials with a recognisable shape, masked even when nobody registered them.
_KNOWN_SHAPES = re.compile(
    r"\bsk-[A-Za-z0-9_-]{20,}"
    r"|\bxox[abeoprs]-[A-Za-z0-9-]{10,}"
    r"|\bwhsec_[A-Za-z0-9+/=]{16,}"
    r"|https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]+"
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{6,}")

_secrets: set[str] = set()
_secret_pattern: re.Pattern[str] | None = None

_handler: logging.Handler | None = None
_root_level: int | None = None


def is_secret_key(name: str) -> bool:
    """Tell whether a key or header name holds a credential (``api_key``, ``X-Api-Key``, ...)."""
    return _SECRET_KEY.search(name.lower().replace("-", "_")) is not None


def register_secret(value: str | SecretStr | None) -> None:
    """Remember a secret so that it is masked wherever it appears in a log line.

    Empty values and values shorter than six characters are ignored: masking them would garble
    ordinary text.
    """
    global _secret_pattern
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not text or len(text) < _MIN_SECRET_LENGTH:
        return
    # A secret can reach the output escaped: inside a JSON string or an object's repr.
    forms = {text, json.dumps(text, ensure_ascii=False)[1:-1], repr(text)[1:-1]}
    _secrets.update(f for f in forms if len(f) >= _MIN_SECRET_LENGTH)
    # Longest first, so that a secret containing another one is masked whole.
    ordered = sorted(_secrets, key=len, reverse=True)
    _secret_pattern = re.compile("|".join(re.escape(s) for s in ordered))


def _redact_text(text: str) -> str:
    pattern = _secret_pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    text = _KNOWN_SHAPES.sub(MASK, text)
    return _BEARER.sub(lambda m: m.group(1) + MASK, text)


def redact(value: Any) -> Any:
    """Return ``value`` with every secret masked as ``********``.

    Strings have every registered secret and every well-known credential shape replaced; dicts,
    lists and tuples are walked recursively; the value of a key named like a credential
    (:func:`is_secret_key`) is replaced whole, unless it is None or a bool; ``SecretStr`` values
    become the mask. Other objects are returned unchanged.
    """
    if isinstance(value, str):
        return _redact_text(value)
    if isinstance(value, SecretStr | SecretBytes):
        return MASK
    if isinstance(value, Mapping):
        return {
            key: (
                MASK
                if isinstance(key, str)
                and is_secret_key(key)
                and value_ is not None
                and not isinstance(value_, bool)
                else redact(value_)
            )
            for key, value_ in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, tuple):
        return tuple(redact(item) for item in value)
    return value


def _redact_event(logger: Any, method_name: str, event_dict: Any) -> Any:
    return redact(event_dict)


def _redact_rendered(logger: Any, method_name: str, rendered: Any) -> Any:
    # The last step, after the renderer: catches secrets that hid in an object's repr.
    return _redact_text(rendered) if isinstance(rendered, str) else rendered


_FIRST_KEYS = ("timestamp", "level", "logger", "event")


def _order_keys(logger: Any, method_name: str, event_dict: Any) -> Any:
    # JSON lines read better with when, how bad, who and what first.
    ordered = {key: event_dict[key] for key in _FIRST_KEYS if key in event_dict}
    ordered.update((k, v) for k, v in event_dict.items() if k not in ordered)
    return ordered


class _NamedWriteLogger(structlog.WriteLogger):
    """structlog's ``WriteLogger`` plus the ``name`` that ``add_logger_name`` reads."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


class _NamedWriteLoggerFactory:
    """Builds a named writer per ``structlog.get_logger(name)`` call, all on one stream."""

    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: Any) -> _NamedWriteLogger:
        name = args[0] if args and isinstance(args[0], str) else ""
        return _NamedWriteLogger(self._file, name)


class _WriterHandler(logging.Handler):
    """A logging handler that writes through structlog's writer, so that lines never interleave."""

    def __init__(self, writer: structlog.WriteLogger) -> None:
        super().__init__()
        self._writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._writer.msg(self.format(record))
        except Exception:
            self.handleError(record)


def _isatty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False


def configure_logging(
    level: str = "info", fmt: str = "auto", *, stream: TextIO | None = None
) -> None:
    """Send structlog events and standard-library records to ``stream`` (default: stderr).

    ``level`` is one of debug, info, warning, error and applies to structlog events; records from
    the standard library (uvicorn and other libraries) pass at WARNING or ``level``, whichever is
    higher. ``fmt`` is ``json`` (one JSON object a line), ``console`` (structlog's console
    renderer, coloured on a terminal) or ``auto``: console on a terminal, JSON otherwise.

    Calling it again replaces the previous set-up. Raises ValueError for an unknown level or
    format.
    """
    global _handler, _root_level
    level_no = _LEVELS.get(level.lower())
    if level_no is None:
        raise ValueError(f"unknown log level {level!r}; expected one of: {', '.join(_LEVELS)}")
    fmt = fmt.lower()
    if fmt not in _FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; expected one of: {', '.join(_FORMATS)}")
    out = stream if stream is not None else sys.stderr
    tty = _isatty(out)

    renderer: Any
    if fmt == "json" or (fmt == "auto" and not tty):
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)
    else:
        # Plain tracebacks: rich's would show local variables, which can hold secrets, and would
        # be rendered after redaction.
        renderer = structlog.dev.ConsoleRenderer(
            colors=tty, exception_formatter=structlog.dev.plain_traceback
        )

    shared: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    tail: list[Any] = [
        structlog.processors.StackInfoRenderer(),
        # Tracebacks become text before redaction, so a secret in a message is masked there too.
        structlog.processors.format_exc_info,
        _redact_event,
        _order_keys,
        renderer,
        _redact_rendered,
    ]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *shared, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=_NamedWriteLoggerFactory(out),
        context_class=dict,
        # Loggers are created at import time; caching would pin them to an earlier set-up.
        cache_logger_on_first_use=False,
    )

    handler = _WriterHandler(structlog.WriteLogger(out))
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
        )
    )
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    else:
        _root_level = root.level
    root.addHandler(handler)
    root.setLevel(max(level_no, logging.WARNING))
    _handler = handler
    # The same as watcher.http.quiet_http_logs(), which this layer-0 module may not import
    # (tests/test_layering.py): httpx logs every request URL at INFO.
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _render_message(logger: Any, method_name: str, event_dict: Any) -> str:
    # The standard library's record carries the time, level and logger: the message is the rest.
    event = str(event_dict.pop("event", ""))
    exception = event_dict.pop("exception", None)
    fields = " ".join(f"{key}={value!r}" for key, value in event_dict.items())
    message = f"{event} {fields}" if fields else event
    return f"{message}\n{exception}" if exception else message


def route_to_standard_logging() -> None:
    """Send structlog events to the standard library's loggers, for the host to handle.

    ftwatch does this when it is imported and structlog is not configured yet, so that a script
    using :class:`~watcher.Watcher` prints nothing unless its own logging set-up says so. A host
    that configures structlog itself (before or after) keeps its own configuration.
    """
    structlog.configure(
        processors=[
            # First, so that a debug line nobody listens to costs one level check.
            structlog.stdlib.filter_by_level,
            structlog.contextvars.merge_contextvars,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            _redact_event,
            _render_message,
            _redact_rendered,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        context_class=dict,
        # The CLI reconfigures after import; cached loggers would keep this set-up.
        cache_logger_on_first_use=False,
    )


def reset_logging() -> None:
    """Forget every registered secret and go back to the library's set-up (standard logging).

    Meant for tests, so that one test's set-up never leaks into the next.
    """
    global _handler, _root_level, _secret_pattern
    _secrets.clear()
    _secret_pattern = None
    structlog.reset_defaults()
    route_to_standard_logging()
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
        _handler = None
    if _root_level is not None:
        root.setLevel(_root_level)
        _root_level = None


if not structlog.is_configured():
    route_to_standard_logging()
