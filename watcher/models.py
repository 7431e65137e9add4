"""The fine-tuning job as the API returns it, read tolerantly.

Real responses and OpenAI's own published examples carry ``error: {}``, an error whose members
are all null, ``hyperparameters: null``, no ``seed``, and statuses outside the six documented
ones (``paused``, Azure's ``pending``). None of these may crash a cycle or drop a job: only
``id`` and ``status`` are required. Unknown fields are kept (``extra="allow"``) and travel in
every event's snapshot; an optional field of the wrong type is read as missing rather than
losing the whole job.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

__all__ = [
    "KNOWN_STATUSES",
    "TERMINAL_STATUSES",
    "Checkpoint",
    "FineTuningJob",
    "Hyperparameters",
    "JobError",
    "JobEventRecord",
    "JobMethod",
    "is_terminal",
]

#: The statuses OpenAI documents. Others (``paused``, ``pending``) are kept as plain strings.
KNOWN_STATUSES: Final = frozenset(
    {"validating_files", "queued", "running", "succeeded", "failed", "cancelled"}
)
#: A job in one of these never changes again, so it is never polled again.
TERMINAL_STATUSES: Final = frozenset({"succeeded", "failed", "cancelled"})

T = TypeVar("T")


def _lenient(value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
    # A provider that sends a wrong type in one optional field must not cost us the whole job.
    try:
        return handler(value)
    except ValidationError:
        return None


#: An optional field that reads as None when the API sends something of the wrong type.
Lenient = Annotated[T | None, WrapValidator(_lenient)]

#: A hyperparameter: a number, or the string "auto".
HyperValue = int | float | Literal["auto"] | str


def is_terminal(status: str) -> bool:
    """Tell whether a job in ``status`` can never change again."""
    return status in TERMINAL_STATUSES


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class JobError(_Tolerant):
    """Why a job failed. Every member may be null: the API sends ``{}`` when nothing failed."""

    code: Lenient[str] = None
    message: Lenient[str] = None
    param: Lenient[str] = None

    @property
    def is_empty(self) -> bool:
        """True when the API sent an error object that says nothing (``{}`` or all nulls)."""
        return self.code is None and self.message is None and self.param is None


class Hyperparameters(_Tolerant):
    """The hyperparameters of a supervised job; each is a number or ``"auto"``."""

    batch_size: Lenient[HyperValue] = None
    learning_rate_multiplier: Lenient[HyperValue] = None
    n_epochs: Lenient[HyperValue] = None


class JobMethod(_Tolerant):
    """How the job trains (``supervised``, ``dpo``, ``reinforcement``) and its settings."""

    type: Lenient[str] = None
    supervised: Lenient[dict[str, Any]] = None
    dpo: Lenient[dict[str, Any]] = None
    reinforcement: Lenient[dict[str, Any]] = None


class FineTuningJob(_Tolerant):
    """A ``fine_tuning.job``. Only ``id`` and ``status`` are required; unknown fields are kept."""

    id: str = Field(min_length=1)
    status: str = Field(min_length=1)
    object: Lenient[str] = "fine_tuning.job"
    created_at: Lenient[int] = None
    error: Lenient[JobError] = None
    fine_tuned_model: Lenient[str] = None
    finished_at: Lenient[int] = None
    hyperparameters: Lenient[Hyperparameters] = None
    model: Lenient[str] = None
    organization_id: Lenient[str] = None
    result_files: Lenient[list[str]] = None
    seed: Lenient[int] = None
    trained_tokens: Lenient[int] = None
    training_file: Lenient[str] = None
    validation_file: Lenient[str] = None
    integrations: Lenient[list[dict[str, Any]]] = None
    metadata: Lenient[dict[str, str]] = None
    method: Lenient[JobMethod] = None
    user_provided_suffix: Lenient[str] = None
    estimated_finish: Lenient[int] = None

    @property
    def is_terminal(self) -> bool:
        """True once the job has succeeded, failed or been cancelled."""
        return is_terminal(self.status)

    @property
    def failure(self) -> JobError | None:
        """The job's error when it says something, else None (``error: {}`` reads as None)."""
        if self.error is None or self.error.is_empty:
            return None
        return self.error

    def to_api(self) -> dict[str, Any]:
        """The job as JSON-ready data, in the API's own shape, unknown fields included."""
        return self.model_dump(mode="json", by_alias=True)


class JobEventRecord(_Tolerant):
    """A ``fine_tuning.job.event`` as the API lists it. Only ``id`` is required.

    Named a record so it is not mistaken for ftwatch's own events (``watcher.events``): this is
    a line of the job's log on the API side (``level``, ``message``, ``type`` ``message`` or
    ``metrics``, and ``data``).
    """

    id: str = Field(min_length=1)
    object: Lenient[str] = "fine_tuning.job.event"
    created_at: Lenient[int] = None
    level: Lenient[str] = None
    message: Lenient[str] = None
    type: Lenient[str] = None
    data: Lenient[dict[str, Any]] = None


class Checkpoint(_Tolerant):
    """A ``fine_tuning.job.checkpoint``: a usable model saved at a step. Only ``id`` is required.

    ``metrics`` stays a plain dict (``step``, ``train_loss``, ``valid_loss``, ...) so that a
    provider's extra or non-numeric metric never costs the others.
    """

    id: str = Field(min_length=1)
    object: Lenient[str] = "fine_tuning.job.checkpoint"
    created_at: Lenient[int] = None
    fine_tuned_model_checkpoint: Lenient[str] = None
    step_number: Lenient[int] = None
    metrics: Lenient[dict[str, Any]] = None
    fine_tuning_job_id: Lenient[str] = None
