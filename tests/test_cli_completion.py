"""Shell completion (issue 10, item 7): click's completion scripts come from the real binary."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FTWATCH = shutil.which("ftwatch") or str(Path(sys.executable).with_name("ftwatch"))


@pytest.mark.parametrize(
    ("shell", "marker"),
    [("bash", "complete -o nosort -F"), ("zsh", "compdef"), ("fish", "complete --no-files")],
)
def test_each_shell_gets_a_completion_script(shell: str, marker: str) -> None:
    """`_FTWATCH_COMPLETE=<shell>_source ftwatch` prints a script that completes ftwatch."""
    proc = subprocess.run(
        [FTWATCH],
        env={**os.environ, "_FTWATCH_COMPLETE": f"{shell}_source"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert marker in proc.stdout and "_FTWATCH_COMPLETE" in proc.stdout


def test_completion_names_the_commands() -> None:
    """Completing `ftwatch st` offers `status` (and nothing else starting so)."""
    proc = subprocess.run(
        [FTWATCH],
        env={
            **os.environ,
            "_FTWATCH_COMPLETE": "bash_complete",
            "COMP_WORDS": "ftwatch st",
            "COMP_CWORD": "1",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["plain,status"]
