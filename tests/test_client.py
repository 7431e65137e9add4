"""The API client: auth headers, pagination, retries and their waits, typed errors, no leaks."""

from __future__ import annotations

import email.utils
import json
import random
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from watcher.client import APIClient, Page
from watcher.errors import (
    APIError,
    AuthenticationError,
    MalformedResponse,
    NotFoundError,
    RateLimited,
    ServerError,
)
from watcher.models import Checkpoint, FineTuningJob, JobEventRecord

KEY = "sk-proj-TEST-do-not-leak-0123456789abcdef"
BASE = "https://api.test/v1"

Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def job(job_id: str = "ftjob-1", status: str | None = "running", **extra: Any) -> dict[str, Any]:
    """A minimal job as the API lists it."""
    return {"object": "fine_tuning.job", "id": job_id, "status": status, **extra}


def page(items: list[Any], has_more: bool = False, **extra: Any) -> httpx.Response:
    """A list response in the API's shape."""
    return httpx.Response(
        200, json={"object": "list", "data": items, "has_more": has_more, **extra}
    )


def error(status: int, message: str = "nope", **headers: str) -> httpx.Response:
    """An error response with OpenAI's error body."""
    body = {"error": {"message": message, "type": "invalid_request_error", "code": None}}
    return httpx.Response(status, json=body, headers=headers)


class Script:
    """A mock API that answers from a script (the last answer repeats) and records requests."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        """Answer ``request`` with the next scripted response, or raise the scripted error."""
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        return answer


class Waits:
    """A sleep that records the waits it is asked for and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        """Record ``seconds`` instead of sleeping."""
        self.waits.append(seconds)


def make(script: Script, **options: Any) -> tuple[APIClient, Waits]:
    """A client on ``script`` with a recording sleep."""
    waits = Waits()
    options.setdefault("api_key", KEY)
    options.setdefault("source", "prod")
    client = APIClient(base_url=BASE, transport=httpx.MockTransport(script), sleep=waits, **options)
    return client, waits


class TopDraw(random.Random):
    """A random source pinned to its maximum, so the backoff ceiling itself is observed."""

    def random(self) -> float:
        """The largest draw."""
        return 1.0


# -- requests ------------------------------------------------------------------------------


async def test_sends_bearer_key_org_project_and_user_agent() -> None:
    """Every request carries the bearer key, the organization, the project and a User-Agent."""
    script = Script(page([]))
    client, _ = make(script, organization="org-1", project="proj-1")
    async with client:
        await client.list_jobs()
    headers = script.requests[0].headers
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["openai-organization"] == "org-1"
    assert headers["openai-project"] == "proj-1"
    assert headers["user-agent"].startswith("ftwatch/")


async def test_omits_optional_headers_when_not_configured() -> None:
    """Without a key, organization or project, none of those headers is sent."""
    script = Script(page([]))
    client, _ = make(script, api_key=None)
    async with client:
        await client.list_jobs()
    headers = script.requests[0].headers
    assert "authorization" not in headers
    assert "openai-organization" not in headers
    assert "openai-project" not in headers


async def test_accepts_key_as_secretstr_and_applies_timeout() -> None:
    """A SecretStr key is sent as is, and the configured timeout applies to the request."""
    from pydantic import SecretStr

    script = Script(page([]))
    client, _ = make(script, api_key=SecretStr(KEY), timeout=12.5)
    async with client:
        await client.list_jobs()
    request = script.requests[0]
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.extensions["timeout"] == {
        "connect": 12.5,
        "read": 12.5,
        "write": 12.5,
        "pool": 12.5,
    }


async def test_injected_http_client_gets_auth_and_is_left_open() -> None:
    """A shared httpx client is used with our headers and is not closed by aclose()."""
    script = Script(page([]))
    http = httpx.AsyncClient(transport=httpx.MockTransport(script))
    async with APIClient(base_url=BASE, api_key=KEY, http=http) as client:
        await client.list_jobs()
    assert script.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert not http.is_closed
    await http.aclose()


