"""Issue 8 end to end: the daemon as a process, the simulator and a receiver on real sockets.

Every new type reaches the webhook receiver, a job's progress and checkpoints arrive before its
terminal event, and a restart announces neither the stall nor any progress a second time.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from tests.test_e2e import SECRET, Env, start_daemon, stop

from watcher.clock import ManualClock
from watcher.serving import serve_asgi
from watcher.simulator import Simulator, serve_simulator
from watcher.testing_receiver import RecordingReceiver

HOUR = 3600.0


def bodies(receiver: RecordingReceiver) -> list[dict[str, Any]]:
    """Every envelope the receiver acknowledged, in the order they came."""
    return [r.json() for r, status in receiver.answered if 200 <= status < 300]


def short(body: dict[str, Any]) -> str:
    """The type without its prefix."""
    return str(body["type"]).removeprefix("fine_tuning.job.")


async def until(receiver: RecordingReceiver, ok: Callable[[list[dict[str, Any]]], bool]) -> None:
    """Return once what the receiver acknowledged satisfies ``ok`` (waits on answers)."""
    with anyio.fail_after(30):
        while not ok(bodies(receiver)):
            await receiver.wait_for_answers(len(receiver.answered) + 1)


def of(job: str, kind: str) -> Callable[[list[dict[str, Any]]], bool]:
    """A condition: an event of ``kind`` for ``job`` was acknowledged."""
    return lambda got: any(b["data"]["id"] == job and short(b) == kind for b in got)


def count(job: str, kind: str, n: int) -> Callable[[list[dict[str, Any]]], bool]:
    """A condition: at least ``n`` events of ``kind`` for ``job`` were acknowledged."""
    return lambda got: sum(b["data"]["id"] == job and short(b) == kind for b in got) >= n


def write_config(path: Path, sim_url: str, hook_url: str, state: Path, log: Path) -> None:
    """A daemon config that follows progress closely and sends every type to the hook."""
    path.write_text(
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
progress_interval = 0.05
progress_every = "1%"
stall_no_progress = "off"

[[sinks]]
name = "hook"
type = "webhook"
url = "{hook_url}/hook"
secret = "{SECRET}"
timeout = 1
events = ["*", "fine_tuning.job.progress", "fine_tuning.job.checkpoint_created",
          "fine_tuning.job.eta_changed"]

[sinks.retry]
initial_backoff = 0.02
max_backoff = 0.2

[[sinks]]
name = "audit"
type = "logfile"
path = "{log}"
"""
    )


async def test_every_progress_type_reaches_the_receiver_once_across_a_restart(
    tmp_path: Path,
) -> None:
    """Stall, progress, checkpoints, message, unstall and ETA change, through the daemon."""
    t0 = float(int(time.time()))
    sim = Simulator(ManualClock(t0), seed=8)
    stuck = sim.create_job(
        created_at=t0 - 5 * HOUR,
        script=[(0, "queued"), (6 * HOUR, "running")],
        train_seconds=100 * HOUR,
    )
    trainee = sim.create_job(
        created_at=t0 + 30, script=[(0, "running"), (700, "succeeded")], train_seconds=600
    )
    receiver = RecordingReceiver()
    async with serve_simulator(sim, port=0) as sim_url, serve_asgi(receiver) as hook_url:
        env = Env(
            sim,
            receiver,
            tmp_path / "ftwatch.toml",
            tmp_path / "log.jsonl",
            tmp_path / "s.db",
            tmp_path,
        )
        write_config(env.config, sim_url, hook_url, env.state, env.log)
        daemon = await start_daemon(env)
        try:
            # Queued for 5 h at the first start: stalled once the silent baseline is recorded.
            await until(receiver, of(stuck, "stalled"))
            sim.clock.set(t0 + 30)  # type: ignore[attr-defined]
            await until(receiver, of(trainee, "created"))
            sim.post_event(trainee, "Training file has 3 duplicated examples", level="warn")
            for k in range(1, 11):  # one metrics entry a minute, each 10 %
                sim.clock.set(t0 + 30 + 60 * k)  # type: ignore[attr-defined]
                await until(receiver, count(trainee, "progress", k))
            sim.clock.set(t0 + 30 + 700)  # type: ignore[attr-defined]
            await until(receiver, of(trainee, "succeeded"))
        finally:
            assert await stop(daemon) == 0
        daemon = await start_daemon(env)
        try:
            sim.clock.set(t0 + HOUR + 60)  # type: ignore[attr-defined]
            await until(receiver, of(stuck, "unstalled"))
            eta = int(t0 + 50 * HOUR)
            sim.set_status(stuck, "running", estimated_finish=eta)
            sim.post_event(stuck, "GPU node replaced", level="warn")
            await until(receiver, of(stuck, "message"))
            sim.set_status(stuck, "running", estimated_finish=eta + 3 * int(HOUR))
            await until(receiver, of(stuck, "eta_changed"))
        finally:
            assert await stop(daemon) == 0
    got = bodies(receiver)
    ids = Counter(b["id"] for b in got)
    assert max(ids.values()) == 1, "an event was delivered twice"
    kinds = Counter(short(b) for b in got)
    assert kinds["stalled"] == 1 and kinds["unstalled"] == 1
    assert kinds["progress"] == 10 and kinds["checkpoint_created"] >= 1
    assert kinds["message"] == 2 and kinds["eta_changed"] == 1
    trained = [short(b) for b in got if b["data"]["id"] == trainee]
    assert trained[0] == "created" and trained[-2:] == ["status_changed", "succeeded"]
    last_checkpoint = max(i for i, k in enumerate(trained) if k == "checkpoint_created")
    assert last_checkpoint < trained.index("succeeded")
    progress = [b["data"] for b in got if short(b) == "progress"]
    assert [p["step"] for p in progress] == sorted(p["step"] for p in progress)
    assert progress[-1]["percent"] == 100.0
    # The logfile sink, routed "*" by default, got the alerts but none of the opt-in types.
    logged = Counter(json.loads(line)["type"] for line in env.log.read_text().splitlines() if line)
    assert logged["fine_tuning.job.stalled"] == 1
    assert logged["fine_tuning.job.progress"] == 0
    assert logged["fine_tuning.job.checkpoint_created"] == 0
