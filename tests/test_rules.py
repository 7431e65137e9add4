"""The Prometheus alert rules in contrib/ are valid and fire when they should (promtool)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parent.parent / "contrib" / "prometheus"


def promtool() -> str:
    """The promtool command, or skip naming the package that provides it."""
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool not found: install Debian's `prometheus` package")
    return found


def test_promtool_checks_the_rules() -> None:
    """`promtool check rules` accepts ftwatch-rules.yml."""
    result = subprocess.run(
        [promtool(), "check", "rules", "ftwatch-rules.yml"],
        cwd=RULES,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    """`promtool test rules`: every alert fires when it should and stays quiet before."""
    result = subprocess.run(
        [promtool(), "test", "rules", "ftwatch-rules.test.yml"],
        cwd=RULES,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
