"""``ftwatch watch JOB``: follow one job to its end, with live status and progress on a TTY.

This is what people still look for as ``openai api fine_tunes.follow``. It talks to the API
directly (no store, no sinks) and reuses the diff, so what it shows matches the daemon's events.
"""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext

import anyio
from rich.console import Console
from rich.live import Live
from rich.text import Text

from .app import client_for
from .config import SourceConfig
from .diff import JobState, diff
from .models import FineTuningJob, JobEventRecord

__all__ = ["follow_job", "progress_of"]

_COLOURS = {"succeeded": "green", "failed": "red", "cancelled": "yellow"}


def progress_of(records: list[JobEventRecord]) -> tuple[int, int] | None:
    """The latest (step, total_steps) from a job's metrics events (newest first), if any."""
    for record in records:
        data = record.data or {}
        step, total = data.get("step"), data.get("total_steps")
        if isinstance(step, int) and isinstance(total, int) and total > 0:
            return step, total
    return None


def _line(job: FineTuningJob, progress: tuple[int, int] | None) -> Text:
    text = Text()
    text.append(f"{time.strftime('%H:%M:%S')}  {job.id}  ")
    text.append(job.status, style=_COLOURS.get(job.status, "cyan"))
    if progress is not None:
        step, total = progress
        width = 24
        filled = round(width * step / total)
        text.append(f"  [{'#' * filled}{'.' * (width - filled)}] step {step}/{total}")
    if job.fine_tuned_model:
        text.append(f"  {job.fine_tuned_model}")
    failure = job.failure
    if failure is not None:
        text.append(f"  {failure.code}: {failure.message}", style="red")
    return text


async def follow_job(source: SourceConfig, job_id: str, *, interval: float = 5.0) -> str:
    """Poll ``job_id`` until it is finished; return its final status."""
    console = Console(stderr=False)
    live_display = console.is_terminal
    state: JobState | None = None
    last_shown = ""
    async with client_for(source) as client:
        with (
            Live(console=console, auto_refresh=False, transient=False)
            if live_display
            else nullcontext() as live
        ):
            while True:
                job = await client.retrieve_job(job_id)
                progress = None
                if job.status == "running":
                    page = await client.list_job_events(job_id, limit=20)
                    progress = progress_of(page.items)
                state, events = diff(state, job, source=source.name, now=time.time())
                line = _line(job, progress)
                if isinstance(live, Live):
                    for event in events:
                        if event.previous_status:
                            console.print(f"  {event.previous_status} -> {job.status}")
                    live.update(line, refresh=True)
                elif line.plain.split("  ", 1)[1] != last_shown:
                    last_shown = line.plain.split("  ", 1)[1]
                    sys.stdout.write(line.plain + "\n")
                    sys.stdout.flush()
                if job.is_terminal:
                    return job.status
                await anyio.sleep(interval)
