"""`import watcher` and `ftwatch --version` load only what they need (issue 7, item 20).

Names are resolved on first use, so the checks here are about which modules get imported, not
about time (bench/startup.py prints the figures).
"""

from __future__ import annotations

import subprocess
import sys

import watcher

HEAVY = ("watcher.app", "watcher.store", "httpx", "pydantic", "sqlite3")


def _imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return set(proc.stdout.split())


def test_import_watcher_loads_nothing_heavy() -> None:
    """`import watcher` alone imports neither the watcher, the store nor httpx or pydantic."""
    loaded = _imported_after("import watcher")
    assert not loaded & set(HEAVY)


def test_the_version_option_loads_nothing_heavy() -> None:
    """`ftwatch --version` answers without importing what commands need."""
    loaded = _imported_after(
        "from watcher.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n    pass"
    )
    assert not loaded & set(HEAVY)


def test_every_exported_name_is_resolved_lazily_from_its_module() -> None:
    """Each name in `__all__` has a home module, and resolving it gives that module's object."""
    import importlib

    homes = watcher._WHERE
    assert set(homes) == set(watcher.__all__)
    for name, module in homes.items():
        assert getattr(watcher, name) is getattr(importlib.import_module(f"watcher.{module}"), name)
    assert "Watcher" in dir(watcher)
