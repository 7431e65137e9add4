"""The flow goes one way: no module imports a later stage, and plugins use only the public API."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Lower ranks come first in the flow; a module may import only modules of a lower rank.
RANKS: dict[str, int] = {
    "errors": 0,
    "clock": 0,
    "durations": 0,
    "http": 0,
    "serving": 0,
    "logs": 0,
    "wal": 0,
    "models": 1,
    "events": 2,
    "diff": 3,
    "sinks": 3,
    "client": 3,
    "config": 4,
    "store": 4,
    "snapshots": 4,
    "poller": 5,
    "dispatch": 5,
    "subscribers": 5,
    "app": 6,
    "simulator": 7,
    "testing_receiver": 7,
    "demo": 8,
    "follow": 8,
    "cli": 9,
    "__main__": 10,
    "testing": 9,
    "__init__": 10,
}

#: The modules a plugin may import: the package and its public modules.
PLUGIN_ALLOWED = {
    "watcher",
    "watcher.sinks",
    "watcher.errors",
    "watcher.events",
    "watcher.models",
    "watcher.http",
    "watcher.durations",
}


def _module_of(path: Path) -> str:
    rel = path.relative_to(ROOT / "watcher")
    return rel.parts[0].removesuffix(".py")


def _watcher_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    in_simulator = "simulator" in path.parts
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module.startswith("watcher"):
                parts = node.module.split(".")
                found.add(parts[1] if len(parts) > 1 else "__init__")
            elif (
                (node.level == 1 and not in_simulator)
                or node.level == 2
                or (node.level == 1 and in_simulator and node.module is None)
            ):
                found.add((node.module or "__init__").split(".")[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("watcher."):
                    found.add(alias.name.split(".")[1])
    return found


WATCHER_FILES = sorted((ROOT / "watcher").rglob("*.py"))


@pytest.mark.parametrize("path", WATCHER_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_import_only_earlier_stages(path: Path) -> None:
    """Every watcher module imports only modules earlier in the flow (DESIGN.md)."""
    me = _module_of(path)
    assert me in RANKS, f"{me} has no rank in tests/test_layering.py: place it in the flow"
    for other in _watcher_imports(path):
        if other == me:
            continue
        assert other in RANKS, f"{me} imports unknown module {other}"
        assert RANKS[other] < RANKS[me], f"{me} (rank {RANKS[me]}) imports {other} ({RANKS[other]})"


@pytest.mark.parametrize(
    "path", sorted((ROOT / "plugins").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_plugins_use_only_the_public_api(path: Path) -> None:
    """Built-in plugins import only watcher's public modules, like any third-party plugin."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("watcher"):
                assert node.module in PLUGIN_ALLOWED, f"{path.name} imports {node.module}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                assert not alias.name.startswith("watcher.") or alias.name in PLUGIN_ALLOWED


@pytest.mark.parametrize("path", WATCHER_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_watcher_never_imports_plugins_or_httpx_directly(path: Path) -> None:
    """watcher never imports a plugin, and only watcher/http.py imports httpx."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            assert not name.startswith("ftwatch_"), f"{path.name} imports plugin {name}"
            if path.name != "http.py":
                assert name.split(".")[0] != "httpx", f"{path.name} imports httpx directly"
