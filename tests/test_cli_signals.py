"""`ftwatch run` and signals, as a process: every way of stopping it is one sentence and exit 0.

Issue 7, items 10 and 20: a second Ctrl-C during shutdown, a SIGTERM in the first fraction of
a second, and what `run` says on a terminal when it starts and when it stops.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from watcher.clock import ScaledClock
from watcher.simulator import Simulator, serve_simulator

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and ptys")

RUN = [sys.executable, "-m", "watcher", "run"]


def _config(tmp: Path, api: str, hook: str) -> str:
    return textwrap.dedent(
        f"""
        [state]
        path = "{tmp / "state.db"}"

        [[sources]]
        name = "sim"
        base_url = "{api}"
        emit_existing = true

        [[sinks]]
        name = "hook"
        type = "webhook"
        url = "{hook}"
        """
    )


class _Terminal:
    """A pseudo-terminal for a child's stderr, so that it behaves as on a person's screen."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.text = ""

    async def read_until(self, needle: str) -> str:
        with anyio.fail_after(60):
            while needle not in self.text:
                chunk = await anyio.to_thread.run_sync(self._read, abandon_on_cancel=True)
                if not chunk:
                    raise AssertionError(
                        f"{needle!r} never came; the terminal showed:\n{self.text}"
                    )
                self.text += chunk
        return self.text

    def _read(self) -> str:
        try:
            return os.read(self.master, 4096).decode(errors="replace")
        except OSError:  # EIO: the child closed its end
            return ""

    def close(self) -> None:
        os.close(self.master)


async def test_a_second_ctrl_c_cuts_the_drain_short_with_one_sentence_and_exit_0(
    tmp_path: Path,
) -> None:
    """On a terminal `run` says what it watches and when it stops; a second Ctrl-C exits 0.

    The receiver takes the connection and never answers, so the first Ctrl-C starts a drain
    that would wait --drain-timeout (10 minutes); the second ends it at once.
    """
    connected = anyio.Event()

    async def never_answer(stream: anyio.abc.SocketStream) -> None:
        connected.set()
        await anyio.sleep_forever()

    sim = Simulator(ScaledClock(1.0), seed=1)
    sim.create_job(suffix="first")
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 - anyio, not Django
    terminal = _Terminal()
    async with serve_simulator(sim, port=0) as api, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, never_answer)
        config = tmp_path / "ftwatch.toml"
        config.write_text(_config(tmp_path, api, f"http://127.0.0.1:{port}/hook"))
        proc = await anyio.open_process(
            [*RUN, "--config", str(config), "--drain-timeout", "600"],
            stdout=subprocess.DEVNULL,
            stderr=terminal.slave,
        )
        os.close(terminal.slave)
        try:
            shown = await terminal.read_until("Ctrl-C stops.")
            assert "ftwatch: watching sim every 30 s; delivering to hook; state in " in shown
            with anyio.fail_after(60):
                await connected.wait()
            proc.send_signal(signal.SIGINT)
            await terminal.read_until("press Ctrl-C again to stop at once")
            proc.send_signal(signal.SIGINT)
            shown = await terminal.read_until("after the next start.")
            with anyio.fail_after(60):
                code = await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
            terminal.close()
            tg.cancel_scope.cancel()
    assert code == 0
    assert "Traceback" not in shown and "ExceptionGroup" not in shown
    assert (
        "ftwatch: stopped without waiting for the sinks; what they had not delivered is "
        "delivered after the next start." in shown
    )


async def test_sigterm_before_run_has_started_is_a_clean_stop_not_death_by_signal(
    tmp_path: Path,
) -> None:
    """SIGTERM while `run` is still starting (reading its config) exits 0 with one sentence.

    The config is a FIFO: opening its other end proves `run` is past its imports and reading
    it, the moment a SIGTERM used to kill it with -15.
    """
    fifo = tmp_path / "ftwatch.toml"
    os.mkfifo(fifo)
    proc = await anyio.open_process(
        [*RUN, "--config", str(fifo)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        # Blocks until `run` opens the FIFO to read it.
        writer = await anyio.to_thread.run_sync(os.open, str(fifo), os.O_WRONLY)
        proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(60):
            err = b"".join([chunk async for chunk in proc.stderr]).decode()
            out = b"".join([chunk async for chunk in proc.stdout]).decode()
            code = await proc.wait()
        os.close(writer)
    finally:
        if proc.returncode is None:
            proc.kill()
    assert code == 0, err
    assert err == "ftwatch: stopped before it started.\n"
    assert out == ""


async def test_a_refused_key_ends_run_with_a_closing_sentence_and_exit_3(tmp_path: Path) -> None:
    """When the only source's key is refused, `run` stops with one sentence saying so."""
    sim = Simulator(ScaledClock(1.0), seed=1, api_key="sk-the-right-key-0123456789")
    async with serve_simulator(sim, port=0) as api:
        config = tmp_path / "ftwatch.toml"
        config.write_text(
            textwrap.dedent(
                f"""
                [state]
                path = "{tmp_path / "state.db"}"

                [[sources]]
                name = "sim"
                base_url = "{api}"
                api_key = "sk-a-wrong-key-0123456789"
                """
            )
        )
        with anyio.fail_after(60):
            proc = await anyio.run_process([*RUN, "--config", str(config)], check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 3
    assert "Traceback" not in err
    assert err.splitlines()[-1] == (
        "ftwatch: error: every source stopped because its API key was refused (the log above "
        "names each); fix the keys and start again"
    )
    assert "sk-a-wrong-key" not in err
