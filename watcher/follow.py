"""``ftwatch watch JOB``: follow one job to its end, with live status and progress on a TTY.

This is what people still look for as ``openai api fine_tunes.follow``. It talks to the API
directly (no store, no sinks). On a terminal each status the job reaches is printed once as a
line and a live progress bar below shows step/total, percent, the current train and valid loss,
the ETA and the time in the status, cut to the terminal's width; checkpoints, ``warn``/``error``
messages of the job's event stream and stalls are printed above it as they come. Elsewhere one
plain line is printed per status change, progress update, checkpoint, message or stall. Logs
(retries, an outage) go to the log stream, stderr in the CLI.

A network failure does not end it: the job goes on running on the server, so requests are
retried with backoff until the API answers again or ``give_up_after`` seconds have passed.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import structlog
from rich.console import Console, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .app import client_for
from .client import APIClient
from .clock import Clock, SystemClock
from .config import SourceConfig
from .errors import MalformedResponse, RateLimited, ServerError, WatcherError
from .events import JobStalled, JobUnstalled
from .http import AsyncBaseTransport
from .models import FineTuningJob, JobEventRecord
from .progress import read_new_records, rules_of
from .tracking import JobTrack, Rules, check_stall, note_metrics, note_status, parse_metrics

__all__ = ["FollowGaveUp", "follow_job"]

log = structlog.get_logger(__name__)

_COLOURS = {"succeeded": "green", "failed": "red", "cancelled": "yellow"}
#: Errors that say the API is unreachable or unwell for now, not that the request is wrong.
_TRANSIENT = (ServerError, RateLimited, MalformedResponse)
#: The longest wait between two tries while the API is unreachable.
_MAX_BACKOFF = 60.0


class FollowGaveUp(WatcherError):
    """The API could not be reached for ``give_up_after`` seconds; ``last`` is the last error."""

    def __init__(self, message: str, *, last: Exception) -> None:
        super().__init__(message)
        self.last = last


class _Outage:
    """How a follow rides out an unreachable API: backoff, one warning each way, then give up.

    ``ftwatch watch JOB`` and ``ftwatch watch --all`` share it, so both outlast the same blips.
    """

    def __init__(self, source: str, interval: float, give_up_after: float, **where: Any) -> None:
        self.source = source
        self.interval = interval
        self.give_up_after = give_up_after
        self.where = where
        self.since: float | None = None
        self.failures = 0

    def failed(self, exc: Exception, now: float) -> float:
        """The seconds to wait before the next try; raises :class:`FollowGaveUp` past the limit."""
        if self.since is None:
            self.since = now
            log.warning(
                "api_unreachable",
                source=self.source,
                **self.where,
                error=str(exc),
                give_up_after=self.give_up_after,
            )
        down = now - self.since
        if down >= self.give_up_after:
            raise FollowGaveUp(
                f"the API of source {self.source!r} could not be reached for {down:.0f} s "
                f"(last: {exc}); check the network or raise --give-up-after",
                last=exc,
            ) from None
        self.failures += 1
        wait: float = min(
            self.interval * 2.0**self.failures, _MAX_BACKOFF, self.give_up_after - down
        )
        return max(wait, 0.0)

    def answered(self, now: float) -> None:
        """The API answered: say so once if it had not been, and reset the backoff."""
        if self.since is not None:
            log.warning(
                "api_reachable_again",
                source=self.source,
                **self.where,
                after_seconds=round(now - self.since, 1),
            )
            self.since, self.failures = None, 0


#: Levels of the job's event stream whose messages are printed (info lines are the API's chatter).
_SHOWN_LEVELS = {"warn": "yellow", "warning": "yellow", "error": "red"}
#: Widest progress bar on a terminal, and the narrowest worth drawing.
_BAR_MAX, _BAR_MIN = 30, 8
_STALL_WORDS = {
    "validating_too_long": "still validating files",
    "queued_too_long": "still queued",
    "no_progress": "running with no new metrics",
}


def _span(seconds: float) -> str:
    """A duration as a person reads it: ``45s``, ``12m``, ``3h05m``."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


