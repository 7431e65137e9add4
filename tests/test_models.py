"""The job model reads every shape real responses and OpenAI's own examples take.

Cross-checked against the official SDK type (``openai.types.fine_tuning.FineTuningJob``) on
realistic fixtures (``tests/fixtures/job_*.json``) and on every fine-tuning job example in
OpenAI's published API contract (``../shared/openai-openapi.yaml`` beside the project).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.fine_tuning import FineTuningJob as SDKJob
from pydantic import TypeAdapter, ValidationError

from watcher.models import KNOWN_STATUSES, TERMINAL_STATUSES, FineTuningJob, is_terminal

log = structlog.get_logger(__name__)

FIXTURES = Path(__file__).parent / "fixtures"
# ../shared sits beside the project checkout, for developers and CI alike.
OPENAPI_SPEC = Path(__file__).resolve().parents[2] / "shared" / "openai-openapi.yaml"

#: Each fixture, and whether it also passes the SDK's strict validation (the others break the
#: SDK's own contract in ways real responses do: an unknown status, ``hyperparameters: null``,
#: an error whose members are all null, ``error: {}``).
FIXTURE_STRICT = {
    "job_succeeded.json": True,
    "job_failed.json": True,
    "job_running.json": False,
    "job_dpo.json": False,
    "job_azure_pending.json": False,
    "job_paused.json": False,
}

#: How many ``fine_tuning.job`` objects the published contract holds today: the schema's example,
#: six create examples, one in the list example, retrieve, cancel, pause and resume.
MIN_OPENAPI_JOBS = 12
#: Every place in the contract where a job example must be found.
OPENAPI_PLACES = {
    "schema FineTuningJob",
    "POST /fine_tuning/jobs",
    "GET /fine_tuning/jobs",
    "GET /fine_tuning/jobs/{fine_tuning_job_id}",
    "POST /fine_tuning/jobs/{fine_tuning_job_id}/cancel",
    "POST /fine_tuning/jobs/{fine_tuning_job_id}/pause",
    "POST /fine_tuning/jobs/{fine_tuning_job_id}/resume",
}

OPTIONAL_FIELDS = sorted(
    name for name in FineTuningJob.model_fields if name not in {"id", "status"}
)


def load_fixture(name: str) -> dict[str, Any]:
    """Read one JSON fixture from ``tests/fixtures``."""
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


def sdk_parse(data: dict[str, Any]) -> tuple[SDKJob, bool]:
    """Parse with the SDK: strictly when the data meets its contract, else as the SDK's client does.

    The SDK's client builds response models with ``construct`` (no validation), so that path is
    what a program using the SDK really gets for a job the strict schema rejects.
    """
    try:
        return SDKJob.model_validate(data), True
    except ValidationError:
        return SDKJob.construct(**data), False


def error_values(error: object) -> tuple[object, object, object] | None:
    """The (code, message, param) of an error object from either model, or None for no error."""
    if error is None:
        return None
    return (
        getattr(error, "code", None),
        getattr(error, "message", None),
        getattr(error, "param", None),
    )


def assert_same_job(ours: FineTuningJob, sdk: SDKJob, where: str = "") -> None:
    """Both models read the same id, status, error and fine-tuned model."""
    assert ours.id == sdk.id, where
    assert ours.status == sdk.status, where
    assert error_values(ours.error) == error_values(sdk.error), where
    assert ours.fine_tuned_model == sdk.fine_tuned_model, where


# --- OpenAI's published examples, read without PyYAML ------------------------------------------
#
# PyYAML is not a dependency of the project, so the examples are cut out of the 3 MB contract by
# indentation: a path section runs until the next line indented as little as its key, and an
# example is the block scalar (``response: |``, ``example: >``) under it. Checked once against
# PyYAML by hand: the same 14 blocks, byte for byte up to whitespace.

_PATH_KEY = re.compile(r"^  (?P<path>/fine_tuning/jobs\S*): *$")
_METHOD_KEY = re.compile(r"^    (?P<method>get|post|put|patch|delete): *$")
_BLOCK_KEY = re.compile(r"^(?P<indent> *)(?:- )?(?P<key>[A-Za-z_]+): *[|>][+-]?[0-9]? *$")

#: Repairs for examples that are not valid JSON as published, each named for the log.
_MENDS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("dropped `{ ... }` placeholder items", re.compile(r"\{\s*\.\.\.\s*\}\s*,?"), ""),
    ("Python None read as null", re.compile(r"(?<=:)(\s*)None\b"), r"\1null"),
    ("trailing comma removed", re.compile(r",(\s*[}\]])"), r"\1"),
)


def _indent(line: str) -> int:
    """How many spaces ``line`` starts with."""
    return len(line) - len(line.lstrip(" "))


def _section_end(lines: list[str], start: int, indent: int) -> int:
    """The index of the first line after ``start`` indented no deeper than ``indent``."""
    end = start + 1
    while end < len(lines) and not (lines[end].strip() and _indent(lines[end]) <= indent):
        end += 1
    return end


def _blocks(lines: list[str], start: int, end: int, key: str) -> Iterator[str]:
    """Yield the dedented text of each ``key: |`` block scalar in ``lines[start:end]``."""
    i = start
    while i < end:
        match = _BLOCK_KEY.match(lines[i])
        if match is None or match["key"] != key:
            i += 1
            continue
        stop = _section_end(lines, i, len(match["indent"]))
        body = lines[i + 1 : min(stop, end)]
        cut = min((_indent(line) for line in body if line.strip()), default=0)
        yield "\n".join(line[cut:] for line in body).strip()
        i = stop


def openapi_examples(text: str) -> Iterator[tuple[str, str]]:
    """Yield (place, text) for every example response of ``/fine_tuning/jobs*`` and the schema's."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if (path := _PATH_KEY.match(line)) is not None:
            for k in range(i + 1, _section_end(lines, i, 2)):
                if (method := _METHOD_KEY.match(lines[k])) is not None:
                    place = f"{method['method'].upper()} {path['path']}"
                    for block in _blocks(lines, k, _section_end(lines, k, 4), "response"):
                        yield place, block
        elif line == "    FineTuningJob:":
            for block in _blocks(lines, i, _section_end(lines, i, 4), "example"):
                yield "schema FineTuningJob", block


