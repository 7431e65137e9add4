"""``ftwatch watch --all``: every active job of a source, as a live table until they all end.

It is ``ftwatch watch JOB`` (:mod:`watcher.follow`) for a whole source: the same reading of
each job (statuses, new ``/events`` entries, checkpoints, stalls by the source's thresholds),
the same ride through an unreachable API, no store and no sinks. On a terminal one table is
redrawn in place, a row a job (status and time in it, progress, losses, ETA; a stalled job
says so), with checkpoints, warnings and stalls printed above it; elsewhere one plain line is
printed per change (a status, a progress step, a stall, a checkpoint, a message), so a log
stays readable.

The API cost stays bounded: the first cycle reads the job list down to
:data:`MAX_DISCOVERY_PAGES` pages to find the active jobs; later cycles read its first page
only (where a new job appears) and retrieve the followed jobs it does not show. A job's
``/events`` are read only while it runs, at most once per ``progress_interval`` (and once
more when it stops running), and only the entries new since the last read.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .app import client_for
from .client import APIClient
from .clock import Clock, SystemClock
from .config import SourceConfig
from .follow import (
    _COLOURS,
    _TRANSIENT,
    _line,
    _observe,
    _Outage,
    _plain_key,
    _Seen,
    _span,
)
from .http import AsyncBaseTransport
from .models import FineTuningJob
from .progress import rules_of
from .tracking import Rules

__all__ = ["MAX_DISCOVERY_PAGES", "follow_all"]

#: Pages of the job list (100 jobs each) the first cycle reads to find the active jobs.
MAX_DISCOVERY_PAGES = 10
#: Cells of the progress bar in a table row.
_BAR_CELLS = 10
#: The table's columns and their widths; the job column takes what is left, 10 at least.
_COLUMNS = (
    ("job", 10),
    ("status", len("validating_files STALLED")),
    ("progress", _BAR_CELLS + len(" 1234/1234 100%")),
    ("train / valid loss", len("train / valid loss")),
    ("ETA", len("23:59 (in 1h05m)")),
    ("in status", len("in status")),
)


@dataclass
class _Row:
    """One followed job: its latest snapshot and what following it has read."""

    job: FineTuningJob
    seen: _Seen = field(default_factory=_Seen)
    #: When its ``/events`` were last read (they are read once per ``progress_interval``).
    read_at: float | None = None
    #: What its last plain line said (a pipe gets a new line only when this changes).
    plain: str = ""
    #: Whether its end has been taken in (it is never retrieved again).
    ended: bool = False


async def _listed(client: APIClient, pages: int) -> list[FineTuningJob]:
    """The jobs of the first ``pages`` pages of the list, newest first."""
    jobs: list[FineTuningJob] = []
    after: str | None = None
    for _ in range(pages):
        page = await client.list_jobs(limit=100, after=after)
        jobs.extend(page.items)
        if not page.has_more or page.last_id is None or page.last_id == after:
            break
        after = page.last_id
    return jobs


async def _cycle(
    client: APIClient,
    source: str,
    rows: dict[str, _Row],
    rules: Rules,
    clock: Clock,
    progress_interval: float,
) -> tuple[list[_Row], list[tuple[_Row, Text]]]:
    """Read what is due; return the rows observed this cycle and the lines to print above."""
    listed = await _listed(client, MAX_DISCOVERY_PAGES if not rows else 1)
    fresh: dict[str, FineTuningJob] = {}
    for job in listed:
        row = rows.get(job.id)
        # A job that appears while this runs is followed when it is still active.
        if (row is None and not job.is_terminal) or (row is not None and not row.ended):
            fresh[job.id] = job
    for job_id, row in rows.items():
        if job_id not in fresh and not row.ended:
            fresh[job_id] = await client.retrieve_job(job_id)
    now = clock.now()
    observed: list[_Row] = []
    above: list[tuple[_Row, Text]] = []
    for job_id, job in fresh.items():
        row = rows.setdefault(job_id, _Row(job))
        due = row.read_at is None or now - row.read_at >= progress_interval
        lines = await _observe(client, source, job, row.seen, rules, now, read=due)
        if due and job.status == "running":
            row.read_at = now
        row.job, row.ended = job, job.is_terminal
        observed.append(row)
        above.extend((row, line) for line in lines)
    return observed, above


def _label(job: FineTuningJob) -> str:
    suffix = job.user_provided_suffix
    return f"{job.id} ({suffix})" if suffix else job.id


def _bar(percent: float) -> str:
    filled = round(_BAR_CELLS * min(max(percent, 0.0), 100.0) / 100.0)
    return "█" * filled + "░" * (_BAR_CELLS - filled)


def _cells(row: _Row, now: float) -> tuple[Text, Text, Text, Text, Text, Text]:
    """A row's cells: job, status, progress, loss, ETA, time in status."""
    job, seen = row.job, row.seen
    status = Text(job.status, style=_COLOURS.get(job.status, "cyan"))
    if seen.stalled is not None:
        status.append(" STALLED", style="bold red")
    progress, loss, eta, since = Text(), Text(), Text(), Text()
    fields = seen.metrics
    if fields is not None:
        total = fields.get("total_steps")
        if "percent" in fields:
            progress.append(_bar(float(fields["percent"])) + " ", style="green")
        progress.append(f"{fields['step']}" + (f"/{total}" if total else ""))
        if "percent" in fields:
            progress.append(f" {fields['percent']:.0f}%")
        if "train_loss" in fields:
            loss.append(f"{fields['train_loss']:.4f}")
        valid = fields.get("valid_loss", seen.checkpoint_valid_loss)
        if valid is not None:
            loss.append(f" / {valid:.4f}")
    if job.estimated_finish is not None and not job.is_terminal:
        finish = float(job.estimated_finish)
        eta.append(time.strftime("%H:%M", time.localtime(finish)))
        eta.append(f" (in {_span(finish - now)})" if finish > now else " (overdue)")
    if seen.track is not None and not job.is_terminal:
        since.append(_span(now - seen.track.status_since))
    return Text(_label(job)), status, progress, loss, eta, since


