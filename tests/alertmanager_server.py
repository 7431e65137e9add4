"""A real Alertmanager (Debian's ``prometheus-alertmanager``) for the tests, on a loopback port.

``running_alertmanager`` starts the binary with a minimal config whose one receiver is a webhook
pointed at a URL the test serves (a recording receiver), clustering off, its storage in the
test's directory; it waits until ``/-/ready`` answers and stops the process afterwards. Where the
binary is missing, :data:`needs_alertmanager` skips the test, naming the package.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from tests.helpers import free_port

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")

needs_alertmanager = pytest.mark.skipif(
    BINARY is None,
    reason="needs Alertmanager: apt-get install prometheus-alertmanager (Debian's package)",
)

CONFIG = """\
route:
  receiver: recorder
  group_by: ['...']
  group_wait: 100ms
  group_interval: 300ms
  repeat_interval: 1h
receivers:
  - name: recorder
    webhook_configs:
      - url: {hook}
        send_resolved: true
"""


@dataclass
class Alertmanager:
    """A running Alertmanager: its base URL and a client to read its API."""

    url: str
    client: httpx.AsyncClient

    async def alerts(self, **labels: str) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts`` (active ones), only those whose labels include ``labels``."""
        filters = [f'{k}="{v}"' for k, v in labels.items()]
        answer = await self.client.get(f"{self.url}/api/v2/alerts", params={"filter": filters})
        answer.raise_for_status()
        found: list[dict[str, Any]] = answer.json()
        return found

    async def raw_alerts(self, **labels: str) -> str:
        """The body of ``GET /api/v2/alerts`` as Alertmanager printed it (for the record)."""
        filters = [f'{k}="{v}"' for k, v in labels.items()]
        answer = await self.client.get(f"{self.url}/api/v2/alerts", params={"filter": filters})
        return answer.text

    async def until(
        self, check: Callable[[list[dict[str, Any]]], bool], **labels: str
    ) -> list[dict[str, Any]]:
        """The alerts once ``check`` holds for them: short reads, for ten seconds at most."""
        with anyio.fail_after(10):
            while True:
                found = await self.alerts(**labels)
                if check(found):
                    return found
                await anyio.sleep(0.02)


async def _ready(
    client: httpx.AsyncClient, url: str, process: anyio.abc.Process, log: Path
) -> None:
    with anyio.fail_after(15):
        while True:
            if process.returncode is not None:
                said = _tail(log)
                raise RuntimeError(f"Alertmanager exited with {process.returncode}: {said}")
            try:
                if (await client.get(f"{url}/-/ready", timeout=0.5)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            # A short pause between tries: a refused connection returns at once.
            await anyio.sleep(0.02)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


def _write_config(directory: Path, hook: str) -> Path:
    assert BINARY is not None
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "alertmanager.yml"
    config.write_text(CONFIG.format(hook=json.dumps(hook)), encoding="utf-8")
    return config


@asynccontextmanager
async def running_alertmanager(directory: Path, hook: str) -> AsyncIterator[Alertmanager]:
    """Run Alertmanager with its webhook receiver at ``hook`` until the block ends."""
    config = _write_config(directory, hook)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    assert BINARY is not None
    command = [
        BINARY,
        f"--config.file={config}",
        f"--storage.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
    log = directory / "alertmanager.log"
    async with httpx.AsyncClient() as client:
        with log.open("ab") as out:
            process = await anyio.open_process(command, stdout=subprocess.DEVNULL, stderr=out)
        try:
            await _ready(client, url, process, log)
            yield Alertmanager(url, client)
        finally:
            process.terminate()
            with anyio.move_on_after(5):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