def parse_example(place: str, text: str) -> Any:
    """Parse an example as JSON, mending the known slips in the published text; None if beyond."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    applied = []
    for name, pattern, replacement in _MENDS:
        text, count = pattern.subn(replacement, text)
        if count:
            applied.append(name)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        log.warning("openapi_example_skipped", place=place, reason=str(exc))
        return None
    log.info("openapi_example_mended", place=place, mends=applied)
    return data


def jobs_in(data: Any) -> list[dict[str, Any]]:
    """The ``fine_tuning.job`` objects in a response body: the body itself, or a list's items."""
    if not isinstance(data, dict):
        return []
    if data.get("object") == "fine_tuning.job":
        return [data]
    if data.get("object") == "list":
        return [item for item in data.get("data", []) if isinstance(item, dict) and jobs_in(item)]
    return []


@pytest.fixture(scope="module")
def openapi_jobs() -> list[tuple[str, dict[str, Any]]]:
    """Every fine-tuning job example in OpenAI's contract, read once for the module."""
    if not OPENAPI_SPEC.exists():
        pytest.fail(f"{OPENAPI_SPEC} is missing: ../shared must sit beside the project")
    found: list[tuple[str, dict[str, Any]]] = []
    for place, text in openapi_examples(OPENAPI_SPEC.read_text(encoding="utf-8")):
        if '"fine_tuning.job"' not in text:
            continue  # checkpoints and events examples hold other objects
        found.extend((place, job) for job in jobs_in(parse_example(place, text)))
    return found


# --- what is required -------------------------------------------------------------------------


