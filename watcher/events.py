"""The events ftwatch emits: one pydantic model per type, a discriminated union on ``type``.

Wire names follow OpenAI's own webhook names where they overlap, so a receiver written for
OpenAI's webhooks works unchanged. Every sink and subscriber sees the same JSON envelope::

    {"id": "evt_...", "object": "event", "created_at": 1719168000,
     "type": "fine_tuning.job.succeeded",
     "data": {"id": "ftjob-...", "source": "openai", "status": "succeeded",
              "previous_status": "running", "fine_tuned_model": "ft:...", "error": null,
              "job": {...the full snapshot...}}}

An event's ``id`` is derived from what changed (source, job, type, statuses and how often that
same change was seen before), never from when it was seen, so the same change seen again after
a restart or by a second replica has the same id and receivers can drop duplicates.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from .models import FineTuningJob, JobError

__all__ = [
    "EVENT_TYPES",
    "OPT_IN_EVENT_TYPES",
    "BaseEvent",
    "Event",
    "JobCancelled",
    "JobCheckpointCreated",
    "JobCreated",
    "JobEtaChanged",
    "JobFailed",
    "JobMessage",
    "JobProgress",
    "JobStalled",
    "JobStatusChanged",
    "JobSucceeded",
    "JobUnstalled",
    "event_id",
    "event_from_envelope",
    "event_type_name",
]


def event_id(*parts: str | int | None) -> str:
    """Derive a deterministic event id (``evt_`` + 32 hex digits) from what identifies a change."""
    # A list, not a generator, and strings taken as they are: a burst derives thousands.
    text = "\x1f".join([p if type(p) is str else "" if p is None else str(p) for p in parts])
    return "evt_" + _sha256(text.encode()).hexdigest()[:32]


_sha256 = hashlib.sha256


class BaseEvent(BaseModel):
    """What every event carries: its id, type, job, source, observation time and job snapshot."""

    model_config = ConfigDict(frozen=True)

    #: The wire name of the event type; each subclass fixes it.
    type: str
    #: Deterministic: the same change seen again has the same id.
    id: str
    #: The name of the configured source the job was seen on.
    source: str
    #: Unix seconds when ftwatch observed the change.
    observed_at: float
    #: The status the job had before this change, where one is known.
    previous_status: str | None = None
    #: The full job snapshot as the API returned it when the change was seen.
    job: FineTuningJob
    #: When ftwatch first saw the job enter each status (unix seconds), for durations.
    timeline: dict[str, float] = Field(default_factory=dict)
    #: A link to the job in its provider's dashboard, when the source has one.
    dashboard_url: str | None = None

    wire_type: ClassVar[str] = ""

    # The envelope text this event was read from (the journal's), which to_json() returns as
    # is: a retry sends the bytes journaled, and the delivery path skips a re-serialisation.
    # Kept in the instance's __dict__ by event_from_envelope, over this class default, rather
    # than as a pydantic private attribute, whose set-up every event the diff builds would pay
    # for (a fifth of a diff cycle in which every job changes).
    _wire: ClassVar[str | None] = None

    def __eq__(self, other: object) -> bool:
        # Equal fields make equal events, whether or not one of them remembers its wire text.
        if not isinstance(other, BaseEvent):
            return NotImplemented
        if type(self) is not type(other):
            return False
        mine, theirs = self.__dict__, other.__dict__
        return all(mine[name] == theirs[name] for name in type(self).model_fields)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; with ``update``, one whose envelope is rebuilt from its new fields."""
        copy = super().model_copy(update=update, deep=deep)
        if update:
            copy.__dict__.pop("_wire", None)
        return copy

    @property
    def job_id(self) -> str:
        """The id of the job this event is about."""
        return self.job.id

    @property
    def status(self) -> str:
        """The job's status when the change was seen."""
        return self.job.status

    def envelope(self) -> dict[str, Any]:
        """The event as OpenAI's webhook event shape plus our fields: what every sink sends."""
        failure = self.job.failure
        return self._shape(
            self.job.to_api(), None if failure is None else failure.model_dump(mode="json")
        )

    def details(self) -> dict[str, Any]:
        """The fields this type carries besides the envelope and the job (none for lifecycle)."""
        return {name: self.__dict__[name] for name in _own_fields(type(self))}

    def _shape(self, job: Any, error: Any) -> dict[str, Any]:
        """The envelope around ``job`` and ``error``, as JSON-ready data or as the models."""
        return {
            "id": self.id,
            "object": "event",
            "created_at": int(self.observed_at),
            "type": self.type,
            "data": {
                "id": self.job.id,
                "source": self.source,
                "status": self.job.status,
                "previous_status": self.previous_status,
                "fine_tuned_model": self.job.fine_tuned_model,
                "error": error,
                "observed_at": self.observed_at,
                "timeline": dict(self.timeline),
                "dashboard_url": self.dashboard_url,
                **self.details(),
                "job": job,
            },
        }

    def to_json(self, *, job_json: str | None = None) -> str:
        """The envelope as compact JSON text (the exact body a webhook sends).

        An event read back from its envelope text (as the delivery path reads the journal)
        returns that text unchanged. ``job_json``: the job's own JSON text (its
        ``model_dump_json(by_alias=True)``), when the caller has it already: the events of
        one job, and its snapshot, then share one serialisation of it.
        """
        if self._wire is not None:
            return self._wire
        if job_json is not None:
            # The job is the envelope's last member: serialise the rest around a null and put
            # the job's text in its place, the same bytes as serialising the whole.
            text = pydantic_core.to_json(self._shape(None, self.job.failure), by_alias=True)
            if text.endswith(_NULL_JOB_END):
                return text[: -len(_NULL_JOB_END)].decode() + '"job":' + job_json + "}}"
        # One pass in pydantic-core over the models themselves: the same JSON as json.dumps of
        # envelope() (numbers may be spelt differently, 1e-7 for 1e-07), at a third of the cost.
        # A non-finite float becomes null, as JSON has no NaN.
        return pydantic_core.to_json(
            self._shape(self.job, self.job.failure), by_alias=True
        ).decode()


