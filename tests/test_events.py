"""The event types, their wire envelope, their ids, and compatibility with OpenAI's webhooks."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from typing import Any

import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.types.webhooks import (
    FineTuningJobCancelledWebhookEvent,
    FineTuningJobFailedWebhookEvent,
    FineTuningJobSucceededWebhookEvent,
)
from pydantic import TypeAdapter, ValidationError
from standardwebhooks import Webhook

from watcher.events import (
    EVENT_TYPES,
    BaseEvent,
    Event,
    JobCancelled,
    JobCreated,
    JobFailed,
    JobStatusChanged,
    JobSucceeded,
    event_from_envelope,
    event_id,
    event_type_name,
)
from watcher.models import FineTuningJob

EVENT_ID = re.compile(r"^evt_[0-9a-f]{32}$")
ENVELOPE_KEYS = {"id", "object", "created_at", "type", "data"}
DATA_KEYS = {
    "id",
    "source",
    "status",
    "previous_status",
    "fine_tuned_model",
    "error",
    "observed_at",
    "timeline",
    "dashboard_url",
    "job",
}
ALL_CLASSES: list[type[BaseEvent]] = [
    JobCreated,
    JobStatusChanged,
    JobSucceeded,
    JobFailed,
    JobCancelled,
]
#: The status each event class is about, for building a plausible job.
STATUS_OF: dict[type[BaseEvent], str] = {
    JobCreated: "validating_files",
    JobStatusChanged: "running",
    JobSucceeded: "succeeded",
    JobFailed: "failed",
    JobCancelled: "cancelled",
}
#: The SDK's webhook event type for each of our terminal events.
SDK_WEBHOOK: list[tuple[type[BaseEvent], type[openai.BaseModel]]] = [
    (JobSucceeded, FineTuningJobSucceededWebhookEvent),
    (JobFailed, FineTuningJobFailedWebhookEvent),
    (JobCancelled, FineTuningJobCancelledWebhookEvent),
]

event_adapter: TypeAdapter[Event] = TypeAdapter(Event)


def make_job(status: str, **fields: Any) -> FineTuningJob:
    """A job in ``status`` that carries what its terminal event reports."""
    data: dict[str, Any] = {
        "object": "fine_tuning.job",
        "id": "ftjob-Ev3nTs0Kq8Lm2Np6Rs4Tv9Wx",
        "model": "gpt-4o-mini-2024-07-18",
        "created_at": 1733836800,
        "status": status,
        "error": {},
        "usage_metrics": {"step": 3},
    }
    if status == "succeeded":
        data |= {
            "fine_tuned_model": "ft:gpt-4o-mini-2024-07-18:acme::AbC12dEf",
            "trained_tokens": 5768,
            "finished_at": 1733840123,
        }
    if status == "failed":
        data |= {
            "error": {"code": "invalid_file", "message": "Line 3 is not JSON.", "param": None},
            "finished_at": 1733840123,
        }
    return FineTuningJob.model_validate(data | fields)


def make_event(cls: type[BaseEvent], **fields: Any) -> BaseEvent:
    """An event of ``cls`` with every field filled, so round trips have something to lose."""
    status = STATUS_OF[cls]
    values: dict[str, Any] = {
        "id": event_id("openai", "ftjob-Ev3nTs0Kq8Lm2Np6Rs4Tv9Wx", event_type_name(cls)),
        "source": "openai",
        "observed_at": 1733840200.25,
        "previous_status": None if cls is JobCreated else "queued",
        "job": make_job(status),
        "timeline": {"queued": 1733836900.0, status: 1733840200.25},
        "dashboard_url": "https://platform.openai.com/finetune/ftjob-Ev3nTs0Kq8Lm2Np6Rs4Tv9Wx",
    }
    return cls(**(values | fields))


# --- the envelope -----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_envelope_has_openais_event_shape_plus_ours(cls: type[BaseEvent]) -> None:
    """The envelope is OpenAI's event shape, with the job's id, status and snapshot in ``data``."""
    event = make_event(cls)
    envelope = event.envelope()
    assert set(envelope) == ENVELOPE_KEYS
    assert EVENT_ID.match(envelope["id"])
    assert envelope["object"] == "event"
    assert type(envelope["created_at"]) is int
    assert envelope["created_at"] == 1733840200
    assert envelope["type"] == event_type_name(cls)
    data = envelope["data"]
    assert set(data) == DATA_KEYS
    assert data["id"] == event.job.id
    assert data["source"] == "openai"
    assert data["status"] == STATUS_OF[cls]
    assert data["previous_status"] == event.previous_status
    assert data["fine_tuned_model"] == event.job.fine_tuned_model
    assert data["observed_at"] == 1733840200.25
    assert data["timeline"] == event.timeline
    assert data["dashboard_url"] == event.dashboard_url
    assert data["job"] == event.job.to_api()
    assert data["job"]["usage_metrics"] == {"step": 3}  # unknown fields travel with the job


def test_envelope_error_is_null_unless_the_job_says_why_it_failed() -> None:
    """``data.error`` is null for ``error: {}`` and carries code, message and param on failure."""
    assert make_event(JobStatusChanged).envelope()["data"]["error"] is None
    failed = make_event(JobFailed).envelope()["data"]["error"]
    assert failed == {"code": "invalid_file", "message": "Line 3 is not JSON.", "param": None}


def test_to_json_is_the_envelope_as_compact_json() -> None:
    """``to_json`` is the envelope, compact, with non-ASCII text left readable."""
    event = make_event(JobCreated, source="équipe")
    text = event.to_json()
    assert json.loads(text) == event.envelope()
    assert ": " not in text
    assert ", " not in text
    assert "équipe" in text


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@pytest.mark.parametrize("cls", ALL_CLASSES)
@given(extra=st.dictionaries(st.text().map(lambda k: "x_" + k), json_values, max_size=3))
def test_to_json_says_what_the_old_json_dumps_of_the_envelope_said(
    cls: type[BaseEvent], extra: dict[str, Any]
) -> None:
    """The pydantic-core text parses to the same JSON as json.dumps of the envelope did.

    Byte for byte too, except where json.dumps spelt a float differently (1e-07 for 1e-7).
    """
    job = make_job(STATUS_OF[cls], **extra)
    event = make_event(cls, job=job)
    old = json.dumps(event.envelope(), separators=(",", ":"), ensure_ascii=False)
    new = event.to_json()
    assert json.loads(new) == json.loads(old)
    if not any(isinstance(v, float) for v in _leaves(extra)):
        assert new == old


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_event_from_envelope_round_trips_every_type(cls: type[BaseEvent]) -> None:
    """An envelope, as a dict, JSON text or bytes, rebuilds the very same typed event."""
    event = make_event(cls)
    for form in (event.envelope(), event.to_json(), event.to_json().encode()):
        rebuilt = event_from_envelope(form)
        assert type(rebuilt) is cls
        assert rebuilt == event
        assert rebuilt.envelope() == event.envelope()


def test_an_event_read_from_text_sends_that_text_unchanged() -> None:
    """Envelope text (as the journal holds it) comes back from ``to_json`` byte for byte.

    So a retry sends exactly the bytes journaled, even when an older release wrote them in
    another key order or spacing.
    """
    event = make_event(JobFailed)
    stored = json.dumps(event.envelope(), indent=1, sort_keys=True)
    assert stored != event.to_json()
    for form in (stored, stored.encode()):
        rebuilt = event_from_envelope(form)
        assert rebuilt.to_json() == stored
        assert rebuilt == event
        assert rebuilt.model_copy().to_json() == stored
        assert rebuilt.model_dump() == event.model_dump()  # the text is no field
    # A copy with a changed field is a different event: its envelope is built afresh.
    moved = event_from_envelope(stored).model_copy(update={"dashboard_url": "https://x.test/j"})
    assert json.loads(moved.to_json())["data"]["dashboard_url"] == "https://x.test/j"
    assert ": " not in moved.to_json()


def test_event_from_envelope_falls_back_to_created_at() -> None:
    """An envelope without ``data.observed_at`` (a foreign sender) takes ``created_at`` instead."""
    envelope = make_event(JobSucceeded).envelope()
    del envelope["data"]["observed_at"]
    del envelope["data"]["timeline"]
    del envelope["data"]["dashboard_url"]
    rebuilt = event_from_envelope(envelope)
    assert rebuilt.observed_at == envelope["created_at"]
    assert rebuilt.timeline == {}
    assert rebuilt.dashboard_url is None


def test_event_from_envelope_rejects_an_unknown_type() -> None:
    """An envelope whose type is not one of ours fails validation rather than guessing."""
    envelope = make_event(JobSucceeded).envelope()
    envelope["type"] = "fine_tuning.job.exploded"
    with pytest.raises(ValidationError, match=r"fine_tuning\.job\.exploded"):
        event_from_envelope(envelope)


# --- ids --------------------------------------------------------------------------------------


def test_event_id_is_deterministic() -> None:
    """The same parts always give the same id, in the ``evt_`` + 32 hex digits form."""
    first = event_id("openai", "ftjob-1", "fine_tuning.job.status_changed", "queued", "running", 0)
    again = event_id("openai", "ftjob-1", "fine_tuning.job.status_changed", "queued", "running", 0)
    assert first == again
    assert EVENT_ID.match(first)


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(("azure", "ftjob-1", "queued", "running", 0), id="source"),
        pytest.param(("openai", "ftjob-2", "queued", "running", 0), id="job"),
        pytest.param(("openai", "ftjob-1", "queued", "paused", 0), id="new-status"),
        pytest.param(("openai", "ftjob-1", "paused", "running", 0), id="old-status"),
        pytest.param(("openai", "ftjob-1", "queued", "running", 1), id="occurrence"),
    ],
)
def test_event_id_differs_for_a_different_change(other: tuple[str, str, str, str, int]) -> None:
    """A different source, job, transition or occurrence gives a different id."""
    wire = "fine_tuning.job.status_changed"
    base = event_id("openai", "ftjob-1", wire, "queued", "running", 0)
    source, job, before, after, count = other
    assert event_id(source, job, wire, before, after, count) != base


def test_event_id_parts_do_not_run_together() -> None:
    """Parts are separated, so moving text between neighbouring parts changes the id."""
    assert event_id("ab", "c") != event_id("a", "bc")
    assert event_id("a", None) != event_id("a", "None")


# --- the types --------------------------------------------------------------------------------


def test_event_types_lists_the_lifecycle_names_then_the_progress_ones() -> None:
    """EVENT_TYPES holds the five lifecycle wire names in DESIGN.md's order, then issue 8's."""
    assert EVENT_TYPES == (
        "fine_tuning.job.created",
        "fine_tuning.job.status_changed",
        "fine_tuning.job.succeeded",
        "fine_tuning.job.failed",
        "fine_tuning.job.cancelled",
        "fine_tuning.job.progress",
        "fine_tuning.job.checkpoint_created",
        "fine_tuning.job.message",
        "fine_tuning.job.stalled",
        "fine_tuning.job.unstalled",
        "fine_tuning.job.eta_changed",
    )
    assert [event_type_name(cls) for cls in ALL_CLASSES] == list(EVENT_TYPES[:5])


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_the_event_union_picks_the_class_from_type(cls: type[BaseEvent]) -> None:
    """The ``Event`` union, through a TypeAdapter, rebuilds each class from its dump and JSON."""
    event = make_event(cls)
    from_python = event_adapter.validate_python(event.model_dump())
    from_json = event_adapter.validate_json(event.model_dump_json())
    assert type(from_python) is cls
    assert type(from_json) is cls
    assert from_python == event
    assert from_json == event


def test_the_event_union_rejects_a_missing_or_unknown_type() -> None:
    """Without a known ``type`` the union refuses the data instead of picking a class."""
    data = make_event(JobCreated).model_dump()
    with pytest.raises(ValidationError, match="type"):
        event_adapter.validate_python({k: v for k, v in data.items() if k != "type"})
    with pytest.raises(ValidationError, match=r"fine_tuning\.job\.paused"):
        event_adapter.validate_python(data | {"type": "fine_tuning.job.paused"})


def test_an_event_cannot_claim_another_events_type() -> None:
    """Each class fixes its own wire name: a JobFailed cannot be built as a succeeded event."""
    with pytest.raises(ValidationError, match=r"fine_tuning\.job\.failed"):
        make_event(JobFailed, type="fine_tuning.job.succeeded")


def test_events_are_frozen() -> None:
    """An event cannot be changed after it is made, so every sink sees the same thing."""
    event = make_event(JobSucceeded)
    with pytest.raises(ValidationError, match="frozen"):
        event.source = "elsewhere"  # type: ignore[misc]


def test_terminal_events_expose_what_they_carry() -> None:
    """Succeeded carries model, tokens and finish time; failed carries the error; all the job."""
    succeeded = make_event(JobSucceeded)
    assert isinstance(succeeded, JobSucceeded)
    assert succeeded.fine_tuned_model == "ft:gpt-4o-mini-2024-07-18:acme::AbC12dEf"
    assert succeeded.trained_tokens == 5768
    assert succeeded.finished_at == 1733840123
    assert (succeeded.job_id, succeeded.status) == ("ftjob-Ev3nTs0Kq8Lm2Np6Rs4Tv9Wx", "succeeded")
    failed = make_event(JobFailed)
    assert isinstance(failed, JobFailed)
    assert failed.error is not None
    assert failed.error.code == "invalid_file"
    silent = make_event(JobFailed, job=make_job("failed", error={}))
    assert isinstance(silent, JobFailed)
    assert silent.error is None


# --- OpenAI's webhook types -------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "sdk_type"), SDK_WEBHOOK)
def test_terminal_envelopes_parse_as_openais_webhook_events(
    cls: type[BaseEvent], sdk_type: type[openai.BaseModel]
) -> None:
    """A terminal event's envelope validates as the SDK's webhook event, ``data.id`` the job id."""
    event = make_event(cls)
    parsed = sdk_type.model_validate(event.envelope())
    assert isinstance(
        parsed,
        FineTuningJobSucceededWebhookEvent
        | FineTuningJobFailedWebhookEvent
        | FineTuningJobCancelledWebhookEvent,
    )
    assert parsed.id == event.id
    assert parsed.type == event.type
    assert parsed.object == "event"
    assert parsed.created_at == int(event.observed_at)
    assert parsed.data.id == event.job.id


@pytest.mark.parametrize(("cls", "sdk_type"), SDK_WEBHOOK)
def test_terminal_envelopes_unwrap_with_the_openai_client(
    cls: type[BaseEvent], sdk_type: type[openai.BaseModel]
) -> None:
    """A receiver using ``client.webhooks.unwrap`` gets the right SDK event from our signed body."""
    secret = "whsec_" + base64.b64encode(b"ftwatch-test-secret-0123456789ab").decode()
    event = make_event(cls)
    body = event.to_json()
    now = datetime.now(tz=UTC)
    headers = {
        "webhook-id": event.id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(event.id, now, body),
    }
    client = openai.OpenAI(api_key="sk-test-not-used", base_url="http://127.0.0.1:9/v1")
    unwrapped = client.webhooks.unwrap(body, headers, secret=secret)
    assert type(unwrapped) is sdk_type
    assert unwrapped.id == event.id
    assert unwrapped.type == event.type
