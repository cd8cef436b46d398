"""A scripted stand-in for the gateway, for tests of the client's rules without a real one.

Each connection is a :class:`Peer` the test drives: it reads what the client sent and
sends exactly the messages the test writes, so replies can be delayed, reordered,
wrong or missing at will.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import websockets
from websockets.exceptions import ConnectionClosed

from tradesync import Backoff, Client


def run(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Runs an async test in a fresh event loop, failing it after 20 s."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), 20))

    return wrapper


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Waits for a condition that no event announces (e.g. a client's status); generous, for busy machines."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def fast_client(url: str, **options: Any) -> Client:
    """A client that reconnects at once and waits little, as tests need."""
    settings: dict[str, Any] = {"backoff": Backoff((0.02,), 0), "connect_timeout": 2.0, "request_timeout": 2.0, **options}
    return Client(url, **settings)


class Peer:
    """One client connection, seen from the gateway's side."""

    def __init__(self, ws: Any, pong: bool) -> None:
        self.ws = ws
        self.pong = pong
        self.pings = 0
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.closed = asyncio.Event()
        self._sequence = itertools.count(1)

    async def send(self, message: Mapping[str, Any]) -> None:
        await self.ws.send(json.dumps({"sequence_number": next(self._sequence), "timestamp": "2024-01-01T00:00:00Z", **message}))

    async def expect(self, type_: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next message of ``type_`` the client sent (anything else before it fails the test)."""
        message = await asyncio.wait_for(self.inbox.get(), timeout)
        assert message.get("type") == type_, f"expected {type_}, got {message}"
        return message

    async def nothing_more(self, wait: float = 0.2) -> None:
        await asyncio.sleep(wait)
        assert self.inbox.empty(), f"unexpected: {self.inbox.get_nowait()}"

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.close(code, reason)


class FakeGateway:
    """A WebSocket server on a free port; ``accept()`` gives each new connection as a :class:`Peer`."""

    def __init__(self, *, heartbeat_ms: int = 30_000, pong: bool = True, position_interval_ms: int = 0) -> None:
        self.heartbeat_ms = heartbeat_ms
        self.pong = pong
        #: Announced in ``connected`` (0: no positions, the client's freshness watchdog stays off).
        self.position_interval_ms = position_interval_ms
        self._peers: asyncio.Queue[Peer] = asyncio.Queue()
        self._server: Any = None

    async def __aenter__(self) -> FakeGateway:
        self._server = await websockets.serve(self._serve, "127.0.0.1", 0)  # type: ignore[attr-defined]
        return self

    async def __aexit__(self, *_: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/ws"

    async def accept(self, timeout: float = 5.0) -> Peer:
        return await asyncio.wait_for(self._peers.get(), timeout)

    async def _serve(self, ws: Any, _path: str | None = None) -> None:
        peer = Peer(ws, self.pong)
        connected = {"type": "connected", "sequence_number": 0, "timestamp": "2024-01-01T00:00:00Z", "connection_id": "c1", "heartbeat_interval": self.heartbeat_ms}
        if self.position_interval_ms:
            connected["position_interval_ms"] = self.position_interval_ms
        await ws.send(json.dumps(connected))
        await self._peers.put(peer)
        try:
            async for raw in ws:
                message = json.loads(raw)
                if message.get("type") == "ping":
                    peer.pings += 1
                    if peer.pong:
                        await peer.send({"type": "pong", **({"id": message["id"]} if "id" in message else {})})
                    continue
                await peer.inbox.put(message)
        except ConnectionClosed:
            pass
        finally:
            peer.closed.set()