async def test_own_http_client_is_closed_by_aclose() -> None:
    """The httpx client the APIClient built for itself is closed when it is closed."""
    client, _ = make(Script(page([])))
    await client.aclose()
    with pytest.raises(RuntimeError):
        await client.list_jobs()


async def test_endpoints_use_documented_paths_and_methods() -> None:
    """Each call hits its documented path; the job id is escaped; cancel is a POST."""
    script = Script(
        httpx.Response(200, json=job("ft:1")),
        page([{"id": "ev-1", "level": "info", "message": "Created"}]),
        page([{"id": "ck-1", "step_number": 88, "metrics": {"train_loss": 0.4}}]),
        httpx.Response(200, json=job("ft:1", "cancelled")),
    )
    client, _ = make(script)
    async with client:
        got = await client.retrieve_job("ft:1")
        events = await client.list_job_events("ft:1", limit=5, after="ev-0")
        checkpoints = await client.list_checkpoints("ft:1")
        cancelled = await client.cancel_job("ft:1")
    seen = [(r.method, r.url.raw_path.decode()) for r in script.requests]
    assert seen == [
        ("GET", "/v1/fine_tuning/jobs/ft%3A1"),
        ("GET", "/v1/fine_tuning/jobs/ft%3A1/events?limit=5&after=ev-0"),
        ("GET", "/v1/fine_tuning/jobs/ft%3A1/checkpoints?limit=10"),
        ("POST", "/v1/fine_tuning/jobs/ft%3A1/cancel"),
    ]
    assert got == FineTuningJob(id="ft:1", status="running")
    assert events.items[0] == JobEventRecord(id="ev-1", level="info", message="Created")
    assert checkpoints.items[0] == Checkpoint(
        id="ck-1", step_number=88, metrics={"train_loss": 0.4}
    )
    assert cancelled.status == "cancelled"


async def test_empty_job_id_is_refused() -> None:
    """An empty job id is a programming error, not a request to the list endpoint."""
    client, _ = make(Script(page([])))
    async with client:
        with pytest.raises(ValueError, match="not a job id"):
            await client.retrieve_job("")


# -- pagination ----------------------------------------------------------------------------


async def test_pages_follow_the_after_cursor() -> None:
    """Reading pages with ``after=last_id`` walks the whole list exactly once."""
    jobs = [job(f"ftjob-{n}") for n in range(5)]

    def serve(request: httpx.Request) -> httpx.Response:
        limit = int(request.url.params["limit"])
        after = request.url.params.get("after")
        start = 0 if after is None else [j["id"] for j in jobs].index(after) + 1
        chunk = jobs[start : start + limit]
        return page(chunk, has_more=start + limit < len(jobs))

    client, _ = make(Script(serve))
    seen: list[str] = []
    cursors: list[str | None] = []
    async with client:
        after = None
        while True:
            cursors.append(after)
            result = await client.list_jobs(limit=2, after=after)
            seen += [j.id for j in result.items]
            if not result.has_more:
                break
            after = result.last_id
    assert seen == [j["id"] for j in jobs]
    assert cursors == [None, "ftjob-1", "ftjob-3"]
    assert client.requests_sent == 3


async def test_malformed_item_is_skipped_counted_and_logged_without_its_body() -> None:
    """An item with no status is dropped and logged by index; the cursor is still its id."""
    script = Script(
        page([job("ftjob-1"), "not an object", job("ftjob-3", status=None, note="BODY-MARKER")])
    )
    client, _ = make(script)
    with capture_logs() as logs:
        async with client:
            result = await client.list_jobs()
    assert [j.id for j in result.items] == ["ftjob-1"]
    assert result.skipped == 2
    assert result.last_id == "ftjob-3"
    skipped = [entry for entry in logs if entry["event"] == "api_item_skipped"]
    assert [(e["index"], e["log_level"]) for e in skipped] == [(1, "warning"), (2, "warning")]
    assert skipped[1]["reason"] == "status: string_type"
    assert "BODY-MARKER" not in repr(logs)
    assert "not an object" not in repr(logs)