def test_only_id_and_status_are_required() -> None:
    """A job with nothing but an id and a status parses, every other field reading as None."""
    job = FineTuningJob.model_validate({"id": "ftjob-1", "status": "queued"})
    assert (job.id, job.status) == ("ftjob-1", "queued")
    assert job.error is None
    assert job.failure is None
    assert job.hyperparameters is None
    assert job.seed is None


@pytest.mark.parametrize(
    "data",
    [
        {"status": "running"},
        {"id": "ftjob-1"},
        {},
        {"id": "", "status": "running"},
        {"id": "ftjob-1", "status": ""},
        {"id": None, "status": "running"},
        {"id": "ftjob-1", "status": None},
        {"id": 17, "status": "running"},
        {"id": "ftjob-1", "status": ["running"]},
        {"id": 17, "status": "running", "seed": "lucky"},
    ],
)
def test_a_job_without_a_usable_id_or_status_fails_validation(data: dict[str, Any]) -> None:
    """A job without an id or status, or with an empty or non-string one, fails validation."""
    with pytest.raises(ValidationError, match=r"(id|status)"):
        FineTuningJob.model_validate(data)


# --- tolerance --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"error": {}}, id="error-empty-object"),
        pytest.param(
            {"error": {"code": None, "message": None, "param": None}}, id="error-all-null"
        ),
        pytest.param({"error": None}, id="error-null"),
        pytest.param({"hyperparameters": None}, id="hyperparameters-null"),
        pytest.param({"result_files": None}, id="result-files-null"),
        pytest.param({"organization_id": None}, id="organization-id-null"),
        pytest.param({"seed": None}, id="seed-null"),
        pytest.param({"status": "paused"}, id="status-paused"),
        pytest.param({"status": "pending"}, id="status-azure-pending"),
        pytest.param({"integrations": None, "metadata": None, "method": None}, id="extras-null"),
    ],
)
def test_shapes_seen_in_the_wild_parse_without_losing_the_job(extra: dict[str, Any]) -> None:
    """Each odd shape real responses carry parses, keeping the job's id and status."""
    data = {
        "object": "fine_tuning.job",
        "id": "ftjob-odd",
        "status": "running",
        "model": "gpt-4o-mini",
        "created_at": 1721764800,
        "training_file": "file-abc123",
    } | extra
    job = FineTuningJob.model_validate(data)
    assert job.id == "ftjob-odd"
    assert job.status == data["status"]
    assert job.failure is None
    assert job.model == "gpt-4o-mini"
    assert job.seed is None  # absent in every case: never required


def test_a_page_of_odd_jobs_keeps_every_job() -> None:
    """A page mixing every odd shape reads back with all of its jobs, in order."""
    page: list[dict[str, Any]] = [
        {"id": "ftjob-a", "status": "running", "error": {}},
        {"id": "ftjob-b", "status": "paused", "hyperparameters": None},
        {"id": "ftjob-c", "status": "pending", "result_files": None, "organization_id": None},
        {"id": "ftjob-d", "status": "succeeded", "created_at": "not a time"},
    ]
    jobs = TypeAdapter(list[FineTuningJob]).validate_python(page)
    assert [(job.id, job.status) for job in jobs] == [(p["id"], p["status"]) for p in page]


def test_error_with_content_is_the_failure() -> None:
    """An error that says something is kept, and ``failure`` returns it."""
    job = FineTuningJob.model_validate(
        {
            "id": "ftjob-1",
            "status": "failed",
            "error": {"code": "invalid_file", "message": "Bad line 3.", "param": None},
        }
    )
    assert job.failure is not None
    assert (job.failure.code, job.failure.message, job.failure.param) == (
        "invalid_file",
        "Bad line 3.",
        None,
    )


@pytest.mark.parametrize("status", ["paused", "pending", "weird_new_status"])
def test_an_unknown_status_is_kept_as_a_string_and_is_not_terminal(status: str) -> None:
    """A status outside the documented six is kept verbatim and never counts as terminal."""
    job = FineTuningJob.model_validate({"id": "ftjob-1", "status": status})
    assert job.status == status
    assert status not in KNOWN_STATUSES
    assert not job.is_terminal


