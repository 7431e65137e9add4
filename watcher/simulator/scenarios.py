"""Ready-made scenarios: the demo's five jobs, with their exact, known timeline.

The demo's transitions happen at distinct times at least fifteen simulated seconds apart, so a
watcher polling every ten simulated seconds (the demo's pace) sees each one on its own, and a
test can assert the exact order of the events it produces.

Every job that runs logs metrics as it trains (the simulator's, ten a run), and one job,
``sql-helper``, waits in ``queued`` far longer than the others: with the demo's progress
settings (:data:`DEMO_PROGRESS`) its training shows as progress events and its wait as one
stall, over by the time it runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

from .app import Simulator
from .scripts import Step

__all__ = [
    "DEMO_DURATION",
    "DEMO_JOBS",
    "DEMO_PROGRESS",
    "DemoJob",
    "DemoProgress",
    "Transition",
    "demo_scenario",
    "demo_timeline",
    "demo_transitions",
]

_FAILURE: Final = {
    "code": "invalid_training_file",
    "message": (
        "The job failed due to an invalid training file. Expected file to have JSONL format, "
        "where every line is a valid JSON dictionary. Line 129 is not a dictionary."
    ),
    "param": "training_file",
}


@dataclass(frozen=True)
class DemoProgress:
    """The demo source's progress keys, in simulated seconds.

    They are :class:`~watcher.config.SourceConfig` keys; a watcher on another clock than the
    simulator's (``ftwatch demo``: the wall clock) divides the durations by the speed.
    """

    progress_interval: float
    progress_every: str
    stall_queued: float


@dataclass(frozen=True)
class DemoJob:
    """One job of the demo: its name and its transitions, in seconds after the demo starts."""

    suffix: str
    team: str
    #: (seconds after the demo starts, status); the first is the job's creation.
    transitions: tuple[tuple[float, str], ...]


#: The demo: three jobs succeed, one fails while running, one is cancelled while queued.
#: ``sql-helper`` is queued 210 s, the others 75 s at most: only it stalls (DEMO_PROGRESS).
DEMO_JOBS: Final[tuple[DemoJob, ...]] = (
    DemoJob(
        "support-bot",
        "support",
        ((0, "validating_files"), (30, "queued"), (75, "running"), (300, "succeeded")),
    ),
    DemoJob(
        "sql-helper",
        "data",
        ((15, "validating_files"), (60, "queued"), (270, "running"), (390, "succeeded")),
    ),
    DemoJob(
        "summarizer",
        "research",
        ((45, "validating_files"), (90, "queued"), (150, "running"), (255, "failed")),
    ),
    DemoJob(
        "classifier",
        "platform",
        ((105, "validating_files"), (135, "queued"), (210, "cancelled")),
    ),
    DemoJob(
        "translator",
        "localization",
        ((165, "validating_files"), (195, "queued"), (240, "running"), (420, "succeeded")),
    ),
)

#: The demo source's progress settings, in simulated seconds (scale them to the watcher's
#: clock): running jobs' events are read every poll, a progress event is sent per quarter of a
#: run, and a job queued 2 minutes is stalled: only ``sql-helper`` waits that long.
DEMO_PROGRESS: Final = DemoProgress(
    progress_interval=10.0, progress_every="25%", stall_queued=120.0
)

#: Seconds after the demo starts at which its last job finishes.
DEMO_DURATION: Final = max(job.transitions[-1][0] for job in DEMO_JOBS)


class Transition(NamedTuple):
    """A job entering a status, ``at`` seconds after the demo started."""

    at: float
    job_id: str
    status: str


def _script(job: DemoJob) -> list[Step]:
    created = job.transitions[0][0]
    error: Mapping[str, str] | None
    steps = []
    for at, status in job.transitions:
        error = _FAILURE if status == "failed" else None
        steps.append(Step(at - created, status, error))
    return steps


def demo_scenario(sim: Simulator, *, start: float | None = None) -> list[str]:
    """Add the demo's five jobs to ``sim``, starting at ``start`` (default: now); return ids.

    The ids come back in the order of :data:`DEMO_JOBS`. Jobs appear (are created) at their
    first transition's time; every one has finished :data:`DEMO_DURATION` seconds after start.
    """
    begin = sim.clock.now() if start is None else start
    return [
        sim.create_job(
            suffix=job.suffix,
            metadata={"team": job.team, "scenario": "demo"},
            created_at=begin + job.transitions[0][0],
            script=_script(job),
        )
        for job in DEMO_JOBS
    ]


def demo_timeline(job_ids: Sequence[str]) -> list[Transition]:
    """Every transition of the demo in time order, for the ids :func:`demo_scenario` returned."""
    if len(job_ids) != len(DEMO_JOBS):
        raise ValueError(f"the demo has {len(DEMO_JOBS)} jobs, not {len(job_ids)}")
    timeline = [
        Transition(at, job_id, status)
        for job_id, job in zip(job_ids, DEMO_JOBS, strict=True)
        for at, status in job.transitions
    ]
    return sorted(timeline)


def demo_transitions(job_ids: Sequence[str]) -> list[tuple[str, str]]:
    """The demo's ``(job_id, status)`` transitions in the order they happen, creation included."""
    return [(t.job_id, t.status) for t in demo_timeline(job_ids)]
