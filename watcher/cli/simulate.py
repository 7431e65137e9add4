"""``ftwatch simulate`` and ``ftwatch demo``: the simulated API, served or watched."""

from __future__ import annotations

import functools
import signal
import tempfile
from pathlib import Path

import click

from .common import EXIT_FAILURE, errors_to_exit, fail, run_async

__all__ = ["demo", "simulate"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option(
    "--port",
    default=8089,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="The port to listen on (0 picks a free one).",
)
@click.option("--speed", default=60.0, show_default=True, help="Simulated seconds per second.")
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="Seeds the simulator's randomness (ids, losses, timings): same seed, same run.",
)
@click.option("--demo/--no-demo", default=True, show_default=True, help="Start with demo jobs.")
@click.option(
    "--progress/--no-progress",
    default=False,
    show_default=True,
    help="Also add jobs that stall, stop logging metrics, pause, warn and slip their ETA.",
)
@click.option("--api-key", envvar="FTWATCH_SIMULATOR_API_KEY", help="Require this bearer key.")
@errors_to_exit
def simulate(
    host: str, port: int, speed: float, seed: int, demo: bool, progress: bool, api_key: str | None
) -> None:
    """Serve a simulated fine-tuning API (OpenAI-compatible) for trying tools against.

    SIGINT or SIGTERM stops it (exit code 0).
    """
    import anyio

    from ..clock import ScaledClock
    from ..simulator import Simulator, demo_scenario, progress_scenario, serve_simulator

    sim = Simulator(ScaledClock(speed), seed=seed, api_key=api_key)
    if demo:
        demo_scenario(sim)
    if progress:
        progress_scenario(sim)

    async def serve() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with serve_simulator(sim, host=host, port=port) as url:
                click.echo(
                    f"Simulated fine-tuning API at {url} ({speed:g}x speed). Ctrl-C stops it."
                )
                async for _ in signals:
                    return

    try:
        run_async(serve)
    except OSError as exc:
        fail(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port",
            EXIT_FAILURE,
        )


def _listen_address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from ..config.models import split_listen

    if value is not None:
        try:
            split_listen(value)
        except ValueError:
            raise click.BadParameter(
                f'{value!r} is not host:port; use one such as "127.0.0.1:9464"'
            ) from None
    return value


@click.command()
@click.option("--speed", default=60.0, show_default=True, help="Simulated seconds per second.")
@click.option("--json", "as_json", is_flag=True, help="Print events as JSON lines.")
@click.option("--state", "state_path", metavar="PATH", help="SQLite file [default: a temp file].")
@click.option(
    "--listen",
    metavar="HOST:PORT",
    callback=_listen_address,
    help="Serve /metrics, /healthz and /readyz there meanwhile (as [server] listen does).",
)
@errors_to_exit
def demo(speed: float, as_json: bool, state_path: str | None, listen: str | None) -> None:
    """Watch simulated jobs run to the end, with no account and no network."""
    from ..demo import run_demo
    from ..logs import configure_logging

    configure_logging("warning", "auto")
    with tempfile.TemporaryDirectory(prefix="ftwatch-demo-") as tmp:
        path = Path(state_path) if state_path else Path(tmp) / "ftwatch-demo.db"
        summary = run_async(
            functools.partial(
                run_demo, speed=speed, as_json=as_json, state_path=path, listen=listen
            )
        )
    click.echo(summary, err=True)
