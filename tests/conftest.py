"""Fixtures every test shares."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio only: uvicorn, which serves the simulator, needs it."""
    return "asyncio"
