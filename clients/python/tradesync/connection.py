"""One WebSocket to the gateway, kept open: connect, authenticate, heartbeat, reconnect.

Apart from the streams (client.py) so that the socket's life reads on its own: it says
what happened through a :class:`Listener`, and carries requests and their replies.
Application heartbeats notice a dead connection within two intervals; reconnects back
off with jitter; the close code decides whether to come back at all (backoff.py).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random as _random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.uri import parse_uri

from .backoff import DEFAULT_BACKOFF, Backoff, CloseCode, close_policy
from .errors import ConnectionLost, Disconnected, ServerError
from .reducer import Event

__all__ = ["Connection", "Listener", "Status", "Token"]

Token = str | Callable[[], str | Awaitable[str]] | None
"""A JWT, or a function (plain or async) asked for a fresh one at every connection."""

Status = Literal["idle", "connecting", "open", "reconnecting", "stopped", "closed"]

#: Server messages that are not live events; any other message shaped like an event is one.
_REPLY_TYPES: Final = frozenset(
    {
        "connected",
        "subscribed",
        "unsubscribed",
        "state_sync_response",
        "initial_state",
        "command_result",
        "pong",
        "authenticated",
        "error",
        "batch_update",
        "stream_position",
    }
)


#: The close code an attempt ends with when the token function raised: counted as a failed attempt.
_TOKEN_FAILED: Final = 1011


class _TokenFailed(Exception):
    """The token function raised (its exception is the ``__cause__``)."""


class Listener(Protocol):
    """What the connection tells its owner."""

    def opened(self, invalidated: bool) -> None:
        """The connection is open; ``invalidated`` (the last close was 4009): positions are worthless."""

    def lost(self) -> None:
        """The socket is gone; a reconnect follows unless the client stops."""

    def stopped(self, error: Disconnected) -> None:
        """No more reconnects."""

    def events(self, events: list[Event]) -> None:
        """Live events of one frame, in the order sent."""

    def unrequested(self, message: dict[str, Any]) -> None:
        """A ``subscribed`` no request waits for."""

    def position(self, message: dict[str, Any]) -> None:
        """A ``stream_position``."""


class _Socket(Protocol):
    """The parts of a ``websockets`` connection used here (the same in every version since 10)."""

    @property
    def close_code(self) -> int | None: ...
    @property
    def close_reason(self) -> str | None: ...
    @property
    def transport(self) -> asyncio.Transport: ...
    async def send(self, message: str) -> None: ...
    async def recv(self) -> str | bytes: ...
    async def close(self, code: int = 1000, reason: str = "") -> None: ...
    def __aiter__(self) -> AsyncIterator[str | bytes]: ...


@dataclass
class _Pending:
    """A request waiting for the reply that echoes its id."""

    future: asyncio.Future[Any]
    #: Runs on the reply as it is read, before any later frame (a ``subscribed`` reply is applied there).
    on_reply: Callable[[dict[str, Any]], Any] | None


def _is_event(message: object) -> bool:
    return (
        isinstance(message, dict)
        and isinstance(message.get("type"), str)
        and isinstance(message.get("stream"), str)
        and isinstance(message.get("epoch"), str)
        and type(message.get("offset")) is int
        and isinstance(message.get("data"), dict)
    )


class Connection:
    """The socket's life; see the module's docstring."""

    def __init__(
        self,
        url: str,
        listener: Listener,
        *,
        token: Token = None,
        backoff: Backoff = DEFAULT_BACKOFF,
        max_attempts: int | None = 10,
        connect_timeout: float = 10.0,
        request_timeout: float = 10.0,
        max_message_bytes: int = 64 * 2**20,
        logger: logging.Logger | None = None,
        random: Callable[[], float] = _random.random,
    ) -> None:
        try:
            parse_uri(url)
        except InvalidURI as err:
            raise ValueError(f"expected a ws:// or wss:// URL: {err}") from None
        self.url = url
        self.backoff = backoff
        self.max_attempts = max_attempts
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.max_message_bytes = max_message_bytes
        self.status: Status = "idle"
        self.stop_reason: str | None = None
        self.attempt = 0
        self.connection_id: str | None = None
        self.heartbeat_interval = 30.0
        #: Seconds between the gateway's ``stream_position`` messages (``connected``'s
        #: ``position_interval_ms``); 0 when it sends none.
        self.position_interval = 0.0
        self._listener = listener
        self._token_source = token
        self._log = logger or logging.getLogger("tradesync")
        self._random = random
        self._pending: dict[str, _Pending] = {}
        self._ids = itertools.count(1)
        self._ws: _Socket | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._last_received = 0.0
        self._own_close: tuple[int, str] | None = None
        self._invalidated = False
        self._was_open = False
        self._closing = False

    async def open(self) -> None:
        """Connects (retrying with backoff) and returns once open; after a stop, starts over."""
        if self._closing:
            raise Disconnected("the client was closed")
        if self._run_task is None or self._run_task.done():
            self.stop_reason = None
            self._set_status("connecting")
            self._run_task = asyncio.create_task(self._run(), name="tradesync-connection")
        await self.wait_open(None)

    async def close(self) -> None:
        """Closes for good (1000); requests in flight fail with ConnectionLost."""
        if self._closing:
            return
        self._closing = True
        ws = self._ws
        if ws is not None:
            with suppress(Exception):
                await ws.close(CloseCode.NORMAL, "client closed")
        if self._run_task is not None:
            self._run_task.cancel()
            with suppress(asyncio.CancelledError):
                await self._run_task
        self._lost()
        self._set_status("closed")

    async def wait_open(self, timeout: float | None) -> None:
        """Returns once open; raises Disconnected when the client stopped, TimeoutError after ``timeout``."""
        async with asyncio.timeout(timeout):
            while self.status != "open":
                if self.status in ("idle", "stopped", "closed"):
                    raise Disconnected(self.stop_reason or f"the client is {self.status}")
                await self._changed.wait()

    async def token(self) -> str | None:
        """The configured token, asked afresh when it is a function."""
        source = self._token_source
        if not callable(source):
            return source
        value = source()
        return value if isinstance(value, str) else await value

    async def request(
        self,
        type_: str,
        data: Mapping[str, Any],
        *,
        timeout: float | None = None,
        on_reply: Callable[[dict[str, Any]], Any] | None = None,
    ) -> Any:
        """Sends a message and returns its reply (or what ``on_reply`` made of it); an ``error`` reply raises ServerError."""
        ws = self._ws
        if ws is None:
            raise ConnectionLost("not connected")
        ident = f"py-{next(self._ids)}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ident] = _Pending(future, on_reply)
        try:
            # The send counts too: a full write buffer must not block a request forever.
            async with asyncio.timeout(self.request_timeout if timeout is None else timeout):
                await ws.send(json.dumps({"id": ident, "type": type_, "data": data}, separators=(",", ":")))
                return await future
        except ConnectionClosed as err:
            raise ConnectionLost(str(err)) from None
        finally:
            self._pending.pop(ident, None)

    # ------------------------------------------------------------------ life

    async def _run(self) -> None:
        try:
            await self._reconnect_loop()
        except Exception as err:
            # A fault of the client itself: say so, rather than leave everyone waiting.
            self._log.exception("the connection loop failed")
            self._stop(f"internal error: {err!r}")

    async def _reconnect_loop(self) -> None:
        """Serves connections until one closes with a code that forbids coming back, or attempts run out."""
        self.attempt = 0
        while True:
            self._set_status("reconnecting" if self._was_open or self.attempt else "connecting")
            code, reason = await self._session()
            if self._closing:
                return
            stop = self._after_close(code, reason)
            if stop is not None:
                self._stop(stop)
                return
            self.attempt += 1
            if self.max_attempts is not None and self.attempt > self.max_attempts:
                self._stop(f"gave up after {self.max_attempts} attempts (last close {code}: {reason})")
                return
            delay = self.backoff.delay(self.attempt, self._random)
            self._log.info("reconnecting in %.1f s (attempt %d) after close %d %s", delay, self.attempt, code, reason)
            self._set_status("reconnecting")
            await asyncio.sleep(delay)

    async def _session(self) -> tuple[int, str]:
        """One connection from open to close; returns its close code and reason."""
        try:
            # websockets.connect: each version's default client (its names load lazily, unseen by type checkers).
            connecting = websockets.connect(  # type: ignore[attr-defined]
                self.url, ping_interval=None, open_timeout=None, close_timeout=1, max_size=self.max_message_bytes
            )
            ws: _Socket = await asyncio.wait_for(connecting, self.connect_timeout)
        except (OSError, TimeoutError, InvalidHandshake) as err:
            self._log.warning("could not connect to %s: %s", self.url, err or type(err).__name__)
            return 1006, str(err) or type(err).__name__
        self._own_close = None
        self._last_received = asyncio.get_running_loop().time()
        heartbeat: asyncio.Task[None] | None = None
        try:
            try:
                await asyncio.wait_for(self._handshake(ws), self.connect_timeout)
            except ServerError as err:
                # A refused token: the gateway closes with 4001 (1013 when it cannot check tokens now).
                return (CloseCode.UNAUTHORIZED if err.code == "UNAUTHORIZED" else 1013), err.message
            except _TokenFailed as err:
                # Counted as a failed attempt: the next one (after its backoff) asks again.
                self._log.warning("the token function failed: %r; retrying", err.__cause__)
                return _TOKEN_FAILED, f"the token function failed: {err.__cause__!r}"
            except ValueError as err:
                return 1002, f"not JSON before the connection was open: {err}"
            except TimeoutError:
                return CloseCode.HEARTBEAT_TIMEOUT, "no connected (or authenticated) in time"
            heartbeat = asyncio.create_task(self._heartbeat(ws), name="tradesync-heartbeat")
            self._opened(ws)
            async for raw in ws:
                self._last_received = asyncio.get_running_loop().time()
                self._on_frame(raw)
        except ConnectionClosed:
            pass
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
            self._lost()
            with suppress(Exception):
                await ws.close()
        return self._own_close or (ws.close_code or 1006, ws.close_reason or "")

    async def _handshake(self, ws: _Socket) -> None:
        """Reads ``connected``, then authenticates when there is a token."""
        welcome = json.loads(await ws.recv())
        if not isinstance(welcome, dict) or welcome.get("type") != "connected":
            raise ServerError("INVALID_MESSAGE", f"expected connected first, got {str(welcome)[:200]}")
        self.connection_id = welcome.get("connection_id")
        interval = welcome.get("heartbeat_interval")
        self.heartbeat_interval = interval / 1000 if isinstance(interval, (int, float)) and interval > 0 else 30.0
        positions = welcome.get("position_interval_ms")
        self.position_interval = positions / 1000 if isinstance(positions, (int, float)) and positions > 0 else 0.0
        try:
            token = await self.token()
        except Exception as err:
            raise _TokenFailed() from err
        if not token:
            return
        await ws.send(json.dumps({"id": "auth", "type": "auth", "data": {"token": token}}))
        while True:
            reply = json.loads(await ws.recv())
            if isinstance(reply, dict) and reply.get("id") == "auth":
                break
        if reply.get("type") != "authenticated":
            error = reply.get("error") or {}
            raise ServerError(str(error.get("code")), str(error.get("message")))

    async def _heartbeat(self, ws: _Socket) -> None:
        """Sends ``ping`` every interval; two intervals without any message mean the connection is dead.

        A ping is sent by a task of its own: with a full write buffer its send waits, and
        the silence check must run on time all the same.
        """
        loop = asyncio.get_running_loop()
        interval = self.heartbeat_interval
        next_ping = loop.time() + interval
        sending: asyncio.Task[None] | None = None
        try:
            while True:
                now = loop.time()
                silent = now - self._last_received
                if silent >= 2 * interval:
                    self._log.warning("no message from the gateway for %.1f s (two heartbeat intervals): the connection is dead", silent)
                    self._own_close = (CloseCode.HEARTBEAT_TIMEOUT, "heartbeat timeout")
                    # No closing handshake with a peer that does not answer.
                    ws.transport.abort()
                    return
                if now >= next_ping:
                    next_ping = now + interval
                    # One ping at a time: one still waiting for the write buffer is enough.
                    if sending is None or sending.done():
                        sending = asyncio.create_task(self._ping(ws), name="tradesync-ping")
                await asyncio.sleep(max(0.0, min(next_ping, self._last_received + 2 * interval) - loop.time()))
        finally:
            if sending is not None:
                sending.cancel()

    async def _ping(self, ws: _Socket) -> None:
        try:
            await ws.send('{"type":"ping"}')
        except ConnectionClosed:
            pass  # the session ends by itself
        except Exception:  # noqa: BLE001 - a ping must not end the heartbeat
            self._log.debug("could not send a ping", exc_info=True)

    def _opened(self, ws: _Socket) -> None:
        self._ws = ws
        self.attempt = 0
        self._was_open = True
        invalidated, self._invalidated = self._invalidated, False
        self._set_status("open")
        self._listener.opened(invalidated)

    def _lost(self) -> None:
        """The socket is gone: requests in flight fail with ConnectionLost."""
        if self._ws is None:
            return
        self._ws = None
        if not self._closing:
            self._set_status("reconnecting")
        pending, self._pending = self._pending, {}
        for request in pending.values():
            if not request.future.done():
                request.future.set_exception(ConnectionLost("the connection closed before the answer"))
        self._listener.lost()

    def _after_close(self, code: int, reason: str) -> str | None:
        """The close-code policy: ``None`` to reconnect, else why not."""
        policy = close_policy(code)
        said = f"({code}: {reason})" if reason else f"({code})"
        if policy == "resume":
            if code == CloseCode.STATE_INVALIDATED:
                self._invalidated = True
            return None
        if policy == "reauthenticate":
            if callable(self._token_source):
                return None
            if self._token_source:
                return f"the gateway refused the token {said}; a fixed token cannot be renewed: pass a function that returns a fresh one"
            return f"the gateway requires a token {said}; none is configured"
        return f"the gateway refused this client {said}"

    def _stop(self, reason: str) -> None:
        self._log.error("not reconnecting: %s", reason)
        self.stop_reason = reason
        self._set_status("stopped")
        self._listener.stopped(Disconnected(reason))

    def _set_status(self, status: Status) -> None:
        self.status = status
        # Wakes everyone waiting for a change; later waiters wait for the next one.
        self._changed.set()
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ frames

    def _on_frame(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            self._log.warning("skipped a frame that is not JSON: %.200r", raw)
            return
        if not isinstance(message, dict):
            return
        try:
            self._dispatch(message)
        except Exception:
            # One bad message must not cost the connection; the replica is judged again by the next checksum.
            self._log.exception("could not handle a %s message", message.get("type"))

    def _dispatch(self, message: dict[str, Any]) -> None:
        type_ = message.get("type")
        if type_ not in _REPLY_TYPES:
            # A live event, of a type this SDK may not know; anything else new is ignored.
            if _is_event(message):
                self._listener.events([message])  # type: ignore[list-item]
            return
        ident = message.get("id")
        request = self._pending.pop(ident, None) if isinstance(ident, str) else None
        if request is not None:
            self._settle(request, message)
        elif type_ == "batch_update":
            events = message.get("events")
            self._listener.events([event for event in events if _is_event(event)] if isinstance(events, list) else [])
        elif type_ == "subscribed":
            # Unrequested (no id): the stream's history vanished and the gateway sent a fresh
            # snapshot. With an id, the request gave up waiting: a newer subscribe has been
            # sent since, and applying this stale reply could move the replica back.
            if ident is None:
                self._listener.unrequested(message)
            else:
                self._log.debug("ignored the late subscribed reply %s for %s", ident, message.get("stream"))
        elif type_ == "stream_position":
            self._listener.position(message)
        elif type_ == "error":
            self._log.warning("gateway error: %s", message.get("error"))

    def _settle(self, request: _Pending, message: dict[str, Any]) -> None:
        if request.future.done():
            return
        if message.get("type") == "error":
            error = message.get("error") or {}
            request.future.set_exception(ServerError(str(error.get("code")), str(error.get("message")), details=message))
            return
        try:
            request.future.set_result(request.on_reply(message) if request.on_reply else message)
        except Exception as err:  # noqa: BLE001 - handed to the waiting caller
            request.future.set_exception(err)
