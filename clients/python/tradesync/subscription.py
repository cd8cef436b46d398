"""A stream the client holds: its replica, kept current across reconnects, and its live events.

The client feeds it (see client.py); the application reads ``state`` whenever it likes,
iterates the events, or waits for a condition on the state. It also keeps what the
gateway's ``stream_position`` messages said of its freshness (``stale``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .errors import Disconnected, EventsDropped
from .reducer import Event, State
from .replica import Position, Replica

__all__ = ["POSITION_QUIET_EVERY", "Subscription", "SyncInfo"]

_log = logging.getLogger("tradesync")

#: A stream without events gets a ``stream_position`` every this many position intervals (the protocol's).
POSITION_QUIET_EVERY = 6


@dataclass
class _Hole:
    """Where the iterator's queue lost events: ``count`` of them, dropped for want of room."""

    count: int


@dataclass(frozen=True)
class SyncInfo:
    """How a stream last caught up with the gateway."""

    #: True when the missed events were replayed; False when a snapshot replaced the state.
    recovered: bool
    epoch: str
    offset: int
    #: Events the reply replayed.
    replayed: int


class Subscription:
    """One subscribed stream: ``state`` is the gateway's state at ``offset`` of ``epoch``.

    Iterate it (``async for event in sub``) for the live events, each offset once and in
    order, including those replayed after a reconnect. Events a snapshot stands for are
    not replayed: the state jumps to the snapshot's (``last_sync.recovered`` is then
    false). At most ``max_queued`` events wait for the iterator; when more come, the
    oldest are dropped (counted in ``dropped``) and the iterator raises
    :class:`EventsDropped` where they were, then goes on with the events after them
    (``state`` stays exact either way). ``max_queued=0`` keeps no events: for a reader of
    ``state`` only, which cannot iterate. Treat states and events as read-only: they are
    shared with the replica.
    """

    def __init__(
        self,
        stream: str,
        *,
        unsubscribe: Callable[[], Awaitable[None]],
        max_rate: float | None = None,
        session_id: str | None = None,
        max_buffered: int = 10_000,
        max_queued: int = 10_000,
    ) -> None:
        self.stream = stream
        self.max_rate = max_rate
        self.session_id = session_id
        if max_queued < 0:
            raise ValueError(f"max_queued must be 0 or more, got {max_queued}")
        #: Events dropped from the iterator's queue because nobody took them in time.
        self.dropped = 0
        self.last_sync: SyncInfo | None = None
        #: Why the stream could not catch up with the gateway after its retries; ``None`` once it did.
        #: The client keeps retrying (with backoff) while the connection is open.
        self.sync_error: BaseException | None = None
        #: No ``stream_position`` came for too long while live (see the README): the client
        #: resubscribed; cleared by the next position.
        self.stale = False
        #: When (``time.time()``) the last ``stream_position`` for the stream arrived.
        self.last_position_at: float | None = None
        self._replica = Replica(stream, jumps=max_rate is not None, max_buffered=max_buffered)
        self._unsubscribe = unsubscribe
        self._max_queued = max_queued
        self._queue: deque[Event | _Hole] = deque()
        self._changed = asyncio.Event()
        self._ended = False
        self._error: BaseException | None = None
        # Freshness deadlines, on the event loop's clock: since when the stream is live (a
        # sync completed; None while it syncs), when the last position came, and when the
        # first event not yet covered by a position was applied.
        self._live_since: float | None = None
        self._position_seen: float | None = None
        self._unverified_since: float | None = None

    def __repr__(self) -> str:
        return f"<Subscription {self.stream} epoch={self.epoch} offset={self.offset}>"

    @property
    def state(self) -> State:
        return self._replica.state

    @property
    def epoch(self) -> str | None:
        return self._replica.epoch

    @property
    def offset(self) -> int:
        return self._replica.offset

    @property
    def position(self) -> Position | None:
        return self._replica.position

    @property
    def synced(self) -> bool:
        """True once the stream caught up with the gateway, until the connection drops or a hole shows."""
        return self.last_sync is not None and not self._replica.holding

    @property
    def verified_offset(self) -> int | None:
        """The last offset at which a checksum of the gateway proved the state."""
        return self._replica.verified_offset

    @property
    def verified_at(self) -> float | None:
        """When (``time.time()``) the state was last proven."""
        return self._replica.verified_at

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        """The next event; raises :class:`EventsDropped` once where the queue lost events."""
        if self._max_queued == 0:
            raise TypeError(f"{self.stream} keeps no events (max_queued_events=0): read its state, or wait_until() a condition")
        while not self._queue:
            if self._error is not None:
                raise self._error
            if self._ended:
                raise StopAsyncIteration
            await self._next_change()
        item = self._queue.popleft()
        if isinstance(item, _Hole):
            raise EventsDropped(self.stream, item.count)
        return item

    async def wait_until(self, predicate: Callable[[Subscription], bool], timeout: float | None = None) -> None:
        """Returns once ``predicate(self)`` holds, checked after every change of the stream."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                if self._error is not None:
                    raise self._error
                if self._ended:
                    raise Disconnected(f"{self.stream} is no longer subscribed")
                await self._next_change()

    async def close(self) -> None:
        """Leaves the stream: iteration ends and the gateway stops sending it."""
        await self._unsubscribe()

    # The client's side: what the connection did to the stream.

    def _deliver(self, events: list[Event]) -> None:
        if not events:
            return
        if self._max_queued == 0:
            # A reader of the state only: no queue to keep.
            self._notify()
            return
        self._queue.extend(events)
        # At most one hole, always first: the events lost are older than any kept.
        hole = self._queue[0] if isinstance(self._queue[0], _Hole) else None
        overflow = len(self._queue) - (hole is not None) - self._max_queued
        if overflow > 0:
            if self.dropped == 0:
                _log.warning("%s: its events are not iterated fast enough; dropping the oldest beyond %d (the iterator raises EventsDropped there)", self.stream, self._max_queued)
            if hole is not None:
                self._queue.popleft()
            for _ in range(overflow):
                self._queue.popleft()
            self._queue.appendleft(_Hole((hole.count if hole else 0) + overflow))
            self.dropped += overflow
        self._notify()

    def _synced(self, info: SyncInfo, now: float) -> None:
        self.last_sync = info
        self.sync_error = None
        if self._live_since is None:
            # Live from now: freshness deadlines count from here at the earliest.
            self._live_since = now
            self._unverified_since = None
        self._notify()

    def _syncing(self) -> None:
        """A subscribe is (to be) sent, or the connection dropped: not live until its reply."""
        self._live_since = None

    def _sync_failed(self, error: BaseException) -> None:
        self.sync_error = error
        self._notify()

    def _stale_at(self, interval: float) -> float | None:
        """When the stream turns stale, given the gateway's position interval (seconds); None while not live.

        A stream with events gets a position every interval, a quiet one every
        POSITION_QUIET_EVERY: stale when an applied event stays uncovered by a position for
        two intervals (plus a frame's wait, ``1 / max_rate``, when conflated), or when no
        position at all came for two quiet periods.
        """
        if self._live_since is None:
            return None
        heard = max(self._live_since, self._position_seen or self._live_since)
        quiet = heard + 2 * POSITION_QUIET_EVERY * interval
        if self._unverified_since is None:
            return quiet
        frame_gap = 1 / self.max_rate if self.max_rate else 0.0
        return min(quiet, self._unverified_since + 2 * interval + frame_gap)

    def _set_stale(self, stale: bool) -> None:
        self.stale = stale
        self._notify()

    def _end(self, error: BaseException | None = None) -> None:
        """No more events: iteration stops, raising ``error`` when there is one."""
        if self._ended:
            return
        self._ended = True
        self._error = error
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _next_change(self) -> None:
        await self._changed.wait()