async def test_page_cursor_falls_back_past_items_without_an_id() -> None:
    """When the last raw item has no id, the cursor is the last id that exists."""
    client, _ = make(Script(page([job("ftjob-1"), {"status": "running"}], has_more=True)))
    async with client:
        result = await client.list_jobs()
    assert result == Page(
        items=[FineTuningJob(id="ftjob-1", status="running")],
        has_more=True,
        last_id="ftjob-1",
        skipped=1,
    )


async def test_empty_page_uses_the_body_last_id() -> None:
    """An empty page has no item to take a cursor from; the body's own last_id is used."""
    client, _ = make(Script(page([], last_id="ck-9")))
    async with client:
        result = await client.list_checkpoints("ftjob-1")
    assert result == Page(items=[], has_more=False, last_id="ck-9", skipped=0)


# -- retries -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
async def test_retryable_status_then_success(status: int) -> None:
    """Each retryable status is retried once and the call then succeeds."""
    client, waits = make(Script(error(status), httpx.Response(200, json=job())))
    async with client:
        got = await client.retrieve_job("ftjob-1")
    assert got.id == "ftjob-1"
    assert client.requests_sent == 2
    assert len(waits.waits) == 1


async def test_read_timeout_is_retried() -> None:
    """A transport raising ReadTimeout is retried and the call then succeeds."""
    request = httpx.Request("GET", BASE)
    script = Script(httpx.ReadTimeout("timed out", request=request), page([job()]))
    client, waits = make(script)
    async with client:
        result = await client.list_jobs()
    assert [j.id for j in result.items] == ["ftjob-1"]
    assert client.requests_sent == 2
    assert len(waits.waits) == 1


async def test_connection_errors_exhaust_into_server_error() -> None:
    """A host that never answers gives ServerError with no status after max_attempts tries."""
    request = httpx.Request("GET", BASE)
    client, waits = make(Script(httpx.ConnectError("refused", request=request)), max_attempts=3)
    async with client:
        with pytest.raises(ServerError) as caught:
            await client.list_jobs()
    assert caught.value.status_code is None
    assert caught.value.source == "prod"
    assert "ConnectError" in str(caught.value)
    assert client.requests_sent == 3
    assert len(waits.waits) == 2


async def test_unsendable_request_fails_at_once() -> None:
    """A transport failure that would repeat every time (bad scheme) is not retried."""
    request = httpx.Request("GET", BASE)
    client, waits = make(Script(httpx.UnsupportedProtocol("no", request=request)))
    async with client:
        with pytest.raises(APIError, match="UnsupportedProtocol"):
            await client.list_jobs()
    assert client.requests_sent == 1
    assert waits.waits == []


async def test_retry_after_seconds_is_honoured() -> None:
    """A Retry-After in seconds is the wait chosen before the next attempt."""
    client, waits = make(Script(error(429, **{"retry-after": "7"}), page([])))
    async with client:
        await client.list_jobs()
    assert waits.waits == [7.0]


async def test_retry_after_ms_wins_over_retry_after() -> None:
    """OpenAI's retry-after-ms (milliseconds) is preferred to Retry-After."""
    headers = {"retry-after-ms": "1500", "retry-after": "9"}
    client, waits = make(Script(error(503, **headers), page([])))
    async with client:
        await client.list_jobs()
    assert waits.waits == [1.5]


async def test_retry_after_http_date_is_honoured() -> None:
    """A Retry-After given as an HTTP date waits until that date."""
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    client, waits = make(Script(error(429, **{"retry-after": when}), page([])))
    async with client:
        await client.list_jobs()
    # HTTP dates have one-second resolution, so the wait is within a second of 20.
    assert 18.5 <= waits.waits[0] <= 20.0


