"""The simulator: OpenAI's shapes, jobs that move with the clock, controls, faults, the demo."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import httpx2
import openai
import pytest
from openai.types.fine_tuning import FineTuningJob as OpenAIJob
from openai.types.fine_tuning import FineTuningJobEvent as OpenAIEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint as OpenAICheckpoint

import watcher.simulator
from watcher.client import APIClient, parse_retry_after
from watcher.clock import ManualClock, ScaledClock
from watcher.models import Checkpoint, FineTuningJob, JobEventRecord
from watcher.simulator import (
    DEMO_DURATION,
    Faults,
    InvalidJobState,
    JobNotFound,
    Simulator,
    Step,
    demo_scenario,
    demo_timeline,
    demo_transitions,
    serve_simulator,
)
from watcher.simulator.jobs import SimJob

START = 1_700_000_000.0
KEY = "sk-sim-TEST-never-echo-0123456789"
ERROR_KEYS = {"message", "type", "param", "code"}
#: A job that validates for 10 s, queues for 20 s, then trains for 100 s and succeeds.
SCRIPT = [(0, "validating_files"), (10, "queued"), (30, "running"), (130, "succeeded")]


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when the test advances it."""
    return ManualClock(START)


@pytest.fixture
def sim(clock: ManualClock) -> Simulator:
    """A seeded simulator on the manual clock."""
    return Simulator(clock, seed=3)


