"""``ftwatch watch JOB``: follow one job to its end, with live status and progress on a TTY.

This is what people still look for as ``openai api fine_tunes.follow``. It talks to the API
directly (no store, no sinks). On a terminal each status the job reaches is printed once as a
line and a live line below shows progress, cut to the terminal's width; elsewhere one plain line
is printed per change. Logs (retries, an outage) go to the log stream, stderr in the CLI.

A network failure does not end it: the job goes on running on the server, so requests are
retried with backoff until the API answers again or ``give_up_after`` seconds have passed.
"""

from __future__ import annotations

import time
from contextlib import nullcontext

import structlog
from rich.console import Console
from rich.live import Live
from rich.text import Text

from .app import client_for
from .clock import Clock, SystemClock
from .config import SourceConfig
from .errors import MalformedResponse, RateLimited, ServerError, WatcherError
from .http import AsyncBaseTransport
from .models import FineTuningJob, JobEventRecord

__all__ = ["FollowGaveUp", "follow_job", "progress_of"]

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


def progress_of(records: list[JobEventRecord]) -> tuple[int, int] | None:
    """The latest (step, total_steps) from a job's metrics events (newest first), if any."""
    for record in records:
        data = record.data or {}
        step, total = data.get("step"), data.get("total_steps")
        if isinstance(step, int) and isinstance(total, int) and total > 0:
            return step, total
    return None


def _line(
    job: FineTuningJob, progress: tuple[int, int] | None, now: float, width: int, *, with_id: bool
) -> Text:
    """One line about ``job``, cut with an ellipsis to ``width`` columns so it never wraps.

    A terminal's lines leave out the id the person just typed, so the status fits a narrow one.
    """
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"{time.strftime('%H:%M:%S', time.localtime(now))}  ")
    if with_id:
        text.append(f"{job.id}  ")
    text.append(job.status, style=_COLOURS.get(job.status, "cyan"))
    if progress is not None:
        step, total = progress
        # The bar gives up its columns first on a narrow terminal; the step count stays.
        bar = min(24, width - 56)
        if bar >= 8:
            filled = round(bar * step / total)
            text.append(f"  [{'#' * filled}{'.' * (bar - filled)}]")
        text.append(f"  step {step}/{total}")
    if job.fine_tuned_model:
        text.append(f"  {job.fine_tuned_model}")
    failure = job.failure
    if failure is not None:
        text.append(f"  {failure.code}: {failure.message}", style="red")
    text.truncate(width, overflow="ellipsis")
    return text


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
    failing_since: float | None = None
    failures = 0
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
                    progress = None
                    if job.status == "running":
                        page = await client.list_job_events(job_id, limit=20)
                        progress = progress_of(page.items)
                except _TRANSIENT as exc:
                    now = clock.now()
                    if failing_since is None:
                        failing_since = now
                        log.warning(
                            "api_unreachable",
                            source=source.name,
                            job=job_id,
                            error=str(exc),
                            give_up_after=give_up_after,
                        )
                    down = now - failing_since
                    if down >= give_up_after:
                        raise FollowGaveUp(
                            f"the API of source {source.name!r} could not be reached for "
                            f"{down:.0f} s (last: {exc}); check the network or raise "
                            "--give-up-after",
                            last=exc,
                        ) from None
                    failures += 1
                    wait = min(interval * 2**failures, _MAX_BACKOFF, give_up_after - down)
                    await clock.sleep(max(wait, 0.0))
                    continue
                if failing_since is not None:
                    log.warning(
                        "api_reachable_again",
                        source=source.name,
                        job=job_id,
                        after_seconds=round(clock.now() - failing_since, 1),
                    )
                    failing_since, failures = None, 0
                # Only a terminal has a width to fit; a pipe gets whole lines.
                width = console.width if live_display else 100_000
                line = _line(job, progress, clock.now(), width, with_id=not live_display)
                if isinstance(live, Live):
                    if job.status != shown_status:
                        # A status is printed once, as a line that stays; the live line below
                        # shows only progress within it and is removed at the end.
                        shown_status = job.status
                        live.console.print(line)
                        live.update(Text(), refresh=True)
                    else:
                        live.update(line, refresh=True)
                else:
                    plain = line.plain.split("  ", 1)[1]
                    if plain != last_plain:
                        last_plain = plain
                        console.file.write(line.plain + "\n")
                        console.file.flush()
                if job.is_terminal:
                    return job.status
                await clock.sleep(interval)