def _table(source: str, rows: Iterable[_Row], now: float, width: int) -> Table:
    """The live table: one row a job, in the order they were created."""
    ordered = sorted(rows, key=lambda r: (r.job.created_at or 0, r.job.id))
    active = sum(not r.job.is_terminal for r in ordered)
    table = Table(
        title=f"source {source}: {active} of {len(ordered)} jobs active",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    # On a narrow terminal the job column gives way first: the others keep what they need.
    job_width = max(_COLUMNS[0][1], width - sum(cells + 2 for _, cells in _COLUMNS[1:]) - 2)
    for name, cells in _COLUMNS:
        if name == "job":
            table.add_column(name, no_wrap=True, overflow="ellipsis", max_width=job_width)
        else:
            table.add_column(name, no_wrap=True, overflow="ellipsis", width=cells)
    for row in ordered:
        table.add_row(*_cells(row, now))
    return table


async def follow_all(
    source: SourceConfig,
    *,
    interval: float = 5.0,
    progress_interval: float | None = None,
    give_up_after: float = 600.0,
    clock: Clock | None = None,
    transport: AsyncBaseTransport | None = None,
    console: Console | None = None,
) -> dict[str, str]:
    """Follow every active job of ``source`` until all have ended; return their final statuses.

    Jobs that appear meanwhile, still active, are followed too. With no active job at the
    start it says so and returns an empty mapping. ``progress_interval`` (default: the
    source's) paces the reads of running jobs' events. Waits run on ``clock``; an unreachable
    API is retried as :func:`~watcher.follow.follow_job` does, and raises
    :class:`~watcher.follow.FollowGaveUp` after ``give_up_after`` seconds. A refused key
    raises at once. Output goes to ``console`` (default: stdout).
    """
    clock = clock or SystemClock()
    console = console or Console()
    every = source.progress_interval if progress_interval is None else progress_interval
    live_display = console.is_terminal
    rules = rules_of(source)
    rows: dict[str, _Row] = {}
    outage = _Outage(source.name, interval, give_up_after, jobs="all")
    single = source.model_copy(update={"max_attempts": 1})
    async with client_for(single, transport=transport, sleep=clock.sleep) as client:
        with (
            Live(console=console, auto_refresh=False, transient=False)
            if live_display
            else nullcontext() as live
        ):
            while True:
                try:
                    observed, above = await _cycle(client, source.name, rows, rules, clock, every)
                except _TRANSIENT as exc:
                    await clock.sleep(outage.failed(exc, clock.now()))
                    continue
                now = clock.now()
                outage.answered(now)
                if not rows:
                    console.print(f"No active jobs on source {source.name!r}.", highlight=False)
                    return {}
                if isinstance(live, Live):
                    width = console.width
                    for row, text in above:
                        line = Text(text.plain[:10]) + Text(f"{row.job.id}  ") + text[10:]
                        line.no_wrap, line.overflow = True, "ellipsis"
                        line.truncate(width, overflow="ellipsis")
                        live.console.print(line)
                    live.update(Group(_table(source.name, rows.values(), now, width)), refresh=True)
                else:
                    for row, text in above:
                        console.file.write(f"{text.plain[:10]}{row.job.id}  {text.plain[10:]}\n")
                    for row in observed:
                        plain = _plain_key(row.job, row.seen, now)
                        if plain != row.plain:
                            row.plain = plain
                            line = _line(row.job, row.seen, now, 100_000, with_id=True)
                            console.file.write(line.plain + "\n")
                    console.file.flush()
                if all(row.ended for row in rows.values()):
                    return {job_id: row.job.status for job_id, row in rows.items()}
                await clock.sleep(interval)
