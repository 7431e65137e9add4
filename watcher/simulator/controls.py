"""The controls of the simulator: creating jobs, reading them, and changing them as a test needs.

:class:`JobControls` holds the simulated jobs in a list sorted by ``(created_at, id)`` and is the
part of :class:`~watcher.simulator.Simulator` a test calls directly; the simulator adds the ASGI
app, the faults and the request counts on top.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ..clock import Clock, ScaledClock, SystemClock
from .jobs import (
    DEFAULT_MODEL,
    JobNotFound,
    Profile,
    SimJob,
    random_token,
    resolve_model,
)
from .scripts import (
    TERMINAL_STATUSES,
    StepLike,
    bulk_script,
    coerce_script,
    planned_train_seconds,
    random_script,
)

__all__ = ["JobControls"]

_AUTO_HYPERPARAMETERS: Final = {
    "batch_size": "auto",
    "learning_rate_multiplier": "auto",
    "n_epochs": "auto",
}
# An active job made in bulk trains for a day, so it looks busy for the whole of a benchmark.
_BULK_ACTIVE_TRAIN_SECONDS: Final = 86_400.0


class JobControls:
    """Simulated jobs on ``clock``: create them, read them as the API would, and change them."""

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        seed: int = 0,
        organization_id: str = "org-ftwatchsimulator",
        failure_rate: float = 0.1,
    ) -> None:
        """Hold no jobs yet; ``seed`` fixes every id and every random progression."""
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.seed = seed
        self.organization_id = organization_id
        #: The probability that a job created with no script (or over HTTP) fails.
        self.failure_rate = failure_rate
        self._rng = random.Random(seed)
        self._jobs: dict[str, SimJob] = {}
        # Ascending (created_at, id): the newest-first listing reads it backwards.
        self._order: list[tuple[float, str]] = []
        # An accelerated clock runs ahead of the wall clock: the API's timestamps must not.
        self._wall = clock.wall_time if isinstance(clock, ScaledClock) else None

    def __len__(self) -> int:
        """How many jobs the simulator holds, future ones included."""
        return len(self._jobs)

    # -- creating jobs -----------------------------------------------------------------------

    def create_job(
        self,
        *,
        model: str = DEFAULT_MODEL,
        suffix: str | None = None,
        metadata: Mapping[str, str] | None = None,
        created_at: float | None = None,
        script: Sequence[StepLike] | None = None,
        job_id: str | None = None,
        training_file: str | None = None,
        validation_file: str | None = None,
        seed: int | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        method: Mapping[str, Any] | None = None,
        integrations: Sequence[Mapping[str, Any]] | None = None,
        train_seconds: float | None = None,
    ) -> str:
        """Add a job and return its id.

        ``script`` is a list of :class:`~watcher.simulator.scripts.Step` (or ``(seconds after
        creation, status[, error[, fields]])`` tuples); without one the job follows a seeded
        random progression ``validating_files -> queued -> running -> succeeded`` (or
        ``failed``, with probability :attr:`failure_rate`). A job created in the future
        (``created_at`` after now) is invisible until then. ``train_seconds`` sets how long a
        full training run takes, which paces metrics, checkpoints and ``estimated_finish``.
        """
        job = self._new_job(
            model=model,
            suffix=suffix,
            metadata=metadata,
            created_at=created_at,
            script=script,
            job_id=job_id,
            training_file=training_file,
            validation_file=validation_file,
            seed=seed,
            hyperparameters=hyperparameters,
            method=method,
            integrations=integrations,
            train_seconds=train_seconds,
        )
        self._jobs[job.id] = job
        bisect.insort(self._order, job.order_key)
        return job.id

    def add_jobs(
        self,
        n: int,
        status: str = "succeeded",
        *,
        model: str = DEFAULT_MODEL,
        metadata: Mapping[str, str] | None = None,
        start: float | None = None,
        interval: float = 60.0,
        duration: float = 900.0,
    ) -> list[str]:
        """Add ``n`` jobs that are already in ``status`` (and stay there); return their ids.

        Job ``i`` is created at ``start + i * interval``; by default ``start`` is far enough in
        the past that every job has reached ``status`` by now. Finished jobs took ``duration``
        seconds; active ones (``validating_files``, ``queued``, ``running``) never move on; any
        other status (``paused``, ``pending``) holds from creation.
        """
        if n < 0:
            raise ValueError("n must not be negative")
        now = self.clock.now()
        first = start if start is not None else now - duration - interval * n
        script = bulk_script(status, duration)
        train = _BULK_ACTIVE_TRAIN_SECONDS if status not in TERMINAL_STATUSES else None
        jobs = [
            self._new_job(
                model=model,
                metadata=metadata,
                created_at=first + i * interval,
                script=script,
                train_seconds=train,
            )
            for i in range(n)
        ]
        for job in jobs:
            self._jobs[job.id] = job
        self._order.extend(job.order_key for job in jobs)
        self._order.sort()
        return [job.id for job in jobs]

    def _new_job(
        self,
        *,
        model: str,
        metadata: Mapping[str, str] | None,
        created_at: float | None,
        script: Sequence[StepLike] | None,
        suffix: str | None = None,
        job_id: str | None = None,
        training_file: str | None = None,
        validation_file: str | None = None,
        seed: int | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        method: Mapping[str, Any] | None = None,
        integrations: Sequence[Mapping[str, Any]] | None = None,
        train_seconds: float | None = None,
    ) -> SimJob:
        rng = self._rng
        if job_id is None:
            job_id = "ftjob-" + random_token(rng)
            while job_id in self._jobs:
                job_id = "ftjob-" + random_token(rng)
        elif job_id in self._jobs:
            raise ValueError(f"a job with id {job_id!r} already exists")
        if script is None:
            steps, planned = random_script(rng, self.failure_rate)
        else:
            steps = coerce_script(script)
            planned = planned_train_seconds(steps)
        method_type = str((method or {}).get("type") or "supervised")
        in_method = ((method or {}).get(method_type) or {}).get("hyperparameters") or {}
        requested = {**_AUTO_HYPERPARAMETERS, **(hyperparameters or {}), **in_method}
        return SimJob(
            job_id=job_id,
            created_at=self.clock.now() if created_at is None else created_at,
            steps=steps,
            train_seconds=planned if train_seconds is None else train_seconds,
            profile=Profile.draw(rng, requested),
            model=resolve_model(model),
            training_file=training_file or "file-" + random_token(rng),
            validation_file=validation_file,
            suffix=suffix,
            seed=rng.randrange(2**31) if seed is None else seed,
            metadata=metadata,
            integrations=integrations,
            hyperparameters=requested,
            method={**(method or {}), "type": method_type},
            organization_id=self.organization_id,
            org_slug="ftwatch-sim",
            wall=self._wall,
        )

    # -- reading and controlling jobs --------------------------------------------------------

    def _get(self, job_id: str) -> SimJob:
        job = self._jobs.get(job_id)
        if job is None or job.created_at > self.clock.now():
            raise JobNotFound(f"No fine-tuning job with id {job_id!r}.")
        return job

    def job(self, job_id: str) -> dict[str, Any]:
        """The job's JSON as the API would return it now; :class:`JobNotFound` if unknown."""
        return self._get(job_id).render(self.clock.now())

    def status(self, job_id: str) -> str:
        """The job's status now."""
        return self._get(job_id).status(self.clock.now())

    def events(self, job_id: str) -> list[dict[str, Any]]:
        """Every event of the job so far, newest first."""
        return self._get(job_id).events(self.clock.now())

    def checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        """Every checkpoint of the job so far, newest first."""
        return self._get(job_id).public_checkpoints(self.clock.now())

    def job_ids(self) -> list[str]:
        """The ids of the jobs visible now, newest first (as the list endpoint orders them)."""
        visible = self._visible_count()
        return [job_id for _, job_id in reversed(self._order[:visible])]

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a job now and return it; :class:`InvalidJobState` if it has finished."""
        job = self._get(job_id)
        job.cancel(self.clock.now())
        return job.render(self.clock.now())

    def pause(self, job_id: str) -> dict[str, Any]:
        """Pause a running job now and return it; :class:`InvalidJobState` otherwise."""
        job = self._get(job_id)
        job.pause(self.clock.now())
        return job.render(self.clock.now())

    def resume(self, job_id: str) -> dict[str, Any]:
        """Resume a paused job now (its timeline moves by the time paused) and return it."""
        job = self._get(job_id)
        job.resume(self.clock.now())
        return job.render(self.clock.now())

    def set_status(self, job_id: str, status: str, **fields: Any) -> dict[str, Any]:
        """Force ``status`` (any string, ``"pending"`` included) from now on and return the job.

        The job stays there until changed again; ``fields`` override fields of its JSON
        (``error=...``, ``fine_tuned_model=...``, or a field the API does not have).
        """
        job = self._get(job_id)
        job.force(self.clock.now(), status, fields)
        return job.render(self.clock.now())

    def post_event(
        self,
        job_id: str,
        message: str,
        *,
        level: str = "warn",
        kind: str = "message",
        data: Mapping[str, Any] | None = None,
        at: float | None = None,
    ) -> None:
        """Add an entry to the job's event stream: a warning, an error, or raw ``metrics``.

        It appears at ``at`` (simulated time; default now). ``data`` goes out as given, so a
        test can send what a real API might (strings for numbers, missing keys).
        """
        when = self.clock.now() if at is None else at
        self._get(job_id).notes.append((when, level, message, kind, dict(data or {})))

    def remove(self, job_id: str) -> None:
        """Forget a job, as if it had been deleted upstream."""
        job = self._jobs.pop(job_id, None)
        if job is None:
            raise JobNotFound(f"No fine-tuning job with id {job_id!r}.")
        index = bisect.bisect_left(self._order, job.order_key)
        del self._order[index]

    def _visible_count(self) -> int:
        # Ids are ASCII, so this sorts after every id created at ``now``.
        return bisect.bisect_right(self._order, (self.clock.now(), "\U0010ffff"))
