"""The replica's rules, without a gateway: replies, live events, holes, and checksum verdicts."""

from __future__ import annotations

from typing import Any

from tradesync import state_checksum
from tradesync.reducer import Event, State, apply_events, initial_state
from tradesync.replica import Replica, Verdict

STREAM = "orders:acme"


def order(order_id: str, status: str = "open") -> dict[str, Any]:
    return {"order_id": order_id, "symbol": "BTC-USD", "side": "buy", "order_type": "limit", "quantity": "1", "price": "1", "filled_quantity": "0", "status": status, "session_id": None, "created_at": "2024-01-01T00:00:00Z"}


def ev(offset: int, order_id: str | None = None, epoch: str = "e1", stream: str = STREAM) -> Event:
    return {"type": "order:updated", "stream": stream, "epoch": epoch, "offset": offset, "timestamp": "2024-01-01T00:00:00Z", "data": order(order_id or f"o{offset}")}


def state_after(*events: Event) -> State:
    return apply_events(initial_state("orders"), events)


def snapshot(offset: int, state: State, epoch: str = "e1", **extra: Any) -> dict[str, Any]:
    return {"type": "subscribed", "stream": STREAM, "epoch": epoch, "offset": offset, "recovered": False, "snapshot": {"epoch": epoch, "offset": offset, "state": state}, **extra}


def recovered(offset: int, events: list[Event], epoch: str = "e1", **extra: Any) -> dict[str, Any]:
    return {"type": "subscribed", "stream": STREAM, "epoch": epoch, "offset": offset, "recovered": True, "events": events, **extra}


def synced_at(offset: int) -> Replica:
    """A replica that took a snapshot at ``offset`` (events 1..offset) and is live."""
    replica = Replica(STREAM)
    replica.apply_subscribed(snapshot(offset, state_after(*(ev(i) for i in range(1, offset + 1)))))
    return replica


def test_holds_live_events_until_the_first_reply_then_drains_those_after_it() -> None:
    replica = Replica(STREAM)
    assert replica.apply_live([ev(2), ev(4), ev(3)]).applied == []
    result = replica.apply_subscribed(snapshot(2, state_after(ev(1), ev(2))))
    assert result.snapshot_offset == 2 and not result.gap
    assert [e["offset"] for e in result.applied] == [3, 4]
    assert replica.offset == 4 and replica.state == state_after(*(ev(i) for i in range(1, 5)))


def test_drops_duplicates_and_reports_a_hole() -> None:
    replica = synced_at(2)
    live = replica.apply_live([ev(2), ev(3), ev(3), ev(5)])
    assert [e["offset"] for e in live.applied] == [3]
    assert live.duplicates == 2 and live.gap and replica.holding
    # The resume replays 4; the held 5 follows.
    synced = replica.apply_subscribed(recovered(4, [ev(4)]))
    assert [e["offset"] for e in synced.applied] == [4, 5] and synced.replayed == 1 and not synced.gap
    assert replica.state == state_after(*(ev(i) for i in range(1, 6)))


def test_a_snapshot_of_another_epoch_replaces_the_state_and_drops_what_was_held() -> None:
    replica = synced_at(3)
    replica.hold()
    replica.apply_live([ev(4)])
    fresh = state_after(ev(1, "n1", epoch="e2"))
    result = replica.apply_subscribed(snapshot(1, fresh, epoch="e2"))
    assert replica.epoch == "e2" and replica.offset == 1 and replica.state == fresh and result.applied == []


def test_a_recovery_that_stops_short_of_its_offset_is_a_gap() -> None:
    replica = synced_at(1)
    replica.hold()
    assert replica.apply_subscribed(recovered(3, [ev(2)])).gap
    assert replica.holding and replica.offset == 2


def test_a_reply_checksum_proves_the_state_at_the_replys_offset_before_held_events_move_it() -> None:
    replica = synced_at(1)
    replica.hold()
    replica.apply_live([ev(3)])
    at_two = state_after(ev(1), ev(2))
    result = replica.apply_subscribed(recovered(2, [ev(2)], checksum=state_checksum(at_two)))
    assert result.verdict is Verdict.VERIFIED
    assert replica.verified_offset == 2 and replica.verified_at is not None and replica.offset == 3


