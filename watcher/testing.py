"""Test helpers ftwatch ships for its users' tests (and uses for its own).

- :class:`CollectingSink`: a sink that keeps what it receives, and can fail on demand;
- :func:`simulator_transport`: the simulator as an httpx transport, no socket needed;
- :func:`sample_job`: a valid job snapshot to build events from;
- :class:`~watcher.testing_receiver.RecordingReceiver` (re-exported): a real HTTP receiver.

Drive a :class:`~watcher.Watcher` built with ``autostart=False`` through
:meth:`~watcher.Watcher.poll_once` (one cycle) and :meth:`~watcher.Watcher.flush`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import anyio

from .events import BaseEvent
from .http import ASGITransport
from .models import FineTuningJob
from .sinks import SinkBase, SinkConfig
from .testing_receiver import RecordingReceiver

__all__ = [
    "CollectingSink",
    "RecordingReceiver",
    "sample_job",
    "simulator_transport",
]


class CollectingSink(SinkBase):
    """A sink that appends every event it is sent to :attr:`events`.

    ``fail`` may be set to a callable that raises for the events that should fail (to test
    retries): it is called before the event is recorded.
    """

    config_model: ClassVar[type[SinkConfig]] = SinkConfig

    def __init__(self, config: SinkConfig | None = None, *, name: str = "collect") -> None:
        super().__init__(config or SinkConfig(name=name, type="collect"))
        self.events: list[BaseEvent] = []
        self.fail: Callable[[BaseEvent], None] | None = None
        self._changed = anyio.Event()
        self.closed = False

    async def send(self, event: BaseEvent) -> None:
        """Record ``event`` (after ``fail`` had its say)."""
        if self.fail is not None:
            self.fail(event)
        self.events.append(event)
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for(self, count: int) -> list[BaseEvent]:
        """Return once at least ``count`` events were received (wrap it in ``anyio.fail_after``)."""
        while len(self.events) < count:
            await self._changed.wait()
        return self.events

    async def aclose(self) -> None:
        """Remember that the sink was closed."""
        self.closed = True


def simulator_transport(simulator: Any) -> ASGITransport:
    """An httpx transport that serves requests from a :class:`~watcher.simulator.Simulator`."""
    return ASGITransport(app=simulator.app)


def sample_job(**fields: Any) -> FineTuningJob:
    """A valid job snapshot; keyword arguments override its fields."""
    data: dict[str, Any] = {
        "id": "ftjob-sample",
        "object": "fine_tuning.job",
        "status": "running",
        "model": "gpt-4o-mini-2024-07-18",
        "created_at": 1_700_000_000,
        "training_file": "file-abc123",
    }
    data.update(fields)
    return FineTuningJob.model_validate(data)
