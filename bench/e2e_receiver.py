"""bench/receiver.py recording each request's arrival, for the end-to-end bench (bench/e2e.py).

Run: .venv/bin/python bench/e2e_receiver.py   (a child of bench/e2e.py, which talks on stdin)

Prints its base URL as the first stdout line, then answers one line on stdout for each command
line read on stdin: ``count`` (requests received since the last ``dump``) or ``dump`` (their
arrival times, ``time.monotonic()``, as one JSON list; the list is then emptied). Stops at the
end of stdin, on SIGINT or on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from receiver import Receiver  # beside this file


async def main() -> None:
    """Serve on a free loopback port and answer the commands read on stdin."""
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []
    Receiver.arrivals = arrivals
    server = await loop.create_server(Receiver, "127.0.0.1", 0, backlog=1024)
    print(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def commands() -> None:
        while True:
            # A thread reads stdin, so the loop keeps answering requests meanwhile.
            line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if not line:
                break
            if line == "count":
                print(len(arrivals), flush=True)
            elif line == "dump":
                print(json.dumps(arrivals), flush=True)
                arrivals.clear()
        stop.set()

    task = asyncio.create_task(commands())
    async with server:
        await stop.wait()
    task.cancel()


if __name__ == "__main__":
    asyncio.run(main())
