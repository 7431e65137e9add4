"""Scripts: the timelines simulated jobs follow, given by a test or drawn from a seed.

A script is a list of :class:`Step` s counted in seconds from the job's creation. A test writes
one to make a job do exactly what it needs; :func:`random_script` draws the usual progression
``validating_files -> queued -> running -> succeeded`` (or a failure part-way), and
:func:`bulk_script` holds a job made in bulk in one status.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any, Final, NamedTuple

__all__ = [
    "DEFAULT_ERROR",
    "DEFAULT_TRAIN_SECONDS",
    "RUN_FAILURES",
    "Step",
    "StepLike",
    "TERMINAL_STATUSES",
    "bulk_script",
    "coerce_script",
    "planned_train_seconds",
    "random_script",
]

#: Statuses a job never leaves by itself.
TERMINAL_STATUSES: Final = frozenset({"succeeded", "failed", "cancelled"})
#: How long training runs when a script does not say (a running step with no end, say).
DEFAULT_TRAIN_SECONDS: Final = 600.0

#: What a failed job reports when its script gives no error.
DEFAULT_ERROR: Final[Mapping[str, str | None]] = {
    "code": "server_error",
    "message": "The job failed due to an internal error. Please try again.",
    "param": None,
}

#: Failures a random progression picks from, with the messages OpenAI uses for them.
RUN_FAILURES: Final[tuple[Mapping[str, str | None], ...]] = (
    {
        "code": "invalid_training_file",
        "message": (
            "The job failed due to an invalid training file. Expected file to have JSONL "
            "format, where every line is a valid JSON dictionary. Line 129 is not a dictionary."
        ),
        "param": "training_file",
    },
    {
        "code": "exceeded_max_tokens",
        "message": (
            "The job failed because example 57 of the training file exceeds the maximum "
            "context length of 65536 tokens."
        ),
        "param": "training_file",
    },
    DEFAULT_ERROR,
)

_ACTIVE_SCRIPTS: Final[Mapping[str, tuple[tuple[float, str], ...]]] = {
    "validating_files": ((0, "validating_files"),),
    "queued": ((0, "validating_files"), (30, "queued")),
    "running": ((0, "validating_files"), (30, "queued"), (60, "running")),
}


class Step(NamedTuple):
    """One point of a job's script: from ``at`` seconds on, the job has ``status``.

    ``error`` is the job's ``error`` object while in this step (a failed step without one gets a
    generic server error); ``fields`` override any other field of the job's JSON in this step.
    In a script ``at`` counts from the job's creation; inside a job it is unix time.
    """

    at: float
    status: str
    error: Mapping[str, Any] | None = None
    fields: Mapping[str, Any] | None = None


#: A step, or a plain tuple ``(at, status[, error[, fields]])``.
StepLike = Step | tuple[Any, ...]


def coerce_script(script: Sequence[StepLike]) -> list[Step]:
    """Turn ``script`` into steps, checking that it is non-empty and in time order."""
    steps = [s if isinstance(s, Step) else Step(*s) for s in script]
    if not steps:
        raise ValueError("a script needs at least one step")
    previous = -math.inf
    for step in steps:
        if not isinstance(step.status, str) or not step.status:
            raise ValueError("every step needs a non-empty status string")
        if not math.isfinite(float(step.at)) or step.at < previous:
            raise ValueError("script steps must be in time order")
        previous = step.at
    return steps


def random_script(rng: random.Random, failure_rate: float) -> tuple[list[Step], float]:
    """A seeded progression and its planned training time, in simulated minutes.

    ``validating_files`` for under two minutes, ``queued`` for up to four, ``running`` for three
    to twenty, then ``succeeded``; with probability ``failure_rate`` it fails part-way through.
    """
    validating = round(rng.uniform(20.0, 90.0), 1)
    queued = round(rng.uniform(30.0, 240.0), 1)
    train = round(rng.uniform(180.0, 1200.0), 1)
    started = validating + queued
    steps = [Step(0.0, "validating_files"), Step(validating, "queued"), Step(started, "running")]
    if rng.random() < failure_rate:
        fraction = rng.uniform(0.2, 0.8)
        error = rng.choice(RUN_FAILURES)
        steps.append(Step(round(started + train * fraction, 1), "failed", error))
    else:
        steps.append(Step(started + train, "succeeded"))
    return steps, train


def planned_train_seconds(steps: Sequence[Step]) -> float:
    """How long training would take, read from a script.

    A run that ends in ``succeeded`` took exactly the planned time; one that ends otherwise was
    cut short (it read half its steps); a run with no end takes :data:`DEFAULT_TRAIN_SECONDS`.
    """
    ran = 0.0
    for index, step in enumerate(steps):
        if step.status != "running":
            continue
        if index + 1 == len(steps):
            return ran + DEFAULT_TRAIN_SECONDS
        ran += steps[index + 1].at - step.at
        if steps[index + 1].status == "succeeded" and ran > 0:
            return ran
    return ran * 2 if ran > 0 else DEFAULT_TRAIN_SECONDS


def bulk_script(status: str, duration: float) -> list[Step]:
    """A script that reaches ``status`` and stays there (a finished one after ``duration``).

    Active statuses (``validating_files``, ``queued``, ``running``) are reached within a minute;
    any other non-terminal status (``paused``, ``pending``) holds from creation.
    """
    if status in _ACTIVE_SCRIPTS:
        return [Step(at, name) for at, name in _ACTIVE_SCRIPTS[status]]
    if status not in TERMINAL_STATUSES:
        return [Step(0, status)]
    begin = [Step(0, "validating_files"), Step(duration * 0.05, "queued")]
    if status == "cancelled":
        return [*begin, Step(duration * 0.5, "cancelled")]
    error = RUN_FAILURES[0] if status == "failed" else None
    return [*begin, Step(duration * 0.15, "running"), Step(duration, status, error)]
