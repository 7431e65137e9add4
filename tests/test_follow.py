"""`ftwatch watch` and `follow_job`, on a manual clock (issue 7 items 15-17, issue 11 item 6)."""

from __future__ import annotations

import io
import re
import socket
import textwrap
from pathlib import Path

import anyio
import pytest
import structlog
from click.testing import CliRunner
from rich.console import Console

from watcher.cli import main
from watcher.clock import ManualClock, ScaledClock
from watcher.config import SourceConfig
from watcher.follow import FollowGaveUp, follow_job
from watcher.simulator import Simulator, serve_simulator
from watcher.testing import simulator_transport

SCRIPT = [(0, "validating_files"), (60, "queued"), (120, "running"), (600, "succeeded")]
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


def _source() -> SourceConfig:
    return SourceConfig(name="sim", base_url="http://sim.test/v1")


async def test_follow_job_runs_through_every_status_on_the_clock_it_is_given() -> None:
    """A job's whole life (10 simulated minutes) is followed at once on a manual clock."""
    clock = ManualClock(autojump=True)
    sim = Simulator(clock, seed=3)
    job = sim.create_job(suffix="fast", script=SCRIPT)
    out = io.StringIO()
    status = await follow_job(
        _source(),
        job,
        interval=5.0,
        clock=clock,
        transport=simulator_transport(sim),
        console=Console(file=out, force_terminal=False),
    )
    assert status == "succeeded"
    shown = [line.split("  ")[2] for line in out.getvalue().splitlines()]
    assert [s.split()[0] for s in shown][:3] == ["validating_files", "queued", "running"]
    assert shown[-1].startswith("succeeded")


async def test_on_a_terminal_each_status_is_one_line_that_fits_the_width() -> None:
    """On a narrow terminal every line fits, and each status (the last too) is printed once."""
    clock = ManualClock(autojump=True)
    sim = Simulator(clock, seed=3)
    job = sim.create_job(suffix="a-rather-long-suffix-for-a-narrow-terminal", script=SCRIPT)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=40, color_system=None)
    status = await follow_job(
        _source(), job, clock=clock, transport=simulator_transport(sim), console=console
    )
    assert status == "succeeded"
    text = _CONTROL.sub("\n", out.getvalue())
    lines = [line for line in text.splitlines() if line.strip()]
    assert all(len(line) <= 40 for line in lines), lines
    assert sum("succeeded" in line for line in lines) == 1


async def test_follow_job_outlasts_an_outage_and_logs_it_once() -> None:
    """Eight failed requests in a row are retried with backoff; one warning each way."""
    clock = ManualClock(autojump=True)
    sim = Simulator(clock, seed=3)
    job = sim.create_job(suffix="blip", script=SCRIPT)
    sim.faults.fail_next(8, 503)
    with structlog.testing.capture_logs() as logs:
        status = await follow_job(
            _source(),
            job,
            clock=clock,
            transport=simulator_transport(sim),
            console=Console(file=io.StringIO()),
        )
    assert status == "succeeded"
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "api_unreachable",
        "api_reachable_again",
    ]


async def test_follow_job_gives_up_after_the_time_it_was_given() -> None:
    """An API that never answers ends the follow after give_up_after seconds, not before."""
    clock = ManualClock(autojump=True)
    sim = Simulator(clock, seed=3)
    job = sim.create_job(suffix="down", script=SCRIPT)
    sim.faults.fail_next(10_000, 502)
    start = clock.now()
    with pytest.raises(FollowGaveUp, match="could not be reached for 900 s"):
        await follow_job(
            _source(),
            job,
            clock=clock,
            give_up_after=900,
            transport=simulator_transport(sim),
            console=Console(file=io.StringIO()),
        )
    assert clock.now() - start == 900


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_watch_exits_4_when_the_api_stays_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lost API is exit 4 with one sentence; the warning is a log line on stderr, not stdout."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        main,
        [
            "watch",
            "ftjob-abc",
            "--base-url",
            f"http://127.0.0.1:{_closed_port()}/v1",
            "--give-up-after",
            "0",
        ],
        env={"FTWATCH_CONFIG": None, "OPENAI_API_KEY": None},
    )
    assert result.exit_code == 4
    assert result.stdout == ""
    assert "api_unreachable" in result.stderr
    assert result.stderr.splitlines()[-1].startswith(
        "ftwatch: error: the API of source 'openai' could not be reached for 0 s"
    )
    assert "--give-up-after" in result.stderr.splitlines()[-1]


def _two_sources(tmp: Path, api: str, names: tuple[str, ...]) -> Path:
    path = tmp / "ftwatch.toml"
    path.write_text(
        "".join(
            textwrap.dedent(
                f"""
                [[sources]]
                name = "{name}"
                base_url = "{api}"
                """
            )
            for name in names
        )
    )
    return path


async def test_watch_uses_the_only_source_of_the_config_it_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """./ftwatch.toml with one source is used without --source; with two, watch asks."""
    sim = Simulator(ScaledClock(1.0), seed=3)
    job = sim.create_job(suffix="done", script=[(0, "succeeded")])
    monkeypatch.chdir(tmp_path)
    env: dict[str, str | None] = {"FTWATCH_CONFIG": None, "OPENAI_BASE_URL": None}

    def watch(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(main, ["watch", job, *args], env=env)
        return result.exit_code, result.stdout, result.stderr

    async with serve_simulator(sim, port=0) as api:
        _two_sources(tmp_path, api, ("only",))
        code, out, _ = await anyio.to_thread.run_sync(watch)
        assert code == 0 and "succeeded" in out
        path = _two_sources(tmp_path, api, ("one", "two"))
        code, out, err = await anyio.to_thread.run_sync(watch)
        assert code == 2 and out == ""
        assert err == (
            f"ftwatch: error: {path.name} has 2 sources (one, two); pass --source NAME to say "
            "which one the job is on\n"
        )
        code, out, _ = await anyio.to_thread.run_sync(watch, "--source", "two")
        assert code == 0 and "succeeded" in out
        # $FTWATCH_CONFIG names the file when it is elsewhere.
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        path.rename(elsewhere / "ft.toml")
        _two_sources(elsewhere, api, ("far",)).rename(elsewhere / "ft.toml")
        env["FTWATCH_CONFIG"] = str(elsewhere / "ft.toml")
        code, out, _ = await anyio.to_thread.run_sync(watch)
        assert code == 0 and "succeeded" in out
