"""End to end over real sockets: the simulator, the daemon as a process, real receivers.

The daemon (``python -m watcher run``) is killed with SIGKILL at random points, restarted,
faulted and stopped with signals; every test asserts on what a user sees: the bytes the
receiver and the log file got, the exit codes, the journal after restart.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process

from watcher import SourceConfig, Watcher
from watcher.clock import ManualClock
from watcher.demo import run_demo
from watcher.serving import serve_asgi
from watcher.simulator import (
    DEMO_PROGRESS,
    Simulator,
    demo_scenario,
    demo_timeline,
    serve_simulator,
)
from watcher.sinks import SinkConfig
from watcher.testing import CollectingSink
from watcher.testing_receiver import RecordingReceiver

START = 1_750_000_000.0
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TERMINAL = {"succeeded", "failed", "cancelled"}


def expected_events(job_ids: list[str], until: float = float("inf")) -> list[tuple[str, str, str]]:
    """(type, job id, status) of every event the demo yields by ``until``, each step seen."""
    out: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for t in demo_timeline(job_ids):
        if t.at > until:
            break
        if t.job_id not in seen:
            seen.add(t.job_id)
            out.append(("fine_tuning.job.created", t.job_id, t.status))
            continue
        out.append(("fine_tuning.job.status_changed", t.job_id, t.status))
        if t.status in TERMINAL:
            out.append((f"fine_tuning.job.{t.status}", t.job_id, t.status))
    return out


CHECKPOINT = "fine_tuning.job.checkpoint_created"
LIFECYCLE = {
    "fine_tuning.job.created",
    "fine_tuning.job.status_changed",
    *(f"fine_tuning.job.{status}" for status in TERMINAL),
}


async def test_the_demo_scenario_yields_its_exact_event_sequence(tmp_path: Path) -> None:
    """Stepping the simulator's clock through the demo gives exactly the expected events.

    With the demo's progress settings: every status change, one stall (the job queued past
    the demo's threshold) ended when it runs, and each running job's progress, in order.
    """
    sim = Simulator(ManualClock(START), seed=3)
    ids = demo_scenario(sim)
    # Routed as the demo's stdout sink is: everything, progress included (not checkpoints).
    sink = CollectingSink(
        SinkConfig(name="collect", type="collect", events=["*", "fine_tuning.job.progress"])
    )
    async with serve_simulator(sim, port=0) as url:
        source = SourceConfig(
            name="sim",
            base_url=url,
            emit_existing=True,
            progress_interval=DEMO_PROGRESS.progress_interval,
            progress_every=DEMO_PROGRESS.progress_every,
            stall_queued=DEMO_PROGRESS.stall_queued,
        )
        clock = ManualClock(START, autojump=True)
        watcher = Watcher(
            sources=[source],
            sinks=[sink],
            state_path=tmp_path / "state.db",
            clock=clock,
            autostart=False,
        )
        journaled = []
        async with watcher:
            for t in sorted({t.at for t in demo_timeline(ids)}):
                # Stalls and the progress interval are measured on the watcher's clock.
                sim.clock.set(START + t)  # type: ignore[attr-defined]
                clock.set(START + t)
                journaled.extend(await watcher.poll_once())
            await watcher.flush()
    assert [(e.type, e.job_id, e.status) for e in journaled if e.type in LIFECYCLE] == (
        expected_events(ids)
    )
    support, sql, summarizer, classifier, translator = ids
    assert {e.type.rsplit(".", 1)[1] for e in journaled if e.type not in LIFECYCLE} == {
        "progress",
        "checkpoint_created",
        "message",
        "stalled",
        "unstalled",
    }
    # One stall: sql-helper, queued past the demo's threshold, over as it starts running.
    stalls = [e for e in journaled if e.type.endswith("stalled")]
    assert [(e.type, e.job_id) for e in stalls] == [
        ("fine_tuning.job.stalled", sql),
        ("fine_tuning.job.unstalled", sql),
    ]
    assert stalls[0].details()["reason"] == "queued_too_long"
    assert stalls[0].details()["threshold"] == DEMO_PROGRESS.stall_queued
    assert [
        e.type.rsplit(".", 1)[1]
        for e in journaled
        if e.job_id == sql and e.type not in {"fine_tuning.job.progress", CHECKPOINT}
    ] == [
        "created",
        "status_changed",
        "stalled",
        "status_changed",
        "unstalled",
        "status_changed",
        "succeeded",
    ]
    # Every job that runs reports its progress while it runs, steps growing; a success ends
    # at 100%. The one cancelled while queued never trained.
    for job_id in (support, sql, summarizer, translator):
        events = [e for e in journaled if e.job_id == job_id]
        statuses = [e.status if e.type == "fine_tuning.job.status_changed" else "" for e in events]
        progress = [i for i, e in enumerate(events) if e.type == "fine_tuning.job.progress"]
        steps = [events[i].details()["step"] for i in progress]
        assert len(steps) >= 2 and steps == sorted(set(steps))
        end = max(statuses.index(status) for status in TERMINAL & set(statuses))
        assert statuses.index("running") < progress[0] and progress[-1] < end
        if job_id != summarizer:
            assert events[progress[-1]].details()["percent"] == 100
    assert not [e for e in journaled if e.job_id == classifier and e.type not in LIFECYCLE]
    # The sink gets every event it asks for once, each job's in order (jobs interleave freely).
    wanted = [e for e in journaled if sink.config.wants(e)]
    assert {e.type for e in journaled} - {e.type for e in wanted} == {CHECKPOINT}
    for job_id in ids:
        assert [e.id for e in sink.events if e.job_id == job_id] == [
            e.id for e in wanted if e.job_id == job_id
        ]
    assert len(sink.events) == len(wanted)


async def test_the_demo_prints_progress_and_a_stall_through_the_stdout_sink(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ftwatch demo` (at twice its speed): progress lines for the jobs that train, sql-helper's
    stall and its end, each job's in order, and a true summary."""
    summary = await run_demo(speed=120.0, as_json=True, state_path=tmp_path / "demo.db")
    assert summary == "ftwatch demo: all 5 jobs finished: 3 succeeded, 1 failed, 1 cancelled."
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_suffix: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_suffix[event["data"]["job"]["user_provided_suffix"]].append(event)
    kinds = {name: [e["type"].rsplit(".", 1)[1] for e in got] for name, got in by_suffix.items()}
    assert {"support-bot", "sql-helper", "summarizer", "translator"} <= {
        name for name, got in kinds.items() if "progress" in got
    }
    sql = [k for k in kinds["sql-helper"] if k != "progress"]
    stalled = sql.index("stalled")
    assert sql[stalled - 1 : stalled + 3] == [
        "status_changed",
        "stalled",
        "status_changed",
        "unstalled",
    ]
    assert sql[-2:] == ["status_changed", "succeeded"]
    assert kinds["sql-helper"][-3] == "progress"  # the last one comes before the end
    percents = [
        e["data"]["percent"] for e in by_suffix["translator"] if e["type"].endswith("progress")
    ]
    assert len(percents) >= 2 and percents == sorted(percents) and percents[-1] == 100