@dataclass
class _Seen:
    """What following one job has read so far: cursors, the latest metrics, the stall clock."""

    track: JobTrack | None = None
    last_event_id: str | None = None
    last_checkpoint_id: str | None = None
    #: The newest metrics entry's fields (``step``, ``total_steps``, ``percent``, losses).
    metrics: dict[str, Any] | None = None
    #: The newest checkpoint's ``valid_loss``, for when metrics entries carry none.
    checkpoint_valid_loss: float | None = None

    @property
    def stalled(self) -> dict[str, Any] | None:
        return None if self.track is None else self.track.stall


def _progress_text(
    job: FineTuningJob, seen: _Seen, now: float, *, live: bool, eta: bool = True
) -> Text:
    """Step/total, percent, losses and ETA; on a terminal the ETA also says how far off it is."""
    text = Text()
    fields = seen.metrics
    if fields is not None:
        total = fields.get("total_steps")
        text.append(f"step {fields['step']}" + (f"/{total}" if total else ""))
        if "percent" in fields:
            text.append(f" {fields['percent']:.0f}%")
        if "train_loss" in fields:
            text.append(f"  train_loss {fields['train_loss']:.4f}")
        valid = fields.get("valid_loss", seen.checkpoint_valid_loss)
        if valid is not None:
            text.append(f"  valid_loss {valid:.4f}")
    if eta and job.estimated_finish is not None and not job.is_terminal:
        finish = float(job.estimated_finish)
        text.append(f"{'  ' if text else ''}ETA {time.strftime('%H:%M', time.localtime(finish))}")
        if live:
            text.append(f" (in {_span(finish - now)})" if finish > now else " (overdue)")
    return text


def _line(
    job: FineTuningJob,
    seen: _Seen | None,
    now: float,
    width: int,
    *,
    with_id: bool,
    eta: bool = True,
) -> Text:
    """One line about ``job``, cut with an ellipsis to ``width`` columns so it never wraps.

    A terminal's lines leave out the id the person just typed, so the status fits a narrow one.
    """
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"{_clock(now)}  ")
    if with_id:
        text.append(f"{job.id}  ")
    text.append(job.status, style=_COLOURS.get(job.status, "cyan"))
    if seen is not None and job.status == "running":
        progress = _progress_text(job, seen, now, live=False, eta=eta)
        if progress:
            text.append("  ")
            text.append_text(progress)
    if job.fine_tuned_model:
        text.append(f"  {job.fine_tuned_model}")
    failure = job.failure
    if failure is not None:
        text.append(f"  {failure.code}: {failure.message}", style="red")
    text.truncate(width, overflow="ellipsis")
    return text


def _bar(job: FineTuningJob, seen: _Seen, now: float, width: int) -> Table:
    """The live line on a terminal: status and time in it, a progress bar, step, loss and ETA.

    The bar gives up its columns first on a narrow terminal, then the details are cut.
    """
    head = Text(no_wrap=True)
    head.append(job.status, style=_COLOURS.get(job.status, "cyan"))
    if seen.track is not None:
        head.append(f" {_span(now - seen.track.status_since)}")
    if seen.stalled is not None:
        head.append(" STALLED", style="bold red")
    tail = _progress_text(job, seen, now, live=True)
    tail.no_wrap, tail.overflow = True, "ellipsis"
    fields = seen.metrics or {}
    total, step = fields.get("total_steps"), fields.get("step", 0)
    room = width - head.cell_len - tail.cell_len - 4
    grid = Table.grid(padding=(0, 2, 0, 0), pad_edge=False)
    cells: list[RenderableType] = [head]
    if total and room >= _BAR_MIN:
        cells.append(
            ProgressBar(total=float(total), completed=float(step), width=min(room, _BAR_MAX))
        )
    else:
        tail.truncate(max(0, width - head.cell_len - 2), overflow="ellipsis")
    cells.append(tail)
    for _ in cells:
        grid.add_column(no_wrap=True)
    grid.add_row(*cells)
    return grid


