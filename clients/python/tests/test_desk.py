"""examples/python/desk.py against a scripted gateway: what the desk does when its client stops.

(test_gateway.py runs it against a real gateway.)
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from fakegateway import FakeGateway, run
from test_client import snapshot_reply

from tradesync import initial_state, stream_kind

SDK = Path(__file__).resolve().parents[1]
DESK = SDK.parents[1] / "examples" / "python" / "desk.py"


@run
async def test_the_desk_exits_non_zero_and_says_why_when_its_client_stops() -> None:
    async with FakeGateway() as gw:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(DESK),
            *("--url", gw.url, "--account", "acme", "--symbols", "BTC-USD"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(SDK)},
        )
        try:
            peer = await gw.accept(timeout=15)
            for _ in range(3):
                request = await peer.expect("subscribe", timeout=10)
                await peer.send(snapshot_reply(request, 0, initial_state(stream_kind(request["data"]["stream"]))))
            # Refused for good: the client stops, and every stream ends with the reason.
            await peer.close(4200, "rejected")
            assert process.stderr is not None
            errors = (await asyncio.wait_for(process.stderr.read(), 15)).decode()
            assert await asyncio.wait_for(process.wait(), 5) == 1, errors
            assert "desk:" in errors and "refused this client" in errors, errors
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
