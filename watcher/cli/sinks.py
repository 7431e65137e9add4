"""``ftwatch sinks`` and ``ftwatch sinks test``: the sink types found, and one sample delivery."""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING

import click

from ..errors import ConfigError, SinkDisabled, SinkError, SinkRejected, SinkUnavailable
from .common import EXIT_FAILURE, config_option, errors_to_exit, fail, load, run_async

if TYPE_CHECKING:
    from ..events import BaseEvent

__all__ = ["sinks"]


@click.group(invoke_without_command=True)
@click.pass_context
@errors_to_exit
def sinks(ctx: click.Context) -> None:
    """List the sink types found (built in and from plugins) and where each comes from.

    A type whose package cannot be loaded is listed with the reason.
    """
    from ..sinks import available_sinks

    if ctx.invoked_subcommand is not None:
        return
    for name, plugin in available_sinks().items():
        where = plugin.target if plugin.error is None else f"cannot be loaded: {plugin.error}"
        click.echo(f"{name:<12} {plugin.origin:<28} {where}")


def _sample_event(source: str) -> BaseEvent:
    from ..diff import diff
    from ..events import JobSucceeded
    from ..models import FineTuningJob

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
    from ..logs import redact

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


@sinks.command("test")
@click.argument("name")
@config_option
@errors_to_exit
def sinks_test(name: str, config_path: str | None) -> None:
    """Send a clearly marked sample event to the sink NAME and say what happened.

    The event has a new id each time and its job carries metadata ftwatch_test = "true".
    Exit code 0 when the sink took it, 1 when it did not.
    """
    from ..sinks import register_sink_secrets, sink_plugin

    config = load(config_path)
    matches = [s for s in config.sinks if s.name == name]
    if not matches:
        known = ", ".join(s.name for s in config.sinks) or "none"
        raise ConfigError(f"no sink named {name!r} in {config.path}; configured sinks: {known}")
    sink_config = matches[0]
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

    receipt, error, seconds = run_async(send)
    took = f"{seconds * 1000:.0f} ms"
    if error is not None:
        fail(f"sink {name!r} failed after {took}: {_why_it_failed(error)}", EXIT_FAILURE)
    # A plugin's receipt is shown only when it is the short text the protocol asks for.
    shown = f" ({_one_line(receipt, 80)})" if isinstance(receipt, str) and receipt.strip() else ""
    click.echo(f"ok: sample event {event.id} delivered to sink {name!r} in {took}{shown}")
