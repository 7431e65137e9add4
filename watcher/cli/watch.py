"""``ftwatch watch JOB``: follow one job; which source it is on comes from the config or env."""

from __future__ import annotations

import functools
import os
import sys
from typing import TYPE_CHECKING

import click

from ..errors import ConfigError
from .common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    config_file,
    config_option,
    errors_to_exit,
    fail,
    load,
    run_async,
)

if TYPE_CHECKING:
    from ..config import SourceConfig

__all__ = ["watch"]


def _configured_source(config_path: str | None, source_name: str | None) -> SourceConfig:
    config = load(config_path)
    if source_name is not None:
        for source in config.sources:
            if source.name == source_name:
                return source
        names = ", ".join(s.name for s in config.sources)
        raise ConfigError(f"no source named {source_name!r} in {config.path}; known: {names}")
    if len(config.sources) == 1:
        return config.sources[0]
    names = ", ".join(s.name for s in config.sources)
    raise ConfigError(
        f"{config.path} has {len(config.sources)} sources ({names}); "
        "pass --source NAME to say which one the job is on"
    )


def _environment_source(source_name: str | None, base_url: str | None) -> SourceConfig:
    from pydantic import ValidationError

    from ..config import SourceConfig
    from ..logs import register_secret

    key = os.environ.get("OPENAI_API_KEY")
    if key is not None and not key.strip():
        raise ConfigError(
            "OPENAI_API_KEY is set but empty; export the key, or unset it for a server that "
            "needs none"
        )
    register_secret(key)
    url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
    try:
        return SourceConfig(name=source_name or "openai", base_url=url, api_key=key)
    except ValidationError as exc:
        fields = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
        if "base_url" in fields:
            given = "--base-url" if base_url else "$OPENAI_BASE_URL"
            raise ConfigError(
                f"{given} {url!r} is not a usable URL; give one such as https://api.openai.com/v1"
            ) from None
        raise ConfigError(
            f"the source from the environment is not usable ({exc.errors()[0]['msg']})"
        ) from None


def source_for_watch(
    config_path: str | None, source_name: str | None, base_url: str | None
) -> SourceConfig:
    """The source ``watch`` talks to.

    ``--config``, or a config found at ``$FTWATCH_CONFIG`` / ``./ftwatch.toml`` when
    ``--base-url`` is not given: its only source, or the one ``--source`` names. Otherwise the
    environment: ``OPENAI_API_KEY`` and ``--base-url`` or ``$OPENAI_BASE_URL``.
    """
    if config_path or (base_url is None and config_file(None).exists()):
        return _configured_source(config_path, source_name)
    return _environment_source(source_name, base_url)


def _exit_code(statuses: dict[str, str]) -> int:
    """``watch --all``'s code: 1 when a job failed, else 2 when one was cancelled, else 0."""
    outcomes = set(statuses.values())
    if "failed" in outcomes:
        return EXIT_FAILURE
    return EXIT_USAGE if "cancelled" in outcomes else EXIT_OK


@click.command()
@click.argument("job_id", required=False)
@click.option(
    "--all",
    "every_job",
    is_flag=True,
    help="Follow every active job of the source (and those that start meanwhile) as a table.",
)
@config_option
@click.option("--source", "source_name", help="Which configured source the job (or --all) is on.")
@click.option("--base-url", help="The API base URL, instead of a config [$OPENAI_BASE_URL].")
@click.option(
    "--interval",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0.05),
    metavar="SECONDS",
    help="Seconds between polls (at least 0.05).",
)
@click.option(
    "--progress-interval",
    type=click.FloatRange(min=0.05),
    metavar="SECONDS",
    help="With --all: seconds between reads of a running job's events "
    "[default: the source's progress_interval, 60].",
)
@click.option(
    "--give-up-after",
    default=600.0,
    show_default=True,
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="How long the API may stay unreachable (retried with backoff) before exit code 4.",
)
@errors_to_exit
def watch(
    job_id: str | None,
    every_job: bool,
    config_path: str | None,
    source_name: str | None,
    base_url: str | None,
    interval: float,
    progress_interval: float | None,
    give_up_after: float,
) -> None:
    """Follow one job (JOB_ID), or every active job of a source (--all), to the end.

    On a terminal a live progress bar shows the step, percent, train and valid loss, ETA and
    time in the status; checkpoints, warn/error messages and stalls are printed above it.
    Elsewhere one line is printed per status, progress update, checkpoint, message or stall.

    With --all, a live table shows one row per active job (status, progress, losses, ETA, time
    in status; a stalled job says STALLED), jobs that start meanwhile are added, and it ends
    once all have ended; elsewhere one line per change. A running job's events are read once
    per --progress-interval.

    Exit code 0 when it succeeded, 1 when it failed, 2 when it was cancelled (--all: 1 when
    any failed, else 2 when any was cancelled, else 0; 0 too with no active job), 3 when the
    key is refused or the job unknown, 4 when the API stayed unreachable for --give-up-after.

    The source comes from --config, else from $FTWATCH_CONFIG or ./ftwatch.toml when one
    exists (its only source, or the one --source names); else from OPENAI_API_KEY and
    --base-url or OPENAI_BASE_URL. The job's lines go to stdout, logs to stderr.
    """
    from ..follow import FollowGaveUp, follow_job
    from ..follow_all import follow_all
    from ..logs import configure_logging

    if (job_id is None) == (not every_job):
        fail(
            "give either a JOB_ID or --all (not both): watch follows one job, or every active "
            "job of the source",
            EXIT_USAGE,
        )
    # Warnings on stderr; a config, when one is used, sets its own level (still on stderr).
    configure_logging("warning", "auto", stream=sys.stderr)
    source = source_for_watch(config_path, source_name, base_url)
    try:
        if job_id is None:
            statuses = run_async(
                functools.partial(
                    follow_all,
                    source,
                    interval=interval,
                    progress_interval=progress_interval,
                    give_up_after=give_up_after,
                )
            )
            sys.exit(_exit_code(statuses))
        follow = functools.partial(
            follow_job, source, job_id, interval=interval, give_up_after=give_up_after
        )
        status = run_async(follow)
    except FollowGaveUp as exc:
        fail(str(exc), EXIT_UNREACHABLE)
    sys.exit({"succeeded": EXIT_OK, "failed": EXIT_FAILURE, "cancelled": EXIT_USAGE}[status])