async def test_retry_after_is_capped_at_max_backoff() -> None:
    """A server asking for an hour gets at most max_backoff."""
    client, waits = make(Script(error(429, **{"retry-after": "3600"}), page([])), max_backoff=10)
    async with client:
        await client.list_jobs()
    assert waits.waits == [10.0]


async def test_backoff_doubles_and_is_capped() -> None:
    """Without a hint the backoff ceiling doubles per attempt and stops at max_backoff."""
    client, waits = make(Script(error(503)), max_attempts=7, max_backoff=3, rng=TopDraw())
    async with client:
        with pytest.raises(ServerError) as caught:
            await client.list_jobs()
    assert waits.waits == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert caught.value.status_code == 503
    assert client.requests_sent == 7


async def test_backoff_is_full_jitter_under_the_ceiling() -> None:
    """Each jittered wait lies between zero and that attempt's ceiling."""
    client, waits = make(Script(error(500)), max_attempts=8, max_backoff=4)
    async with client:
        with pytest.raises(ServerError):
            await client.list_jobs()
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert all(0 <= w <= c for w, c in zip(waits.waits, ceilings, strict=True))


async def test_exhausted_rate_limit_raises_with_retry_after() -> None:
    """429 on every attempt raises RateLimited carrying the server's last hint."""
    client, waits = make(Script(error(429, **{"retry-after": "30"})), max_attempts=3, max_backoff=5)
    async with client:
        with pytest.raises(RateLimited) as caught:
            await client.list_jobs()
    assert caught.value.retry_after == 30.0
    assert caught.value.status_code == 429
    assert caught.value.source == "prod"
    assert waits.waits == [5.0, 5.0]
    assert client.requests_sent == 3


async def test_exhausted_rate_limit_without_hint_has_no_retry_after() -> None:
    """429 with no Retry-After raises RateLimited whose retry_after is None."""
    client, _ = make(Script(error(429)), max_attempts=2)
    async with client:
        with pytest.raises(RateLimited) as caught:
            await client.list_jobs()
    assert caught.value.retry_after is None


async def test_requests_sent_counts_every_attempt_across_calls() -> None:
    """requests_sent counts each HTTP request, first tries and retries, over many calls."""
    client, _ = make(Script(error(500), page([]), page([]), error(502), page([])))
    async with client:
        for _ in range(3):
            await client.list_jobs()
    assert client.requests_sent == 5


# -- final errors --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_key_raises_authentication_error_at_once(status: int) -> None:
    """401 and 403 are not retried; the error names the source and api_key, never the key."""
    client, waits = make(Script(error(status, f"Incorrect API key provided: {KEY}")))
    async with client:
        with pytest.raises(AuthenticationError) as caught:
            await client.list_jobs()
    assert caught.value.status_code == status
    assert caught.value.source == "prod"
    assert "api_key" in str(caught.value)
    assert "'prod'" in str(caught.value)
    assert client.requests_sent == 1
    assert waits.waits == []


async def test_unknown_job_raises_not_found() -> None:
    """404 raises NotFoundError at once."""
    client, _ = make(Script(error(404, "No such job")))
    async with client:
        with pytest.raises(NotFoundError) as caught:
            await client.retrieve_job("ftjob-missing")
    assert caught.value.status_code == 404
    assert client.requests_sent == 1


async def test_other_client_error_carries_openai_message() -> None:
    """A 400 raises a plain APIError with the status and OpenAI's own message."""
    client, _ = make(Script(error(400, "Job ftjob-1 has already completed.")))
    async with client:
        with pytest.raises(APIError) as caught:
            await client.cancel_job("ftjob-1")
    assert type(caught.value) is APIError
    assert caught.value.status_code == 400
    assert str(caught.value) == (
        "cancel_job for source 'prod' failed with HTTP 400: Job ftjob-1 has already completed."
    )
    assert client.requests_sent == 1


