"""ftwatch used as a library: quiet by default, its logs handed to the host's ``logging``."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from watcher import Watcher
from watcher.asgi import Receive, Scope, Send
from watcher.clock import ManualClock
from watcher.config import SourceConfig
from watcher.serving import serve_asgi
from watcher.simulator import Simulator

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _readme_python() -> str:
    """The README's Python snippet, exactly as a reader would paste it."""
    return README.split("```python\n", 1)[1].split("```", 1)[0]


class _AdvanceAfterFirstList:
    """Serves ``sim``; each listing after the first moves its clock a minute on.

    The first listing is the watcher's baseline, so a job that ends within that minute becomes
    an event at the second, with no waiting on the test's side.
    """

    def __init__(self, sim: Simulator, clock: ManualClock) -> None:
        self._sim = sim
        self._clock = clock
        self._lists = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope["path"]).endswith("/fine_tuning/jobs"):
            self._lists += 1
            if self._lists > 1:
                self._clock.advance(60)
        await self._sim(scope, receive, send)


async def test_the_readme_snippet_runs_as_pasted_and_prints_only_events(tmp_path: Path) -> None:
    """The README's Python runs in a fresh interpreter and prints its events, and no log line."""
    clock = ManualClock()
    sim = Simulator(clock, seed=5)
    job_id = sim.create_job(script=[(0, "running"), (30, "succeeded")])
    async with serve_asgi(_AdvanceAfterFirstList(sim, clock)) as base_url:
        (tmp_path / "ftwatch.toml").write_text(
            f'[state]\npath = "{tmp_path / "state.db"}"\n\n'
            f'[[sources]]\nname = "sim"\nbase_url = "{base_url}/v1"\n'
            'poll_interval = "1s"\njitter = 0\n'
        )
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("FTWATCH_CONFIG", None)
        async with await anyio.open_process(
            [sys.executable, "-c", _readme_python()], cwd=tmp_path, env=env
        ) as process:
            assert process.stdout is not None and process.stderr is not None
            first = b""
            try:
                with anyio.fail_after(30):
                    # print() may write a line in pieces: read up to its end.
                    while b"\n" not in first:
                        first += await process.stdout.receive()
            finally:
                process.terminate()
            stderr = b"".join([chunk async for chunk in process.stderr])
    assert first.decode().splitlines() == [f"fine_tuning.job.succeeded {job_id}"]
    assert stderr == b""


def test_a_script_using_the_library_prints_nothing(tmp_path: Path) -> None:
    """Watcher.from_config in a script: no debug or info line on stdout or stderr."""
    config = tmp_path / "ftwatch.toml"
    config.write_text(
        f'[state]\npath = "{tmp_path / "state.db"}"\n\n'
        '[[sources]]\nname = "sim"\nbase_url = "http://127.0.0.1:9/v1"\n'
    )
    script = (
        "import anyio\n"
        "from watcher import Watcher\n"
        "from watcher.simulator import Simulator\n"
        "from watcher.testing import simulator_transport\n"
        "from watcher.clock import ManualClock\n"
        "sim = Simulator(ManualClock())\n"
        "sim.add_jobs(3, 'running')\n"
        "async def main():\n"
        f"    watcher = Watcher.from_config({str(config)!r}, autostart=False,\n"
        "                                  transport=simulator_transport(sim))\n"
        "    async with watcher:\n"
        "        await watcher.poll_once()\n"
        "anyio.run(main)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


async def test_the_host_program_controls_the_library_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Log events are standard-library records of ``watcher.*``, at the level the host sets."""
    sim = Simulator(ManualClock())
    sim.add_jobs(2, "running")
    caplog.set_level(logging.DEBUG, logger="watcher")
    async with serve_asgi(sim) as base_url:
        source = SourceConfig(name="sim", base_url=f"{base_url}/v1")
        async with Watcher(sources=[source], sinks=[], state_path=tmp_path / "s.db") as watcher:
            await watcher.poll_once()
    baseline = [r for r in caplog.records if r.getMessage().startswith("baseline_recorded")]
    assert [(r.name, r.levelno) for r in baseline] == [("watcher.poller", logging.INFO)]
    assert "jobs=2" in baseline[0].getMessage()
