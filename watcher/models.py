"""The fine-tuning job as the API returns it, read tolerantly.

Real responses and OpenAI's own published examples carry ``error: {}``, an error whose members
are all null, ``hyperparameters: null``, no ``seed``, and statuses outside the six documented
ones (``paused``, Azure's ``pending``). None of these may crash a cycle or drop a job: only
``id`` and ``status`` are required. Unknown fields are kept (``extra="allow"``) and travel in
every event's snapshot; an optional field of the wrong type is read as missing rather than
losing the whole job.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    model_validator,
)
from pydantic_core import SchemaValidator

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
    "validate_job",
]

#: The statuses OpenAI documents. Others (``paused``, ``pending``) are kept as plain strings.
KNOWN_STATUSES: Final = frozenset(
    {"validating_files", "queued", "running", "succeeded", "failed", "cancelled"}
)
#: A job in one of these never changes again, so it is never polled again.
TERMINAL_STATUSES: Final = frozenset({"succeeded", "failed", "cancelled"})

#: A hyperparameter: a number, or the string "auto".
HyperValue = int | float | Literal["auto"] | str


def is_terminal(status: str) -> bool:
    """Tell whether a job in ``status`` can never change again."""
    return status in TERMINAL_STATUSES


class _Tolerant(BaseModel):
    """A model whose optional fields read as None when the API sends the wrong type for them.

    A provider that sends a wrong type in one optional field must not cost us the whole job.
    The check is made once per model rather than once per field: a well-formed job (the usual
    case, thousands per cycle) is validated without a single call back into Python, and only a
    job with a wrong field is validated a second time, with those fields set to None.
    """

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    _optional: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._optional = frozenset(
            name for name, field in cls.model_fields.items() if not field.is_required()
        )

    @model_validator(mode="wrap")
    @classmethod
    def _wrong_optionals_read_as_none(
        cls, data: Any, handler: ModelWrapValidatorHandler[Self]
    ) -> Self:
        try:
            return handler(data)
        except ValidationError as exc:
            if not isinstance(data, dict):
                raise
            failed = {error["loc"][0] for error in exc.errors() if error["loc"]}
            # A required field (``id``, ``status``) that is wrong still fails the model.
            if not failed or not failed <= cls._optional:
                raise
            return handler({key: None if key in failed else value for key, value in data.items()})


class JobError(_Tolerant):
    """Why a job failed. Every member may be null: the API sends ``{}`` when nothing failed."""

    code: str | None = None
    message: str | None = None
    param: str | None = None

    @property
    def is_empty(self) -> bool:
        """True when the API sent an error object that says nothing (``{}`` or all nulls)."""
        return self.code is None and self.message is None and self.param is None


class Hyperparameters(_Tolerant):
    """The hyperparameters of a supervised job; each is a number or ``"auto"``."""

    batch_size: HyperValue | None = None
    learning_rate_multiplier: HyperValue | None = None
    n_epochs: HyperValue | None = None


class JobMethod(_Tolerant):
    """How the job trains (``supervised``, ``dpo``, ``reinforcement``) and its settings."""

    type: str | None = None
    supervised: dict[str, Any] | None = None
    dpo: dict[str, Any] | None = None
    reinforcement: dict[str, Any] | None = None


class FineTuningJob(_Tolerant):
    """A ``fine_tuning.job``. Only ``id`` and ``status`` are required; unknown fields are kept."""

    id: str = Field(min_length=1)
    status: str = Field(min_length=1)
    object: str | None = "fine_tuning.job"
    created_at: int | None = None
    error: JobError | None = None
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    hyperparameters: Hyperparameters | None = None
    model: str | None = None
    organization_id: str | None = None
    result_files: list[str] | None = None
    seed: int | None = None
    trained_tokens: int | None = None
    training_file: str | None = None
    validation_file: str | None = None
    integrations: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None
    method: JobMethod | None = None
    user_provided_suffix: str | None = None
    estimated_finish: int | None = None

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
    object: str | None = "fine_tuning.job.event"
    created_at: int | None = None
    level: str | None = None
    message: str | None = None
    type: str | None = None
    data: dict[str, Any] | None = None


class Checkpoint(_Tolerant):
    """A ``fine_tuning.job.checkpoint``: a usable model saved at a step. Only ``id`` is required.

    ``metrics`` stays a plain dict (``step``, ``train_loss``, ``valid_loss``, ...) so that a
    provider's extra or non-numeric metric never costs the others.
    """

    id: str = Field(min_length=1)
    object: str | None = "fine_tuning.job.checkpoint"
    created_at: int | None = None
    fine_tuned_model_checkpoint: str | None = None
    step_number: int | None = None
    metrics: dict[str, Any] | None = None
    fine_tuning_job_id: str | None = None


def _untolerant(schema: Any) -> Any:
    """``schema`` without the tolerant wrap validators: each one's inner schema instead."""
    if isinstance(schema, dict):
        if schema.get("type") == "function-wrap":
            wrapped = getattr(schema["function"]["function"], "__func__", None)
            if wrapped is _Tolerant._wrong_optionals_read_as_none.__func__:
                return _untolerant(schema["schema"])
        return {key: _untolerant(value) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_untolerant(value) for value in schema]
    return schema


# A well-formed job validated without calling back into Python: the tolerant wrap validators
# cost a call per nested model and were most of a job's validation. A job this rejects takes
# the tolerant path, which tries the same validation first, so every job reads as before.
# (Each model's schema carries its own config, so none is passed.)
_STRICT_JOB = SchemaValidator(_untolerant(FineTuningJob.__pydantic_core_schema__))


def validate_job(raw: Any) -> FineTuningJob:
    """``FineTuningJob.model_validate(raw)``, with no call into Python for a good job."""
    try:
        job: FineTuningJob = _STRICT_JOB.validate_python(raw)
    except ValidationError:
        return FineTuningJob.model_validate(raw)
    return job