async def _new_records(client: APIClient, job_id: str, seen: _Seen) -> list[JobEventRecord]:
    """The job's events newer than the last one read, oldest first (the first read: one page)."""
    found, _ = await read_new_records(client, job_id, seen.last_event_id)
    if found:
        seen.last_event_id = found[-1].id
    return found


async def _read(
    client: APIClient, source: str, job: FineTuningJob, seen: _Seen, now: float
) -> list[Text]:
    """Read the job's new events (and checkpoints when one is announced); the lines they make."""
    assert seen.track is not None
    lines: list[Text] = []
    checkpoint_hint = seen.last_checkpoint_id is None and job.is_terminal
    for record in await _new_records(client, job.id, seen):
        at = float(record.created_at) if record.created_at is not None else now
        if record.type == "metrics":
            fields = parse_metrics(record, source=source, job_id=job.id)
            if fields is not None and note_metrics(seen.track, fields["step"], at):
                seen.metrics = fields
            continue
        message = record.message or ""
        checkpoint_hint = checkpoint_hint or "checkpoint" in message.lower()
        level = (record.level or "info").lower()
        if level in _SHOWN_LEVELS:
            line = Text(f"{_clock(at)}  ")
            line.append(
                f"{'warn' if level == 'warning' else level}: {message}", _SHOWN_LEVELS[level]
            )
            lines.append(line)
    if checkpoint_hint:
        lines.extend(await _checkpoints(client, job.id, seen))
    return lines


async def _checkpoints(client: APIClient, job_id: str, seen: _Seen) -> list[Text]:
    page = await client.list_checkpoints(job_id, limit=10)
    new = []
    for checkpoint in page.items:
        if checkpoint.id == seen.last_checkpoint_id:
            break
        new.append(checkpoint)
    if not new:
        return []
    seen.last_checkpoint_id = new[0].id
    valid = (new[0].metrics or {}).get("valid_loss")
    if isinstance(valid, int | float):
        seen.checkpoint_valid_loss = float(valid)
    lines = []
    for checkpoint in reversed(new):
        at = float(checkpoint.created_at) if checkpoint.created_at is not None else 0.0
        line = Text(f"{_clock(at)}  ")
        line.append(f"checkpoint at step {checkpoint.step_number}", "magenta")
        if checkpoint.fine_tuned_model_checkpoint:
            line.append(f"  {checkpoint.fine_tuned_model_checkpoint}")
        metrics = checkpoint.metrics or {}
        for name in ("train_loss", "valid_loss"):
            value = metrics.get(name)
            if isinstance(value, int | float):
                line.append(f"  {name} {value:.4f}")
        lines.append(line)
    return lines


def _stall_lines(
    job: FineTuningJob, seen: _Seen, rules: Rules, source: str, now: float
) -> list[Text]:
    """A line when the job stalls (by the source's thresholds) and when it moves again."""
    assert seen.track is not None
    lines = []
    for event in check_stall(seen.track, job, now=now, rules=rules, source=source):
        line = Text(f"{_clock(now)}  ")
        if isinstance(event, JobStalled):
            words = _STALL_WORDS.get(event.reason, event.reason)
            line.append(
                f"stalled: {words} for {_span(now - event.since)} "
                f"(threshold {_span(event.threshold)})",
                "bold red",
            )
        elif isinstance(event, JobUnstalled):
            line.append(f"moving again after {_span(event.stalled_for)}", "green")
        lines.append(line)
    return lines


def _note(seen: _Seen, job: FineTuningJob, now: float) -> bool:
    """Record the job's status; True when it was running before and is not now."""
    if seen.track is None:
        since = now
        if job.status in ("validating_files", "queued") and job.created_at is not None:
            # Its clock starts when the API says, so a job queued for hours is stalled at once.
            since = min(now, float(job.created_at))
        seen.track = JobTrack(status=job.status, status_since=since)
        return False
    was_running = seen.track.status == "running"
    return note_status(seen.track, job.status, now) and was_running


