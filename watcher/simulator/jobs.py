"""A simulated fine-tuning job: its timeline, and how it reads at any moment.

A job is a list of :class:`Step` s on absolute time (unix seconds): from ``step.at`` on, the job
has ``step.status``. Nothing runs in the background: the job's JSON, its events and its
checkpoints are computed from the steps and the time asked about, so a test moves a job just by
advancing its clock. Cancelling, pausing, resuming and forcing a status rewrite the steps that lie
in the future; the past never changes, so every event once listed keeps its id and its time.
"""

from __future__ import annotations

import hashlib
import math
import random
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .scripts import DEFAULT_ERROR, TERMINAL_STATUSES, Step

__all__ = [
    "ALPHANUMERIC",
    "DEFAULT_MODEL",
    "InvalidJobState",
    "JobNotFound",
    "METRICS_EVENTS",
    "Profile",
    "SimJob",
    "random_token",
    "resolve_model",
    "stable_token",
]

#: The characters of OpenAI's object ids.
ALPHANUMERIC: Final = string.ascii_letters + string.digits
#: The base model a job fine-tunes when none is named.
DEFAULT_MODEL: Final = "gpt-4o-mini-2024-07-18"
#: How many ``metrics`` events a full training run logs.
METRICS_EVENTS: Final = 10
# Float sums of interval lengths can miss an exact end by a rounding error.
_EPSILON: Final = 1e-6

# Requested model aliases resolve to a dated snapshot, as the real API does.
_MODEL_SNAPSHOTS: Final = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "gpt-3.5-turbo": "gpt-3.5-turbo-0125",
}


class JobNotFound(LookupError):
    """The simulator has no job with that id (or not yet: it is created in the future)."""


class InvalidJobState(ValueError):
    """The job's status does not allow the action (cancel a finished job, resume a running one)."""


def random_token(rng: random.Random, length: int = 24) -> str:
    """Draw ``length`` alphanumerics from ``rng`` (the tail of an OpenAI-style id)."""
    return "".join(rng.choices(ALPHANUMERIC, k=length))