# -- the daemon as a process ---------------------------------------------------------------------


@dataclass
class Env:
    """Everything a daemon test needs: the simulator, the receiver, the files."""

    sim: Simulator
    receiver: RecordingReceiver
    config: Path
    log: Path
    state: Path
    tmp: Path


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    """A simulator and a webhook receiver on real sockets, and a config file for the daemon."""
    sim = Simulator(ManualClock(START), seed=5)
    receiver = RecordingReceiver()
    async with serve_simulator(sim, port=0) as sim_url, serve_asgi(receiver) as hook_url:
        config = tmp_path / "ftwatch.toml"
        log = tmp_path / "events.jsonl"
        state = tmp_path / "state.db"
        config.write_text(
            f"""
[state]
path = "{state}"

[logging]
level = "info"
format = "json"

[[sources]]
name = "sim"
base_url = "{sim_url}"
poll_interval = 0.05
jitter = 0
timeout = 1
emit_existing = true
progress = false

[[sinks]]
name = "audit"
type = "logfile"
path = "{log}"

[[sinks]]
name = "hook"
type = "webhook"
url = "{hook_url}/hook"
secret = "{SECRET}"
timeout = 1

[sinks.retry]
initial_backoff = 0.02
max_backoff = 0.2
"""
        )
        yield Env(sim, receiver, config, log, state, tmp_path)


async def start_daemon(env: Env) -> Process:
    """Start ``python -m watcher run`` on the test's config; its logs go to a file."""
    stderr = (env.tmp / "daemon.log").open("ab")
    return await anyio.open_process(
        [sys.executable, "-m", "watcher", "run", "--config", str(env.config)],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )


def delivered_ids(receiver: RecordingReceiver) -> set[str]:
    """The webhook-ids the receiver has acknowledged (answered 2xx).

    A request left hanging when the daemon was killed does not count: only a later attempt
    that got its 2xx delivers that event.
    """
    return {r.headers["webhook-id"] for r, status in receiver.answered if 200 <= status < 300}


def pending_deliveries(state: Path) -> list[tuple[str, int]]:
    """(sink, seq) of every delivery the state file still holds as not done."""
    with sqlite3.connect(state) as db:
        return db.execute(
            "SELECT sink, seq FROM deliveries WHERE state != 'done' ORDER BY sink, seq"
        ).fetchall()


async def wait_for_ids(receiver: RecordingReceiver, count: int) -> None:
    """Return once the receiver has acknowledged ``count`` distinct event ids."""
    while len(delivered_ids(receiver)) < count:
        await receiver.wait_for_answers(len(receiver.answered) + 1)


async def stop(process: Process, sig: int = signal.SIGTERM) -> int:
    """Signal the daemon and return its exit code."""
    process.send_signal(sig)
    with anyio.fail_after(15):
        return await process.wait()


def journal(state: Path) -> list[tuple[str, str, str, str]]:
    """(event id, type, job id, status) of every journal entry, read straight from SQLite."""
    with sqlite3.connect(state) as db:
        rows = db.execute(
            "SELECT event_id, type, job_id, body FROM journal ORDER BY seq"
        ).fetchall()
    return [(r[0], r[1], r[2], json.loads(r[3])["data"]["status"]) for r in rows]


def log_lines(path: Path) -> list[dict[str, object]]:
    """Every envelope the logfile sink wrote."""
    return [json.loads(line) for line in path.read_text().split("\n") if line]


def assert_duplicates_share_ids(envelopes: list[tuple[str, str, str, str | None]]) -> None:
    """Each change (type, job, status, previous) carries exactly one event id."""
    ids: dict[tuple[str, str, str, str | None], set[str]] = defaultdict(set)
    for event_id, *key in envelopes:
        ids[tuple(key)].add(event_id)  # type: ignore[arg-type]
    assert all(len(v) == 1 for v in ids.values()), ids


async def test_kill_9_at_random_points_loses_nothing(env: Env) -> None:
    """SIGKILL before a poll, mid-delivery and during a hung delivery: every event arrives."""
    rng = random.Random(20261125)
    ids = demo_scenario(env.sim, start=START)
    expected = expected_events(ids)
    process = await start_daemon(env)
    kills = 0
    with anyio.fail_after(120):
        for t in sorted({t.at for t in demo_timeline(ids)}):
            env.sim.clock.set(START + t)  # type: ignore[attr-defined]
            point = rng.choice(["none", "none", "before_poll", "mid_delivery", "hung_delivery"])
            if point == "before_poll":
                process.kill()
                await process.wait()
                kills += 1
                process = await start_daemon(env)
            elif point == "mid_delivery":
                await env.receiver.wait_for(len(env.receiver.requests) + 1)
                process.kill()
                await process.wait()
                kills += 1
                process = await start_daemon(env)
            elif point == "hung_delivery":
                env.receiver.hang()
                await env.receiver.wait_for(len(env.receiver.requests) + 1)
                process.kill()
                await process.wait()
                kills += 1
                env.receiver.respond(200)
                process = await start_daemon(env)
            await wait_for_ids(env.receiver, len(expected_events(ids, until=t)))
        assert await stop(process) == 0
    assert kills >= 3
    entries = journal(env.state)
    journaled = {e[0] for e in entries}
    assert [(e[1], e[2], e[3]) for e in entries] == expected
    assert journaled <= delivered_ids(env.receiver)
    assert pending_deliveries(env.state) == []  # and every delivery is acknowledged as done
    lines = log_lines(env.log)
    assert journaled <= {str(line["id"]) for line in lines}
    assert_duplicates_share_ids(
        [
            (str(x["id"]), str(x["type"]), d["id"], d["status"], d["previous_status"])  # type: ignore[index]
            for x in lines
            for d in [x["data"]]
        ]
    )
    assert_duplicates_share_ids(
        [
            (r.headers["webhook-id"], *_key(json.loads(r.body)))
            for r in env.receiver.requests
            if r.body
        ]
    )