_NULL_JOB_END = b'"job":null}}'
#: An event class :func:`lifecycle_event` builds.
LifecycleEvent = TypeVar("LifecycleEvent", bound=BaseEvent)
_new_object = object.__new__
_set_field = object.__setattr__


def lifecycle_event(
    cls: type[LifecycleEvent],
    fields: frozenset[str],
    *,
    event_id: str,
    source: str,
    observed_at: float,
    previous_status: str | None,
    job: FineTuningJob,
    timeline: Mapping[str, float],
    dashboard_url: str | None,
) -> LifecycleEvent:
    """A lifecycle event built from values already of their fields' types, without validation.

    For the diff, which builds thousands in a burst from a validated job and its own numbers:
    the result is the event ``cls(**those fields)`` would make (``fields``, the names given, are
    its fields set), at about a seventh of the cost. Its numbers are made floats, as validation
    makes them.
    """
    event = _new_object(cls)
    _set_field(
        event,
        "__dict__",
        {
            "type": _WIRE_NAMES[cls],
            "id": event_id,
            "source": source,
            "observed_at": float(observed_at),
            "previous_status": previous_status,
            "job": job,
            "timeline": {status: float(at) for status, at in timeline.items()},
            "dashboard_url": dashboard_url,
        },
    )
    _set_field(event, "__pydantic_fields_set__", _FIELDS_SETS.setdefault(fields, set(fields)))
    _set_field(event, "__pydantic_extra__", None)
    _set_field(event, "__pydantic_private__", None)
    return event


# One fields set for each combination given to lifecycle_event (a handful): never changed, as
# events are frozen.
_FIELDS_SETS: dict[frozenset[str], set[str]] = {}


class JobCreated(BaseEvent):
    """``fine_tuning.job.created``: a job not seen before appeared, after the first baseline.

    Carries the job as first seen. A job that is already finished when first seen also gets its
    terminal event.
    """

    type: Literal["fine_tuning.job.created"] = "fine_tuning.job.created"


