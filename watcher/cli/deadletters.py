"""``ftwatch deadletters list|retry|drop``: the events a sink gave up on."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from ..errors import ConfigError, StoreError
from .common import EXIT_FAILURE, config_option, errors_to_exit, fail, load, run_async

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["deadletters"]

R = TypeVar("R")


@click.group()
def deadletters() -> None:
    """List, retry or drop the events a sink gave up on."""


def _with_store(
    config_path: str | None, sink: str | None, fn: Callable[[Store], Awaitable[R]]
) -> R:
    """Run ``fn`` on the state file, after checking that it exists and that ``sink`` is known.

    A ``sink`` is known when the config names it or it still has dead letters (a sink removed
    from the config keeps them), so that a typo is an error, not "0 dead letters".
    """
    from ..store import Store

    config = load(config_path)
    path = Path(config.state.path).expanduser()
    # Store.open would create an empty file, which would then answer "0 dead letters" for a
    # path that is simply wrong.
    if not path.exists():
        raise StoreError(
            f"there is no state file at {path} (the daemon creates it on its first run); "
            "check state.path in the config or $FTWATCH_STATE_PATH"
        )

    async def go() -> R:
        async with await Store.open(path) as store:
            configured = {s.name for s in config.sinks}
            if sink is not None and sink not in configured and not await store.dead_letters(sink):
                names = ", ".join(sorted(configured)) or "none"
                raise ConfigError(
                    f"no sink named {sink!r} in {config.path} and no dead letters of one; "
                    f"configured sinks: {names}"
                )
            return await fn(store)

    return run_async(go)


@deadletters.command("list")
@config_option
@click.option("--sink", help="Only this sink's dead letters.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@errors_to_exit
def deadletters_list(config_path: str | None, sink: str | None, as_json: bool) -> None:
    """List dead letters: sink, event id, type, job, attempts and the last error."""
    letters = _with_store(config_path, sink, lambda store: store.dead_letters(sink))
    for d in letters:
        if as_json:
            row = {
                "sink": d.sink,
                "event_id": d.event_id,
                "type": d.type,
                "source": d.source,
                "job_id": d.job_id,
                "attempts": d.attempts,
                "last_error": d.last_error,
                "died_at": d.died_at,
            }
            click.echo(json.dumps(row))
        else:
            click.echo(
                f"{d.sink}  {d.event_id}  {d.type}  {d.job_id}  x{d.attempts}  {d.last_error}"
            )
    if not as_json:
        click.echo(f"{len(letters)} dead letter(s)", err=True)


def _selection(all_: bool, ids: tuple[str, ...], sink: str | None) -> None:
    if not (all_ or ids or sink):
        raise click.UsageError(
            "name what to act on: --id EVENT_ID (repeatable), --sink NAME or --all"
        )


def _act_on_dead_letters(
    config_path: str | None,
    sink: str | None,
    ids: tuple[str, ...],
    act: Callable[[Store, list[str] | None], Awaitable[int]],
    done: str,
) -> None:
    """Run ``act`` on the selected dead letters and say how many it changed.

    An --id that is not a dead letter (of --sink, when given) is an error and changes nothing:
    a typo must not read as "0 done". --sink or --all matching nothing is not.
    """

    async def go(store: Store) -> tuple[int, list[str]]:
        if ids:
            known = {d.event_id for d in await store.dead_letters(sink)}
            missing = [i for i in dict.fromkeys(ids) if i not in known]
            if missing:
                return 0, missing
        return await act(store, list(ids) or None), []

    n, missing = _with_store(config_path, sink, go)
    if missing:
        owner = f" of sink {sink!r}" if sink else ""
        listed = ", ".join(repr(i) for i in missing)
        if len(missing) == 1:
            what = f"the id {listed} is not a dead letter"
        else:
            what = f"the ids {listed} are not dead letters"
        fail(
            f"{what}{owner}, so nothing was {done}; `ftwatch deadletters list` shows them",
            EXIT_FAILURE,
        )
    if n == 0:
        click.echo(f"no dead letters{f' for sink {sink!r}' if sink else ''}")
    else:
        click.echo(f"{n} dead letter(s) {done}")


def _selection_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options retry and drop share: the config, and which dead letters to act on."""
    for option in reversed(
        (
            config_option,
            click.option("--sink", help="Only this sink's dead letters."),
            click.option("--id", "ids", multiple=True, help="An event id (repeatable)."),
            click.option("--all", "all_", is_flag=True, help="Every dead letter."),
            errors_to_exit,
        )
    ):
        command = option(command)
    return command


@deadletters.command("retry")
@_selection_options
def deadletters_retry(
    config_path: str | None, sink: str | None, ids: tuple[str, ...], all_: bool
) -> None:
    """Queue dead letters again; a running daemon picks them up within a minute or at restart."""
    _selection(all_, ids, sink)
    _act_on_dead_letters(
        config_path,
        sink,
        ids,
        lambda store, event_ids: store.retry_dead_letters(
            sink=sink, event_ids=event_ids, now=time.time()
        ),
        "queued again",
    )


@deadletters.command("drop")
@_selection_options
def deadletters_drop(
    config_path: str | None, sink: str | None, ids: tuple[str, ...], all_: bool
) -> None:
    """Delete dead letters for good."""
    _selection(all_, ids, sink)
    _act_on_dead_letters(
        config_path,
        sink,
        ids,
        lambda store, event_ids: store.drop_dead_letters(sink=sink, event_ids=event_ids),
        "dropped",
    )
