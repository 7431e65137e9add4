"""The recording receiver ftwatch ships for tests: what it records as answered."""

from __future__ import annotations

import anyio
import httpx

from watcher.serving import serve_asgi
from watcher.testing_receiver import RecordedRequest, RecordingReceiver


async def test_answered_holds_each_answer_and_never_a_hung_request() -> None:
    """A failed, then a good answer are in ``answered``; a request left hanging is not."""
    receiver = RecordingReceiver()
    receiver.fail_first(1, status=503)
    got: list[list[tuple[RecordedRequest, int]]] = []
    async with serve_asgi(receiver) as url, httpx.AsyncClient() as client:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:

                async def wait() -> None:
                    got.append(await receiver.wait_for_answers(2))

                tg.start_soon(wait)
                assert (await client.post(f"{url}/a", content=b"1")).status_code == 503
                assert (await client.post(f"{url}/b", content=b"2")).status_code == 200
            receiver.hang()
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: client.post(f"{url}/c", content=b"3"))
                await receiver.wait_for(3)
                tg.cancel_scope.cancel()
    assert [(r.path, status) for r, status in got[0]] == [("/a", 503), ("/b", 200)]
    assert [r.path for r in receiver.requests] == ["/a", "/b", "/c"]
    assert [(r.path, status) for r, status in receiver.answered] == [("/a", 503), ("/b", 200)]
