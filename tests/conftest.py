"""Fixtures every test shares."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from watcher.logs import reset_logging


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio only: uvicorn, which serves the simulator, needs it."""
    return "asyncio"


@pytest.fixture(autouse=True)
def _logging_as_the_library_leaves_it() -> Iterator[None]:
    """Undo any test's logging set-up after it: a command run in-process (``ftwatch sinks
    test`` through CliRunner) configures logging for its stream, which would otherwise swallow
    the log lines a later test captures, making results depend on the order tests run in."""
    yield
    reset_logging()
