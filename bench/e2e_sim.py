"""The simulator in its own process for the end-to-end bench (bench/e2e.py), driven on stdin.

Run: .venv/bin/python bench/e2e_sim.py JOBS   (a child of bench/e2e.py)

Holds ``JOBS`` running jobs on the wall clock, prints the simulator's base URL (``/v1``
included) as the first stdout line, then answers one line on stdout for each command line read
on stdin: ``lists`` (how many list requests it has answered) or ``flip`` (every running job
set to ``succeeded`` in one step of the event loop, so no request sees half of it; the answer
is the moment of the change, ``time.monotonic()``, which is system-wide on Linux). Stops at the
end of stdin.
"""

from __future__ import annotations

import sys
import time

import anyio

from watcher.logs import configure_logging
from watcher.simulator import Simulator, serve_simulator


async def main(jobs: int) -> None:
    """Serve ``jobs`` running jobs and answer the commands read on stdin."""
    sim = Simulator(seed=11)
    ids = sim.add_jobs(jobs, "running", start=time.time() - 10 * jobs - 60, interval=10)
    async with serve_simulator(sim, port=0) as url:
        print(url, flush=True)
        while True:
            # A thread reads stdin, so the simulator keeps answering the daemon meanwhile.
            line = (await anyio.to_thread.run_sync(sys.stdin.readline)).strip()
            if not line:
                return
            if line == "lists":
                print(sim.stats["list"], flush=True)
            elif line == "flip":
                for job_id in ids:
                    sim.set_status(job_id, "succeeded")
                print(time.monotonic(), flush=True)


if __name__ == "__main__":
    configure_logging("warning", "console")
    anyio.run(main, int(sys.argv[1]))
