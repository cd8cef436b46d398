"""The sequencer hands out every offset once, in order, however events arrive (as the protocol's does)."""

from __future__ import annotations

import random

import pytest

from tradesync.reducer import Event
from tradesync.sequencer import Sequencer


def ev(offset: int, epoch: str = "e1") -> Event:
    return {"type": "market:tick", "stream": "market:X", "epoch": epoch, "offset": offset, "timestamp": "", "data": {}}


@pytest.mark.parametrize("seed", range(300))
def test_every_offset_once_in_order_however_events_arrive(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(1, 60)
    copies = [rng.randint(0, 2) for _ in range(n)]
    deliveries = [ev(offset) for offset in range(1, n + 1) for _ in range(copies[offset - 1])]
    rng.shuffle(deliveries)
    holds = {rng.randrange(2 * n + 1) for _ in range(rng.randint(0, 4))}
    drains = {rng.randrange(2 * n + 1) for _ in range(rng.randint(0, 4))}
    seq = Sequencer()
    seq.move_to("e1", 0)
    applied: list[int] = []
    for index, event in enumerate(deliveries):
        if index in holds:
            seq.hold()
        if index in drains:
            applied += [e["offset"] for e in seq.drain().ready]
        if seq.offer(event) == "applied":
            applied.append(event["offset"])
    applied += [e["offset"] for e in seq.drain().ready]
    assert applied == list(range(1, len(applied) + 1))
    first_lost = next((i for i, c in enumerate(copies) if c == 0), n)
    assert seq.head == first_lost
    # The gateway fills the losses (read in order), then what was kept drains.
    offset = seq.head + 1
    while offset <= n:
        if seq.take(ev(offset)) == "applied":
            applied.append(offset)
        ready = seq.drain().ready
        applied += [e["offset"] for e in ready]
        offset = (ready[-1]["offset"] if ready else offset) + 1
    assert applied == list(range(1, n + 1))
    assert not seq.holding and seq.kept == 0


def test_keeps_at_most_max_kept_and_reports_a_gap_after_dropping() -> None:
    seq = Sequencer(3)
    seq.move_to("e1", 0)
    seq.hold()
    for offset in range(2, 10):
        assert seq.offer(ev(offset)) == "buffered"
        assert seq.kept <= 3
    drained = seq.drain()
    assert drained.ready == [] and drained.gap and seq.kept == 0


def test_another_epoch_is_a_gap_and_kept_events_of_the_old_one_are_dropped() -> None:
    seq = Sequencer()
    seq.move_to("e1", 5)
    assert seq.offer(ev(6)) == "applied"
    assert seq.offer(ev(1, "e2")) == "gap"
    assert seq.holding
    seq.move_to("e2", 0)
    assert [e["offset"] for e in seq.drain().ready] == [1]
    assert seq.take(ev(2, "e1")) == "gap"


def test_jumps_accepts_any_later_offset_of_the_epoch_and_still_drops_older_ones() -> None:
    seq = Sequencer(jumps=True)
    seq.move_to("e1", 3)
    assert seq.offer(ev(9)) == "applied"
    assert seq.offer(ev(7)) == "duplicate"
    assert seq.take(ev(12)) == "applied"
    seq.hold()
    for offset in (20, 15, 12):
        seq.offer(ev(offset))
    assert [e["offset"] for e in seq.drain().ready] == [15, 20]
    assert seq.offer(ev(1, "e2")) == "gap"


def test_without_jumps_a_later_offset_is_a_gap() -> None:
    seq = Sequencer()
    seq.move_to("e1", 3)
    assert seq.offer(ev(5)) == "gap"
    assert seq.offer(ev(4)) == "buffered"
    assert [e["offset"] for e in seq.drain().ready] == [4, 5]