def stable_token(*parts: object, length: int = 24) -> str:
    """Alphanumerics derived from ``parts``: the same parts always give the same token."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return "".join(ALPHANUMERIC[b % len(ALPHANUMERIC)] for b in digest[:length])


def resolve_model(model: str) -> str:
    """The dated snapshot a model alias names (``gpt-4o-mini`` -> ``gpt-4o-mini-2024-07-18``)."""
    return _MODEL_SNAPSHOTS.get(model, model)


@dataclass(frozen=True, slots=True)
class Profile:
    """The seeded particulars of a job's training: sizes, resolved hyperparameters, names."""

    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float
    total_steps: int
    trained_tokens: int
    model_tag: str
    result_file: str

    @classmethod
    def draw(cls, rng: random.Random, requested: Mapping[str, Any]) -> Profile:
        """Draw a profile, keeping any hyperparameter the request fixed to a number."""
        examples = rng.randint(50, 2000)
        n_epochs = _fixed(requested.get("n_epochs"), int) or rng.choice((2, 3, 3, 4))
        batch_size = _fixed(requested.get("batch_size"), int) or max(1, min(8, examples // 200))
        lr = _fixed(requested.get("learning_rate_multiplier"), float) or rng.choice((1.8, 2.0))
        total_steps = max(1, math.ceil(examples / batch_size) * n_epochs)
        tokens = examples * rng.randint(150, 900) * n_epochs
        return cls(
            n_epochs=n_epochs,
            batch_size=batch_size,
            learning_rate_multiplier=lr,
            total_steps=total_steps,
            trained_tokens=tokens,
            model_tag=random_token(rng, 8),
            result_file="file-" + random_token(rng),
        )


def _fixed(value: Any, kind: type[int] | type[float]) -> Any:
    # "auto", None and nonsense leave the choice to the simulator.
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return kind(value)


class SimJob:
    """One simulated job; every reading takes the time it is asked about."""

    __slots__ = (
        "created_at",
        "hyperparameters",
        "id",
        "integrations",
        "metadata",
        "method",
        "model",
        "notes",
        "org_slug",
        "organization_id",
        "paused_at",
        "paused_rest",
        "profile",
        "seed",
        "steps",
        "suffix",
        "train_seconds",
        "training_file",
        "validation_file",
        "wall",
    )

    def __init__(
        self,
        *,
        job_id: str,
        created_at: float,
        steps: Iterable[Step],
        train_seconds: float,
        profile: Profile,
        model: str,
        training_file: str,
        validation_file: str | None,
        suffix: str | None,
        seed: int,
        metadata: Mapping[str, str] | None,
        integrations: Sequence[Mapping[str, Any]] | None,
        hyperparameters: Mapping[str, Any],
        method: Mapping[str, Any],
        organization_id: str,
        org_slug: str,
        wall: Callable[[float], float] | None = None,
    ) -> None:
        """Build a job whose script ``steps`` count from ``created_at``.

        ``wall`` maps the simulated time to the wall-clock time its JSON shows (the identity
        when None): under an accelerated clock, timestamps would otherwise land in the future.
        """
        self.id = job_id
        self.created_at = created_at
        self.steps = [s._replace(at=created_at + s.at) for s in steps]
        self.train_seconds = max(train_seconds, _EPSILON)
        self.profile = profile
        self.model = model
        self.training_file = training_file
        self.validation_file = validation_file
        self.suffix = suffix
        self.seed = seed
        self.metadata = dict(metadata) if metadata is not None else None
        self.integrations = [dict(i) for i in integrations] if integrations is not None else []
        self.hyperparameters = dict(hyperparameters)
        self.method = dict(method)
        self.organization_id = organization_id
        self.org_slug = org_slug
        self.paused_at: float | None = None
        self.paused_rest: list[Step] = []
        self.wall = wall
        #: Entries posted by hand (Simulator.post_event): (at, level, message, type, data).
        self.notes: list[tuple[float, str, str, str, dict[str, Any]]] = []

    def stamp(self, at: float) -> int:
        """The API's timestamp (whole unix seconds, on the wall clock) for simulated time ``at``."""
        return int(self.wall(at) if self.wall is not None else at)

    # -- reading -----------------------------------------------------------------------------

    @property
    def order_key(self) -> tuple[float, str]:
        """Where the job sorts in a list: by creation time, then id."""
        return (self.created_at, self.id)

    def current(self, now: float) -> tuple[int, Step]:
        """The index and the step in force at ``now``."""
        index = 0
        for i, step in enumerate(self.steps):
            if step.at > now:
                break
            index = i
        return index, self.steps[index]

    def status(self, now: float) -> str:
        """The job's status at ``now``."""
        return self.current(now)[1].status

    @property
    def fine_tuned_model(self) -> str:
        """The name the model gets when the job succeeds."""
        return f"ft:{self.model}:{self.org_slug}:{self.suffix or ''}:{self.profile.model_tag}"

    def _runs(self) -> list[tuple[float, float]]:
        """The intervals during which the job was (or will be) ``running``."""
        runs = []
        for index, step in enumerate(self.steps):
            if step.status == "running":
                end = self.steps[index + 1].at if index + 1 < len(self.steps) else math.inf
                if end > step.at:
                    runs.append((step.at, end))
        return runs

    def _run_elapsed(self, now: float) -> float:
        return sum(min(end, now) - start for start, end in self._runs() if start < now)

    def _time_at_run(self, seconds: float) -> float | None:
        """When the job will have been running for ``seconds`` in all, or None if never."""
        done = 0.0
        for start, end in self._runs():
            if done + (end - start) >= seconds - _EPSILON:
                return start + max(0.0, seconds - done)
            done += end - start
        return None

    def _hyperparameters(self, started: bool) -> dict[str, Any]:
        # "auto" is resolved to the values actually used once training starts, as OpenAI does.
        if not started:
            return dict(self.hyperparameters)
        resolved = {
            "batch_size": self.profile.batch_size,
            "learning_rate_multiplier": self.profile.learning_rate_multiplier,
            "n_epochs": self.profile.n_epochs,
        }
        return {**self.hyperparameters, **resolved}

    def render(self, now: float) -> dict[str, Any]:
        """The job as ``GET /fine_tuning/jobs/{id}`` returns it at ``now``."""
        _, step = self.current(now)
        status = step.status
        started = any(s.status == "running" and s.at <= now for s in self.steps)
        hyperparameters = self._hyperparameters(started)
        method_type = str(self.method.get("type") or "supervised")
        method_body = dict(self.method.get(method_type) or {})
        method_body["hyperparameters"] = {
            **(method_body.get("hyperparameters") or {}),
            **hyperparameters,
        }
        error: dict[str, Any] | None = None
        if status == "failed":
            error = dict(step.error if step.error is not None else DEFAULT_ERROR)
        estimated_finish = None
        if status == "running":
            remaining = max(0.0, self.train_seconds - self._run_elapsed(now))
            finish = now + remaining
            estimated_finish = math.ceil(self.wall(finish) if self.wall is not None else finish)
        succeeded = status == "succeeded"
        job: dict[str, Any] = {
            "object": "fine_tuning.job",
            "id": self.id,
            "created_at": self.stamp(self.created_at),
            "error": error,
            "fine_tuned_model": self.fine_tuned_model if succeeded else None,
            "finished_at": self.stamp(step.at) if status in TERMINAL_STATUSES else None,
            "hyperparameters": hyperparameters,
            "model": self.model,
            "organization_id": self.organization_id,
            "result_files": [self.profile.result_file] if succeeded else [],
            "seed": self.seed,
            "status": status,
            "trained_tokens": self.profile.trained_tokens if succeeded else None,
            "training_file": self.training_file,
            "validation_file": self.validation_file,
            "integrations": [dict(i) for i in self.integrations],
            "metadata": dict(self.metadata) if self.metadata is not None else None,
            "method": {"type": method_type, method_type: method_body},
            "user_provided_suffix": self.suffix,
            "estimated_finish": estimated_finish,
        }
        if step.fields:
            job.update(step.fields)
        return job

    def events(self, now: float) -> list[dict[str, Any]]:
        """The job's events up to ``now``, newest first, as the events endpoint lists them."""
        timed: list[tuple[float, int, int, dict[str, Any]]] = []
        for index, step in enumerate(self.steps):
            if step.at > now:
                break
            previous = self.steps[index - 1].status if index else None
            for n, (level, message) in enumerate(self._status_messages(index, step, previous)):
                event = self._event(f"s{index}.{n}", step.at, level, message)
                timed.append((step.at, 2, index * 10 + n, event))
        profile = self.profile
        for k in range(1, METRICS_EVENTS + 1):
            at = self._time_at_run(self.train_seconds * k / METRICS_EVENTS)
            if at is None or at > now:
                break
            step_number = max(1, round(profile.total_steps * k / METRICS_EVENTS))
            loss, accuracy = self._metrics(step_number)
            data = {
                "step": step_number,
                "total_steps": profile.total_steps,
                "train_loss": loss,
                "train_mean_token_accuracy": accuracy,
            }
            message = f"Step {step_number}/{profile.total_steps}: training loss={loss:.4f}"
            timed.append((at, 0, k, self._event(f"m{k}", at, "info", message, "metrics", data)))
        for checkpoint in self.checkpoints(now):
            at = float(checkpoint["_at"])
            message = f"Checkpoint created at step {checkpoint['step_number']}"
            event = self._event(f"c{checkpoint['step_number']}", at, "info", message)
            timed.append((at, 1, checkpoint["step_number"], event))
        for n, (at, level, message, kind, data) in enumerate(self.notes):
            if at <= now:
                timed.append((at, 3, n, self._event(f"n{n}", at, level, message, kind, data)))
        timed.sort(key=lambda item: item[:3], reverse=True)
        return [event for *_, event in timed]

    def checkpoints(self, now: float) -> list[dict[str, Any]]:
        """The checkpoints saved up to ``now`` (one per finished epoch), newest first.

        Each carries a private ``_at`` (its exact time) that :meth:`public_checkpoints` drops.
        """
        found: list[dict[str, Any]] = []
        epochs = self.profile.n_epochs
        for epoch in range(1, epochs + 1):
            at = self._time_at_run(self.train_seconds * epoch / epochs)
            if at is None or at > now:
                break
            step_number = max(1, round(self.profile.total_steps * epoch / epochs))
            loss, accuracy = self._metrics(step_number)
            metrics: dict[str, float] = {
                "step": step_number,
                "train_loss": loss,
                "train_mean_token_accuracy": accuracy,
            }
            if self.validation_file is not None:
                metrics["valid_loss"] = round(loss * 1.08, 4)
                metrics["valid_mean_token_accuracy"] = round(accuracy * 0.97, 4)
                metrics["full_valid_loss"] = round(loss * 1.05, 4)
                metrics["full_valid_mean_token_accuracy"] = round(accuracy * 0.98, 4)
            found.append(
                {
                    "object": "fine_tuning.job.checkpoint",
                    "id": "ftckpt_" + stable_token(self.id, "checkpoint", step_number),
                    "created_at": self.stamp(at),
                    "fine_tuned_model_checkpoint": (
                        f"{self.fine_tuned_model}:ckpt-step-{step_number}"
                    ),
                    "fine_tuning_job_id": self.id,
                    "metrics": metrics,
                    "step_number": step_number,
                    "_at": at,
                }
            )
        found.reverse()
        return found

    def public_checkpoints(self, now: float) -> list[dict[str, Any]]:
        """:meth:`checkpoints` in the API's shape."""
        return [
            {k: v for k, v in c.items() if not k.startswith("_")} for c in self.checkpoints(now)
        ]

    def _metrics(self, step_number: int) -> tuple[float, float]:
        """Training loss and token accuracy at a step: improving, with seeded noise."""
        progress = step_number / self.profile.total_steps
        noise = random.Random(f"{self.id}:{step_number}").uniform(-0.04, 0.04)
        loss = 2.4 * math.exp(-3.0 * progress) + 0.12 + noise
        accuracy = 0.52 + 0.42 * (1.0 - math.exp(-3.0 * progress)) - noise / 2
        return round(max(0.01, loss), 4), round(min(0.999, accuracy), 4)

    def _status_messages(
        self, index: int, step: Step, previous: str | None
    ) -> list[tuple[str, str]]:
        """The (level, message) lines OpenAI logs when the job enters ``step``."""
        lines: list[tuple[str, str]] = []
        if index == 0:
            lines.append(("info", f"Created fine-tuning job: {self.id}"))
        status = step.status
        if status == "validating_files":
            files = f"Validating training file: {self.training_file}"
            if self.validation_file:
                files += f" and validation file: {self.validation_file}"
            lines.append(("info", files))
        elif status == "queued":
            lines.append(("info", "Files validated, moving job to queued state"))
        elif status == "running":
            resumed = previous == "paused"
            lines.append(
                ("info", "Fine-tuning job resumed" if resumed else "Fine-tuning job started")
            )
        elif status == "succeeded":
            lines.append(("info", f"New fine-tuned model created: {self.fine_tuned_model}"))
            lines.append(("info", "The job has successfully completed"))
        elif status == "failed":
            error = step.error if step.error is not None else DEFAULT_ERROR
            lines.append(("error", str(error.get("message") or "The job failed")))
        elif status == "cancelled":
            lines.append(("info", "The job has been cancelled"))
        elif status == "paused":
            lines.append(("info", "Fine-tuning job paused"))
        else:
            lines.append(("info", f"Job status changed to {status}"))
        return lines

    def _event(
        self,
        key: str,
        at: float,
        level: str,
        message: str,
        kind: str = "message",
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {
            "object": "fine_tuning.job.event",
            "id": "ftevent-" + stable_token(self.id, "event", key),
            "created_at": self.stamp(at),
            "level": level,
            "message": message,
            "data": data if data is not None else {},
            "type": kind,
        }

    # -- changing ----------------------------------------------------------------------------

    def _rewrite_future(self, now: float, *steps: Step) -> None:
        # Only steps after ``now`` may change: the past has been seen and must stay as it was.
        self.steps = [s for s in self.steps if s.at <= now] + list(steps)

    def cancel(self, now: float) -> None:
        """Cancel the job at ``now``; a finished job cannot be cancelled."""
        status = self.status(now)
        if status in TERMINAL_STATUSES:
            raise InvalidJobState(f"Job {self.id} has already {status} and cannot be cancelled.")
        self._rewrite_future(now, Step(now, "cancelled"))
        self.paused_at, self.paused_rest = None, []

    def pause(self, now: float) -> None:
        """Pause a running job at ``now``, keeping the rest of its timeline for :meth:`resume`."""
        status = self.status(now)
        if status != "running":
            raise InvalidJobState(f"Job {self.id} is {status}; only a running job can be paused.")
        self.paused_rest = [s for s in self.steps if s.at > now]
        self.paused_at = now
        self._rewrite_future(now, Step(now, "paused"))

    def resume(self, now: float) -> None:
        """Resume a paused job at ``now``; the rest of its timeline moves by the time paused."""
        status = self.status(now)
        if status != "paused":
            raise InvalidJobState(f"Job {self.id} is {status}; only a paused job can be resumed.")
        shift = now - self.paused_at if self.paused_at is not None else 0.0
        rest = [s._replace(at=s.at + shift) for s in self.paused_rest]
        self._rewrite_future(now, Step(now, "running"), *rest)
        self.paused_at, self.paused_rest = None, []

    def force(self, now: float, status: str, fields: Mapping[str, Any]) -> None:
        """Put the job in ``status`` from ``now`` on, for good, with ``fields`` in its JSON."""
        error = fields.get("error")
        step_error = error if isinstance(error, Mapping) else None
        self._rewrite_future(now, Step(now, status, step_error, dict(fields) or None))
        self.paused_at, self.paused_rest = None, []
