"""Per-stream ordering: whether an event comes next, was seen already, or shows a hole.

A port of the protocol's TypeScript ``Sequencer``, so the Python replica follows the
same rules as every other client. Pure, no I/O.

Invariant: ``head`` is the offset of the last event taken in order within ``epoch``; an
event is handed back as applied only when its offset continues the head (``head + 1``,
or any later offset of the same epoch when ``jumps``), so whoever applies what it is
given applies every offset once, in order, with no hole.

Two ways in:

- :meth:`Sequencer.offer` for live events, which may arrive early, late or twice. While
  the sequencer holds (a subscribe is in flight) every event is kept for
  :meth:`Sequencer.drain`; otherwise the next one is applied, an old one is a
  duplicate, and one past a hole (or of another epoch) is kept and reported as a gap.
- :meth:`Sequencer.take` for events read in order from the gateway (a ``subscribed``
  reply): applied or a duplicate, never kept; a hole is reported as a gap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from .reducer import Event

__all__ = ["Drained", "Offered", "Sequencer", "Taken"]

Offered = Literal["applied", "duplicate", "gap", "buffered"]
Taken = Literal["applied", "duplicate", "gap"]


@dataclass(frozen=True)
class Drained:
    """What :meth:`Sequencer.drain` hands back."""

    #: Kept events that continue the head, in offset order; the head has moved past them.
    ready: list[Event] = field(default_factory=list)
    #: Events remain past a hole (they stay kept), or some were dropped for lack of room.
    gap: bool = False


class Sequencer:
    """Orders the events of one stream; see the module's docstring."""

    def __init__(self, max_kept: float = math.inf, *, jumps: bool = False) -> None:
        #: Most events kept while holding or after a gap; beyond, they are dropped and the next drain reports a gap.
        self.max_kept = max_kept
        #: Offsets may skip (a conflated subscription): any later one of the epoch comes next.
        self.jumps = jumps
        self._epoch: str | None = None
        self._head = 0
        self._kept: list[Event] = []
        self._holding = False
        self._overflowed = False

    @property
    def epoch(self) -> str | None:
        return self._epoch

    @property
    def head(self) -> int:
        return self._head

    @property
    def holding(self) -> bool:
        """True from :meth:`hold` (or a gap) until a :meth:`drain` that leaves no hole."""
        return self._holding

    @property
    def kept(self) -> int:
        return len(self._kept)

    def move_to(self, epoch: str, offset: int) -> None:
        """The stream is now at ``offset`` of ``epoch`` (a snapshot); kept events stay for :meth:`drain`."""
        self._epoch = epoch
        self._head = offset

    def hold(self) -> None:
        """Keeps every offered event until :meth:`drain`: a subscribe is in flight."""
        self._holding = True

    def offer(self, event: Event) -> Offered:
        if self._holding:
            self._keep(event)
            return "buffered"
        if event["epoch"] == self._epoch:
            if event["offset"] <= self._head:
                return "duplicate"
            if self._continues(event["offset"]):
                self._head = event["offset"]
                return "applied"
        # Past a hole, or of an epoch we are not at: keep it for after the catch-up.
        self._keep(event)
        self._holding = True
        return "gap"

    def take(self, event: Event) -> Taken:
        if event["epoch"] != self._epoch:
            return "gap"
        if event["offset"] <= self._head:
            return "duplicate"
        if not self._continues(event["offset"]):
            return "gap"
        self._head = event["offset"]
        return "applied"

    def drain(self) -> Drained:
        """Ends the hold: the kept events that continue the head, in order; past a hole the rest stay kept."""
        if self._overflowed:
            self._overflowed = False
            self._kept = []
            return Drained(gap=True)
        kept = sorted(self._kept, key=lambda event: event["offset"])
        self._kept = []
        ready: list[Event] = []
        for index, event in enumerate(kept):
            if event["epoch"] != self._epoch or event["offset"] <= self._head:
                continue
            if not self._continues(event["offset"]):
                self._kept = [e for e in kept[index:] if e["epoch"] == self._epoch]
                self._holding = True
                return Drained(ready, gap=True)
            self._head = event["offset"]
            ready.append(event)
        self._holding = False
        return Drained(ready)

    def _continues(self, offset: int) -> bool:
        """Whether ``offset`` (past the head, same epoch) comes next."""
        return self.jumps or offset == self._head + 1

    def _keep(self, event: Event) -> None:
        if len(self._kept) >= self.max_kept:
            self._overflowed = True
        else:
            self._kept.append(event)