@pytest.fixture
async def api(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the simulator through httpx's ASGI transport."""
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim/v1") as client:
        yield client


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The ``error`` object of an OpenAI error body, checked for its four members."""
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == ERROR_KEYS
    error: dict[str, Any] = body["error"]
    return error


async def walk(api: httpx.AsyncClient, path: str, limit: int) -> list[dict[str, Any]]:
    """Read every page of a list endpoint through its cursor."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        body = (await api.get(path, params=params)).json()
        assert body["object"] == "list"
        items.extend(body["data"])
        if not body["has_more"]:
            return items
        params["after"] = body["data"][-1]["id"]


# -- the public surface -------------------------------------------------------------------------


def test_the_package_exports_a_sorted_public_surface() -> None:
    """watcher.simulator lists its public names sorted, and each one exists."""
    names = watcher.simulator.__all__
    assert names == sorted(names)
    assert all(hasattr(watcher.simulator, name) for name in names)


def test_repr_never_shows_the_api_key(clock: ManualClock) -> None:
    """The simulator's repr says whether auth is on, never the key."""
    text = repr(Simulator(clock, api_key=KEY))
    assert KEY not in text
    assert "auth=on" in text


# -- creating and reading jobs ------------------------------------------------------------------


async def test_a_created_job_has_every_field_and_parses_with_both_models(
    api: httpx.AsyncClient,
) -> None:
    """POST /fine_tuning/jobs answers a job in OpenAI's shape that both models accept."""
    request = {
        "model": "gpt-4o-mini",
        "training_file": "file-train",
        "validation_file": "file-valid",
        "suffix": "my-bot",
        "seed": 42,
        "metadata": {"team": "ml"},
        "integrations": [{"type": "wandb", "wandb": {"project": "ft"}}],
        "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
    }
    response = await api.post("/fine_tuning/jobs", json=request)
    assert response.status_code == 200
    job = response.json()
    assert set(job) >= {
        "object", "id", "created_at", "error", "fine_tuned_model", "finished_at",
        "hyperparameters", "model", "organization_id", "result_files", "seed", "status",
        "trained_tokens", "training_file", "validation_file", "integrations", "metadata",
        "method", "user_provided_suffix", "estimated_finish",
    }  # fmt: skip
    assert job["id"].startswith("ftjob-")
    assert len(job["id"]) == 30
    assert job["id"][6:].isalnum()
    assert job["status"] == "validating_files"
    assert job["model"] == "gpt-4o-mini-2024-07-18"
    assert job["created_at"] == int(START)
    assert (job["seed"], job["metadata"], job["user_provided_suffix"]) == (
        42,
        {"team": "ml"},
        "my-bot",
    )
    assert job["validation_file"] == "file-valid"
    assert job["hyperparameters"]["n_epochs"] == 2
    assert job["method"]["supervised"]["hyperparameters"]["batch_size"] == "auto"
    assert job["error"] is None
    assert job["fine_tuned_model"] is None
    assert job["result_files"] == []
    parsed = OpenAIJob.model_validate(job)
    assert parsed.integrations is not None
    assert parsed.integrations[0].wandb.project == "ft"
    assert FineTuningJob.model_validate(job).to_api()["id"] == job["id"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"training_file": "file-x"}, "model"),
        ({"model": "gpt-4o-mini"}, "training_file"),
        ({"model": "gpt-4o-mini", "training_file": 7}, "training_file"),
        ({"model": "gpt-4o-mini", "training_file": "file-x", "suffix": "s" * 65}, "suffix"),
        ({"model": "gpt-4o-mini", "training_file": "file-x", "metadata": {"k": 1}}, "metadata"),
        ({"model": "m", "training_file": "f", "method": {"type": "magic"}}, "method.type"),
    ],
)
async def test_an_invalid_create_request_is_a_400_naming_the_parameter(
    api: httpx.AsyncClient, body: dict[str, Any], param: str
) -> None:
    """A create request missing or mistyping a parameter gets OpenAI's 400 naming it."""
    response = await api.post("/fine_tuning/jobs", json=body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


async def test_a_body_that_is_not_json_is_a_400(api: httpx.AsyncClient) -> None:
    """A create request whose body is not JSON gets a 400 saying so."""
    response = await api.post("/fine_tuning/jobs", content=b"{nope")
    assert response.status_code == 400
    assert "JSON" in error_of(response)["message"]


def _statuses_over_time(sim: Simulator, clock: ManualClock, ids: list[str]) -> list[list[str]]:
    seen = []
    for _ in range(60):
        seen.append([sim.status(job_id) for job_id in ids])
        clock.advance(60)
    return seen


def test_the_random_progression_is_seeded_ordered_and_ends() -> None:
    """Jobs with no script move through the documented order, end, and repeat with the seed."""
    runs = []
    for _ in range(2):
        clock = ManualClock(START)
        sim = Simulator(clock, seed=11, failure_rate=0.3)
        ids = [sim.create_job() for _ in range(12)]
        runs.append((ids, _statuses_over_time(sim, clock, ids), [sim.job(i) for i in ids]))
    assert runs[0] == runs[1]
    ids, history, final = runs[0]
    order = ["validating_files", "queued", "running"]
    for column in zip(*history, strict=True):
        assert column[0] == "validating_files"
        changes = [s for i, s in enumerate(column) if i == 0 or s != column[i - 1]]
        assert changes[:3] == order
        assert changes[3:] in (["succeeded"], ["failed"])
    outcomes = {job["status"] for job in final}
    assert outcomes == {"succeeded", "failed"}
    for job in final:
        OpenAIJob.model_validate(job)
        assert job["finished_at"] is not None
        assert job["estimated_finish"] is None
        if job["status"] == "succeeded":
            assert job["fine_tuned_model"].startswith("ft:gpt-4o-mini-2024-07-18:")
            assert job["trained_tokens"] > 0
            assert len(job["result_files"]) == 1
            assert isinstance(job["hyperparameters"]["n_epochs"], int)
        else:
            assert job["error"]["code"]
            assert job["error"]["message"]
            assert job["fine_tuned_model"] is None


def test_a_different_seed_gives_different_ids(clock: ManualClock) -> None:
    """The seed decides the job ids."""
    first = Simulator(clock, seed=1).create_job()
    assert first == Simulator(clock, seed=1).create_job()
    assert first != Simulator(clock, seed=2).create_job()


async def test_a_scripted_job_moves_only_when_the_clock_does(
    sim: Simulator, clock: ManualClock, api: httpx.AsyncClient
) -> None:
    """A scripted job shows each status at its time, with estimated_finish while running."""
    job_id = sim.create_job(suffix="bot", script=SCRIPT)
    path = f"/fine_tuning/jobs/{job_id}"
    expected = {0: "validating_files", 9: "validating_files", 10: "queued", 30: "running"}
    for at, status in expected.items():
        clock.set(START + at)
        assert (await api.get(path)).json()["status"] == status
    running = (await api.get(path)).json()
    assert running["estimated_finish"] == int(START) + 130
    assert running["hyperparameters"]["n_epochs"] != "auto"
    clock.set(START + 130)
    done = (await api.get(path)).json()
    assert done["status"] == "succeeded"
    assert done["finished_at"] == int(START) + 130
    assert done["fine_tuned_model"].startswith("ft:gpt-4o-mini-2024-07-18:ftwatch-sim:bot:")


async def test_a_job_created_in_the_future_is_invisible_until_then(
    sim: Simulator, clock: ManualClock, api: httpx.AsyncClient
) -> None:
    """A job whose created_at is ahead of the clock is neither listed nor retrievable yet."""
    job_id = sim.create_job(created_at=START + 60, script=SCRIPT)
    assert (await api.get(f"/fine_tuning/jobs/{job_id}")).status_code == 404
    assert (await api.get("/fine_tuning/jobs")).json()["data"] == []
    clock.advance(60)
    listed = (await api.get("/fine_tuning/jobs")).json()["data"]
    assert [job["id"] for job in listed] == [job_id]


async def test_an_accelerated_simulator_shows_wall_clock_times_never_future_ones() -> None:
    """At 60x speed, an hour of simulated time is a minute of wall time in every timestamp."""
    before = time.time()
    # The clock reads an hour ahead of the wall clock, as after a minute at 60x speed.
    sim = Simulator(ScaledClock(speed=60, start=before + 3600), seed=1)
    job_id = sim.create_job(script=[(0, "running"), (3600, "succeeded")])
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim/v1") as api:
        job = (await api.get(f"/fine_tuning/jobs/{job_id}")).json()
        (event, *_) = (await api.get(f"/fine_tuning/jobs/{job_id}/events")).json()["data"]
    after = time.time()
    assert int(before) <= job["created_at"] <= after
    assert int(before) <= event["created_at"] <= after
    # The hour of training left ends a wall-clock minute from now.
    assert before + 59 <= job["estimated_finish"] <= after + 61


def test_a_script_out_of_time_order_is_refused(sim: Simulator) -> None:
    """create_job refuses an empty script or one whose steps go back in time."""
    with pytest.raises(ValueError, match="time order"):
        sim.create_job(script=[(10, "queued"), (5, "running")])
    with pytest.raises(ValueError, match="at least one"):
        sim.create_job(script=[])
    sim.create_job(job_id="ftjob-mine", script=[(0, "queued")])
    with pytest.raises(ValueError, match="already exists"):
        sim.create_job(job_id="ftjob-mine", script=[(0, "queued")])


# -- listing ------------------------------------------------------------------------------------


async def test_the_list_pages_newest_first_through_its_cursor(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    """Listing walks every job once, newest first by created_at then id, 20 per page by default."""
    sim.add_jobs(42, interval=10)
    sim.add_jobs(3, interval=0, start=START - 5)  # same created_at: ordered by id
    first = (await api.get("/fine_tuning/jobs")).json()
    assert len(first["data"]) == 20
    assert first["has_more"] is True
    pages = []
    params: dict[str, Any] = {"limit": 20}
    while True:
        body = (await api.get("/fine_tuning/jobs", params=params)).json()
        pages.append(len(body["data"]))
        params["after"] = body["data"][-1]["id"]
        if not body["has_more"]:
            break
    assert pages == [20, 20, 5]
    jobs = await walk(api, "/fine_tuning/jobs", 20)
    keys = [(job["created_at"], job["id"]) for job in jobs]
    assert keys == sorted(keys, reverse=True)
    assert [job["id"] for job in jobs] == sim.job_ids()
    assert len(set(sim.job_ids())) == 45


@pytest.mark.parametrize(
    ("params", "param"),
    [({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"limit": "ten"}, "limit")],
)
async def test_a_bad_limit_is_a_400(
    sim: Simulator, api: httpx.AsyncClient, params: dict[str, Any], param: str
) -> None:
    """A limit outside 1..100 is refused with a 400 naming it."""
    job_id = sim.create_job(script=SCRIPT)
    for path in ("/fine_tuning/jobs", f"/fine_tuning/jobs/{job_id}/events"):
        response = await api.get(path, params=params)
        assert response.status_code == 400
        assert error_of(response)["param"] == param


async def test_an_unknown_cursor_is_a_400(sim: Simulator, api: httpx.AsyncClient) -> None:
    """An ``after`` that names no job (or no event) is refused with a 400 naming it."""
    job_id = sim.create_job(script=SCRIPT)
    response = await api.get("/fine_tuning/jobs", params={"after": "ftjob-gone"})
    assert response.status_code == 400
    assert error_of(response)["param"] == "after"
    response = await api.get(f"/fine_tuning/jobs/{job_id}/events", params={"after": "nope"})
    assert response.status_code == 400
    assert error_of(response)["param"] == "after"


async def test_the_list_filters_on_metadata(sim: Simulator, api: httpx.AsyncClient) -> None:
    """``metadata[k]=v`` lists only the jobs that carry it, and pages through them."""
    ml = sim.add_jobs(5, metadata={"team": "ml"})
    sim.add_jobs(5, metadata={"team": "web"})
    sim.add_jobs(2)
    body = (await api.get("/fine_tuning/jobs", params={"metadata[team]": "ml"})).json()
    assert {job["id"] for job in body["data"]} == set(ml)
    params: dict[str, str | int] = {"metadata[team]": "ml", "limit": 2}
    first = (await api.get("/fine_tuning/jobs", params=params)).json()
    rest = await api.get("/fine_tuning/jobs", params={**params, "after": first["data"][-1]["id"]})
    assert [j["id"] for j in first["data"] + rest.json()["data"]][:4] == ml[::-1][:4]
    bare = (await api.get("/fine_tuning/jobs", params={"metadata": "null"})).json()["data"]
    assert len(bare) == 2


async def test_a_page_from_ten_thousand_jobs_renders_only_that_page(
    sim: Simulator, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listing 100 of 10,000 jobs computes the status of those 100 only."""
    ids = sim.add_jobs(10_000)
    rendered = 0
    render = SimJob.render

    def counting(self: SimJob, now: float) -> dict[str, Any]:
        nonlocal rendered
        rendered += 1
        return render(self, now)

    monkeypatch.setattr(SimJob, "render", counting)
    body = (await api.get("/fine_tuning/jobs", params={"limit": 100, "after": ids[5000]})).json()
    assert rendered == 100
    assert [job["id"] for job in body["data"]] == ids[4999:4899:-1]
    assert {job["status"] for job in body["data"]} == {"succeeded"}


def test_bulk_jobs_hold_the_status_asked_for(sim: Simulator) -> None:
    """add_jobs makes jobs that are already in (and stay in) the status asked for."""
    for status in ("running", "queued", "validating_files", "failed", "cancelled", "pending"):
        job_id = sim.add_jobs(1, status)[0]
        job = sim.job(job_id)
        assert job["status"] == status
        assert FineTuningJob.model_validate(job).status == status
    running = sim.add_jobs(1, "running")[0]
    assert sim.job(running)["estimated_finish"] is not None


# -- events and checkpoints ---------------------------------------------------------------------


async def test_events_tell_the_story_newest_first_and_parse_with_both_models(
    sim: Simulator, clock: ManualClock, api: httpx.AsyncClient
) -> None:
    """Events log each status change and training metrics, newest first, with stable ids."""
    job_id = sim.create_job(script=SCRIPT, validation_file="file-v")
    path = f"/fine_tuning/jobs/{job_id}/events"
    early = (await api.get(path)).json()["data"]
    assert [e["message"] for e in early] == [
        f"Validating training file: {sim.job(job_id)['training_file']} and validation file: file-v",
        f"Created fine-tuning job: {job_id}",
    ]
    clock.advance(200)
    events = await walk(api, path, 7)
    assert [e["created_at"] for e in events] == sorted(
        (e["created_at"] for e in events), reverse=True
    )
    messages = [e["message"] for e in reversed(events) if e["type"] == "message"]
    assert messages[:4] == [
        f"Created fine-tuning job: {job_id}",
        messages[1],
        "Files validated, moving job to queued state",
        "Fine-tuning job started",
    ]
    assert messages[-1] == "The job has successfully completed"
    assert messages[-2].startswith("New fine-tuned model created: ft:")
    metrics = [e for e in reversed(events) if e["type"] == "metrics"]
    assert len(metrics) == 10
    steps = [m["data"]["step"] for m in metrics]
    assert steps == sorted(steps)
    assert steps[-1] == metrics[-1]["data"]["total_steps"]
    assert set(metrics[0]["data"]) == {
        "step",
        "total_steps",
        "train_loss",
        "train_mean_token_accuracy",
    }
    assert metrics[-1]["data"]["train_loss"] < metrics[0]["data"]["train_loss"]
    for event in events:
        OpenAIEvent.model_validate(event)
        JobEventRecord.model_validate(event)
    assert {e["id"] for e in early} <= {e["id"] for e in events}
    assert len({e["id"] for e in events}) == len(events)


async def test_checkpoints_appear_once_per_epoch_and_parse_with_both_models(
    sim: Simulator, clock: ManualClock, api: httpx.AsyncClient
) -> None:
    """Each finished epoch leaves a checkpoint, listed newest first in OpenAI's shape."""
    job_id = sim.create_job(script=SCRIPT, hyperparameters={"n_epochs": 3}, suffix="s")
    path = f"/fine_tuning/jobs/{job_id}/checkpoints"
    clock.advance(30)
    assert (await api.get(path)).json() == {
        "object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False,
    }  # fmt: skip
    clock.advance(100)
    body = (await api.get(path)).json()
    data = body["data"]
    assert [c["step_number"] for c in data] == sorted(
        (c["step_number"] for c in data), reverse=True
    )
    assert len(data) == 3
    assert (body["first_id"], body["last_id"]) == (data[0]["id"], data[-1]["id"])
    model = sim.job(job_id)["fine_tuned_model"]
    assert data[0]["fine_tuned_model_checkpoint"] == f"{model}:ckpt-step-{data[0]['step_number']}"
    for checkpoint in data:
        assert checkpoint["id"].startswith("ftckpt_")
        assert checkpoint["fine_tuning_job_id"] == job_id
        OpenAICheckpoint.model_validate(checkpoint)
        Checkpoint.model_validate(checkpoint)
    second = (await api.get(path, params={"limit": 1, "after": data[0]["id"]})).json()
    assert [c["id"] for c in second["data"]] == [data[1]["id"]]
    assert second["has_more"] is True


def test_a_failed_job_logs_its_error_and_keeps_its_early_checkpoints(
    sim: Simulator, clock: ManualClock
) -> None:
    """A job failing mid-run logs an error event; checkpoints stop where it failed."""
    error = {
        "code": "invalid_training_file",
        "message": "Line 3 is not JSON.",
        "param": "training_file",
    }
    script = [Step(0, "running"), Step(100, "failed", error)]
    job_id = sim.create_job(script=script, hyperparameters={"n_epochs": 4}, train_seconds=200)
    clock.advance(100)
    job = sim.job(job_id)
    assert job["error"] == error
    assert job["finished_at"] == int(START) + 100
    assert sim.events(job_id)[0] | {"id": None} == {
        "object": "fine_tuning.job.event", "id": None, "created_at": int(START) + 100,
        "level": "error", "message": "Line 3 is not JSON.", "data": {}, "type": "message",
    }  # fmt: skip
    assert len(sim.checkpoints(job_id)) == 2


# -- controls -----------------------------------------------------------------------------------


async def test_cancel_stops_a_job_and_a_finished_job_cannot_be_cancelled(
    sim: Simulator, clock: ManualClock, api: httpx.AsyncClient
) -> None:
    """POST cancel ends a running job for good; cancelling it again is a 400."""
    job_id = sim.create_job(script=SCRIPT)
    clock.advance(40)
    response = await api.post(f"/fine_tuning/jobs/{job_id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["finished_at"] == int(START) + 40
    clock.advance(500)
    assert sim.status(job_id) == "cancelled"
    assert sim.events(job_id)[0]["message"] == "The job has been cancelled"
    again = await api.post(f"/fine_tuning/jobs/{job_id}/cancel")
    assert again.status_code == 400
    assert "cancelled" in error_of(again)["message"]
    with pytest.raises(InvalidJobState):
        sim.cancel(job_id)


async def test_pause_and_resume_shift_the_rest_of_the_timeline(
    sim: Simulator, clock: ManualClock, api: httpx.AsyncClient
) -> None:
    """A paused job holds still; on resume its remaining steps move by the time it was paused."""
    job_id = sim.create_job(script=SCRIPT)
    path = f"/fine_tuning/jobs/{job_id}"
    clock.advance(70)  # 40 s into a 100 s run
    paused = (await api.post(f"{path}/pause")).json()
    assert paused["status"] == "paused"
    assert paused["estimated_finish"] is None
    clock.advance(1000)
    assert sim.status(job_id) == "paused"
    resumed = (await api.post(f"{path}/resume")).json()
    assert resumed["status"] == "running"
    assert resumed["estimated_finish"] == int(clock.now()) + 60
    clock.advance(59)
    assert sim.status(job_id) == "running"
    clock.advance(1)
    assert sim.job(job_id)["finished_at"] == int(START) + 1130
    messages = [e["message"] for e in sim.events(job_id) if e["type"] == "message"]
    assert "Fine-tuning job paused" in messages
    assert "Fine-tuning job resumed" in messages


async def test_pause_and_resume_refuse_the_wrong_status(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    """Only a running job can be paused and only a paused one resumed (400 otherwise)."""
    job_id = sim.create_job(script=SCRIPT)
    for action in ("pause", "resume"):
        response = await api.post(f"/fine_tuning/jobs/{job_id}/{action}")
        assert response.status_code == 400
        assert error_of(response)["param"] == "fine_tuning_job_id"


def test_set_status_forces_any_status_and_fields(sim: Simulator, clock: ManualClock) -> None:
    """set_status puts a job in any status, Azure's ``pending`` included, and keeps it there."""
    job_id = sim.create_job(script=SCRIPT)
    pending = sim.set_status(job_id, "pending", estimated_finish=123)
    assert (pending["status"], pending["estimated_finish"]) == ("pending", 123)
    clock.advance(1000)
    assert FineTuningJob.model_validate(sim.job(job_id)).status == "pending"
    assert sim.events(job_id)[0]["message"] == "Job status changed to pending"
    error = {"code": "quota", "message": "Out of credit.", "param": None}
    failed = sim.set_status(job_id, "failed", error=error)
    assert failed["error"] == error
    assert OpenAIJob.model_validate(failed).error is not None


def test_remove_forgets_a_job(sim: Simulator) -> None:
    """remove() drops a job from reads and the list; an unknown id raises JobNotFound."""
    keep, gone = sim.create_job(script=SCRIPT), sim.create_job(script=SCRIPT)
    sim.remove(gone)
    assert sim.job_ids() == [keep]
    with pytest.raises(JobNotFound):
        sim.job(gone)
    with pytest.raises(JobNotFound):
        sim.remove(gone)


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("GET", "/events"), ("GET", "/checkpoints"), ("POST", "/cancel")],
)
async def test_an_unknown_job_is_a_404_in_openais_shape(
    api: httpx.AsyncClient, method: str, suffix: str
) -> None:
    """Every job endpoint answers 404 with OpenAI's error body for an unknown id."""
    response = await api.request(method, f"/fine_tuning/jobs/ftjob-nope{suffix}")
    assert response.status_code == 404
    error = error_of(response)
    assert "ftjob-nope" in error["message"]
    assert error["type"] == "invalid_request_error"


async def test_unknown_urls_and_methods_are_refused(sim: Simulator) -> None:
    """An unknown path is a 404 and a wrong method a 405; the /v1 prefix is optional."""
    transport = httpx.ASGITransport(app=sim)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as bare:
        assert (await bare.get("/fine_tuning/jobs")).status_code == 200
        assert (await bare.get("/v1/models")).status_code == 404
        assert error_of(await bare.get("/v1/models"))["message"] == "Invalid URL (GET /v1/models)"
        assert (await bare.delete("/v1/fine_tuning/jobs")).status_code == 405


async def test_a_wrong_or_missing_key_is_a_401_that_never_echoes_it(clock: ManualClock) -> None:
    """With api_key set, a request without the right bearer key gets 401; the right one, 200."""
    sim = Simulator(clock, api_key=KEY)
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim/v1") as client:
        missing = await client.get("/fine_tuning/jobs")
        assert missing.status_code == 401
        assert "didn't provide an API key" in error_of(missing)["message"]
        wrong = await client.get("/fine_tuning/jobs", headers={"Authorization": "Bearer sk-guess"})
        assert wrong.status_code == 401
        assert error_of(wrong)["code"] == "invalid_api_key"
        assert "sk-guess" not in wrong.text
        assert KEY not in wrong.text
        basic = await client.get("/fine_tuning/jobs", headers={"Authorization": f"Basic {KEY}"})
        assert basic.status_code == 401
        right = await client.get("/fine_tuning/jobs", headers={"Authorization": f"Bearer {KEY}"})
        assert right.status_code == 200


# -- faults -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "content_type"), [(500, "json"), (503, "json"), (502, "html")])
async def test_fail_next_answers_errors_then_recovers(
    sim: Simulator, api: httpx.AsyncClient, status: int, content_type: str
) -> None:
    """fail_next(n) answers the next n requests with the status (JSON, or a gateway's HTML)."""
    sim.faults.fail_next(2, status=status)
    for _ in range(2):
        response = await api.get("/fine_tuning/jobs")
        assert response.status_code == status
        assert content_type in response.headers["content-type"]
        if content_type == "json":
            assert error_of(response)["type"] == "server_error"
    assert (await api.get("/fine_tuning/jobs")).status_code == 200
    assert sim.stats.faults == 2
    assert sim.faults.pending == 0


async def test_a_rate_limit_carries_both_retry_hints(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    """A 429 says how long to wait in Retry-After (whole seconds) and retry-after-ms."""
    sim.faults.fail_next(1, status=429, retry_after=2.5)
    response = await api.get("/fine_tuning/jobs")
    assert response.status_code == 429
    assert (response.headers["retry-after"], response.headers["retry-after-ms"]) == ("3", "2500")
    assert error_of(response)["code"] == "rate_limit_exceeded"
    assert parse_retry_after(response.headers) == 2.5
    sim.faults.retry_after = 4.0
    sim.faults.rate_limit_rate = 1.0
    assert (await api.get("/fine_tuning/jobs")).headers["retry-after-ms"] == "4000"


@pytest.mark.parametrize("kind", ["json", "html"])
async def test_malformed_next_breaks_the_body_of_a_200(
    sim: Simulator, api: httpx.AsyncClient, kind: str
) -> None:
    """malformed_next answers 200 with cut-off JSON or an HTML page."""
    sim.add_jobs(3)
    sim.faults.malformed_next(1, kind)  # type: ignore[arg-type]
    response = await api.get("/fine_tuning/jobs")
    assert response.status_code == 200
    if kind == "json":
        assert response.text.startswith('{"object": "list"')
        with pytest.raises(json.JSONDecodeError):
            response.json()
    else:
        assert response.headers["content-type"].startswith("text/html")
        assert response.text.startswith("<html>")
    assert (await api.get("/fine_tuning/jobs")).json()["object"] == "list"


async def test_one_shot_faults_can_be_scoped_to_a_path_or_route(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    """A fault scoped to a path or a route kind waits for a request that matches it."""
    job_id = sim.create_job(script=SCRIPT)
    sim.faults.fail_next(1, status=500, path="/events")
    sim.faults.fail_next(1, status=503, route="retrieve")
    assert (await api.get("/fine_tuning/jobs")).status_code == 200
    assert (await api.get(f"/fine_tuning/jobs/{job_id}/checkpoints")).status_code == 200
    assert (await api.get(f"/fine_tuning/jobs/{job_id}/events")).status_code == 500
    assert (await api.get(f"/fine_tuning/jobs/{job_id}")).status_code == 503
    assert (await api.get(f"/fine_tuning/jobs/{job_id}")).status_code == 200


async def test_probabilistic_faults_are_seeded(clock: ManualClock) -> None:
    """The same seed meets the same faults in the same order; rates decide how many."""
    runs = []
    for _ in range(2):
        faults = Faults(seed=5, error_rate=0.2, rate_limit_rate=0.2, malformed_rate=0.2)
        sim = Simulator(clock, faults=faults)
        transport = httpx.ASGITransport(app=sim.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim/v1") as client:
            answers = []
            for _ in range(60):
                response = await client.get("/fine_tuning/jobs")
                answers.append((response.status_code, response.content))
        runs.append(answers)
    assert runs[0] == runs[1]
    statuses = {status for status, _ in runs[0]}
    assert statuses >= {200, 429}
    assert statuses & {500, 502, 503}
    malformed = [body for status, body in runs[0] if status == 200 and not body.endswith(b"}")]
    assert malformed
    assert len(malformed) < 60


async def test_faults_clear_and_scope(sim: Simulator, api: httpx.AsyncClient) -> None:
    """Probabilistic faults can be limited to a path, and clear() removes every fault."""
    job_id = sim.create_job(script=SCRIPT)
    sim.faults.error_rate = 1.0
    sim.faults.scope = "/events"
    assert (await api.get("/fine_tuning/jobs")).status_code == 200
    assert (await api.get(f"/fine_tuning/jobs/{job_id}/events")).status_code >= 500
    sim.faults.fail_next(3)
    sim.faults.clear()
    assert sim.faults.pending == 0
    assert (await api.get(f"/fine_tuning/jobs/{job_id}/events")).status_code == 200


async def test_latency_delays_every_answer(sim: Simulator, api: httpx.AsyncClient) -> None:
    """latency adds real seconds before each answer."""
    sim.faults.latency = 0.05
    began = time.monotonic()
    assert (await api.get("/fine_tuning/jobs")).status_code == 200
    assert time.monotonic() - began >= 0.05


async def test_a_hung_request_never_blocks_the_others(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    """hang_next holds one request while others are served; release_hangs lets it go with 503."""
    sim.faults.hang_next(1, route="list")
    hung: list[httpx.Response] = []

    async def ask() -> None:
        hung.append(await api.get("/fine_tuning/jobs"))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            await anyio.wait_all_tasks_blocked()
            assert hung == []
            assert (await api.get("/fine_tuning/jobs")).status_code == 200
            assert sim.release_hangs() == 1
    assert hung[0].status_code == 503


async def test_a_hung_request_ends_when_the_client_gives_up(sim: Simulator) -> None:
    """Over a real socket, a hung request times out on the client while others are answered."""
    sim.faults.hang_next(1, route="retrieve")
    job_id = sim.create_job(script=SCRIPT)
    with anyio.fail_after(5):
        async with (
            serve_simulator(sim, port=0) as url,
            httpx.AsyncClient(base_url=url, timeout=0.2) as client,
        ):
            with pytest.raises(httpx.ReadTimeout):
                await client.get(f"/fine_tuning/jobs/{job_id}")
            assert (await client.get(f"/fine_tuning/jobs/{job_id}")).status_code == 200


@pytest.mark.parametrize("mode", ["repeat", "empty", "cycle"])
async def test_endless_pages_always_say_has_more(
    sim: Simulator, api: httpx.AsyncClient, mode: str
) -> None:
    """With endless_pages every page says has_more; past the end it repeats, empties or cycles."""
    ids = sim.add_jobs(5)
    newest = ids[::-1]
    sim.faults.endless_pages = True
    sim.faults.endless_mode = mode  # type: ignore[assignment]
    params: dict[str, Any] = {"limit": 2}
    pages = []
    for _ in range(5):
        body = (await api.get("/fine_tuning/jobs", params=params)).json()
        assert body["has_more"] is True
        pages.append([job["id"] for job in body["data"]])
        if body["data"]:
            params["after"] = body["data"][-1]["id"]
    assert pages[:3] == [newest[0:2], newest[2:4], newest[4:5]]
    expected = {"repeat": newest[3:5], "empty": [], "cycle": newest[0:2]}[mode]
    assert pages[3] == expected


# -- counting -----------------------------------------------------------------------------------


async def test_stats_count_requests_per_route(sim: Simulator, api: httpx.AsyncClient) -> None:
    """stats counts each request by route kind and in total, and resets to zero."""
    created = await api.post("/fine_tuning/jobs", json={"model": "m", "training_file": "f"})
    job_id = created.json()["id"]
    path = f"/fine_tuning/jobs/{job_id}"
    await api.get("/fine_tuning/jobs")
    await api.get("/fine_tuning/jobs")
    await api.get(path)
    await api.get(f"{path}/events")
    await api.get(f"{path}/checkpoints")
    await api.post(f"{path}/cancel")
    await api.get("/elsewhere")
    counts = sim.stats.as_dict()
    assert counts == {
        "list": 2, "create": 1, "retrieve": 1, "events": 1, "checkpoints": 1, "cancel": 1,
        "pause": 0, "resume": 0, "other": 1, "total": 8, "faults": 0,
    }  # fmt: skip
    assert sim.stats["list"] == 2
    assert sim.stats.total == 8
    sim.stats.reset()
    assert sim.stats.total == 0


# -- the demo -----------------------------------------------------------------------------------


async def test_the_demo_scenario_makes_exactly_its_transitions(
    sim: Simulator, clock: ManualClock, api: httpx.AsyncClient
) -> None:
    """Polled every 5 s, the demo shows exactly demo_transitions() and ends by DEMO_DURATION."""
    ids = demo_scenario(sim)
    seen: dict[str, str] = {}
    observed: list[tuple[str, str]] = []
    while clock.now() <= START + DEMO_DURATION:
        jobs = await walk(api, "/fine_tuning/jobs", 100)
        for job in sorted(jobs, key=lambda j: (j["created_at"], j["id"])):
            if seen.get(job["id"]) != job["status"]:
                observed.append((job["id"], job["status"]))
                seen[job["id"]] = job["status"]
        clock.advance(5)
    assert observed == demo_transitions(ids)
    finals = [sim.job(job_id) for job_id in ids]
    assert [job["status"] for job in finals].count("succeeded") == 3
    assert {job["status"] for job in finals} == {"succeeded", "failed", "cancelled"}
    failed = next(job for job in finals if job["status"] == "failed")
    assert failed["error"]["code"] == "invalid_training_file"
    assert max(job["finished_at"] for job in finals) == int(START + DEMO_DURATION)
    for job in finals:
        OpenAIJob.model_validate(job)


def test_the_demo_timeline_is_spaced_for_a_ten_second_poll(sim: Simulator) -> None:
    """Demo transitions are at distinct times 15 s apart or more, within ten minutes."""
    timeline = demo_timeline(demo_scenario(sim))
    times = [t.at for t in timeline]
    assert all(b - a >= 15 for a, b in itertools.pairwise(times))
    assert times[-1] == DEMO_DURATION <= 600
    assert len(timeline) == 19


def test_the_demo_is_deterministic_for_a_seed(clock: ManualClock) -> None:
    """The same seed gives the demo the same job ids."""
    assert demo_scenario(Simulator(clock, seed=7)) == demo_scenario(Simulator(clock, seed=7))


# -- clients ------------------------------------------------------------------------------------


async def test_the_openai_sdk_works_against_the_simulator(
    sim: Simulator, clock: ManualClock
) -> None:
    """OpenAI's SDK creates, lists, pauses, resumes, cancels, reads events and checkpoints."""
    # The SDK is built on httpx's fork, httpx2, whose ASGI transport serves the app the same way.
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=sim.app))
    client = openai.AsyncOpenAI(
        api_key=KEY, base_url="http://sim/v1", http_client=http, max_retries=0
    )
    async with client:
        sim.add_jobs(25)
        job = await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file="file-t")
        listed = [j.id async for j in client.fine_tuning.jobs.list(limit=10)]
        assert len(listed) == 26
        assert listed[0] == job.id
        clock.advance(3600)
        done = await client.fine_tuning.jobs.retrieve(job.id)
        assert done.status in ("succeeded", "failed")
        events = [e async for e in client.fine_tuning.jobs.list_events(job.id, limit=5)]
        assert events[-1].message == f"Created fine-tuning job: {job.id}"
        checkpoints = [c async for c in client.fine_tuning.jobs.checkpoints.list(job.id)]
        assert all(c.fine_tuning_job_id == job.id for c in checkpoints)
        running = sim.add_jobs(1, "running")[0]
        assert (await client.fine_tuning.jobs.pause(running)).status == "paused"  # type: ignore[comparison-overlap]
        assert (await client.fine_tuning.jobs.resume(running)).status == "running"
        assert (await client.fine_tuning.jobs.cancel(running)).status == "cancelled"
        with pytest.raises(openai.NotFoundError):
            await client.fine_tuning.jobs.retrieve("ftjob-nope")


async def test_the_watcher_client_retries_through_faults_over_a_real_socket(
    clock: ManualClock,
) -> None:
    """serve_simulator yields a /v1 URL on which APIClient authenticates and retries to success."""
    sim = Simulator(clock, seed=1, api_key=KEY)
    job_id = sim.create_job(script=SCRIPT)
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    sim.faults.fail_next(1, status=503)
    sim.faults.fail_next(1, status=429, retry_after=1.5)
    with anyio.fail_after(5):
        async with serve_simulator(sim, port=0) as url:
            assert url.startswith("http://127.0.0.1:")
            assert url.endswith("/v1")
            async with APIClient(base_url=url, api_key=KEY, sleep=no_wait) as client:
                page = await client.list_jobs(limit=10)
                assert [job.id for job in page.items] == [job_id]
                assert (await client.retrieve_job(job_id)).status == "validating_files"
    assert waits[1] == 1.5
    assert sim.stats["list"] == 3
    assert sim.stats["retrieve"] == 1
