"""Hostile servers on a real loopback socket: slow bodies, bombs, huge answers, poisoned JSON.

Each server here misbehaves the way one was seen to (issue 7, items 1, 2, 3 and 5): the API
client, the webhook sink and the Slack sink must neither hang, nor balloon, nor crash, nor send
a request outside a job's URL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from anyio.abc import SocketStream
from structlog.testing import capture_logs
from tests.helpers import events_for
from tests.raw_server import (
    RawRequest,
    RawServer,
    answer,
    drip,
    gzip_bomb,
    json_answer,
    routes,
)

from ftwatch_slack import SlackConfig, SlackSink
from ftwatch_webhook import WebhookConfig, WebhookSink
from watcher.client import APIClient
from watcher.errors import (
    InvalidJobId,
    MalformedResponse,
    NotFoundError,
    ServerError,
    SinkUnavailable,
)
from watcher.sinks import Sink

KEY = "sk-proj-hostile-0123456789"
WATCH = [sys.executable, "-m", "watcher", "watch"]
SINKS_TEST = [sys.executable, "-m", "watcher", "sinks", "test"]
MiB = 1024 * 1024


async def _no_wait(seconds: float) -> None:
    """A backoff sleep that returns at once: these tests are about the requests, not the waits."""


def _client(server: RawServer, **options: Any) -> APIClient:
    options.setdefault("timeout", 5.0)
    return APIClient(
        base_url=f"{server.url}/v1", api_key=KEY, source="prod", sleep=_no_wait, **options
    )


def _job(job_id: str, **extra: Any) -> dict[str, Any]:
    return {"object": "fine_tuning.job", "id": job_id, "status": "running", **extra}


def _page_bytes(*items: bytes) -> bytes:
    return b'{"object": "list", "data": [' + b", ".join(items) + b'], "has_more": false}'


def _sinks(url: str, timeout: float) -> list[Sink]:
    return [
        WebhookSink(
            WebhookConfig(name="hooks", type="webhook", url=f"{url}/hook", timeout=timeout)
        ),
        SlackSink(
            SlackConfig(
                name="slack", type="slack", webhook_url=f"{url}/services/T0/x", timeout=timeout
            )
        ),
    ]


@pytest.fixture
async def slow_server() -> AsyncIterator[RawServer]:
    """Headers at once, then a byte every 50 ms: no per-read timeout ever fires."""
    async with RawServer(drip(0.05)) as server:
        yield server


# -- item 1: a deadline on the whole request ------------------------------------------------------


async def test_api_request_on_a_dripping_body_times_out_and_is_retried(
    slow_server: RawServer,
) -> None:
    """Every attempt ends at the client's timeout as a whole, is logged as one, and retried."""
    client = _client(slow_server, timeout=0.3, max_attempts=2)
    with anyio.fail_after(20), capture_logs() as logs:
        async with client:
            with pytest.raises(ServerError) as caught:
                await client.list_jobs()
    assert "after 2 attempts" in str(caught.value)
    assert "timed out" in str(caught.value)
    retries = [e for e in logs if e["event"] == "api_retry"]
    assert len(retries) == 1 and "timed out" in retries[0]["reason"]
    assert slow_server.targets == ["/v1/fine_tuning/jobs?limit=100"] * 2


@pytest.mark.parametrize("kind", ["webhook", "slack"])
async def test_sink_delivery_on_a_dripping_answer_times_out(
    slow_server: RawServer, kind: str
) -> None:
    """A receiver that trickles its answer is a timeout (transient), not a hang."""
    sinks = {s.config.type: s for s in _sinks(slow_server.url, 0.3)}
    [event] = events_for("ftjob-a", ["queued", "running"])
    try:
        with anyio.fail_after(20), pytest.raises(SinkUnavailable, match="timed out"):
            await sinks[kind].send(event)
    finally:
        for sink in sinks.values():
            await sink.aclose()


def test_sinks_test_command_on_a_dripping_slack_ends(tmp_path: Any) -> None:
    """`ftwatch sinks test` against a Slack that trickles its answer exits 1 with one sentence."""

    async def scenario() -> subprocess.CompletedProcess[bytes]:
        async with RawServer(drip(0.05)) as server:
            config = tmp_path / "ftwatch.toml"
            config.write_text(
                f'[state]\npath = "{tmp_path / "state.db"}"\n\n'
                '[[sources]]\nname = "openai"\napi_key = "sk-x"\n\n'
                '[[sinks]]\nname = "slack"\ntype = "slack"\n'
                f'webhook_url = "{server.url}/services/T0/x"\ntimeout = 0.3\n'
            )
            with anyio.fail_after(60):
                return await anyio.run_process(
                    [*SINKS_TEST, "slack", "--config", str(config)],
                    check=False,
                )

    result = anyio.run(scenario)
    err = result.stderr.decode()
    assert result.returncode == 1
    assert "timed out" in err and "Traceback" not in err


