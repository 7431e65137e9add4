"""``ftwatch run``: the daemon, with its startup line, its signals and its closing sentence."""

from __future__ import annotations

import signal
import sys
from typing import TYPE_CHECKING

import click

from .common import (
    EXIT_AUTH,
    EXIT_OK,
    EXIT_USAGE,
    config_option,
    errors_to_exit,
    fail,
    load,
    run_async,
)

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["run"]


def _say(message: str, *, tty_only: bool = False) -> None:
    """A sentence for the person at the terminal; logs stay in the log format."""
    if not tty_only or sys.stderr.isatty():
        click.echo(f"ftwatch: {message}", err=True)


def _watching(config: Config) -> str:
    sources = ", ".join(f"{s.name} every {s.poll_interval:g} s" for s in config.sources)
    sinks = ", ".join(s.name for s in config.sinks) or "no sinks (subscribers only)"
    return f"watching {sources}; delivering to {sinks}; state in {config.state.path}. Ctrl-C stops."


def _json_stdout(config: Config) -> Config:
    return config.model_copy(
        update={
            "sinks": [
                s.model_copy(update={"json_": True}) if s.type == "stdout" else s
                for s in config.sinks
            ]
        }
    )


class _Progress:
    """How far the daemon got, for the sentence a late signal ends it with."""

    started = False


async def _daemon(config: Config, drain_timeout: float, progress: _Progress) -> int:
    """Run until a signal, then drain; a second signal cuts the drain short.

    The signal receiver opens before anything starts, so a signal during startup is a clean
    stop too, never a traceback.
    """
    import anyio

    from ..app import Watcher
    from ..notify import Notifier

    # systemd (Type=notify) learns when we are ready, that the loop lives, and when we stop.
    notifier = Notifier()
    stopping = anyio.Event()
    drain = anyio.CancelScope()
    error: Exception | None = None
    code = EXIT_OK
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyio.create_task_group() as tg:

            async def listen() -> None:
                async for _ in signals:
                    if stopping.is_set():
                        drain.cancel()
                    else:
                        _say(
                            f"stopping; sinks have up to {drain_timeout:g} s to deliver what is "
                            "due (press Ctrl-C again to stop at once).",
                            tty_only=True,
                        )
                    stopping.set()

            tg.start_soon(listen)
            try:
                async with Watcher(config) as watcher:
                    progress.started = True
                    _say(_watching(config), tty_only=True)
                    notifier.send("READY=1", f"STATUS=watching {len(config.sources)} source(s)")
                    async with anyio.create_task_group() as inner:
                        inner.start_soon(notifier.watchdog)

                        async def relay() -> None:
                            await stopping.wait()
                            watcher.stop()

                        inner.start_soon(relay)
                        await watcher.wait()
                        notifier.send("STOPPING=1")
                        inner.cancel_scope.cancel()
                    if watcher.all_sources_failed:
                        code = EXIT_AUTH
                    else:
                        with drain, anyio.move_on_after(drain_timeout):
                            await watcher.drained()
            except Exception as exc:  # raised below, outside the task group, unwrapped
                error = exc
            tg.cancel_scope.cancel()
    if error is not None:
        raise error
    if code == EXIT_AUTH:
        fail(
            "every source stopped because its API key was refused (the log above names each); "
            "fix the keys and start again",
            EXIT_AUTH,
        )
    if drain.cancel_called:
        _say(
            "stopped without waiting for the sinks; what they had not delivered is delivered "
            "after the next start."
        )
    else:
        _say("stopped.", tty_only=True)
    return code


@click.command()
@config_option
@click.option(
    "--drain-timeout",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="On SIGINT/SIGTERM, how long sinks may go on delivering what is due before exit.",
)
@click.option("--json", "as_json", is_flag=True, help="Make stdout sinks print JSON lines.")
@errors_to_exit
def run(config_path: str | None, drain_timeout: float, as_json: bool) -> None:
    """Run the daemon: poll every source, journal events, deliver them to every sink.

    SIGINT and SIGTERM stop it cleanly: polling stops, sinks get --drain-timeout seconds to
    deliver what is due, and whatever is left is delivered after the next start. A second
    signal stops without waiting for the sinks. On a terminal it says what it watches and
    when it stops.
    """
    progress = _Progress()
    try:
        config = load(config_path)
        if as_json:
            config = _json_stdout(config)
        code = run_async(lambda: _daemon(config, drain_timeout, progress))
    except KeyboardInterrupt:
        # A signal outside the daemon's own handling (before it, or once it has ended): a
        # clean stop all the same, since every commit is a transaction.
        _say("stopped." if progress.started else "stopped before it started.")
        code = EXIT_OK
    except OSError as exc:
        # The lock file and the state file are made first: a directory that is read-only or
        # cannot be created (a file in the way) is the usual cause.
        where = exc.filename or "the state file"
        fail(
            f"cannot create or write {where} ({exc.strerror or type(exc).__name__}); make its "
            "directory writable by this user, or point state.path at another file",
            EXIT_USAGE,
        )
    sys.exit(code)
