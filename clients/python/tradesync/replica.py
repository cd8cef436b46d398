"""The client's copy of one stream: the reducer's state, kept in order by a sequencer.

Pure logic, no I/O: it is told about ``subscribed`` replies, live events and
``stream_position`` messages, and says what it did, so every rule here is tested
without a gateway.

Invariant: ``state`` is exactly the gateway's state at ``offset`` of ``epoch``. An event
is applied only when it continues the offset; anything else is a duplicate (dropped),
early (held while a subscribe is in flight) or past a hole (held; the caller resumes).
Within an epoch the offset only moves forward.

Offsets *jump* for a conflated subscription (the reply carries ``max_rate``) and for a
session-scoped one (the reply carries ``session_id``: the gateway skips the events of
other sessions). Such a replica takes any later offset of its epoch as the next, stands
at a reply's offset once its events are applied, and moves to a ``stream_position``'s
offset when the position's checksum matches its state (the events between were not
its subscription's).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .checksum import state_checksum
from .reducer import Event, State, apply_events, initial_state
from .sequencer import Sequencer
from .streams import stream_kind

__all__ = ["LiveResult", "Position", "Replica", "SyncResult", "Verdict"]


@dataclass(frozen=True)
class Position:
    """Where a stream stands: what the client resumes from with ``since``."""

    epoch: str
    offset: int


class Verdict(enum.Enum):
    """What a checksum of the gateway says about the replica."""

    #: Same offset, same checksum: the replica is proven.
    VERIFIED = "verified"
    #: The gateway is past the replica (or at another epoch): resume from the replica's offset.
    BEHIND = "behind"
    #: Same offset, another checksum: the replica drifted; only a fresh snapshot repairs it.
    DIVERGED = "diverged"
    #: Another checksum for a snapshot as the gateway sent it: the two sides compute it
    #: differently, and a new snapshot would disagree again.
    UNVERIFIABLE = "unverifiable"
    #: Nothing to judge now: a subscribe is in flight, or the replica is already past that offset.
    PENDING = "pending"


@dataclass(frozen=True)
class SyncResult:
    """What a ``subscribed`` reply did to the replica."""

    #: Events applied, in order: the replayed ones, then held live ones that continue them.
    applied: list[Event] = field(default_factory=list)
    recovered: bool = False
    #: How many of ``applied`` the reply itself replayed.
    replayed: int = 0
    #: The offset of the snapshot that replaced the state, when the reply carried one.
    snapshot_offset: int | None = None
    #: A hole remains: the stream must be subscribed again.
    gap: bool = False
    #: The reply's checksum judged against the state at the reply's offset, when it had one.
    verdict: Verdict | None = None


@dataclass(frozen=True)
class LiveResult:
    """What a frame's live events of one stream did to the replica."""

    applied: list[Event] = field(default_factory=list)
    duplicates: int = 0
    #: An event came past a hole: the stream must be resumed.
    gap: bool = False


