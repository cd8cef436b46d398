"""The client: every subscription over one connection, each replica kept current.

Each replica is kept in order, each offset once. On a hole the stream subscribes again
from its position (``since``); after a reconnect every stream resumes the same way, and
takes a snapshot when the gateway no longer holds the missed events (or when the close
said 4009). ``stream_position`` checksums prove a live replica, or start its repair, and
a stream whose positions stop coming is flagged stale and subscribed again. The socket
itself (heartbeats, backoff, close codes) is connection.py's.
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

from .backoff import DEFAULT_BACKOFF, Backoff
from .connection import Connection, Status, Token
from .errors import CommandError, ConnectionLost, Disconnected, ServerError, TradeSyncError
from .reducer import Event
from .replica import SyncResult, Verdict
from .rest import http_base, request_json
from .streams import CONFLATABLE_KINDS, stream_kind
from .subscription import Subscription, SyncInfo

__all__ = ["Client"]

#: Subscribe errors that another try cannot fix: the subscription ends with the error.
_PERMANENT: Final = frozenset({"INVALID_STREAM", "INVALID_PARAMS", "INVALID_MESSAGE", "FORBIDDEN", "UNAUTHORIZED", "TOO_MANY_SUBSCRIPTIONS"})


@dataclass(eq=False)
class _Held:
    """A subscription and what it takes to bring it up to date."""

    sub: Subscription
    #: The sync run in progress, if any; one at a time per stream.
    task: asyncio.Task[None] | None = None
    #: Another pass was asked for while the run was in flight.
    again: bool = False
    #: The next subscribe must take a snapshot (a divergence, a 4009 close, a reply that could not be applied).
    owe_snapshot: bool = False
    #: A subscribe of this stream went out: the gateway may hold the subscription.
    requested: bool = False


class _Streams:
    """The subscriptions and their syncs: what the connection's news means for each stream."""

    def __init__(self, stats: dict[str, int], log: logging.Logger, *, sync_retries: int, backoff: Backoff, random: Callable[[], float]) -> None:
        self.held: dict[str, _Held] = {}
        self.connection: Connection
        self._stats = stats
        self._log = log
        self._sync_retries = sync_retries
        self._backoff = backoff
        self._random = random
        self._was_open = False
        #: The stale-stream watchdog, while the connection is open and the gateway sends positions.
        self._watch: asyncio.Task[None] | None = None
        #: Unsubscribes on their way, per stream: a new subscribe of the stream waits for its own.
        self._leaving: dict[str, asyncio.Task[None]] = {}

    # What the connection says (connection.Listener).

    def opened(self, invalidated: bool) -> None:
        if self._was_open:
            self._stats["reconnects"] += 1
        self._was_open = True
        for held in list(self.held.values()):
            # Fresh runs, fresh attempts: nothing of a run from the last connection goes on.
            self._cancel_sync(held)
            self.sync(held, fresh=invalidated)
        self._stop_watch()
        interval = self.connection.position_interval
        if interval > 0:
            self._watch = asyncio.create_task(self._watch_freshness(interval), name="tradesync-freshness")

    def lost(self) -> None:
        # Whatever still arrives waits for the resume; syncs (even one sleeping in its backoff) start over then.
        self._stop_watch()
        for held in self.held.values():
            self._cancel_sync(held)
            held.sub._replica.hold()
            held.sub._syncing()

    def stopped(self, error: Disconnected) -> None:
        self.end_all(error)

    def events(self, events: list[Event]) -> None:
        by_stream: dict[str, list[Event]] = {}
        for event in events:
            by_stream.setdefault(event["stream"], []).append(event)
        now = asyncio.get_running_loop().time()
        for stream, batch in by_stream.items():
            held = self.held.get(stream)
            if held is None:
                continue
            sub = held.sub
            result = sub._replica.apply_live(batch)
            self._stats["duplicates"] += result.duplicates
            if result.applied and sub._unverified_since is None:
                sub._unverified_since = now
            sub._deliver(result.applied)
            if result.gap:
                self._stats["gaps"] += 1
                self._log.warning("%s: hole after offset %d; resuming from there", stream, sub.offset)
                self.sync(held)

    def unrequested(self, message: dict[str, Any]) -> None:
        held = self.held.get(str(message.get("stream")))
        if held is None:
            return
        try:
            result = held.sub._replica.apply_subscribed(message)
        except Exception:
            self._log.exception("%s: could not apply an unrequested subscribed; taking a fresh snapshot", held.sub.stream)
            self.sync(held, fresh=True)
            return
        self._after_reply(held, result, message)
        if result.gap:
            self.sync(held)

    def position(self, message: dict[str, Any]) -> None:
        held = self.held.get(str(message.get("stream")))
        if held is None:
            return
        epoch, offset, checksum = message.get("epoch"), message.get("offset"), message.get("checksum")
        if not (isinstance(epoch, str) and type(offset) is int and isinstance(checksum, str)):
            return
        sub = held.sub
        sub.last_position_at = time.time()
        sub._position_seen = asyncio.get_running_loop().time()
        # While a subscribe is in flight (or waits for its retry) its reply decides.
        verdict = Verdict.PENDING if self._syncing(held) else sub._replica.verify(epoch, offset, checksum)
        # Events past the position are not covered by it: their wait starts over.
        sub._unverified_since = sub._position_seen if verdict is Verdict.PENDING and sub.offset > offset else None
        if sub.stale:
            self._log.info("%s: a stream_position came again; no longer stale", sub.stream)
            sub._set_stale(False)
        self._judged(held, verdict, checksum)

    # Syncs.

    def sync(self, held: _Held, *, fresh: bool = False) -> None:
        """Brings a stream up to date: from its position, or with a snapshot when ``fresh`` (or owed)."""
        if fresh:
            held.owe_snapshot = True
        if self.connection.status != "open" or held.sub._ended:
            return
        if self._syncing(held):
            held.again = True
            return
        held.sub._syncing()
        held.task = asyncio.create_task(self._run(held), name=f"tradesync-sync-{held.sub.stream}")

    @staticmethod
    def _syncing(held: _Held) -> bool:
        return held.task is not None and not held.task.done()

    @staticmethod
    def _cancel_sync(held: _Held) -> None:
        if held.task is not None and held.task is not asyncio.current_task():
            held.task.cancel()
        held.task = None
        held.again = False

    def forget(self, held: _Held, error: BaseException | None) -> None:
        """The stream is no longer held: its iteration ends (with ``error``, if any)."""
        if self.held.get(held.sub.stream) is held:
            del self.held[held.sub.stream]
        self._cancel_sync(held)
        held.sub._end(error)

    def end_all(self, error: BaseException | None) -> None:
        self._stop_watch()
        for held in list(self.held.values()):
            self.forget(held, error)

    def leave(self, held: _Held) -> asyncio.Task[None] | None:
        """Forgets a stream and, when the gateway may hold it, unsubscribes; returns the unsubscribe on its way."""
        self.forget(held, None)
        stream = held.sub.stream
        if not held.requested or self.connection.status != "open":
            return None  # nothing registered, or the socket went: the gateway forgot it with the socket

        async def unsubscribe() -> None:
            with suppress(TradeSyncError, TimeoutError):
                await self.connection.request("unsubscribe", {"stream": stream})

        task = asyncio.create_task(unsubscribe(), name=f"tradesync-unsubscribe-{stream}")
        self._leaving[stream] = task

        def done(_: asyncio.Task[None]) -> None:
            if self._leaving.get(stream) is task:
                del self._leaving[stream]

        task.add_done_callback(done)
        return task

    async def _run(self, held: _Held) -> None:
        """Subscribes until the stream is in sync.

        A reply that leaves a hole is followed at once by another subscribe; a refusal, a
        timeout or a reply that could not be applied by another after a backoff. After
        ``sync_retries`` failures in a row the failure is reported (an error log,
        ``stats["sync_failed"]``, ``sub.sync_error``) and a stream that never synced fails
        its ``subscribe()``; one that did keeps trying, with backoff capped at its last
        step, as long as the connection is open.
        """
        sub = held.sub
        replica = sub._replica
        attempts = 0

        def apply(reply: dict[str, Any]) -> SyncResult:
            # Applied as the reply is read, so no live event that follows it is handled first.
            if reply.get("type") != "subscribed":
                raise ServerError("INVALID_MESSAGE", f"expected subscribed, got {reply.get('type')}")
            result = replica.apply_subscribed(reply)
            self._after_reply(held, result, reply)
            return result

        while self.connection.status == "open" and not sub._ended:
            leaving = self._leaving.get(sub.stream)
            if leaving is not None and not leaving.done():
                # An unsubscribe of the stream is on its way: a subscribe sent before it would be undone by it.
                await asyncio.wait({leaving})
                continue
            held.again = False
            attempts += 1
            data: dict[str, Any] = {"stream": sub.stream}
            position = replica.position
            if position is not None and not held.owe_snapshot:
                data["since"] = {"epoch": position.epoch, "offset": position.offset}
            params = {key: value for key, value in (("session_id", sub.session_id), ("max_rate", sub.max_rate)) if value is not None}
            if params:
                data["params"] = params
            replica.hold()
            sub._syncing()
            held.requested = True
            error: BaseException
            try:
                result: SyncResult = await self.connection.request("subscribe", data, on_reply=apply)
            except ConnectionLost:
                return  # every stream resumes when the connection is back
            except ServerError as err:
                if err.code in _PERMANENT:
                    self._log.error("%s: subscribe refused: %s", sub.stream, err)
                    self.forget(held, err)
                    return
                self._log.warning("%s: subscribe failed: %s", sub.stream, err)
                error = err
            except TimeoutError:
                self._log.warning("%s: no subscribed reply in time", sub.stream)
                error = TradeSyncError(f"{sub.stream}: no subscribed reply within the request timeout")
            except Exception as err:
                # A fault of the SDK (or a reply it cannot read): said, never left to kill the sync silently.
                self._log.exception("%s: could not apply the subscribed reply", sub.stream)
                error = TradeSyncError(f"{sub.stream}: could not apply the subscribed reply: {err!r}")
                error.__cause__ = err
                # Whatever it left half done, a snapshot replaces.
                held.owe_snapshot = True
                if sub.last_sync is None:
                    self.forget(held, error)
                    return
            else:
                if not result.gap:
                    if not held.again:
                        return
                    attempts = 0
                    continue
                if attempts <= self._sync_retries:
                    continue  # the rest of a hole: asked for at once
                error = TradeSyncError(f"{sub.stream}: replies left a gap after {attempts} attempts")
            if attempts > self._sync_retries:
                if sub.last_sync is None:
                    # A stream that never synced fails its subscribe().
                    failure = TradeSyncError(f"{sub.stream}: could not catch up with the gateway after {attempts} attempts: {error}")
                    failure.__cause__ = error
                    self._log.error("%s", failure)
                    self.forget(held, failure)
                    return
                if sub.sync_error is None:
                    self._stats["sync_failed"] += 1
                    self._log.error("%s: could not catch up with the gateway after %d attempts (%s); still trying", sub.stream, attempts, error)
                    sub._sync_failed(error)
            await asyncio.sleep(self._backoff.delay(attempts, self._random))

    def _after_reply(self, held: _Held, result: SyncResult, reply: Mapping[str, Any]) -> None:
        sub = held.sub
        if result.snapshot_offset is not None:
            held.owe_snapshot = False
            self._stats["snapshots"] += 1
        elif result.recovered:
            self._stats["recovered"] += 1
        sub._deliver(result.applied)
        if result.gap:
            self._stats["gaps"] += 1
        # Judged before the stream is said to be in sync: a replay that fails its checksum is not.
        if result.verdict is not None:
            self._judged(held, result.verdict, reply.get("checksum"))
        if not result.gap and result.verdict is not Verdict.DIVERGED and sub.epoch is not None:
            now = asyncio.get_running_loop().time()
            sub._synced(SyncInfo(result.recovered, sub.epoch, sub.offset, result.replayed), now)
            offset = reply.get("offset")
            if type(offset) is int and sub.offset > offset and sub._unverified_since is None:
                sub._unverified_since = now  # held events applied past the reply's checksum

    def _judged(self, held: _Held, verdict: Verdict, checksum: object) -> None:
        """Acts on what a checksum said: resume when behind, a fresh snapshot when diverged."""
        sub = held.sub
        if verdict is Verdict.VERIFIED:
            self._stats["verified"] += 1
            sub._notify()
        elif verdict is Verdict.BEHIND:
            self._log.info("%s: the gateway is past offset %d; resuming", sub.stream, sub.offset)
            self.sync(held)
        elif verdict is Verdict.DIVERGED:
            self._stats["diverged"] += 1
            self._log.warning("%s: replica diverged from the gateway at offset %d (checksum %s expected); taking a fresh snapshot", sub.stream, sub.offset, checksum)
            self.sync(held, fresh=True)
        elif verdict is Verdict.UNVERIFIABLE:
            self._stats["unverifiable"] += 1
            self._log.error("%s: the gateway's snapshot at offset %d does not match its own checksum %s here; not verifiable", sub.stream, sub.offset, checksum)

    # Freshness.

    def _stop_watch(self) -> None:
        if self._watch is not None and self._watch is not asyncio.current_task():
            self._watch.cancel()
        self._watch = None

    async def _watch_freshness(self, interval: float) -> None:
        """Checks every live stream against its freshness deadline twice per position interval."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval / 2)
            self.check_freshness(loop.time(), interval)

    def check_freshness(self, now: float, interval: float) -> None:
        """Flags (and resubscribes) the live streams whose positions stopped coming; see Subscription._stale_at."""
        for held in list(self.held.values()):
            sub = held.sub
            at = sub._stale_at(interval)
            if at is None or now < at or sub.stale or self._syncing(held):
                continue
            self._stats["stale"] += 1
            heard = sub._position_seen if sub._position_seen is not None else sub._live_since
            self._log.warning(
                "%s: no stream_position from the gateway for %.1f s (its interval is %.1f s): the stream may be stale; resubscribing",
                sub.stream,
                now - (heard if heard is not None else now),
                interval,
            )
            sub._set_stale(True)
            self.sync(held)


class Client:
    """A connection to a TradeSync gateway, shared by every subscription.

    ``async with Client("ws://127.0.0.1:8000/ws") as client`` connects (retrying with
    backoff) and closes on exit. ``stats`` counts what the streams went through:
    ``reconnects``, ``snapshots``, ``recovered`` (replays), ``gaps``, ``duplicates``,
    ``verified``, ``diverged``, ``unverifiable``, ``sync_failed`` (a stream's retries ran
    out; it keeps trying) and ``stale`` (a stream's positions stopped coming).
    """

    def __init__(
        self,
        url: str,
        token: Token = None,
        *,
        http_url: str | None = None,
        backoff: Backoff = DEFAULT_BACKOFF,
        max_attempts: int | None = 10,
        connect_timeout: float = 10.0,
        request_timeout: float = 10.0,
        command_timeout: float = 20.0,
        sync_retries: int = 3,
        max_buffered_events: int = 10_000,
        max_queued_events: int = 10_000,
        max_message_bytes: int = 64 * 2**20,
        logger: logging.Logger | None = None,
        random: Callable[[], float] = _random.random,
    ) -> None:
        """
        :param url: the gateway's WebSocket endpoint, ``ws://HOST:PORT/ws``.
        :param token: sent in an ``auth`` message after ``connected``; a function is asked
            again at every connection, so an expired token (close 4101) is replaced.
        :param http_url: where REST calls go; by default the WebSocket's host and port.
        :param max_attempts: reconnect attempts in a row before giving up (``None``: never).
        :param request_timeout: how long a subscribe (or unsubscribe, or publish) waits for its answer.
        :param command_timeout: how long ``command()`` waits for its result by default: longer
            than the gateway's own wait for the engine (15 s), whose TIMEOUT it then reports.
        :param sync_retries: subscribes of one stream in a row that may fail before the failure
            is reported (a stream that never synced then fails its ``subscribe()``; one that
            did keeps trying with backoff).
        :param max_buffered_events: live events one stream holds while it catches up; beyond, it resyncs.
        :param max_queued_events: events one subscription keeps for an iterator that does not keep
            up (beyond, the iterator raises ``EventsDropped``); 0 keeps none, for readers of the state.
        """
        if max_queued_events < 0:
            raise ValueError(f"max_queued_events must be 0 or more, got {max_queued_events}")
        log = logger or logging.getLogger("tradesync")
        self.stats: dict[str, int] = dict.fromkeys(
            ("reconnects", "snapshots", "recovered", "gaps", "duplicates", "verified", "diverged", "unverifiable", "sync_failed", "stale"), 0
        )
        self.http_url = (http_url or http_base(url)).rstrip("/")
        self.request_timeout = request_timeout
        self.command_timeout = command_timeout
        self.max_buffered_events = max_buffered_events
        self.max_queued_events = max_queued_events
        self._streams = _Streams(self.stats, log, sync_retries=sync_retries, backoff=backoff, random=random)
        self._connection = Connection(
            url,
            self._streams,
            token=token,
            backoff=backoff,
            max_attempts=max_attempts,
            connect_timeout=connect_timeout,
            request_timeout=request_timeout,
            max_message_bytes=max_message_bytes,
            logger=log,
            random=random,
        )
        self._streams.connection = self._connection

    async def __aenter__(self) -> Client:
        try:
            await self.connect()
        except BaseException:
            # Cancelled, or given up: no reconnect loop may outlive the block.
            await self.close()
            raise
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        await self.close()

    @property
    def url(self) -> str:
        return self._connection.url

    @property
    def status(self) -> Status:
        """``connecting``, ``open``, ``reconnecting`` (see ``attempt``), ``stopped`` (see ``stop_reason``) or ``closed``."""
        return self._connection.status

    @property
    def attempt(self) -> int:
        """The reconnect attempt in progress or next (0 while open)."""
        return self._connection.attempt

    @property
    def stop_reason(self) -> str | None:
        """Why the client stopped reconnecting, when it did."""
        return self._connection.stop_reason

    @property
    def connection_id(self) -> str | None:
        return self._connection.connection_id

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between heartbeats, as the gateway announced."""
        return self._connection.heartbeat_interval

    @property
    def position_interval(self) -> float:
        """Seconds between the gateway's ``stream_position`` messages, as it announced (0: it sends none)."""
        return self._connection.position_interval

    async def connect(self) -> None:
        """Connects (retrying with backoff) and returns once the connection is open.

        After the client stopped (it gave up, or was refused), this starts over.
        """
        await self._connection.open()

    async def close(self) -> None:
        """Closes the connection for good; every subscription's iteration ends."""
        await self._connection.close()
        self._streams.end_all(None)

    async def subscribe(
        self, stream: str, *, max_rate: float | None = None, session_id: str | None = None, max_queued_events: int | None = None
    ) -> Subscription:
        """Subscribes a stream and returns once its replica holds the gateway's state.

        :param max_rate: conflate (``market:*`` and ``indicators:*`` only): at most this many
            frames per second, each with only the newest event per entity; offsets then jump.
        :param session_id: scope the subscription to a trading session: on ``orders``,
            ``signals``, ``state_machines`` and ``portfolio`` streams it holds only that
            session's entities and the account's (offsets then jump).
        :param max_queued_events: this subscription's queue for its iterator (the client's by default; 0: none).
        """
        kind = stream_kind(stream)
        if max_rate is not None and (kind not in CONFLATABLE_KINDS or not 0 < max_rate <= 1000):
            kinds = " and ".join(f"{k}:*" for k in CONFLATABLE_KINDS)
            raise ValueError(f"max_rate is for {kinds} streams only, above 0 and at most 1000; got {stream} at {max_rate}")
        if stream in self._streams.held:
            raise ValueError(f"already subscribed to {stream}: use that Subscription, or close it first")
        if self.status in ("idle", "stopped", "closed"):
            raise Disconnected(self.stop_reason or f"the client is {self.status}: connect first")

        queued = self.max_queued_events if max_queued_events is None else max_queued_events

        async def unsubscribe() -> None:
            # This subscription only: a stale handle must not end a newer subscription of the stream.
            current = self._streams.held.get(stream)
            if current is not None and current.sub is sub:
                await self._leave(current)

        sub = Subscription(stream, unsubscribe=unsubscribe, max_rate=max_rate, session_id=session_id, max_buffered=self.max_buffered_events, max_queued=queued)
        held = _Held(sub)
        self._streams.held[stream] = held
        self._streams.sync(held)
        try:
            await sub.wait_until(lambda s: s.last_sync is not None)
        except BaseException as err:
            # Cancelled, or failed: the gateway may hold the subscription all the same, unless it refused it.
            refused = isinstance(err, ServerError) and err.code in _PERMANENT
            if refused:
                self._streams.forget(held, None)
            else:
                self._streams.leave(held)
            raise
        return sub

    async def unsubscribe(self, stream: str) -> None:
        """Leaves a stream (what ``Subscription.close()`` does for its own subscription)."""
        held = self._streams.held.get(stream)
        if held is not None:
            await self._leave(held)

    async def _leave(self, held: _Held) -> None:
        sending = self._streams.leave(held)
        if sending is not None:
            # Sent by a task of its own, so a cancelled caller still leaves; the socket may go
            # meanwhile, and the gateway forgets its subscriptions with it.
            await asyncio.shield(sending)

    async def publish(self, events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Appends events ``{stream, type, data}`` (all or nothing) over HTTP; returns the offsets given.

        Raises :class:`ServerError` with the gateway's code (``INVALID_EVENT``, ``FORBIDDEN``…);
        ``details["problems"]`` says which event is wrong and why. Raises
        :class:`ConnectionLost` when the gateway could not be reached or did not answer
        within ``request_timeout`` (the events may or may not have been appended then).
        """
        body = [dict(event) for event in events]
        token = await self._connection.token()
        url = f"{self.http_url}/api/v1/events"
        answer = await asyncio.to_thread(request_json, "POST", url, body, token=token, timeout=self.request_timeout)
        offsets: list[dict[str, Any]] = answer["offsets"]
        return offsets

    async def command(
        self,
        action: str,
        data: Mapping[str, Any] | None = None,
        *,
        command_id: str | None = None,
        account: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Sends a command to the engine and returns its ``command_result``.

        A command id (one is made when none is given) makes a repeat harmless: the engine
        runs it once, so a command whose connection dropped is sent again after the
        reconnect, until ``timeout`` (``command_timeout`` by default), then raises
        ``TimeoutError``. A refusal or failure raises :class:`CommandError`: a
        ``command_result`` with ``success: false``, or an ``error`` reply (a malformed
        command, rate limits).
        """
        payload = {**(data or {}), "action": action, "command_id": command_id or f"py-{uuid.uuid4()}"}
        if account is not None:
            payload["account"] = account
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.command_timeout if timeout is None else timeout)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"command {action} got no result in time")
            await self._connection.wait_open(remaining)
            try:
                reply: dict[str, Any] = await self._connection.request("command", payload, timeout=deadline - loop.time())
            except ConnectionLost:
                continue
            except CommandError:
                raise
            except ServerError as err:
                raise CommandError(err.code, err.message, details=err.details) from None
            if not reply.get("success"):
                error = reply.get("error") or {}
                raise CommandError(str(error.get("code")), str(error.get("message")), details=reply)
            return reply
