"""The ``ftwatch`` command.

Exit codes (also in ``ftwatch --help``):

== ==============================================================================================
0  success; ``run`` stopped cleanly by SIGINT or SIGTERM; ``watch``: the job succeeded
1  a runtime failure; ``watch``: the job failed; ``sinks test``: the delivery failed;
   ``deadletters retry|drop --id``: an id that is not a dead letter
2  a usage or config error (the message names the file, the key and what was expected), a sink
   plugin that cannot be loaded or built; ``watch``: the job was cancelled; ``deadletters``: no
   state file at ``state.path``
3  the API refused the credentials or does not know the job; ``run``: every source failed
== ==============================================================================================
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import anyio
import click

from .app import Watcher
from .clock import ScaledClock
from .config import Config, SourceConfig, load_config
from .diff import diff
from .errors import (
    AuthenticationError,
    ConfigError,
    NotFoundError,
    PluginError,
    SinkDisabled,
    SinkError,
    SinkRejected,
    SinkUnavailable,
    StoreError,
    WatcherError,
)
from .events import BaseEvent, JobSucceeded
from .logs import configure_logging, redact, register_secret
from .models import FineTuningJob
from .sinks import SinkConfig, available_sinks, register_sink_secrets, sink_plugin
from .store import Store

try:
    __version__ = version("ftwatch")
except PackageNotFoundError:  # pragma: no cover - a source tree without install
    __version__ = "0+unknown"

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_AUTH = 3

EPILOG = """\b
Exit codes:
  0  success; `run` stopped cleanly (SIGINT/SIGTERM); `watch`: job succeeded
  1  runtime failure; `watch`: job failed; `sinks test`: delivery failed;
     `deadletters`: an --id that is not a dead letter
  2  usage, config or plugin error; `watch`: job cancelled;
     `deadletters`: no state file
  3  credentials refused or job not found; `run`: every source failed