async def test_client_error_without_json_body_still_names_the_status() -> None:
    """A 422 with a plain-text body raises APIError naming the status."""
    client, _ = make(Script(httpx.Response(422, text="unprocessable")))
    async with client:
        with pytest.raises(APIError, match="HTTP 422"):
            await client.list_jobs()


@pytest.mark.parametrize(
    ("response", "what"),
    [
        (httpx.Response(200, text="{not json"), "not JSON"),
        (
            httpx.Response(
                200,
                text="<html><body>BODY-MARKER</body></html>",
                headers={"content-type": "text/html"},
            ),
            "HTML",
        ),
        (httpx.Response(200, text="<!doctype html>BODY-MARKER"), "HTML"),
        (httpx.Response(200, json={"object": "list", "items": ["BODY-MARKER"]}), "data list"),
        (httpx.Response(200, json=["BODY-MARKER"]), "data list"),
    ],
)
async def test_malformed_list_body_raises_malformed_response(
    response: httpx.Response, what: str
) -> None:
    """A 2xx list body that is not the expected JSON raises MalformedResponse, not retried."""
    client, _ = make(Script(response))
    async with client:
        with pytest.raises(MalformedResponse, match=what) as caught:
            await client.list_jobs()
    assert "BODY-MARKER" not in str(caught.value)
    assert caught.value.status_code == 200
    assert client.requests_sent == 1


@pytest.mark.parametrize(
    "body", [{"id": "ftjob-1"}, {"status": "running"}, {"id": "", "status": "x"}, [], None]
)
async def test_retrieved_job_without_id_or_status_is_malformed(body: Any) -> None:
    """A retrieved job with no valid id or status raises MalformedResponse."""
    client, _ = make(Script(httpx.Response(200, content=json.dumps(body).encode())))
    async with client:
        with pytest.raises(MalformedResponse, match="valid id and status"):
            await client.retrieve_job("ftjob-1")


# -- secrets -------------------------------------------------------------------------------


def _timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectTimeout("timed out", request=request)


@pytest.mark.parametrize(
    "answer",
    [
        error(401, f"Incorrect API key provided: {KEY}"),
        error(403, KEY),
        error(400, f"bad key {KEY}"),
        error(404, KEY),
        error(429, KEY, **{"retry-after": "1"}),
        error(500, KEY),
        httpx.Response(200, text=f"<html>{KEY}</html>"),
        httpx.Response(200, json={"key": KEY}),
        _timeout,
    ],
)
async def test_key_never_appears_in_errors_logs_or_repr(answer: Answer) -> None:
    """Whatever goes wrong, the key is in no error's str or repr, no log entry, no repr(client)."""
    client, _ = make(Script(answer), max_attempts=2)
    with capture_logs() as logs:
        async with client:
            with pytest.raises(APIError) as caught:
                await client.list_jobs()
    assert KEY not in str(caught.value)
    assert KEY not in repr(caught.value)
    assert caught.value.__cause__ is None
    assert KEY not in repr(logs)
    assert KEY not in repr(client)
    assert "api.test" in repr(client)


async def test_retries_are_logged_with_source_and_status_only() -> None:
    """Each retry logs a warning with the source, status and wait; no URL, no key."""
    client, _ = make(Script(error(502), page([])))
    with capture_logs() as logs:
        async with client:
            await client.list_jobs()
    [entry] = [e for e in logs if e["event"] == "api_retry"]
    assert entry["source"] == "prod"
    assert entry["status_code"] == 502
    assert entry["attempt"] == 1
    assert "api.test" not in repr(logs)
    assert KEY not in repr(logs)


async def test_client_repr_hides_credentials_in_the_url() -> None:
    """repr(client) shows the host only, never userinfo or a query string from base_url."""
    async with APIClient(
        base_url="https://user:hunter2@api.test/v1?token=t0k", api_key=KEY
    ) as client:
        assert repr(client) == "APIClient(source='default', host='api.test')"
