"""``ftwatch init``: write a commented starter ``ftwatch.toml`` in the current directory.

The template ships inside the package (``watcher/cli/starter.toml``, a copy of the project's
``config.example.toml`` that a test keeps identical), since the example file itself is not
installed with the package.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import click

from .common import EXIT_USAGE, errors_to_exit, fail

__all__ = ["init", "starter_config"]

#: The file ``init`` writes, in the current directory; also the default ``--config``.
TARGET = "ftwatch.toml"


def starter_config() -> str:
    """The commented starter config, as shipped in the package."""
    return files("watcher.cli").joinpath("starter.toml").read_text(encoding="utf-8")


@click.command()
@errors_to_exit
def init() -> None:
    """Write a commented starter ftwatch.toml in the current directory.

    It shows every key with its default; edit the sources and sinks, set the environment
    variables it names, then run `ftwatch check`. An existing ftwatch.toml is never overwritten.
    """
    path = Path(TARGET)
    try:
        # "x": create, or fail if it exists, in one step (no window to clobber a file).
        with path.open("x", encoding="utf-8") as out:
            out.write(starter_config())
    except FileExistsError:
        fail(
            f"{path.resolve()} exists already and was left as it is; edit it, or move it away"
            " and run `ftwatch init` again",
            EXIT_USAGE,
        )
    except OSError as exc:
        fail(
            f"cannot write {path.resolve()} ({exc.strerror or type(exc).__name__}); run"
            " `ftwatch init` in a directory you can write to",
            EXIT_USAGE,
        )
    click.echo(
        f"wrote {path.resolve()}: edit its sources and sinks, set OPENAI_API_KEY, then run"
        " `ftwatch check` and `ftwatch run`"
    )