async def test_kill_9_while_deliveries_hang_sends_them_again(env: Env) -> None:
    """Events whose delivery was never answered are sent again after a kill, with their ids.

    The second hung delivery makes the worker write its acknowledgements while the first one
    hangs: one written for an event not yet answered would lose that event for good.
    """
    a = env.sim.create_job(created_at=START, script=[(0, "queued"), (10, "running")])
    b = env.sim.create_job(created_at=START, script=[(0, "queued"), (20, "running")])
    process = await start_daemon(env)
    with anyio.fail_after(60):
        await wait_for_ids(env.receiver, 2)  # both jobs' `created`
        env.receiver.hang()
        for t, job_id in ((10, a), (20, b)):
            env.sim.clock.set(START + t)  # type: ignore[attr-defined]
            while (job_id, "running") not in {_key(r.json())[1:3] for r in env.receiver.requests}:
                await env.receiver.wait_for(len(env.receiver.requests) + 1)
        process.kill()
        await process.wait()
        env.receiver.respond(200)
        process = await start_daemon(env)
        journaled = {e[0] for e in journal(env.state)}
        assert len(journaled) == 4
        await wait_for_ids(env.receiver, 4)
        assert await stop(process) == 0
    assert journaled <= delivered_ids(env.receiver)
    assert pending_deliveries(env.state) == []


def _key(envelope: dict[str, object]) -> tuple[str, str, str, str | None]:
    data = envelope["data"]
    assert isinstance(data, dict)
    return (str(envelope["type"]), data["id"], data["status"], data["previous_status"])


async def test_a_change_while_the_daemon_is_down_is_emitted_after_restart(env: Env) -> None:
    """Promise 2: a job that finished during downtime yields its events after restart."""
    job_id = env.sim.create_job(created_at=START, script=[(0, "running"), (600, "succeeded")])
    process = await start_daemon(env)
    with anyio.fail_after(60):
        await wait_for_ids(env.receiver, 1)  # created
        assert await stop(process) == 0
        env.sim.clock.set(START + 3600)  # type: ignore[attr-defined]
        process = await start_daemon(env)
        await wait_for_ids(env.receiver, 3)
        assert await stop(process, signal.SIGINT) == 0
    types = [json.loads(r.body)["type"] for r in env.receiver.requests]
    assert types[-2:] == ["fine_tuning.job.status_changed", "fine_tuning.job.succeeded"]
    assert json.loads(env.receiver.requests[-1].body)["data"]["id"] == job_id


async def test_api_faults_do_not_crash_the_daemon_or_lose_events(env: Env) -> None:
    """500s, 429 with Retry-After, garbage JSON, HTML pages and timeouts: nothing is lost."""
    ids = demo_scenario(env.sim, start=START)
    expected = expected_events(ids)
    faults = env.sim.faults
    faults.retry_after = 0.05
    plan = [
        lambda: faults.fail_next(3, 500),
        lambda: faults.fail_next(2, 429, retry_after=0.05),
        lambda: faults.malformed_next(2, "json"),
        lambda: faults.malformed_next(1, "html", status=502),
        lambda: faults.hang_next(1),
    ]
    process = await start_daemon(env)
    with anyio.fail_after(120):
        for i, t in enumerate(sorted({t.at for t in demo_timeline(ids)})):
            plan[i % len(plan)]()
            env.sim.clock.set(START + t)  # type: ignore[attr-defined]
            await wait_for_ids(env.receiver, len(expected_events(ids, until=t)))
        assert process.returncode is None
        assert await stop(process) == 0
    assert [(e[1], e[2], e[3]) for e in journal(env.state)] == expected
    daemon_log = (env.tmp / "daemon.log").read_text()
    assert "Traceback" not in daemon_log


async def test_sigint_and_sigterm_exit_zero(env: Env) -> None:
    """Both signals stop the daemon cleanly with exit code 0."""
    for n, sig in enumerate((signal.SIGINT, signal.SIGTERM), start=1):
        # A new job per run: its delivery shows this daemon is up and has its handlers.
        env.sim.create_job(created_at=START, script=[(0, "running")])
        process = await start_daemon(env)
        with anyio.fail_after(30):
            await wait_for_ids(env.receiver, n)
            assert await stop(process, sig) == 0
