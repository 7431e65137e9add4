"""The TOML config: read with tomllib, environment applied, validated by pydantic.

A config file has five parts (``config.example.toml`` shows and explains every key)::

    [state]        where the state lives and how long delivered events are kept
    [logging]      log level and format
    [[sources]]    fine-tuning APIs to watch (at least one)
    [[sinks]]      where events go; each table's ``type`` picks a sink plugin, whose own
                   config model validates the table
    [server]       the operations endpoint (metrics, health); off unless ``listen`` is set

Environment
-----------
Any string value may use ``${VAR}``, replaced by the environment variable ``VAR`` (an error
when it is not set), ``${VAR:-default}``, which falls back to ``default`` when ``VAR`` is unset
or empty (the default may itself hold references, ``${A:-${B:-x}}``, read only when used), and
``$${``, which stands for a literal ``${``. Substitution happens once: a variable's value is
never itself expanded.

These variables override the file, when set and not empty:

=====================  ==================
``FTWATCH_STATE_PATH``  ``state.path``
``FTWATCH_LOG_LEVEL``   ``logging.level``
``FTWATCH_LOG_FORMAT``  ``logging.format``
=====================  ==================

Values
------
Values are strict: numbers and booleans are written without quotes (``max_attempts = "7"`` and
``emit_existing = "yes"`` are errors), durations are finite, URLs have a port from 1 to 65535,
and a source's ``poll_interval`` is at least :data:`MIN_POLL_INTERVAL` (1 s), or
:data:`MIN_LOOPBACK_POLL_INTERVAL` (10 ms) for a ``base_url`` on this machine.

Errors
------
Every problem is one :class:`~watcher.errors.ConfigError` whose message is a single sentence
naming the file, the key path (``sources[1].poll_interval``, ``sinks[0].type``) and what was
expected, with ``.path`` and ``.key`` set. A message never holds a secret: the value of a key
named like a credential is never echoed.

Relative paths written in a file (``state.path``, a logfile sink's ``path``, any sink key whose
value is a :class:`~pathlib.Path`) are relative to the directory of that file, not to the
directory ``run`` starts in; :func:`load_config` returns them absolute. A relative
``FTWATCH_STATE_PATH`` is relative to the working directory, and :func:`parse_config` (which has
no file) leaves relative paths as they are.
"""

from __future__ import annotations

from .environment import ENV_OVERRIDES
from .loading import load_config, parse_config
from .models import (
    DEFAULT_MAX_RESPONSE_BYTES,
    MIN_LOOPBACK_POLL_INTERVAL,
    MIN_POLL_INTERVAL,
    OPENAI_DASHBOARD_URL,
    Config,
    LoggingConfig,
    ServerConfig,
    SourceConfig,
    StateConfig,
)

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "ENV_OVERRIDES",
    "MIN_LOOPBACK_POLL_INTERVAL",
    "MIN_POLL_INTERVAL",
    "OPENAI_DASHBOARD_URL",
    "Config",
    "LoggingConfig",
    "ServerConfig",
    "SourceConfig",
    "StateConfig",
    "load_config",
    "parse_config",
]
