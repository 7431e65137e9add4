"""watcher.notify and contrib/ftwatch.service: the daemon as a systemd service (issue 10, item 4).

The daemon runs as a process against the simulator with ``$NOTIFY_SOCKET`` pointing at a real
unix datagram socket, as systemd would give it; while it runs (and holds the state file's
lock), ``ftwatch status`` must answer (item 2).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from watcher.notify import Notifier
from watcher.serving import serve_asgi
from watcher.simulator import Simulator, serve_simulator
from watcher.testing_receiver import RecordingReceiver

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="unix sockets and signals")

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "contrib" / "ftwatch.service"


def _config(tmp: Path, api: str, hook: str) -> Path:
    path = tmp / "ftwatch.toml"
    path.write_text(
        textwrap.dedent(
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
    )
    return path


async def _receive_until(sock: anyio.abc.UNIXDatagramSocket, line: str) -> list[str]:
    """Every message up to and including the first that holds ``line``."""
    got: list[str] = []
    with anyio.fail_after(60):
        while True:
            data, _ = await sock.receive()
            got.append(data.decode())
            if line in data.decode().splitlines():
                return got


async def test_the_daemon_tells_systemd_ready_watchdog_stopping_and_status_answers_meanwhile(
    tmp_path: Path,
) -> None:
    """READY=1 once it watches, WATCHDOG=1 with $WATCHDOG_USEC, STOPPING=1 on SIGTERM; and
    `ftwatch status --json` answers from the state file while the daemon holds its lock."""
    sim = Simulator(seed=3)
    running = sim.add_jobs(2, "running")
    queued = sim.add_jobs(1, "queued")
    sim.add_jobs(3, "succeeded")
    receiver = RecordingReceiver()
    notify_path = tmp_path / "notify.sock"
    sock = await anyio.create_unix_datagram_socket(local_path=notify_path)
    async with sock, serve_simulator(sim, port=0) as api, serve_asgi(receiver) as hook:
        config = _config(tmp_path, api, f"{hook}/in")
        env = {
            **os.environ,
            "NOTIFY_SOCKET": str(notify_path),
            # 0.2 s: a ping every 0.1 s, so one comes soon after READY.
            "WATCHDOG_USEC": "200000",
        }
        proc = await anyio.open_process(
            [sys.executable, "-m", "watcher", "run", "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            first = await _receive_until(sock, "READY=1")
            assert first == ["READY=1\nSTATUS=watching 1 source(s)"]
            # emit_existing: one `created` event per job, each a webhook request; the poll
            # that found them is committed before any goes out.
            with anyio.fail_after(60):
                await receiver.wait_for(6)
            status = await anyio.run_process(
                [sys.executable, "-m", "watcher", "status", "--json", "--config", str(config)],
                check=False,
            )
            assert status.returncode == 0, status.stderr.decode()
            await _receive_until(sock, "WATCHDOG=1")
            proc.send_signal(signal.SIGTERM)
            await _receive_until(sock, "STOPPING=1")
            with anyio.fail_after(60):
                code = await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
    assert code == 0
    data = json.loads(status.stdout)
    (source,) = data["sources"]
    assert source["name"] == "sim" and source["baselined"] is True
    assert source["jobs"] == {"queued": 1, "running": 2, "succeeded": 3}
    assert source["last_poll"] is not None
    assert {(j["id"], j["status"]) for j in source["active"]} == {
        *((i, "running") for i in running),
        *((i, "queued") for i in queued),
    }
    (sink,) = data["sinks"]
    assert sink["name"] == "hook" and sink["dead_letters"] == 0 and sink["disabled"] is False


def test_without_notify_socket_nothing_is_sent() -> None:
    """Outside systemd the notifier is off: no socket, no watchdog."""
    notifier = Notifier({})
    assert not notifier.enabled and notifier.watchdog_interval is None
    assert notifier.send("READY=1") is False


def test_the_watchdog_is_for_this_process_only(tmp_path: Path) -> None:
    """WATCHDOG_PID naming another process turns the pings off; an abstract name is kept."""
    env = {"NOTIFY_SOCKET": "@ftwatch-test", "WATCHDOG_USEC": "30000000"}
    assert Notifier(env).watchdog_interval == 15.0
    assert Notifier(env).address == "\0ftwatch-test"
    assert Notifier({**env, "WATCHDOG_PID": str(os.getpid())}).watchdog_interval == 15.0
    assert Notifier({**env, "WATCHDOG_PID": "1"}).watchdog_interval is None


def test_a_message_goes_out_as_one_datagram(tmp_path: Path) -> None:
    """send() writes its lines as one datagram; a socket nobody reads is no error."""
    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        assert Notifier({"NOTIFY_SOCKET": str(path)}).send("READY=1", "STATUS=ok")
        assert server.recv(4096) == b"READY=1\nSTATUS=ok"
    assert Notifier({"NOTIFY_SOCKET": str(path)}).send("READY=1") is False


def test_the_unit_file_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """contrib/ftwatch.service has no unknown key or bad value (systemd-analyze verify)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is missing: install Debian's `systemd` package")
    ftwatch = shutil.which("ftwatch") or str(Path(sys.executable).with_name("ftwatch"))
    unit = tmp_path / "ftwatch.service"
    # verify also checks that ExecStart's program exists: point it at the installed one.
    text = UNIT.read_text()
    assert "ExecStart=/usr/local/bin/ftwatch run" in text
    unit.write_text(text.replace("/usr/local/bin/ftwatch", ftwatch))
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    # A bad key or value is only a warning (exit 0): any line about the unit fails the test.
    problems = [
        line for line in (proc.stdout + proc.stderr).splitlines() if "ftwatch.service" in line
    ]
    assert proc.returncode == 0 and not problems, proc.stdout + proc.stderr
    for key in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "DynamicUser=yes",
        "StateDirectory=ftwatch",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
    ):
        assert f"\n{key}" in text, key