# -- item 2: a cap on every body ------------------------------------------------------------------


async def test_a_gzip_bomb_is_a_malformed_response_read_in_bounded_memory() -> None:
    """64 MiB of zeros in 64 KiB of gzip: refused at the limit, never inflated whole."""
    async with RawServer(gzip_bomb(64 * MiB)) as server:
        client = _client(server, max_response_bytes=1 * MiB)
        async with client:
            tracemalloc.start()
            try:
                with pytest.raises(MalformedResponse, match="max_response_bytes"):
                    await client.list_jobs()
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    # httpx's own decoder inflates a whole network chunk at once (tens of MiB here).
    assert peak < 8 * MiB
    assert server.targets == ["/v1/fine_tuning/jobs?limit=100"]  # malformed: not retried


async def test_the_config_key_max_response_bytes_reaches_the_client() -> None:
    """A source's `max_response_bytes` is the cap its client applies, not the default."""
    from watcher.app import client_for
    from watcher.config import SourceConfig

    body = _page_bytes(json.dumps(_job("ftjob-a", metadata={"blob": "x" * 4096})).encode())
    async with RawServer(json_answer(body)) as server:
        source = SourceConfig(
            name="prod", base_url=f"{server.url}/v1", api_key=KEY, max_response_bytes=1024
        )
        async with client_for(source, sleep=_no_wait) as client:
            with pytest.raises(MalformedResponse, match="max_response_bytes"):
                await client.list_jobs()


async def test_an_oversized_job_is_skipped_and_the_page_goes_on() -> None:
    """A job bigger than max_job_bytes is malformed: skipped with a log line, the rest read."""
    huge = json.dumps(_job("ftjob-huge", metadata={"blob": "x" * (2 * MiB)})).encode()
    body = _page_bytes(json.dumps(_job("ftjob-a")).encode(), huge, b'{"id": "ftjob-b"}')
    async with RawServer(json_answer(body)) as server, _client(server) as client:
        with capture_logs() as logs:
            page = await client.list_jobs()
    assert [j.id for j in page.items] == ["ftjob-a"]
    assert page.skipped == 2 and page.last_id == "ftjob-b"
    reasons = [e["reason"] for e in logs if e["event"] == "api_item_skipped"]
    assert reasons[0] == f"larger than {MiB} bytes"


async def test_a_huge_single_job_is_a_malformed_response() -> None:
    """retrieve_job on a job object larger than max_job_bytes raises MalformedResponse."""
    huge = json.dumps(_job("ftjob-huge", metadata={"blob": "x" * (2 * MiB)})).encode()
    async with RawServer(json_answer(huge)) as server, _client(server) as client:
        with pytest.raises(MalformedResponse, match="larger than"):
            await client.retrieve_job("ftjob-huge")