@pytest.mark.parametrize("status", sorted(KNOWN_STATUSES))
def test_only_succeeded_failed_and_cancelled_are_terminal(status: str) -> None:
    """Exactly succeeded, failed and cancelled are terminal among the documented statuses."""
    expected = status in {"succeeded", "failed", "cancelled"}
    assert is_terminal(status) is expected
    assert FineTuningJob.model_validate({"id": "j", "status": status}).is_terminal is expected
    assert {"succeeded", "failed", "cancelled"} == TERMINAL_STATUSES


def test_unknown_fields_are_kept_and_round_trip_through_to_api() -> None:
    """Fields the model does not know survive parsing and come back unchanged from ``to_api``."""
    data = {
        "id": "ftjob-1",
        "status": "running",
        "usage_metrics": {"tokens": 12, "nested": [1, {"a": None}]},
        "shared_with_openai": False,
        "suffix": "emoji",
        "error": {"code": "x", "message": "y", "param": None, "details": ["more"]},
    }
    job = FineTuningJob.model_validate(data)
    api = job.to_api()
    for key in ("usage_metrics", "shared_with_openai", "suffix", "error"):
        assert api[key] == data[key]
    assert FineTuningJob.model_validate(api) == job
    assert json.loads(json.dumps(api)) == api  # JSON-ready as it stands


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("created_at", "yesterday"),
        ("finished_at", {"at": 1}),
        ("error", "the job broke"),
        ("error", ["code"]),
        ("hyperparameters", [4, 3]),
        ("hyperparameters", "auto"),
        ("result_files", "file-abc"),
        ("seed", "lucky"),
        ("trained_tokens", 12.5),
        ("metadata", {"key": 1}),
        ("integrations", {"type": "wandb"}),
        ("method", "dpo"),
        ("fine_tuned_model", 42),
        ("organization_id", ["org-1"]),
        ("estimated_finish", "soon"),
    ],
)
def test_a_wrong_type_in_an_optional_field_reads_as_none(field: str, value: object) -> None:
    """An optional field of the wrong type reads as None and the rest of the job survives."""
    job = FineTuningJob.model_validate(
        {"id": "ftjob-1", "status": "running", "model": "gpt-4o-mini", field: value}
    )
    assert getattr(job, field) is None
    assert (job.id, job.status, job.model) == ("ftjob-1", "running", "gpt-4o-mini")


def test_a_wrong_type_inside_the_error_reads_as_none_for_that_member_only() -> None:
    """A wrongly typed error member is dropped while its well-typed siblings are kept."""
    job = FineTuningJob.model_validate(
        {"id": "ftjob-1", "status": "failed", "error": {"code": 500, "message": "Server broke."}}
    )
    assert job.failure is not None
    assert job.failure.code is None
    assert job.failure.message == "Server broke."


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=st.dictionaries(st.sampled_from(OPTIONAL_FIELDS), _json, max_size=6))
def test_any_json_in_optional_fields_never_costs_the_job(fields: dict[str, Any]) -> None:
    """Whatever JSON arrives in the optional fields, the job parses and keeps its id and status."""
    job = FineTuningJob.model_validate({"id": "ftjob-fuzz", "status": "running", **fields})
    assert (job.id, job.status) == ("ftjob-fuzz", "running")
    again = FineTuningJob.model_validate(job.to_api())
    assert (again.id, again.status) == ("ftjob-fuzz", "running")


# --- cross-check with the official SDK: fixtures ----------------------------------------------


@pytest.mark.parametrize("name", sorted(FIXTURE_STRICT))
def test_fixture_reads_the_same_as_the_sdk(name: str) -> None:
    """Each realistic fixture parses with the SDK type and ours to the same id, status and error."""
    data = load_fixture(name)
    sdk, strict = sdk_parse(data)
    assert strict is FIXTURE_STRICT[name]
    assert_same_job(FineTuningJob.model_validate(data), sdk)


