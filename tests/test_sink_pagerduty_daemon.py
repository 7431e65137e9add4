"""The PagerDuty sink through the daemon and the command line.

The Watcher polls the simulator and delivers to the ``pagerduty`` sink built from its config,
which posts over a real loopback socket to the PagerDuty-like receiver of
tests/pagerduty_contract.py (every body checked against the Events API v2 contract).
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from click.testing import CliRunner
from tests.pagerduty_contract import PagerDutyLike

from ftwatch_pagerduty import PagerDutyConfig
from watcher import SourceConfig, Watcher
from watcher.cli import main
from watcher.clock import ManualClock
from watcher.facts import TEST_MARK
from watcher.serving import serve_asgi
from watcher.simulator import Simulator
from watcher.store import Store
from watcher.testing import simulator_transport

START = 1_750_000_000.0
HOUR = 3600.0
ROUTING_KEY = "R0utingKeyS3cretS3cretS3cret0042"
ERROR = {"code": "invalid_training_file", "message": "bad row 7", "param": "training_file"}

WatcherFactory = Callable[..., Any]


def _pager(url: str) -> PagerDutyConfig:
    return PagerDutyConfig.model_validate(
        {
            "name": "on-call",
            "type": "pagerduty",
            "routing_key": ROUTING_KEY,
            "api_url": url,
            "retry": {"initial_backoff": 1, "max_backoff": 1},
        }
    )


def _watching(sim: Simulator, clock: ManualClock, state: Path, url: str) -> WatcherFactory:
    @asynccontextmanager
    async def make() -> AsyncIterator[Watcher]:
        async with Watcher(
            sources=[SourceConfig(name="sim", base_url="http://sim/v1", jitter=0)],
            sinks=[_pager(url)],
            state_path=state,
            clock=clock,
            transport=simulator_transport(sim),
            autostart=False,
        ) as watcher:
            yield watcher

    return make


async def _cycle(watcher: Watcher, clock: ManualClock, seconds: float = 60) -> None:
    clock.advance(seconds)
    await watcher.poll_once()
    await watcher.flush()


async def test_the_daemon_opens_and_closes_incidents_once_across_a_restart(tmp_path: Path) -> None:
    """A job stuck in queue opens a ``stalled`` incident that its start resolves; a failed job
    opens ``failed``; a restart in between opens nothing twice."""
    clock = ManualClock(START)
    sim = Simulator(clock, seed=9)
    stuck = sim.create_job(
        created_at=START - 5 * HOUR, script=[(0, "queued"), (7 * HOUR, "running")]
    )
    doomed = sim.create_job(created_at=START, script=[(0, "running"), (120, "failed", ERROR)])
    pd = PagerDutyLike()
    async with serve_asgi(pd) as url:
        make = _watching(sim, clock, tmp_path / "s.db", url)
        async with make() as watcher:
            await _cycle(watcher, clock, 0)  # the silent baseline
            await _cycle(watcher, clock)
            await _cycle(watcher, clock)  # 120 s: the second job failed
        assert pd.incidents == {
            f"ftwatch/sim/{stuck}/stalled": True,
            f"ftwatch/sim/{doomed}/failed": True,
        }
        async with make() as watcher:
            await _cycle(watcher, clock)
            assert pd.opened == 2
            await _cycle(watcher, clock, 2 * HOUR)  # the stuck job starts running
    assert pd.incidents == {
        f"ftwatch/sim/{stuck}/stalled": False,
        f"ftwatch/sim/{doomed}/failed": True,
    }
    assert pd.opened == 2
    assert all(r.status == 202 for r in pd.received)
    [failed] = [b for b in pd.accepted() if b.get("payload", {}).get("class") == "failed"]
    assert failed["payload"]["severity"] == "error"
    assert failed["payload"]["group"] == "sim"
    assert failed["payload"]["custom_details"]["error"] == "bad row 7"
    assert failed["payload"]["summary"].startswith(f"❌ Fine-tuning job failed: {doomed}")
    stalled = [b for b in pd.accepted() if b["dedup_key"].endswith(f"{stuck}/stalled")]
    assert [b["event_action"] for b in stalled] == ["trigger", "resolve"]


async def test_a_429_is_retried_after_its_retry_after(tmp_path: Path) -> None:
    """PagerDuty throttles the first try: the daemon waits its Retry-After, then delivers."""
    clock = ManualClock(START)
    sim = Simulator(clock, seed=9)
    doomed = sim.create_job(created_at=START, script=[(0, "running"), (60, "failed", ERROR)])
    pd = PagerDutyLike()
    pd.script.append((429, {"Retry-After": "7"}, b'{"status": "throttle event"}'))
    async with serve_asgi(pd) as url, _watching(sim, clock, tmp_path / "s.db", url)() as watcher:
        await _cycle(watcher, clock, 0)
        await _cycle(watcher, clock)
        assert [r.status for r in pd.received] == [429]
        await _cycle(watcher, clock, 6.9)
        assert len(pd.received) == 1  # still waiting out the Retry-After
        await _cycle(watcher, clock, 0.1)
    assert [r.status for r in pd.received] == [429, 202, 202]
    assert pd.incidents == {f"ftwatch/sim/{doomed}/failed": True}


async def test_a_400_goes_to_the_dead_letters_with_pagerdutys_errors(tmp_path: Path) -> None:
    """A refused event is not retried: its dead letter's reason carries PagerDuty's errors."""
    clock = ManualClock(START)
    sim = Simulator(clock, seed=9)
    sim.create_job(created_at=START, script=[(0, "running"), (60, "failed", ERROR)])
    pd = PagerDutyLike()
    refusal = {
        "status": "invalid event",
        "message": "Event object is invalid",
        "errors": ["'payload.summary' is too long", "'payload.severity' is invalid"],
    }
    pd.script.append((400, {}, json.dumps(refusal).encode()))
    async with serve_asgi(pd) as url, _watching(sim, clock, tmp_path / "s.db", url)() as watcher:
        await _cycle(watcher, clock, 0)
        await _cycle(watcher, clock)
        await _cycle(watcher, clock, HOUR)
    assert [r.status for r in pd.received] == [400]
    async with await Store.open(tmp_path / "s.db") as store:
        [letter] = await store.dead_letters()
    assert letter.sink == "on-call" and letter.type == "fine_tuning.job.failed"
    assert letter.attempts == 1
    assert letter.last_error == (
        "PagerDuty rejected the event (HTTP 400, Event object is invalid: "
        "'payload.summary' is too long; 'payload.severity' is invalid)"
    )


# ---------------------------------------------------------------------------------------------
# The command line


def _config(tmp: Path, sink: str) -> Path:
    path = tmp / "ftwatch.toml"
    head = f"""
        [state]
        path = "{tmp / "state.db"}"

        [[sources]]
        name = "openai"
        api_key = "sk-test"
        """
    path.write_text(textwrap.dedent(head) + textwrap.dedent(sink))
    return path


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_a_missing_or_malformed_routing_key_is_one_sentence(tmp_path: Path) -> None:
    """`ftwatch check` exits 2 naming the key and what it should be, never quoting the value."""
    missing = _config(tmp_path, '[[sinks]]\nname = "pd"\ntype = "pagerduty"\n')
    code, out, err = _run("check", "--config", str(missing))
    assert code == 2 and out == ""
    assert err == f"ftwatch: error: {missing}: sinks[0]: missing required key 'routing_key'\n"
    wrong = _config(
        tmp_path, '[[sinks]]\nname = "pd"\ntype = "pagerduty"\nrouting_key = "S3cret-0042"\n'
    )
    code, out, err = _run("check", "--config", str(wrong))
    assert code == 2 and out == ""
    assert "sinks[0].routing_key" in err and "32-letter-and-digit integration key" in err
    assert len(err.strip().splitlines()) == 1 and "S3cret" not in err


async def test_sinks_test_sends_a_marked_change_event(tmp_path: Path) -> None:
    """`ftwatch sinks test` posts one change event marked as a test, and says PagerDuty took it."""
    pd = PagerDutyLike()
    async with serve_asgi(pd) as url:
        sink = f"""
            [[sinks]]
            name = "on-call"
            type = "pagerduty"
            routing_key = "{ROUTING_KEY}"
            api_url = "{url}"
            """
        path = _config(tmp_path, sink)
        code, out, err = await anyio.to_thread.run_sync(
            _run, "sinks", "test", "on-call", "--config", str(path)
        )
    assert code == 0, err
    assert re.fullmatch(
        r"ok: sample event evt_test_\w+ delivered to sink 'on-call' in \d+ ms "
        r"\(HTTP 202 change\)\n",
        out,
    )
    [change] = pd.changes
    assert change["payload"]["summary"].startswith(f"{TEST_MARK} Fine-tuning job succeeded")
    assert change["payload"]["custom_details"]["job"] == "ftjob-ftwatch-test"
    assert pd.opened == 0
    assert ROUTING_KEY not in out + err
