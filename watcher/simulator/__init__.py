"""A fake OpenAI fine-tuning API, for the demo, the tests and the benchmarks.

:class:`Simulator` holds simulated jobs whose status follows a script (or a seeded random
progression) on an injected clock, and is itself an ASGI app serving ``/v1/fine_tuning/jobs``:
list, create, retrieve, cancel, pause, resume, events and checkpoints, in OpenAI's shapes and
with OpenAI's error bodies. :class:`Faults` injects errors, rate limits, malformed bodies,
latency, hangs and endless pagination; :class:`Stats` counts requests per route.

Use it in a test over ``httpx.ASGITransport(app=sim.app)``, or on a real socket::

    sim = Simulator(ManualClock(), seed=1)
    job_id = sim.create_job(script=[(0, "queued"), (60, "running"), (600, "succeeded")])
    async with serve_simulator(sim, port=0) as base_url:   # ".../v1"
        ...
"""

from __future__ import annotations

from .app import Simulator, serve_simulator
from .faults import EndlessMode, Fault, Faults, MalformedKind
from .jobs import DEFAULT_MODEL, InvalidJobState, JobNotFound
from .progress_scenarios import PROGRESS_JOBS, progress_scenario
from .routing import ROUTE_KINDS, Stats
from .scenarios import (
    DEMO_DURATION,
    DEMO_JOBS,
    DEMO_PROGRESS,
    DemoJob,
    DemoProgress,
    Transition,
    demo_scenario,
    demo_timeline,
    demo_transitions,
)
from .scripts import Step, StepLike

__all__ = [
    "DEFAULT_MODEL",
    "DEMO_DURATION",
    "DEMO_JOBS",
    "DEMO_PROGRESS",
    "DemoJob",
    "DemoProgress",
    "EndlessMode",
    "Fault",
    "Faults",
    "InvalidJobState",
    "JobNotFound",
    "MalformedKind",
    "PROGRESS_JOBS",
    "ROUTE_KINDS",
    "Simulator",
    "Stats",
    "Step",
    "StepLike",
    "Transition",
    "demo_scenario",
    "demo_timeline",
    "demo_transitions",
    "progress_scenario",
    "serve_simulator",
]
