"""Scenarios for issue 8's event types: stuck, stopped, paused, chatty and slipping jobs.

:func:`progress_scenario` adds one job of each kind to a simulator, on a timeline in
simulated seconds, so ``ftwatch simulate --progress`` (and a test) shows every progress type:
a job stuck in ``queued`` for hours, one whose metrics stop, one paused and resumed, one that
posts a warning and an error, and one whose ``estimated_finish`` slips by hours.
"""

from __future__ import annotations

from typing import Final

from .app import Simulator
from .scripts import Step

__all__ = ["PROGRESS_JOBS", "progress_scenario"]

_HOUR: Final = 3600.0

#: The scenario's jobs, by name, in the order :func:`progress_scenario` creates them.
PROGRESS_JOBS: Final = ("stuck_queued", "metrics_stop", "paused", "chatty", "slipping_eta")


def progress_scenario(sim: Simulator, *, start: float | None = None) -> dict[str, str]:
    """Add the scenario's five jobs to ``sim``, created at ``start`` (default now).

    Returns job ids by name (:data:`PROGRESS_JOBS`):

    - ``stuck_queued``: validating for a minute, then queued for six hours, then runs.
    - ``metrics_stop``: runs three hours but logs metrics only for its first ten minutes.
    - ``paused``: runs, is paused after 20 minutes for two hours, resumes and finishes.
    - ``chatty``: posts a ``warn`` after 5 minutes and an ``error`` after 15, then fails.
    - ``slipping_eta``: its ``estimated_finish`` moves two hours later at 30 minutes.
    """
    t0 = sim.clock.now() if start is None else start
    ids: dict[str, str] = {}
    ids["stuck_queued"] = sim.create_job(
        created_at=t0,
        suffix="stuck-queued",
        script=[(0, "validating_files"), (60, "queued"), (6 * _HOUR, "running")],
        train_seconds=1800,
    )
    ids["metrics_stop"] = sim.create_job(
        created_at=t0,
        suffix="metrics-stop",
        script=[(0, "running"), (3 * _HOUR, "succeeded")],
        train_seconds=600,
    )
    ids["paused"] = sim.create_job(
        created_at=t0,
        suffix="paused",
        script=[
            (0, "running"),
            (1200, "paused"),
            (1200 + 2 * _HOUR, "running"),
            (2400 + 2 * _HOUR, "succeeded"),
        ],
        train_seconds=2400,
    )
    ids["chatty"] = sim.create_job(
        created_at=t0,
        suffix="chatty",
        script=[(0, "running"), (1800, "failed")],
        train_seconds=3600,
    )
    sim.post_event(
        ids["chatty"], "Training file has 12 duplicated examples", level="warn", at=t0 + 300
    )
    sim.post_event(ids["chatty"], "Loss diverged; the job will stop", level="error", at=t0 + 900)
    finish = t0 + 3600
    ids["slipping_eta"] = sim.create_job(
        created_at=t0,
        suffix="slipping-eta",
        script=[
            Step(0, "running", None, {"estimated_finish": int(finish)}),
            Step(1800, "running", None, {"estimated_finish": int(finish + 2 * _HOUR)}),
            Step(3 * _HOUR, "succeeded"),
        ],
        train_seconds=3 * _HOUR,
    )
    return ids