class Replica:
    """One stream's state and position; see the module's docstring."""

    def __init__(self, stream: str, *, jumps: bool = False, max_buffered: int = 10_000) -> None:
        """``jumps``: offsets jump whatever the replies say (a conflated subscription asks for it)."""
        self.stream = stream
        self._always_jumps = jumps
        self.kind = stream_kind(stream)
        self.state: State = initial_state(self.kind)
        #: When the state was last proven by a checksum: offset and wall-clock time.
        self.verified_offset: int | None = None
        self.verified_at: float | None = None
        self._sequencer = Sequencer(max_buffered, jumps=jumps)
        # Nothing is live before the first reply: hold what arrives until then.
        self._sequencer.hold()
        # The state is a snapshot exactly as the gateway sent it, no event applied since.
        self._pristine = False

    @property
    def epoch(self) -> str | None:
        return self._sequencer.epoch

    @property
    def offset(self) -> int:
        return self._sequencer.head

    @property
    def position(self) -> Position | None:
        """Where to resume from; ``None`` before the first reply."""
        epoch = self.epoch
        return None if epoch is None else Position(epoch, self.offset)

    @property
    def jumps(self) -> bool:
        """True when offsets may jump: the last reply was of a conflated or a session-scoped subscription."""
        return self._sequencer.jumps

    @property
    def holding(self) -> bool:
        """True while live events are held (a subscribe is in flight or needed) rather than applied."""
        return self._sequencer.holding

    def hold(self) -> None:
        """A subscribe was sent, or the connection dropped: hold live events until the next reply."""
        self._sequencer.hold()

    def apply_subscribed(self, reply: Mapping[str, Any]) -> SyncResult:
        """Applies a ``subscribed`` reply: its replayed events or its snapshot, then the held events after it."""
        applied: list[Event] = []
        gap = False
        snapshot_offset: int | None = None
        # The reply says whether the subscription is conflated or scoped to a session: its offsets then jump.
        self._sequencer.jumps = self._always_jumps or reply.get("max_rate") is not None or reply.get("session_id") is not None
        recovered = bool(reply.get("recovered")) and self.epoch == reply.get("epoch")
        snapshot = reply.get("snapshot")
        if recovered:
            for event in reply.get("events") or []:
                taken = self._sequencer.take(event)
                if taken == "gap":
                    gap = True
                    break
                if taken == "applied":
                    applied.append(event)
            self._apply(applied)
        elif isinstance(snapshot, Mapping) and snapshot["epoch"] == self.epoch and snapshot["offset"] < self.offset:
            # Older than what the replica holds (a stale reply, or a gateway node behind this
            # one): taking it would move the replica back and repeat offsets. Ask again.
            gap = True
        elif isinstance(snapshot, Mapping):
            # A snapshot replaces everything at once: never merge old state with new.
            self.state = snapshot["state"]
            self._pristine = True
            self._sequencer.move_to(snapshot["epoch"], snapshot["offset"])
            snapshot_offset = snapshot["offset"]
        else:
            # "Recovered" from a position no longer held, or no snapshot at all: nothing is safe to apply.
            gap = True
        replayed = len(applied)
        epoch, offset = reply.get("epoch"), reply.get("offset")
        # A jumping replay ends at the last event the subscription was given; the reply's
        # offset is where the stream (as this subscription sees it) stands.
        if not gap and self.jumps and isinstance(epoch, str) and self.epoch == epoch and type(offset) is int and self.offset < offset:
            self._sequencer.move_to(epoch, offset)
        verdict = None
        checksum = reply.get("checksum")
        # The checksum is the state's at the reply's offset: judged before held events move it on.
        if isinstance(checksum, str) and not gap and self.epoch == reply.get("epoch") and self.offset == reply.get("offset"):
            verdict = self._judge(checksum)
        drained = self._sequencer.drain()
        self._apply(drained.ready)
        applied.extend(drained.ready)
        gap = gap or drained.gap
        # The reply announced a head not reached (its events stopped short): fetch the rest.
        if not gap and self.epoch == reply.get("epoch") and self.offset < reply.get("offset", 0):
            gap = True
        if gap:
            self._sequencer.hold()
        return SyncResult(applied, recovered, replayed, snapshot_offset, gap, verdict)

    def apply_live(self, events: Iterable[Event]) -> LiveResult:
        """Applies the live events of one frame that continue the offset, as one reducer batch."""
        applied: list[Event] = []
        duplicates = 0
        gap = False
        for event in events:
            outcome = self._sequencer.offer(event)
            if outcome == "applied":
                applied.append(event)
            elif outcome == "duplicate":
                duplicates += 1
            elif outcome == "gap":
                gap = True
        self._apply(applied)
        return LiveResult(applied, duplicates, gap)

    def verify(self, epoch: str, offset: int, checksum: str) -> Verdict:
        """Judges a ``stream_position``: the gateway's state at ``offset`` of ``epoch`` has ``checksum``.

        A jumping replica behind the position whose state has that checksum is proven,
        and moves to ``offset``: the events between were not its subscription's.
        """
        if self.holding:
            return Verdict.PENDING
        if epoch != self.epoch:
            return Verdict.BEHIND
        if self.offset < offset:
            if self.jumps and state_checksum(self.state) == checksum:
                self._sequencer.move_to(epoch, offset)
                self._verified()
                return Verdict.VERIFIED
            return Verdict.BEHIND
        if self.offset > offset:
            return Verdict.PENDING
        return self._judge(checksum)

    def _judge(self, checksum: str) -> Verdict:
        if state_checksum(self.state) == checksum:
            self._verified()
            return Verdict.VERIFIED
        return Verdict.UNVERIFIABLE if self._pristine else Verdict.DIVERGED

    def _verified(self) -> None:
        self.verified_offset = self.offset
        self.verified_at = time.time()

    def _apply(self, events: list[Event]) -> None:
        if events:
            self.state = apply_events(self.state, events)
            self._pristine = False
