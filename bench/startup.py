"""Start-up cost: ``import watcher`` and ``ftwatch --version``, lazy against eager.

Run: .venv/bin/python bench/startup.py [runs]

Each case is a fresh interpreter, timed from outside (wall clock, median of ``runs``, default
15). "eager" resolves every exported name, which is what ``import watcher`` cost when the
package imported them all at the top; the lazy cases import only what they use.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

CASES = {
    "python -c pass (the interpreter alone)": "pass",
    "import watcher (lazy)": "import watcher",
    "import watcher + every export (eager, as before)": (
        "import watcher\nfor n in watcher.__all__: getattr(watcher, n)"
    ),
    "ftwatch --version (lazy)": (
        "from watcher.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n    pass"
    ),
    "ftwatch --version + every export (eager, as before)": (
        "import watcher\nfor n in watcher.__all__: getattr(watcher, n)\n"
        "import watcher.app, watcher.store, watcher.follow\n"
        "from watcher.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n    pass"
    ),
}


def _median_ms(code: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    """Print the median wall time of each case."""
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    for label, code in CASES.items():
        print(f"{label:<55} {_median_ms(code, runs):7.1f} ms (median of {runs})")


if __name__ == "__main__":
    main()
