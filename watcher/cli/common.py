"""What every ``ftwatch`` command shares: exit codes, one-sentence errors, loading the config.

Only light modules are imported here, so that ``ftwatch --version`` and ``--help`` stay fast;
a command imports what it needs when it runs.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import click

from ..errors import (
    AuthenticationError,
    ConfigError,
    NotFoundError,
    PluginError,
    StoreError,
    WatcherError,
)

if TYPE_CHECKING:
    from ..config import Config

__all__ = [
    "EPILOG",
    "EXIT_AUTH",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "config_option",
    "config_file",
    "errors_to_exit",
    "fail",
    "interrupted",
    "load",
    "run_async",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_UNREACHABLE = 4
EXIT_INTERRUPTED = 130

#: The exit-code table, shown once, in ``ftwatch --help`` (README's table says the same).
EPILOG = """\b
Exit codes:
  0    success; `run` stopped by SIGINT/SIGTERM (a second one cuts the
       drain short, still 0); `watch`: job succeeded (--all: every one)
  1    runtime failure; `watch`: job failed (--all: any); `sinks test`:
       delivery failed; `deadletters`: an --id that is not a dead letter
  2    usage, config or plugin error, a state directory that cannot be
       written; `watch`: job cancelled (--all: any, none failed);
       `deadletters`: no state file or an unknown --sink; `status`: no
       state file; `init`: the file exists
  3    credentials refused or job not found; `run`: every source failed
  4    `watch`, `check --online`: the API unreachable (for --give-up-after)
  130  interrupted by SIGINT/SIGTERM (every command but `run` and
       `simulate`, which stop cleanly with 0)
"""

P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str, code: int) -> NoReturn:
    """Print ``message`` as one ``ftwatch: error:`` line on stderr and exit with ``code``."""
    click.echo(f"ftwatch: error: {message}", err=True)
    sys.exit(code)


def errors_to_exit(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn our errors into one sentence on stderr and a documented exit code, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (ConfigError, PluginError, StoreError) as exc:
            fail(str(exc), EXIT_USAGE)
        except (AuthenticationError, NotFoundError) as exc:
            fail(str(exc), EXIT_AUTH)
        except WatcherError as exc:
            fail(str(exc), EXIT_FAILURE)
        except KeyboardInterrupt:
            interrupted()
        except BaseExceptionGroup as group:
            # A Ctrl-C that lands inside a task group arrives wrapped in an exception group.
            if group.split(KeyboardInterrupt)[1] is not None:
                raise
            interrupted()

    return wrapper


def interrupted() -> NoReturn:
    """Say that SIGINT or SIGTERM interrupted the command, and exit 130."""
    click.echo("ftwatch: interrupted.", err=True)
    sys.exit(EXIT_INTERRUPTED)


def run_async(fn: Callable[[], Coroutine[Any, Any, R]]) -> R:
    """Run a coroutine function on anyio's default backend."""
    import anyio

    return anyio.run(fn)


def config_file(path: str | None) -> Path:
    """The config file to read: ``--config``, else ``$FTWATCH_CONFIG``, else ``./ftwatch.toml``."""
    return Path(path or os.environ.get("FTWATCH_CONFIG") or "ftwatch.toml")


def load(path: str | None) -> Config:
    """Load the config, set up logging from it, and register its keys as secrets."""
    from ..config import load_config
    from ..logs import configure_logging, register_secret

    config = load_config(config_file(path))
    configure_logging(config.logging.level, config.logging.format)
    for source in config.sources:
        register_secret(source.api_key)
    return config


config_option = click.option(
    "--config",
    "config_path",
    metavar="PATH",
    help="The TOML config file [default: $FTWATCH_CONFIG or ./ftwatch.toml].",
)
