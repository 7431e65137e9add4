"""The ``ftwatch`` command: one module per command group, gathered here under ``main``.

Exit codes are listed once, in ``ftwatch --help`` (:data:`~watcher.cli.common.EPILOG`) and in
the README. Commands import what they need when they run, so ``ftwatch --version`` and
``--help`` do not load httpx, pydantic or SQLite.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

import click

from ..version import __version__
from .check import check
from .common import EPILOG
from .deadletters import deadletters
from .init import init
from .run import run
from .simulate import demo, simulate
from .sinks import sinks
from .status import status
from .watch import watch

__all__ = ["main"]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class _Main(click.Group):
    """The top-level group; SIGTERM is handled like SIGINT from the very start."""

    def main(self, args: Sequence[str] | None = None, *pargs: Any, **kwargs: Any) -> Any:
        # Until a command opens its own signal receiver, SIGTERM raises KeyboardInterrupt like
        # SIGINT does, so a SIGTERM in the first fraction of a second is a clean stop with one
        # sentence and a documented exit code, never a death by signal (-15).
        if threading.current_thread() is not threading.main_thread():
            # Signals reach only the main thread (a test running the command in a worker).
            return super().main(args, *pargs, **kwargs)
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            return super().main(args, *pargs, **kwargs)
        finally:
            signal.signal(signal.SIGTERM, previous)


@click.group(cls=_Main, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ftwatch")
def main() -> None:
    """Watch fine-tuning jobs and deliver their events to webhooks, Slack, log files and plugins."""


for _command in (init, run, check, status, watch, simulate, demo, sinks, deadletters):
    main.add_command(_command)