def _big_answer(size: int) -> Any:
    """A handler answering 200 with ``size`` bytes, sent in 64 KiB slices as the peer reads."""

    async def handle(request: RawRequest, stream: SocketStream) -> None:
        await stream.send(
            f"HTTP/1.1 200 OK\r\ncontent-length: {size}\r\nconnection: close\r\n\r\n".encode()
        )
        chunk = b"y" * 65536
        for _ in range(size // len(chunk)):
            await stream.send(chunk)

    return handle


@pytest.mark.parametrize("kind", ["webhook", "slack"])
async def test_a_receivers_10_mb_answer_is_not_read(kind: str) -> None:
    """A sink reads a few KiB of a receiver's answer, whatever its length: delivered, small."""
    [event] = events_for("ftjob-a", ["queued", "running"])
    async with RawServer(_big_answer(10 * MiB)) as server:
        sinks = {s.config.type: s for s in _sinks(server.url, 10.0)}
        try:
            tracemalloc.start()
            try:
                with anyio.fail_after(20):
                    assert await sinks[kind].send(event) == "HTTP 200"
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        finally:
            for sink in sinks.values():
                await sink.aclose()
    assert peak < 2 * MiB


# -- item 3: malformed means malformed ------------------------------------------------------------

DEEP = b"[" * 100_000 + b"]" * 100_000
LONG_NUMBER = b"1" * 5000


async def test_poisoned_items_are_skipped_one_by_one() -> None:
    """Deep nesting and a 5,000-digit integer cost their own item only, with one line each."""
    body = _page_bytes(
        json.dumps(_job("ftjob-a")).encode(),
        b'{"id": "ftjob-deep", "status": "running", "metadata": ' + DEEP + b"}",
        b'{"id": "ftjob-long", "status": "running", "created_at": ' + LONG_NUMBER + b"}",
        json.dumps(_job("ftjob-b")).encode(),
    )
    async with RawServer(json_answer(body)) as server, _client(server) as client:
        with capture_logs() as logs:
            page = await client.list_jobs()
    assert [j.id for j in page.items] == ["ftjob-a", "ftjob-b"]
    assert page.skipped == 2 and page.last_id == "ftjob-b"
    skipped = [e for e in logs if e["event"] == "api_item_skipped"]
    assert [e["reason"] for e in skipped] == ["JSON nested too deep", "a number too long to read"]
    assert not any("exc_info" in e or "exception" in e for e in logs)


@pytest.mark.parametrize(
    ("body", "why"),
    [(DEEP, "nested too deep"), (b'{"id": "x", "n": ' + LONG_NUMBER + b"}", "number too long")],
)
async def test_a_poisoned_single_job_is_a_malformed_response(body: bytes, why: str) -> None:
    """retrieve_job on such a body raises MalformedResponse saying why, not RecursionError."""
    async with RawServer(json_answer(body)) as server, _client(server) as client:
        with pytest.raises(MalformedResponse, match=why):
            await client.retrieve_job("ftjob-x")
    async with RawServer(json_answer(DEEP)) as server, _client(server) as client:
        with pytest.raises(MalformedResponse, match="no data list"):
            await client.list_jobs()


def test_watch_on_a_deeply_nested_job_ends_with_one_sentence() -> None:
    """`ftwatch watch` on a poisoned answer says why, without a traceback, and gives up as it
    does on any answer it cannot use (exit 4 once `--give-up-after` has passed)."""

    async def scenario() -> subprocess.CompletedProcess[bytes]:
        async with RawServer(json_answer(DEEP)) as server:
            env = {**os.environ, "OPENAI_API_KEY": KEY}
            env.pop("FTWATCH_CONFIG", None)
            url = f"{server.url}/v1"
            with anyio.fail_after(60):
                return await anyio.run_process(
                    [
                        *WATCH,
                        "ftjob-x",
                        "--base-url",
                        url,
                        "--interval",
                        "0.05",
                        "--give-up-after",
                        "1",
                    ],
                    check=False,
                    env=env,
                )

    result = anyio.run(scenario)
    err = result.stderr.decode()
    assert result.returncode == 4, err
    assert "Traceback" not in err and "RecursionError" not in err
    assert "nested too deep" in err


# -- item 5: job ids are data, never path ---------------------------------------------------------

BAD_IDS = [".", "..", "a/b", "../../models", "%2e%2e", "", "x" * 300, ".hidden", "a?b", "a#b"]


async def test_ids_that_are_not_plain_tokens_never_reach_a_url() -> None:
    """Listed jobs with such ids are skipped as malformed; asking for them sends nothing."""
    items = [json.dumps(_job(bad)).encode() for bad in BAD_IDS]
    body = _page_bytes(*items, json.dumps(_job("ftjob-ok")).encode())
    table = {
        "/v1/fine_tuning/jobs": json_answer(body),
        "/v1/fine_tuning/jobs/ftjob-ok": json_answer(json.dumps(_job("ftjob-ok")).encode()),
    }
    async with RawServer(routes(table)) as server, _client(server) as client:
        with capture_logs() as logs:
            page = await client.list_jobs()
        assert [j.id for j in page.items] == ["ftjob-ok"]
        assert page.skipped == len(BAD_IDS)
        reasons = [e["reason"] for e in logs if e["event"] == "api_item_skipped"]
        # The model refuses an empty id itself; every other one is refused as a non-token.
        assert (
            reasons
            == ["id: not a plain token"] * 5
            + ["id: string_too_short"]
            + ["id: not a plain token"] * 4
        )
        for bad in BAD_IDS:
            for call in (
                client.retrieve_job,
                client.list_job_events,
                client.list_checkpoints,
                client.cancel_job,
            ):
                with pytest.raises(InvalidJobId) as caught:
                    await call(bad)
                assert isinstance(caught.value, NotFoundError | ValueError)
        await client.retrieve_job("ftjob-ok")
    assert server.targets == ["/v1/fine_tuning/jobs?limit=100", "/v1/fine_tuning/jobs/ftjob-ok"]


async def test_a_retrieved_job_with_a_path_like_id_is_malformed() -> None:
    """A server answering a retrieve with a job whose id is '..' gets no trust for it."""
    body = json.dumps(_job("..")).encode()
    async with RawServer(json_answer(body)) as server, _client(server) as client:
        with pytest.raises(MalformedResponse, match="not a plain token"):
            await client.retrieve_job("ftjob-ok")


async def test_an_error_status_answer_is_read_within_the_cap() -> None:
    """A 500 with a 10 MB body is retried and reported without holding the body whole."""
    async with RawServer(answer(500, b"e" * (10 * MiB))) as server:
        client = _client(server, max_attempts=2, max_response_bytes=1 * MiB)
        async with client:
            with pytest.raises(MalformedResponse, match="max_response_bytes"):
                await client.list_jobs()
