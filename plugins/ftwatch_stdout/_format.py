"""The readable one-line form of an event, for a person watching a terminal."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final

from watcher.events import BaseEvent

__all__ = ["COLOURS", "format_line"]

#: ANSI colour per event type; any other type (created, status_changed, later ones) is cyan.
COLOURS: Final = {
    "fine_tuning.job.succeeded": "\x1b[32m",
    "fine_tuning.job.failed": "\x1b[31m",
    "fine_tuning.job.cancelled": "\x1b[33m",
}
_OTHER: Final = "\x1b[36m"
_RESET: Final = "\x1b[0m"

#: Cells of the bar a progress line shows.
_BAR_CELLS: Final = 10

#: A failure's message is cut to this many characters: the line stays one line on a screen.
_DETAIL_MAX: Final = 200

# C0 and C1 control characters, DEL included: an API value must not move the cursor, recolour
# the terminal or set its title.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _clean(text: str) -> str:
    return _CONTROL.sub(" ", text)


def _span(seconds: float) -> str:
    """Whole minutes, or seconds under a minute (an accelerated demo stalls for seconds)."""
    whole = max(0, int(seconds))
    return f"{whole} s" if whole < 60 else f"{whole // 60} min"


def _bar(percent: float) -> str:
    """A ten-cell progress bar: a line per progress event reads as a bar filling up."""
    filled = round(_BAR_CELLS * min(max(percent, 0.0), 100.0) / 100.0)
    return "█" * filled + "░" * (_BAR_CELLS - filled)


def _progress_detail(event: BaseEvent) -> str | None:
    """The compact detail of a progress type (None for a lifecycle event)."""
    fields = event.details()
    if not fields:
        return None
    if event.type == "fine_tuning.job.progress":
        step, total, loss = fields.get("step"), fields.get("total_steps"), fields.get("train_loss")
        text = f"step {step}" + (f"/{total}" if total else "")
        if fields.get("percent") is not None:
            text += f" {_bar(float(fields['percent']))} {fields['percent']:g}%"
        return text + (f" loss {loss:.4g}" if loss is not None else "")
    if event.type == "fine_tuning.job.checkpoint_created":
        return f"step {fields.get('step_number')} {fields.get('fine_tuned_model_checkpoint') or ''}"
    if event.type == "fine_tuning.job.message":
        return f"{fields['level']}: {' '.join(str(fields['message']).split())[:_DETAIL_MAX]}"
    if event.type == "fine_tuning.job.stalled":
        return f"{fields['reason']} for {_span(event.observed_at - float(fields['since']))}"
    if event.type == "fine_tuning.job.unstalled":
        return f"{fields['reason']} over after {_span(float(fields['stalled_for']))}"
    if event.type == "fine_tuning.job.eta_changed":
        return f"ETA moved {float(fields['shift']) / 60:+.0f} min"
    return None


def _detail(event: BaseEvent) -> str:
    progress = _progress_detail(event)
    if progress is not None:
        return progress
    job = event.job
    if event.type == "fine_tuning.job.succeeded" and job.fine_tuned_model:
        return job.fine_tuned_model
    if event.type == "fine_tuning.job.failed" and job.failure is not None:
        failure = job.failure
        text = ": ".join(p for p in (failure.code, failure.message) if p)
        text = " ".join(text.split())
        return text if len(text) <= _DETAIL_MAX else text[: _DETAIL_MAX - 1] + "…"
    model = job.model or ""
    if model and job.user_provided_suffix:
        model += f" ({job.user_provided_suffix})"
    return model


def _change(event: BaseEvent) -> str:
    status = event.job.status
    if event.type == "fine_tuning.job.created":
        return f"created, {status}"
    if event.previous_status is not None and event.previous_status != status:
        return f"{event.previous_status} → {status}"
    return status


def format_line(event: BaseEvent, *, colour: bool) -> str:
    """Render ``event`` as one line, without its newline.

    For example ``12:04:05  succeeded  ftjob-abc  running → succeeded  ft:gpt-4o-mini:org:x:1
    (source openai)``. The time is when ftwatch saw the change, in local time. ``colour`` paints the
    status change (green succeeded, red failed, yellow cancelled, cyan otherwise). Control
    characters from the API are replaced, so nothing in a job can steer the terminal.
    """
    when = datetime.fromtimestamp(event.observed_at).strftime("%H:%M:%S")
    change = _clean(_change(event))
    if colour:
        change = f"{COLOURS.get(event.type, _OTHER)}{change}{_RESET}"
    # The type's short name, so a status change and the terminal event that follows it read
    # differently ("status ... running → succeeded", then "succeeded ... ft:...").
    label = event.type.rsplit(".", 1)[-1].replace("status_changed", "status").ljust(9)
    parts = [when, label, _clean(event.job.id), change]
    detail = _clean(_detail(event))
    if detail:
        parts.append(detail)
    return "  ".join(parts) + f" (source {_clean(event.source)})"