"""

P = ParamSpec("P")
R = TypeVar("R")


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"ftwatch: error: {message}", err=True)
    sys.exit(code)


def _errors_to_exit(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn our errors into one sentence on stderr and a documented exit code, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (ConfigError, PluginError, StoreError) as exc:
            _fail(str(exc), EXIT_USAGE)
        except (AuthenticationError, NotFoundError) as exc:
            _fail(str(exc), EXIT_AUTH)
        except WatcherError as exc:
            _fail(str(exc), EXIT_FAILURE)
        except KeyboardInterrupt:
            sys.exit(130)

    return wrapper


def _run(fn: Callable[[], Coroutine[Any, Any, R]]) -> R:
    return anyio.run(fn)


def _config_path(path: str | None) -> Path:
    return Path(path or os.environ.get("FTWATCH_CONFIG") or "ftwatch.toml")


def _load(path: str | None) -> Config:
    config = load_config(_config_path(path))
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


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ftwatch")
def main() -> None:
    """Watch fine-tuning jobs and deliver their events to webhooks, Slack, log files and plugins."""


# -- run ----------------------------------------------------------------------------------------


@main.command(epilog=EPILOG)
@config_option
@click.option(
    "--drain-timeout",
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="On SIGINT/SIGTERM, how long sinks may go on delivering what is due before exit.",
)
@click.option("--json", "as_json", is_flag=True, help="Make stdout sinks print JSON lines.")
@_errors_to_exit
def run(config_path: str | None, drain_timeout: float, as_json: bool) -> None:
    """Run the daemon: poll every source, journal events, deliver them to every sink.

    SIGINT and SIGTERM stop it cleanly: polling stops, sinks get --drain-timeout seconds to
    deliver what is due, and whatever is left is delivered after the next start.
    """
    config = _load(config_path)
    if as_json:
        config = config.model_copy(
            update={
                "sinks": [
                    s.model_copy(update={"json_": True}) if s.type == "stdout" else s
                    for s in config.sinks
                ]
            }
        )

    async def main_loop() -> int:
        async with Watcher(config) as watcher:
            async with anyio.create_task_group() as tg:

                async def on_signal() -> None:
                    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                        async for _ in signals:
                            watcher.stop()
                            return

                tg.start_soon(on_signal)
                await watcher.wait()
                tg.cancel_scope.cancel()
            if not watcher.all_sources_failed:
                with anyio.move_on_after(drain_timeout):
                    await watcher.drained()
            return EXIT_AUTH if watcher.all_sources_failed else EXIT_OK

    sys.exit(_run(main_loop))


# -- check --------------------------------------------------------------------------------------


@main.command(epilog=EPILOG)
@config_option
@_errors_to_exit
def check(config_path: str | None) -> None:
    """Validate the config and print it resolved, with every secret masked."""
    config = load_config(_config_path(config_path))
    click.echo(json.dumps(config.redacted(), indent=2, default=str))
    click.echo(f"ftwatch: {config.path or 'config'} is valid.", err=True)


# -- watch --------------------------------------------------------------------------------------


def _source_for_watch(
    config_path: str | None, source_name: str | None, base_url: str | None
) -> SourceConfig:
    if config_path or (source_name and _config_path(None).exists()):
        config = _load(config_path)
        if source_name is None:
            return config.sources[0]
        for source in config.sources:
            if source.name == source_name:
                return source
        names = ", ".join(s.name for s in config.sources)
        raise ConfigError(f"no source named {source_name!r} in the config; known: {names}")
    key = os.environ.get("OPENAI_API_KEY")
    register_secret(key)
    return SourceConfig(
        name=source_name or "openai",
        base_url=base_url or os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1"),
        api_key=key,
    )


@main.command(epilog=EPILOG)
@click.argument("job_id")
@config_option
@click.option("--source", "source_name", help="Which configured source the job is on.")
@click.option("--base-url", help="The API base URL when no config is given [$OPENAI_BASE_URL].")
@click.option("--interval", default=5.0, show_default=True, help="Seconds between polls.")
@_errors_to_exit
def watch(
    job_id: str,
    config_path: str | None,
    source_name: str | None,
    base_url: str | None,
    interval: float,
) -> None:
    """Follow one job until it ends, showing its status and progress.

    Exit code 0 when it succeeded, 1 when it failed, 2 when it was cancelled. Without --config
    it reads OPENAI_API_KEY (and OPENAI_BASE_URL) from the environment.
    """
    from .follow import follow_job

    source = _source_for_watch(config_path, source_name, base_url)
    status = _run(functools.partial(follow_job, source, job_id, interval=interval))
    sys.exit({"succeeded": EXIT_OK, "failed": EXIT_FAILURE, "cancelled": EXIT_USAGE}[status])


# -- simulate and demo --------------------------------------------------------------------------


@main.command(epilog=EPILOG)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8089, show_default=True, type=int)
@click.option("--speed", default=60.0, show_default=True, help="Simulated seconds per second.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--demo/--no-demo", default=True, show_default=True, help="Start with demo jobs.")
@click.option("--api-key", envvar="FTWATCH_SIMULATOR_API_KEY", help="Require this bearer key.")
@_errors_to_exit
def simulate(
    host: str, port: int, speed: float, seed: int, demo: bool, api_key: str | None
) -> None:
    """Serve a simulated fine-tuning API (OpenAI-compatible) for trying tools against."""
    from .simulator import Simulator, demo_scenario, serve_simulator

    sim = Simulator(ScaledClock(speed), seed=seed, api_key=api_key)
    if demo:
        demo_scenario(sim)

    async def serve() -> None:
        async with serve_simulator(sim, host=host, port=port) as url:
            click.echo(f"Simulated fine-tuning API at {url} ({speed:g}x speed). Ctrl-C stops it.")
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    return

    try:
        _run(serve)
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port", EXIT_FAILURE)


@main.command(epilog=EPILOG)
@click.option("--speed", default=60.0, show_default=True, help="Simulated seconds per second.")
@click.option("--json", "as_json", is_flag=True, help="Print events as JSON lines.")
@click.option("--state", "state_path", metavar="PATH", help="SQLite file [default: a temp file].")
@_errors_to_exit
def demo(speed: float, as_json: bool, state_path: str | None) -> None:
    """Watch simulated jobs run to the end, with no account and no network."""
    from .demo import run_demo

    configure_logging("warning", "auto")
    with tempfile.TemporaryDirectory(prefix="ftwatch-demo-") as tmp:
        path = Path(state_path) if state_path else Path(tmp) / "ftwatch-demo.db"
        summary = _run(functools.partial(run_demo, speed=speed, as_json=as_json, state_path=path))
    click.echo(summary, err=True)


# -- sinks --------------------------------------------------------------------------------------


@main.group(invoke_without_command=True, epilog=EPILOG)
@click.pass_context
@_errors_to_exit
def sinks(ctx: click.Context) -> None:
    """List the sink types found (built in and from plugins) and where each comes from.

    A type whose package cannot be loaded is listed with the reason.
    """
    if ctx.invoked_subcommand is not None:
        return
    for name, plugin in available_sinks().items():
        where = plugin.target if plugin.error is None else f"cannot be loaded: {plugin.error}"
        click.echo(f"{name:<12} {plugin.origin:<28} {where}")


def _sample_event(source: str) -> BaseEvent:
    now = time.time()
    job = FineTuningJob.model_validate(
        {
            "id": "ftjob-ftwatch-test",
            "object": "fine_tuning.job",
            "status": "succeeded",
            "model": "gpt-4o-mini-2024-07-18",
            "created_at": int(now) - 3600,
            "finished_at": int(now),
            "fine_tuned_model": "ft:gpt-4o-mini-2024-07-18:ftwatch:test:sample",
            "trained_tokens": 12345,
            "user_provided_suffix": "test",
            "metadata": {"ftwatch_test": "true"},
        }
    )
    previous = FineTuningJob.model_validate({**job.to_api(), "status": "running"})
    state, _ = diff(None, previous, source=source, now=now - 60, announce_new=False)
    _, events = diff(state, job, source=source, now=now)
    sample = next(e for e in events if isinstance(e, JobSucceeded))
    # A real event's id is derived from the change, so every test would carry the same one and
    # a receiver that drops duplicates (as it should) would ignore all tests after the first.
    return sample.model_copy(update={"id": f"evt_test_{secrets.token_hex(12)}"})


#: What a running daemon does with a delivery that failed this way, for `sinks test` to say.
_DAEMON_WOULD: list[tuple[type[SinkError], str]] = [
    (SinkRejected, "dead-letter it"),
    (SinkDisabled, "stop this sink until restarted"),
    (SinkUnavailable, "retry it"),
]


def _one_line(text: str, limit: int = 500) -> str:
    text = " ".join(str(redact(text)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _why_it_failed(exc: Exception) -> str:
    """The reason a test delivery failed, for a sentence that already names the sink."""
    if not isinstance(exc, SinkError):
        # Not an outcome the plugin meant to report: its type is what a bug report needs.
        return (
            f"the plugin raised {type(exc).__name__}: {_one_line(str(exc))} (a bug in the "
            "plugin; a running daemon would retry it and log the traceback as sink_raised)"
        )
    reason = _one_line(exc.reason)
    would = next((w for cls, w in _DAEMON_WOULD if isinstance(exc, cls)), "retry it")
    return f"{reason} (a running daemon would {would})"


@sinks.command("test", epilog=EPILOG)
@click.argument("name")
@config_option
@_errors_to_exit
def sinks_test(name: str, config_path: str | None) -> None:
    """Send a clearly marked sample event to the sink NAME and say what happened.

    The event has a new id each time and its job carries metadata ftwatch_test = "true".
    Exit code 0 when the sink took it, 1 when it did not.
    """
    config = _load(config_path)
    matches = [s for s in config.sinks if s.name == name]
    if not matches:
        known = ", ".join(s.name for s in config.sinks) or "none"
        raise ConfigError(f"no sink named {name!r} in {config.path}; configured sinks: {known}")
    sink_config: SinkConfig = matches[0]
    # As the daemon does, so that nothing a sink raises or logs can show its URL or token.
    register_sink_secrets(sink_config)
    plugin = sink_plugin(sink_config.type)
    event = _sample_event(config.sources[0].name)

    async def send() -> tuple[object, Exception | None, float]:
        sink = plugin.build(sink_config)
        started = time.perf_counter()
        try:
            receipt = await sink.send(event)
            return receipt, None, time.perf_counter() - started
        except Exception as exc:
            return None, exc, time.perf_counter() - started
        finally:
            await sink.aclose()

    receipt, error, seconds = _run(send)
    took = f"{seconds * 1000:.0f} ms"
    if error is not None:
        _fail(f"sink {name!r} failed after {took}: {_why_it_failed(error)}", EXIT_FAILURE)
    # A plugin's receipt is shown only when it is the short text the protocol asks for.
    shown = f" ({_one_line(receipt, 80)})" if isinstance(receipt, str) and receipt.strip() else ""
    click.echo(f"ok: sample event {event.id} delivered to sink {name!r} in {took}{shown}")


# -- deadletters --------------------------------------------------------------------------------


@main.group(epilog=EPILOG)
def deadletters() -> None:
    """List, retry or drop the events a sink gave up on."""


def _with_store(config_path: str | None, fn: Callable[[Store], Awaitable[R]]) -> R:
    config = _load(config_path)
    path = Path(config.state.path).expanduser()
    # Store.open would create an empty file, which would then answer "0 dead letters" for a
    # path that is simply wrong.
    if not path.exists():
        raise StoreError(
            f"there is no state file at {path} (the daemon creates it on its first run); "
            "check state.path in the config or $FTWATCH_STATE_PATH"
        )

    async def go() -> R:
        async with await Store.open(path) as store:
            return await fn(store)

    return _run(go)


@deadletters.command("list", epilog=EPILOG)
@config_option
@click.option("--sink", help="Only this sink's dead letters.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@_errors_to_exit
def deadletters_list(config_path: str | None, sink: str | None, as_json: bool) -> None:
    """List dead letters: sink, event id, type, job, attempts and the last error."""
    letters = _with_store(config_path, lambda store: store.dead_letters(sink))
    for d in letters:
        if as_json:
            row = {
                "sink": d.sink,
                "event_id": d.event_id,
                "type": d.type,
                "source": d.source,
                "job_id": d.job_id,
                "attempts": d.attempts,
                "last_error": d.last_error,
                "died_at": d.died_at,
            }
            click.echo(json.dumps(row))
        else:
            click.echo(
                f"{d.sink}  {d.event_id}  {d.type}  {d.job_id}  x{d.attempts}  {d.last_error}"
            )
    if not as_json:
        click.echo(f"{len(letters)} dead letter(s)", err=True)


def _selection(all_: bool, ids: tuple[str, ...], sink: str | None) -> None:
    if not (all_ or ids or sink):
        raise click.UsageError(
            "name what to act on: --id EVENT_ID (repeatable), --sink NAME or --all"
        )


def _act_on_dead_letters(
    config_path: str | None,
    sink: str | None,
    ids: tuple[str, ...],
    act: Callable[[Store, list[str] | None], Awaitable[int]],
    done: str,
) -> None:
    """Run ``act`` on the selected dead letters and say how many it changed.

    An --id that is not a dead letter (of --sink, when given) is an error and changes nothing:
    a typo must not read as "0 done". --sink or --all matching nothing is not.
    """

    async def go(store: Store) -> tuple[int, list[str]]:
        if ids:
            known = {d.event_id for d in await store.dead_letters(sink)}
            missing = [i for i in dict.fromkeys(ids) if i not in known]
            if missing:
                return 0, missing
        return await act(store, list(ids) or None), []

    n, missing = _with_store(config_path, go)
    if missing:
        owner = f" of sink {sink!r}" if sink else ""
        listed = ", ".join(repr(i) for i in missing)
        if len(missing) == 1:
            what = f"the id {listed} is not a dead letter"
        else:
            what = f"the ids {listed} are not dead letters"
        _fail(
            f"{what}{owner}, so nothing was {done}; `ftwatch deadletters list` shows them",
            EXIT_FAILURE,
        )
    if n == 0:
        click.echo(f"no dead letters{f' for sink {sink!r}' if sink else ''}")
    else:
        click.echo(f"{n} dead letter(s) {done}")


@deadletters.command("retry", epilog=EPILOG)
@config_option
@click.option("--sink", help="Only this sink's dead letters.")
@click.option("--id", "ids", multiple=True, help="An event id (repeatable).")
@click.option("--all", "all_", is_flag=True, help="Every dead letter.")
@_errors_to_exit
def deadletters_retry(
    config_path: str | None, sink: str | None, ids: tuple[str, ...], all_: bool
) -> None:
    """Queue dead letters again; a running daemon picks them up within a minute or at restart."""
    _selection(all_, ids, sink)
    _act_on_dead_letters(
        config_path,
        sink,
        ids,
        lambda store, event_ids: store.retry_dead_letters(
            sink=sink, event_ids=event_ids, now=time.time()
        ),
        "queued again",
    )


@deadletters.command("drop", epilog=EPILOG)
@config_option
@click.option("--sink", help="Only this sink's dead letters.")
@click.option("--id", "ids", multiple=True, help="An event id (repeatable).")
@click.option("--all", "all_", is_flag=True, help="Every dead letter.")
@_errors_to_exit
def deadletters_drop(
    config_path: str | None, sink: str | None, ids: tuple[str, ...], all_: bool
) -> None:
    """Delete dead letters for good."""
    _selection(all_, ids, sink)
    _act_on_dead_letters(
        config_path,
        sink,
        ids,
        lambda store, event_ids: store.drop_dead_letters(sink=sink, event_ids=event_ids),
        "dropped",
    )


__all__ = ["main"]
