"""``python -m watcher`` for the benches, optionally with the poller as it was (``--old``).

Run: .venv/bin/python bench/daemon.py [--old] run --config ftwatch.toml
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    if sys.argv[1:2] == ["--old"]:
        del sys.argv[1]
        import before  # the pinned old path, beside this file

        before.pin_old_poller()
    from watcher.cli import main

    main()