class JobStatusChanged(BaseEvent):
    """``fine_tuning.job.status_changed``: the status differs from the last snapshot.

    Carries ``previous_status`` and the new ``status`` (the job's). Fires for every change,
    terminal ones included, alongside the terminal event.
    """

    type: Literal["fine_tuning.job.status_changed"] = "fine_tuning.job.status_changed"


class JobSucceeded(BaseEvent):
    """``fine_tuning.job.succeeded``: the status became ``succeeded``.

    Carries ``fine_tuned_model``, ``trained_tokens`` and ``finished_at`` (from the job).
    """

    type: Literal["fine_tuning.job.succeeded"] = "fine_tuning.job.succeeded"

    @property
    def fine_tuned_model(self) -> str | None:
        """The name of the model the job produced."""
        return self.job.fine_tuned_model

    @property
    def trained_tokens(self) -> int | None:
        """The billable tokens the job processed."""
        return self.job.trained_tokens

    @property
    def finished_at(self) -> int | None:
        """Unix seconds when the job finished."""
        return self.job.finished_at


class JobFailed(BaseEvent):
    """``fine_tuning.job.failed``: the status became ``failed``.

    Carries ``error`` with its ``code``, ``message`` and ``param`` (None when the API gave none).
    """

    type: Literal["fine_tuning.job.failed"] = "fine_tuning.job.failed"

    @property
    def error(self) -> JobError | None:
        """Why the job failed, when the API said."""
        return self.job.failure


class JobCancelled(BaseEvent):
    """``fine_tuning.job.cancelled``: the status became ``cancelled``. Carries the job."""

    type: Literal["fine_tuning.job.cancelled"] = "fine_tuning.job.cancelled"


class JobProgress(BaseEvent):
    """``fine_tuning.job.progress``: new ``metrics`` entries in the job's event stream (throttled).

    Carries the latest ``step`` and what the API reported with it; a field the API did not
    send is None. The id derives from the API's own event id.
    """

    type: Literal["fine_tuning.job.progress"] = "fine_tuning.job.progress"

    step: int | None = None
    total_steps: int | None = None
    train_loss: float | None = None
    valid_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    #: ``step / total_steps`` as a percentage, when both are known.
    percent: float | None = None
    #: The job's ``estimated_finish`` (unix seconds) when the metrics were read.
    estimated_finish: int | None = None
    #: The id of the API event the metrics came from.
    api_event_id: str | None = None


class JobCheckpointCreated(BaseEvent):
    """``fine_tuning.job.checkpoint_created``: a new entry in the job's ``/checkpoints``.

    The id derives from the checkpoint's own id.
    """

    type: Literal["fine_tuning.job.checkpoint_created"] = "fine_tuning.job.checkpoint_created"

    checkpoint_id: str
    step_number: int | None = None
    fine_tuned_model_checkpoint: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)


class JobMessage(BaseEvent):
    """``fine_tuning.job.message``: a ``message`` entry of the job's event stream.

    Sent for levels ``warn`` and ``error`` (and ``info`` when the source asks for it). The id
    derives from the API's own event id.
    """

    type: Literal["fine_tuning.job.message"] = "fine_tuning.job.message"

    level: str
    message: str
    api_event_id: str
    #: Unix seconds of the API event.
    api_created_at: float | None = None


class JobStalled(BaseEvent):
    """``fine_tuning.job.stalled``: a job stayed in one status, or without metrics, too long.

    ``reason`` is ``validating_too_long``, ``queued_too_long`` or ``no_progress``; ``since``
    is when the status began (or the last metrics came); ``threshold`` is in seconds. The id
    derives from the job, the status, the reason and ``since``: one stall, one id.
    """

    type: Literal["fine_tuning.job.stalled"] = "fine_tuning.job.stalled"

    reason: str
    since: float
    threshold: float


class JobUnstalled(BaseEvent):
    """``fine_tuning.job.unstalled``: a stalled job moved again (or ended).

    Carries the stall's ``reason`` and ``since``, and ``stalled_for``: seconds from when the
    stall began until it was seen to end.
    """

    type: Literal["fine_tuning.job.unstalled"] = "fine_tuning.job.unstalled"

    reason: str
    since: float
    stalled_for: float