async def _observe(
    client: APIClient,
    source: str,
    job: FineTuningJob,
    seen: _Seen,
    rules: Rules,
    now: float,
    *,
    read: bool = True,
) -> list[Text]:
    """Take in ``job`` as just retrieved: its status, new events when ``read``, its stall.

    Returns the lines to print above the live display. A job's last entries come in as it
    ends, so they are read once more then, whatever ``read`` says.
    """
    stopped_running = _note(seen, job, now)
    above: list[Text] = []
    if (job.status == "running" and read) or stopped_running:
        above = await _read(client, source, job, seen, now)
    above.extend(_stall_lines(job, seen, rules, source, now))
    return above


def _plain_key(job: FineTuningJob, seen: _Seen, now: float) -> str:
    """What a pipe's line says beyond the time: a new line is printed when it changes.

    The ETA is left out: an overdue ETA is pushed back every minute (the simulator and the
    API both do that), which is not news.
    """
    return _line(job, seen, now, 100_000, with_id=True, eta=False).plain.split("  ", 1)[1]


async def follow_job(
    source: SourceConfig,
    job_id: str,
    *,
    interval: float = 5.0,
    give_up_after: float = 600.0,
    clock: Clock | None = None,
    transport: AsyncBaseTransport | None = None,
    console: Console | None = None,
) -> str:
    """Poll ``job_id`` until it is finished; return its final status.

    Waits (between polls and between retries) run on ``clock``. While the API cannot be
    reached, tries go on with backoff (up to a minute apart); after ``give_up_after`` seconds
    without an answer it raises :class:`FollowGaveUp`. A refused key or an unknown job raises
    at once (:class:`~watcher.errors.AuthenticationError`, :class:`~watcher.errors.NotFoundError`).
    Output goes to ``console`` (default: stdout).
    """
    clock = clock or SystemClock()
    console = console or Console()
    live_display = console.is_terminal
    shown_status: str | None = None
    last_plain = ""
    seen = _Seen()
    rules = rules_of(source)
    outage = _Outage(source.name, interval, give_up_after, job=job_id)
    # One try per request: this loop is the retry policy, with a backoff that outlasts a blip.
    single = source.model_copy(update={"max_attempts": 1})
    async with client_for(single, transport=transport, sleep=clock.sleep) as client:
        with (
            Live(console=console, auto_refresh=False, transient=True)
            if live_display
            else nullcontext() as live
        ):
            while True:
                try:
                    job = await client.retrieve_job(job_id)
                    now = clock.now()
                    above = await _observe(client, source.name, job, seen, rules, now)
                except _TRANSIENT as exc:
                    await clock.sleep(outage.failed(exc, clock.now()))
                    continue
                outage.answered(clock.now())
                # Only a terminal has a width to fit; a pipe gets whole lines.
                width = console.width if live_display else 100_000
                line = _line(job, seen, now, width, with_id=not live_display)
                if isinstance(live, Live):
                    for text in above:
                        text.no_wrap, text.overflow = True, "ellipsis"
                        text.truncate(width, overflow="ellipsis")
                        live.console.print(text)
                    if job.status != shown_status:
                        # A status is printed once, as a line that stays; the live bar below
                        # shows progress within it and is removed at the end.
                        shown_status = job.status
                        live.console.print(line)
                    live.update(
                        Text() if job.is_terminal else _bar(job, seen, now, width), refresh=True
                    )
                else:
                    for text in above:
                        console.file.write(f"{text.plain[:10]}{job.id}  {text.plain[10:]}\n")
                    plain = _plain_key(job, seen, now)
                    if plain != last_plain:
                        last_plain = plain
                        console.file.write(line.plain + "\n")
                    console.file.flush()
                if job.is_terminal:
                    return job.status
                await clock.sleep(interval)