def test_stream_position_verdicts() -> None:
    replica = synced_at(3)
    good = state_checksum(replica.state)
    assert replica.verify("e1", 3, good) is Verdict.VERIFIED
    assert replica.verified_offset == 3
    assert replica.verify("e1", 5, good) is Verdict.BEHIND
    assert replica.verify("e2", 3, good) is Verdict.BEHIND
    assert replica.verify("e1", 2, "00000000") is Verdict.PENDING
    replica.apply_live([ev(4)])
    assert replica.verify("e1", 4, "00000000") is Verdict.DIVERGED
    assert replica.verified_offset == 3
    replica.hold()
    assert replica.verify("e1", 4, "00000000") is Verdict.PENDING


def test_a_snapshot_that_disagrees_with_its_own_checksum_is_unverifiable_not_diverged() -> None:
    replica = Replica(STREAM)
    result = replica.apply_subscribed(snapshot(1, state_after(ev(1)), checksum="00000000"))
    assert result.verdict is Verdict.UNVERIFIABLE
    # Once events were applied on top, a mismatch is the replica's own: diverged.
    replica.apply_live([ev(2)])
    assert replica.verify("e1", 2, "00000000") is Verdict.DIVERGED


def tick(offset: int, price: str) -> Event:
    return {"type": "market:tick", "stream": "market:BTC-USD", "epoch": "e1", "offset": offset, "timestamp": "t", "data": {"symbol": "BTC-USD", "price": price, "timestamp": "t"}}


def test_a_conflated_replica_accepts_jumps() -> None:
    replica = Replica("market:BTC-USD", jumps=True)
    replica.apply_subscribed({"type": "subscribed", "stream": "market:BTC-USD", "epoch": "e1", "offset": 5, "recovered": False, "snapshot": {"epoch": "e1", "offset": 5, "state": {"last": None}}})
    result = replica.apply_live([tick(9, "1"), tick(8, "0"), tick(14, "2")])
    assert [e["offset"] for e in result.applied] == [9, 14] and result.duplicates == 1 and not result.gap
    assert replica.state == {"last": {"symbol": "BTC-USD", "price": "2", "timestamp": "t"}}


def test_a_session_scoped_replica_stands_at_the_replys_offset_and_moves_to_a_proven_position() -> None:
    # The gateway skips the events of other sessions: the reply (with session_id) replays 2 and 4 of 1..5.
    replica = Replica(STREAM)
    replica.apply_subscribed(snapshot(1, state_after(ev(1)), session_id="A"))
    assert replica.jumps
    replica.hold()
    at_five = state_after(ev(1), ev(2), ev(4))
    result = replica.apply_subscribed(recovered(5, [ev(2), ev(4)], session_id="A", checksum=state_checksum(at_five)))
    assert not result.gap and result.verdict is Verdict.VERIFIED
    assert replica.offset == 5 and replica.verified_offset == 5
    # Live events jump too.
    live = replica.apply_live([ev(8)])
    assert [e["offset"] for e in live.applied] == [8] and not live.gap
    # A position past the last event, with the checksum of what the replica holds: proven, and it stands there.
    assert replica.verify("e1", 12, state_checksum(replica.state)) is Verdict.VERIFIED
    assert replica.offset == 12 and replica.verified_offset == 12
    # One past it with another checksum: events of this session were lost.
    assert replica.verify("e1", 14, "00000000") is Verdict.BEHIND
    assert replica.offset == 12


def test_a_replica_without_max_rate_or_session_id_does_not_jump() -> None:
    replica = synced_at(2)
    assert not replica.jumps
    assert replica.verify("e1", 5, state_checksum(replica.state)) is Verdict.BEHIND
    assert replica.offset == 2


def test_a_snapshot_older_than_the_replica_never_moves_it_back() -> None:
    replica = synced_at(5)
    before = replica.state
    replica.hold()
    result = replica.apply_subscribed(snapshot(3, state_after(ev(1), ev(2), ev(3))))
    assert result.gap and result.snapshot_offset is None
    assert replica.offset == 5 and replica.state is before
    # Another epoch's snapshot does replace it.
    result = replica.apply_subscribed(snapshot(1, state_after(ev(1, epoch="e2")), epoch="e2"))
    assert not result.gap and (replica.epoch, replica.offset) == ("e2", 1)