class JobEtaChanged(BaseEvent):
    """``fine_tuning.job.eta_changed``: ``estimated_finish`` moved by more than the thresholds.

    ``shift`` is in seconds, positive when the job will finish later.
    """

    type: Literal["fine_tuning.job.eta_changed"] = "fine_tuning.job.eta_changed"

    previous_estimated_finish: int | None = None
    estimated_finish: int | None = None
    shift: float = 0.0


#: Any event, discriminated on ``type``.
Event = Annotated[
    JobCreated
    | JobStatusChanged
    | JobSucceeded
    | JobFailed
    | JobCancelled
    | JobProgress
    | JobCheckpointCreated
    | JobMessage
    | JobStalled
    | JobUnstalled
    | JobEtaChanged,
    Field(discriminator="type"),
]

_EVENT_CLASSES: tuple[type[BaseEvent], ...] = (
    JobCreated,
    JobStatusChanged,
    JobSucceeded,
    JobFailed,
    JobCancelled,
    JobProgress,
    JobCheckpointCreated,
    JobMessage,
    JobStalled,
    JobUnstalled,
    JobEtaChanged,
)

#: The types a sink gets only when its ``events`` routing names them in full (not by a glob):
#: the frequent ones, so that an existing channel routed ``*`` is not flooded.
OPT_IN_EVENT_TYPES: frozenset[str] = frozenset(
    {
        "fine_tuning.job.progress",
        "fine_tuning.job.checkpoint_created",
        "fine_tuning.job.eta_changed",
    }
)

_BY_TYPE: dict[str, type[BaseEvent]] = {
    str(cls.model_fields["type"].default): cls for cls in _EVENT_CLASSES
}

#: Every event type's wire name, in the order of DESIGN.md.
EVENT_TYPES: tuple[str, ...] = tuple(
    str(cls.model_fields["type"].default) for cls in _EVENT_CLASSES
)

_event_adapter: TypeAdapter[Event] = TypeAdapter(Event)
_WIRE_NAMES: dict[type[BaseEvent], str] = {cls: name for name, cls in _BY_TYPE.items()}


def _own_fields(cls: type[BaseEvent]) -> tuple[str, ...]:
    """The fields ``cls`` adds to :class:`BaseEvent`, cached on first use."""
    own = _OWN_FIELDS.get(cls)
    if own is None:
        own = tuple(n for n in cls.model_fields if n not in BaseEvent.model_fields)
        _OWN_FIELDS[cls] = own
    return own


_OWN_FIELDS: dict[type[BaseEvent], tuple[str, ...]] = {}


def event_type_name(cls: type[BaseEvent]) -> str:
    """The wire name of an event class (``JobFailed`` -> ``fine_tuning.job.failed``)."""
    return str(cls.model_fields["type"].default)


def event_from_envelope(envelope: dict[str, Any] | str | bytes) -> Event:
    """Rebuild the typed event from its envelope (as stored in the journal or sent on the wire).

    Given the envelope as text, the event keeps it: its :meth:`~BaseEvent.to_json` returns
    that text rather than a new serialisation.
    """
    wire: str | None = None
    if isinstance(envelope, dict):
        data = envelope
    else:
        wire = envelope.decode() if isinstance(envelope, bytes) else envelope
        data = pydantic_core.from_json(wire)
    body = data["data"]
    cls = _BY_TYPE.get(data["type"])
    own = {} if cls is None else {n: body[n] for n in _own_fields(cls) if n in body}
    event = _event_adapter.validate_python(
        {
            **own,
            "type": data["type"],
            "id": data["id"],
            "source": body["source"],
            "observed_at": body.get("observed_at", data["created_at"]),
            "previous_status": body.get("previous_status"),
            "timeline": body.get("timeline") or {},
            "dashboard_url": body.get("dashboard_url"),
            "job": body["job"],
        }
    )
    if wire is not None:
        object.__setattr__(event, "_wire", wire)
    return event
