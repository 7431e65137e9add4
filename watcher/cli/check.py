"""``ftwatch check``: what ``run`` would refuse, found before it runs; ``--online`` tries keys."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .common import (
    EXIT_AUTH,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    config_file,
    config_option,
    errors_to_exit,
    fail,
    run_async,
)

if TYPE_CHECKING:
    from ..config import Config, SourceConfig

__all__ = ["check", "state_problem"]


def state_problem(state: Path) -> str | None:
    """Why ``run`` could not create or write the state file at ``state``, or None if it can."""
    if state.is_dir():
        return f"state.path {state} is a directory; name a file such as {state / 'ftwatch.db'}"
    # The nearest directory that exists is where run would create what is missing.
    existing = state.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"state.path {state} cannot be created: {existing} is a file, not a directory"
    target = state if state.exists() else existing
    if not os.access(target, os.W_OK):
        return f"state.path {state} is not writable: {target} is read-only for this user"
    return None


async def _build_sinks(config: Config) -> None:
    """Build and close every sink as ``run`` would: a plugin checks its own paths and keys."""
    from ..sinks import sink_plugin

    for sink_config in config.sinks:
        sink = sink_plugin(sink_config.type).build(sink_config)
        await sink.aclose()


async def _try_source(source: SourceConfig) -> tuple[str, int]:
    """One cheap request with the source's key: ``(what to say, exit code)``."""
    import anyio

    from ..app import client_for
    from ..errors import APIError, AuthenticationError

    # One attempt: a check says what is wrong now instead of retrying for a minute.
    single = source.model_copy(update={"max_attempts": 1})
    try:
        async with client_for(single) as client:
            with anyio.fail_after(max(source.timeout, 1.0) * 2):
                await client.list_jobs(limit=1)
    except AuthenticationError as exc:
        return f"key refused: {exc}", EXIT_AUTH
    except APIError as exc:
        return f"not usable: {exc}", EXIT_UNREACHABLE
    except TimeoutError:
        return "no answer in time; check base_url and the network", EXIT_UNREACHABLE
    return "ok: the key lists jobs", EXIT_OK


@click.command()
@config_option
@click.option(
    "--online",
    is_flag=True,
    help="Also try each source's key with one cheap request and say, per source, ok or why not.",
)
@errors_to_exit
def check(config_path: str | None, online: bool) -> None:
    """Validate the config and print it resolved, with every secret masked.

    It also checks what `run` needs beyond the file: that the state file can be created and
    written, and that every sink can be built (a log file's directory exists and is writable).
    """
    from ..config import load_config
    from ..logs import register_secret

    config = load_config(config_file(config_path))
    for source in config.sources:
        register_secret(source.api_key)
    problem = state_problem(Path(config.state.path))
    if problem is not None:
        fail(f"{config.path or 'config'}: {problem}", EXIT_USAGE)
    run_async(lambda: _build_sinks(config))
    click.echo(json.dumps(config.redacted(), indent=2, default=str))
    if not online:
        click.echo(f"ftwatch: {config.path or 'config'} is valid.", err=True)
        return

    async def try_all() -> list[tuple[str, int]]:
        return [await _try_source(source) for source in config.sources]

    results = run_async(try_all)
    for source, (said, _) in zip(config.sources, results, strict=True):
        click.echo(f"ftwatch: source {source.name!r}: {said}", err=True)
    worst = max(code for _, code in results)
    if worst:
        # 3 (a refused key) outranks 4 (unreachable): it is the one a person must fix.
        raise SystemExit(EXIT_AUTH if EXIT_AUTH in {c for _, c in results} else worst)
    click.echo(f"ftwatch: {config.path or 'config'} is valid and every source answered.", err=True)
