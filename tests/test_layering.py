"""The layering is stated once, in pyproject's ``[tool.importlinter]``, and kept by import-linter.

These tests run that check with the suite, and keep the contract honest: the modules a plugin may
import are exactly :data:`PUBLIC_MODULES`, and each name a plugin takes from one is in its
``__all__``.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_PACKAGES = (
    "ftwatch_stdout",
    "ftwatch_logfile",
    "ftwatch_webhook",
    "ftwatch_slack",
    "ftwatch_email",
    "ftwatch_teams",
    "ftwatch_discord",
    "ftwatch_pagerduty",
    "ftwatch_alertmanager",
    "ftwatch_apprise",
)

#: watcher's public modules: what a plugin (built-in or third-party) may import, each with an
#: ``__all__`` that is its API. Everything else in watcher is private to the package and may
#: change without notice. Changing this list is a change of the public API.
PUBLIC_MODULES = frozenset(
    {
        "watcher",
        "watcher.alerts",
        "watcher.durations",
        "watcher.errors",
        "watcher.events",
        "watcher.facts",
        "watcher.http",
        "watcher.models",
        "watcher.retry",
        "watcher.sinks",
    }
)


def _contracts() -> dict[str, dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {contract["id"]: contract for contract in config["contracts"]}


def _watcher_modules() -> set[str]:
    """Every top-level module and sub-package of watcher, as a dotted name."""
    found = set()
    for path in (ROOT / "watcher").iterdir():
        if path.suffix == ".py" and path.stem != "__init__":
            found.add(f"watcher.{path.stem}")
        elif path.is_dir() and (path / "__init__.py").exists():
            found.add(f"watcher.{path.name}")
    return found


def _plugin_imports() -> list[tuple[Path, str, list[str]]]:
    """(file, watcher module, names) for every ``from watcher... import`` in the plugins."""
    found = []
    for path in sorted((ROOT / "plugins").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module.split(".")[0] == "watcher":
                    found.append((path, node.module, [alias.name for alias in node.names]))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "watcher":
                        found.append((path, alias.name, []))
    return found


def test_import_linter_keeps_every_contract() -> None:
    """`lint-imports` (also run by .ci/run) finds the flow and the plugin boundary intact."""
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_plugins_are_forbidden_every_module_but_the_public_ones() -> None:
    """A new watcher module is private to plugins until it is added to PUBLIC_MODULES."""
    contract = _contracts()["plugins-public-api"]
    assert set(contract["source_modules"]) == set(PLUGIN_PACKAGES)
    assert set(contract["forbidden_modules"]) == _watcher_modules() - PUBLIC_MODULES
    assert PUBLIC_MODULES - {"watcher"} <= _watcher_modules()


@pytest.mark.parametrize("module", sorted(PUBLIC_MODULES))
def test_a_public_module_names_its_api_in_all(module: str) -> None:
    """Each public module says what it offers in ``__all__``, and each of those names exists."""
    imported = importlib.import_module(module)
    names = getattr(imported, "__all__", None)
    assert names, f"{module} is public but has no __all__"
    assert [name for name in names if not hasattr(imported, name)] == []


def test_what_plugins_import_is_in_a_public_modules_all() -> None:
    """Plugins take only names their public module exports, never a private helper."""
    for path, module, names in _plugin_imports():
        assert module in PUBLIC_MODULES, f"{path.name} imports {module}"
        exported = set(importlib.import_module(module).__all__)
        assert set(names) <= exported, f"{path.name} imports {set(names) - exported} from {module}"


def test_the_flow_contract_places_every_module() -> None:
    """Every module of watcher has a line in the flow, so a new one must be placed on purpose."""
    flow = _contracts()["flow"]
    assert flow["exhaustive"] is True
    placed = {
        name.strip().strip("()")
        for line in flow["layers"]
        for name in line.replace(":", "|").split("|")
    }
    assert {m.removeprefix("watcher.") for m in _watcher_modules()} <= placed


@pytest.mark.parametrize(
    "path", sorted((ROOT / "watcher").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_only_watcher_http_imports_httpx(path: Path) -> None:
    """httpx stays behind watcher/http.py, so the transport can change in one place."""
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            if path.name != "http.py":
                assert name.split(".")[0] != "httpx", f"{path.name} imports httpx directly"
