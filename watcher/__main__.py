"""``python -m watcher``: the same as the ``ftwatch`` command."""

from .cli import main

main()
