"""``ftwatch status``: what the state file says right now, whether or not a daemon runs."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .common import config_option, errors_to_exit, load, run_async

if TYPE_CHECKING:
    from rich.console import Console

    from ..status import Status

__all__ = ["render", "status"]


def _ago(seconds: float | None) -> str:
    """``seconds`` as a short age: ``42s``, ``3m 20s``, ``5h 02m``, ``2d 04h``; ``-`` if None."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render(status: Status, console: Console) -> None:
    """Print ``status`` as tables: sources, their unfinished jobs, sinks."""
    from rich.table import Table

    console.print(f"State file {status.state_path}, read at {_when(status.read_at)}")
    sources = Table(title="Sources", title_justify="left")
    for column in ("source", "jobs by status", "last poll", "baselined"):
        sources.add_column(column)
    for src in status.sources:
        counts = ", ".join(f"{name} {n}" for name, n in src.jobs.items()) or "none"
        last = f"{_ago(src.seconds_since_poll)} ago" if src.last_poll is not None else "never"
        sources.add_row(src.name, counts, last, "yes" if src.baselined else "no")
    console.print(sources)

    active = Table(title="Active jobs", title_justify="left")
    for column in ("source", "job", "status", "in status for", "model", "estimated finish"):
        active.add_column(column)
    for src in status.sources:
        for job in src.active:
            active.add_row(
                src.name,
                job.id,
                job.status,
                _ago(job.seconds_in_status),
                job.model or "-",
                _when(job.estimated_finish),
            )
    if active.row_count:
        console.print(active)
    else:
        console.print("No active jobs.")

    sinks = Table(title="Sinks", title_justify="left")
    for column in ("sink", "queue", "oldest pending", "dead letters", "state"):
        sinks.add_column(column)
    for sink in status.sinks:
        if sink.disabled:
            state = f"disabled: {sink.disabled_reason}"
        else:
            state = "delivering" if sink.configured else "removed from the config"
        sinks.add_row(
            sink.name,
            str(sink.queue_depth),
            f"{_ago(sink.oldest_pending_age_seconds)} old" if sink.oldest_pending else "-",
            str(sink.dead_letters),
            state,
        )
    console.print(sinks)


@click.command()
@config_option
@click.option(
    "--state",
    "state_path",
    metavar="PATH",
    help="Read this state file; the config (and the secrets it names) is then not read.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the default when not a TTY).")
@errors_to_exit
def status(config_path: str | None, state_path: str | None, as_json: bool) -> None:
    """Show each source's jobs and last poll, and each sink's queue, from the state file.

    Reads the state file without locking it, so it answers while `ftwatch run` is running.
    A readable table on a terminal; JSON otherwise or with --json.
    """
    from ..status import read_status

    if state_path is not None:
        path = Path(state_path).expanduser()
    else:
        path = Path(load(config_path).state.path).expanduser()
    result = run_async(lambda: read_status(path, now=time.time()))
    if as_json or not sys.stdout.isatty():
        click.echo(result.model_dump_json(indent=2))
        return
    from rich.console import Console

    render(result, Console())