@pytest.mark.parametrize("name", sorted(FIXTURE_STRICT))
def test_fixture_to_api_parses_with_the_sdk(name: str) -> None:
    """Our ``to_api`` output parses with the SDK type, strictly whenever the input did."""
    data = load_fixture(name)
    ours = FineTuningJob.model_validate(data)
    sdk, strict = sdk_parse(ours.to_api())
    assert strict is FIXTURE_STRICT[name]
    assert_same_job(ours, sdk)


def assert_sent_fields_survive(sent: object, back: object, where: str = "job") -> None:
    """Everything sent comes back equal; anything added is a declared member spelled out as null."""
    if isinstance(sent, dict):
        assert isinstance(back, dict), where
        for key, value in sent.items():
            assert key in back, f"{where}.{key}"
            assert_sent_fields_survive(value, back[key], f"{where}.{key}")
        for key in back.keys() - sent.keys():
            assert back[key] is None, f"{where}.{key}"
    elif isinstance(sent, list):
        assert isinstance(back, list), where
        assert len(back) == len(sent), where
        for index, (one, other) in enumerate(zip(sent, back, strict=True)):
            assert_sent_fields_survive(one, other, f"{where}[{index}]")
    else:
        assert back == sent, where
        assert type(back) is type(sent), where


@pytest.mark.parametrize("name", sorted(FIXTURE_STRICT))
def test_fixture_fields_come_back_unchanged_from_to_api(name: str) -> None:
    """Every field a fixture carries, known or not, comes back from ``to_api`` as it was sent."""
    data = load_fixture(name)
    assert_sent_fields_survive(data, FineTuningJob.model_validate(data).to_api())


def test_fixtures_cover_the_shapes_the_watcher_must_read() -> None:
    """The fixtures hold a succeeded, failed, running, DPO, Azure pending and paused job."""
    jobs = {name: FineTuningJob.model_validate(load_fixture(name)) for name in FIXTURE_STRICT}
    assert jobs["job_succeeded.json"].fine_tuned_model is not None
    assert jobs["job_failed.json"].failure is not None
    assert jobs["job_running.json"].estimated_finish is not None
    assert jobs["job_dpo.json"].method is not None
    assert jobs["job_dpo.json"].method.type == "dpo"
    assert jobs["job_azure_pending.json"].status == "pending"
    assert jobs["job_azure_pending.json"].model_extra == {
        "organisation_id": None,
        "suffix": "emoji",
    }
    assert jobs["job_paused.json"].status == "paused"
    assert sorted(path.name for path in FIXTURES.glob("job_*.json")) == sorted(FIXTURE_STRICT)


# --- cross-check with the official SDK: OpenAI's published examples ---------------------------


def test_openapi_examples_are_all_found(openapi_jobs: list[tuple[str, dict[str, Any]]]) -> None:
    """Job examples are found in the schema and every job endpoint, so no check passes vacuously."""
    assert len(openapi_jobs) >= MIN_OPENAPI_JOBS
    assert {place for place, _ in openapi_jobs} == OPENAPI_PLACES


def test_openapi_examples_read_the_same_as_the_sdk(
    openapi_jobs: list[tuple[str, dict[str, Any]]],
) -> None:
    """Every published job example parses with the SDK type and ours to the same values."""
    checked = 0
    for place, data in openapi_jobs:
        ours = FineTuningJob.model_validate(data)
        sdk, _ = sdk_parse(data)
        assert_same_job(ours, sdk, place)
        assert_sent_fields_survive(data, ours.to_api(), place)
        checked += 1
    assert checked >= MIN_OPENAPI_JOBS


def test_openapi_examples_to_api_parses_with_the_sdk(
    openapi_jobs: list[tuple[str, dict[str, Any]]],
) -> None:
    """``to_api`` of every published example parses with the SDK type, strictly if the input did."""
    checked = 0
    for place, data in openapi_jobs:
        ours = FineTuningJob.model_validate(data)
        _, strict_in = sdk_parse(data)
        sdk, strict_out = sdk_parse(ours.to_api())
        assert strict_out or not strict_in, place
        assert_same_job(ours, sdk, place)
        checked += 1
    assert checked >= MIN_OPENAPI_JOBS
