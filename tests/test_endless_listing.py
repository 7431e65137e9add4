"""An endless listing ends: a server whose list never ends cannot keep the first baseline going.

The server is a small ASGI app on a loopback port: every page of its job list says
``has_more`` and carries ids never seen before, as a broken or hostile API did (issue 7).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from structlog.testing import capture_logs

from watcher import SourceConfig, Watcher
from watcher.clock import ManualClock
from watcher.poller import DEFAULT_MAX_BASELINE_PAGES
from watcher.serving import serve_asgi
from watcher.testing import CollectingSink

START = 1_750_000_000.0
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class EndlessAPI:
    """A job list with no end: job ``n`` is ``ftjob-n``, newest first, and has_more is always true.

    Every job has finished except those in :attr:`statuses`, which a test may change.
    """

    def __init__(self) -> None:
        self.statuses: dict[str, str] = {}
        self.list_requests = 0

    def job(self, number: int) -> dict[str, Any]:
        """Job ``number`` as the API renders it."""
        job_id = f"ftjob-{number:09d}"
        return {
            "object": "fine_tuning.job",
            "id": job_id,
            "status": self.statuses.get(job_id, "succeeded"),
            "created_at": int(START) - number,
            "model": "gpt-4o-mini-2024-07-18",
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the list and retrieve endpoints; the list always has more."""
        assert scope["type"] == "http"
        path: str = scope["path"]
        query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
        if path == "/v1/fine_tuning/jobs":
            self.list_requests += 1
            limit = int(query.get("limit", "20"))
            after = query.get("after")
            first = 0 if after is None else int(after.removeprefix("ftjob-")) + 1
            body: dict[str, Any] = {
                "object": "list",
                "data": [self.job(n) for n in range(first, first + limit)],
                "has_more": True,
            }
        else:
            body = self.job(int(path.rsplit("-", 1)[-1]))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})


@pytest.fixture
def api() -> EndlessAPI:
    """The endless API, with its newest job still running."""
    endless = EndlessAPI()
    endless.statuses["ftjob-000000000"] = "running"
    return endless


async def test_the_baseline_stops_at_its_page_bound_warns_once_and_polling_goes_on(
    api: EndlessAPI, tmp_path: Path
) -> None:
    """At max_baseline_pages, what was read is the baseline; later changes still give events."""
    sink = CollectingSink()
    async with serve_asgi(api) as url:
        # Three cycles of at most three pages each, the bound set as a user sets it.
        config = SourceConfig(
            name="endless",
            base_url=f"{url}/v1",
            page_size=10,
            max_pages=3,
            max_baseline_pages=7,
        )
        watcher = Watcher(
            sources=[config],
            sinks=[sink],
            state_path=tmp_path / "state.db",
            clock=ManualClock(START, autojump=True),
            autostart=False,
        )
        async with watcher:
            poller = watcher.pollers["endless"]
            assert poller.max_baseline_pages == 7
            with capture_logs() as logs:
                cycles = 0
                while not poller.baselined:
                    assert await watcher.poll_once() == []
                    cycles += 1
                    assert cycles <= 3, "the baseline did not stop at its bound"
                # Polling goes on: a cycle after the baseline reads one page and stops there.
                api.list_requests = 0
                assert await watcher.poll_once() == []
                assert api.list_requests == 1
                api.statuses["ftjob-000000000"] = "succeeded"
                events = await watcher.poll_once()
                await watcher.flush()
    assert len(poller.states) == 70
    warnings = [e for e in logs if e["event"] == "baseline_truncated"]
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"
    assert warnings[0]["pages"] == 7
    assert [(e.type, e.job_id) for e in events] == [
        ("fine_tuning.job.status_changed", "ftjob-000000000"),
        ("fine_tuning.job.succeeded", "ftjob-000000000"),
    ]
    assert [e.id for e in sink.events] == [e.id for e in events]


def test_the_config_default_is_the_pollers() -> None:
    """A source's documented default bound is the one the poller applies."""
    source = SourceConfig(name="x", base_url="http://127.0.0.1:1/v1")
    assert source.max_baseline_pages == DEFAULT_MAX_BASELINE_PAGES == 1000
