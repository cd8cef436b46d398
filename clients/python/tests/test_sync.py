"""How the client brings streams up to date, against a scripted gateway (fakegateway.py):
session-scoped subscriptions, retries that run out, replies it cannot apply, late
replies, syncs across reconnects, leaving a stream, and the stale-stream watchdog."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from fakegateway import FakeGateway, fast_client, run
from test_client import ORDERS, ev, offsets_of, orders_after, position, recovered_reply, snapshot_reply, subscribed

from tradesync import Backoff, TradeSyncError, state_checksum


def error_reply(request: dict[str, Any], code: str = "INTERNAL_ERROR") -> dict[str, Any]:
    return {"type": "error", "id": request["id"], "success": False, "error": {"code": code, "message": "try again later"}}


def unsubscribed(request: dict[str, Any]) -> dict[str, Any]:
    return {"type": "unsubscribed", "id": request["id"], "stream": request["data"]["stream"]}


# Session-scoped subscriptions (PROTOCOL.md, `params.session_id`).


@run
async def test_a_session_scoped_subscription_takes_jumping_offsets_and_stands_at_a_proven_position() -> None:
    async with FakeGateway() as gw, fast_client(gw.url) as client:
        peer = await gw.accept()
        task = asyncio.create_task(client.subscribe(ORDERS, session_id="A"))
        request = await peer.expect("subscribe")
        assert request["data"]["params"] == {"session_id": "A"}
        # Offset 3 of the stream; event 3 was another session's, so A's view holds 1 and 2.
        view = orders_after(1, 2)
        await peer.send(snapshot_reply(request, 3, view, session_id="A", checksum=state_checksum(view)))
        sub = await task
        await peer.send(ev(5))  # 4 was another session's
        assert await offsets_of(sub, 1) == [5]
        # 6 and 7 were another session's: the position proves the state at 7.
        await peer.send(position(7, state_checksum(sub.state)))
        await sub.wait_until(lambda s: s.verified_offset == 7, timeout=5)
        assert sub.offset == 7 and client.stats["gaps"] == 0
        await peer.send(ev(9))
        assert await offsets_of(sub, 1) == [9]
        await peer.nothing_more()


@run
async def test_a_session_scoped_resume_stands_at_the_replys_offset() -> None:
    async with FakeGateway() as gw, fast_client(gw.url) as client:
        peer = await gw.accept()
        task = asyncio.create_task(client.subscribe(ORDERS, session_id="A"))
        await peer.send(snapshot_reply(await peer.expect("subscribe"), 2, orders_after(1, 2), session_id="A"))
        sub = await task
        await peer.close(1001, "going away")
        peer = await gw.accept()
        request = await peer.expect("subscribe")
        assert request["data"]["since"] == {"epoch": "e1", "offset": 2}
        # Missed: 3 (A's), 4 and 5 (another session's). The checksum is of A's view at 5.
        at_five = orders_after(1, 2, 3)
        await peer.send(recovered_reply(request, 5, [ev(3)], session_id="A", checksum=state_checksum(at_five)))
        await sub.wait_until(lambda s: s.synced and s.verified_offset == 5, timeout=5)
        assert sub.offset == 5 and sub.state == at_five
        await peer.send(ev(6))
        assert await offsets_of(sub, 2) == [3, 6]
        await peer.nothing_more()


# Retries, and replies the client cannot use.


@run
async def test_a_synced_stream_whose_retries_run_out_keeps_trying_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    async with FakeGateway() as gw, fast_client(gw.url, sync_retries=1) as client:
        peer = await gw.accept()
        sub, _ = await subscribed(client, peer, 2)
        with caplog.at_level(logging.ERROR, logger="tradesync"):
            await peer.send(ev(4))
            for _ in range(2):
                await peer.send(error_reply(await peer.expect("subscribe")))
            await sub.wait_until(lambda s: s.sync_error is not None, timeout=5)
        assert client.stats["sync_failed"] == 1
        assert any(r.levelno == logging.ERROR and "could not catch up" in r.getMessage() for r in caplog.records)
        # The connection is open: it goes on trying (the failure counted once), and catches up.
        for _ in range(2):
            await peer.send(error_reply(await peer.expect("subscribe")))
        request = await peer.expect("subscribe")
        assert request["data"]["since"] == {"epoch": "e1", "offset": 2}
        await peer.send(recovered_reply(request, 4, [ev(3), ev(4)]))
        await sub.wait_until(lambda s: s.synced and s.offset == 4, timeout=5)
        assert sub.sync_error is None and client.stats["sync_failed"] == 1


@run
async def test_a_first_reply_that_cannot_be_applied_fails_subscribe_and_leaves_the_stream() -> None:
    async with FakeGateway() as gw, fast_client(gw.url) as client:
        peer = await gw.accept()
        task = asyncio.create_task(client.subscribe(ORDERS))
        request = await peer.expect("subscribe")
        # A snapshot without its offset and state: the reply cannot be applied.
        await peer.send({"type": "subscribed", "id": request["id"], "stream": ORDERS, "epoch": "e1", "offset": 1, "recovered": False, "snapshot": {"epoch": "e1"}})
        with pytest.raises(TradeSyncError, match="could not apply"):
            await asyncio.wait_for(task, 5)
        request = await peer.expect("unsubscribe")
        assert request["data"] == {"stream": ORDERS}
        await peer.send(unsubscribed(request))
        # Not held any more: subscribing again works.
        sub, _ = await subscribed(client, peer, 1)
        assert sub.offset == 1


@run
async def test_a_reply_that_cannot_be_applied_to_a_synced_stream_is_repaired_with_a_snapshot() -> None:
    async with FakeGateway() as gw, fast_client(gw.url) as client:
        peer = await gw.accept()
        sub, _ = await subscribed(client, peer, 2)
        await peer.send(ev(4))
        request = await peer.expect("subscribe")
        await peer.send({"type": "subscribed", "id": request["id"], "stream": ORDERS, "epoch": "e1", "offset": 4, "recovered": True, "events": [{"offset": 3}]})
        request = await peer.expect("subscribe")
        assert "since" not in request["data"]
        await peer.send(snapshot_reply(request, 4, orders_after(1, 2, 3, 4)))
        await sub.wait_until(lambda s: s.synced and s.offset == 4, timeout=5)
        assert sub.state == orders_after(1, 2, 3, 4)


@run
async def test_a_replay_that_fails_its_checksum_is_not_reported_synced_and_takes_a_snapshot() -> None:
    async with FakeGateway() as gw, fast_client(gw.url) as client:
        peer = await gw.accept()
        sub, _ = await subscribed(client, peer, 2)
        first = sub.last_sync
        await peer.send(ev(4))
        request = await peer.expect("subscribe")
        await peer.send(recovered_reply(request, 4, [ev(3), ev(4)], checksum="deadbeef"))
        request = await peer.expect("subscribe")
        assert "since" not in request["data"]
        assert sub.last_sync is first and not sub.synced and client.stats["diverged"] == 1
        repaired = orders_after(1, 2, 3, 4)
        await peer.send(snapshot_reply(request, 4, repaired, checksum=state_checksum(repaired)))
        await sub.wait_until(lambda s: s.synced and s.last_sync is not first, timeout=5)
        assert sub.last_sync is not None and not sub.last_sync.recovered and sub.verified_offset == 4


@run
async def test_a_late_reply_to_a_subscribe_that_timed_out_is_ignored() -> None:
    async with FakeGateway() as gw, fast_client(gw.url, request_timeout=1.0) as client:
        peer = await gw.accept()
        sub, _ = await subscribed(client, peer, 2)
        await peer.send(ev(5))
        late = await peer.expect("subscribe")  # not answered in time
        request = await peer.expect("subscribe")
        await peer.send(recovered_reply(request, 5, [ev(3), ev(4)]))
        assert await offsets_of(sub, 3) == [3, 4, 5]
        # The first one's answer comes at last, with its id, an older snapshot: ignored.
        await peer.send(snapshot_reply(late, 2, orders_after(1, 2)))
        await peer.send(ev(6))
        assert await offsets_of(sub, 1) == [6]
        assert sub.state == orders_after(*range(1, 7))
        await peer.nothing_more()


# Syncs and reconnects.


@run
async def test_a_reconnect_restarts_a_sync_sleeping_in_its_backoff() -> None:
    # Reconnect attempt 1 waits 0.02 s; a sync's second failure sleeps 30 s.
    async with FakeGateway() as gw, fast_client(gw.url, backoff=Backoff((0.02, 30.0), 0)) as client:
        peer = await gw.accept()
        sub, _ = await subscribed(client, peer, 2)
        await peer.send(ev(4))
        for _ in range(2):
            await peer.send(error_reply(await peer.expect("subscribe")))
        await peer.close(1001, "going away")
        peer = await gw.accept()
        request = await peer.expect("subscribe", timeout=5)
        assert request["data"]["since"] == {"epoch": "e1", "offset": 2}
        await peer.send(recovered_reply(request, 4, [ev(3), ev(4)]))
        await sub.wait_until(lambda s: s.synced and s.offset == 4, timeout=5)


@run
async def test_a_reply_that_leaves_a_hole_is_followed_at_once_by_another_subscribe() -> None:
    async with FakeGateway() as gw, fast_client(gw.url, backoff=Backoff((30.0,), 0)) as client:
        peer = await gw.accept()
        sub, _ = await subscribed(client, peer, 2)
        await peer.send(ev(5))
        request = await peer.expect("subscribe")
        await peer.send(recovered_reply(request, 5, [ev(3)]))  # stops short of its offset
        request = await peer.expect("subscribe", timeout=5)
        assert request["data"]["since"] == {"epoch": "e1", "offset": 3}
        await peer.send(recovered_reply(request, 5, [ev(4), ev(5)]))
        assert await offsets_of(sub, 3) == [3, 4, 5]


# Leaving.


@run
async def test_a_cancelled_subscribe_unsubscribes_before_the_stream_is_subscribed_again() -> None:
    async with FakeGateway() as gw, fast_client(gw.url) as client:
        peer = await gw.accept()
        task = asyncio.create_task(client.subscribe(ORDERS))
        first = await peer.expect("subscribe")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        again = asyncio.create_task(client.subscribe(ORDERS))
        leave = await peer.expect("unsubscribe")
        assert leave["data"] == {"stream": ORDERS}
        await peer.send(snapshot_reply(first, 1, orders_after(1)))  # the cancelled one's reply: ignored
        await peer.send(unsubscribed(leave))
        request = await peer.expect("subscribe")
        await peer.send(snapshot_reply(request, 2, orders_after(1, 2)))
        sub = await asyncio.wait_for(again, 5)
        assert sub.offset == 2 and sub.state == orders_after(1, 2)


@run
async def test_closing_a_stale_handle_leaves_a_newer_subscription_of_the_stream_alone() -> None:
    async with FakeGateway() as gw, fast_client(gw.url) as client:
        peer = await gw.accept()
        old, _ = await subscribed(client, peer, 1)
        closing = asyncio.create_task(old.close())
        await peer.send(unsubscribed(await peer.expect("unsubscribe")))
        await closing
        new, _ = await subscribed(client, peer, 2)
        await old.close()
        await peer.nothing_more()
        await peer.send(ev(3))
        assert await offsets_of(new, 1) == [3]


# The stale-stream watchdog (PROTOCOL.md, "Freshness").


@run
async def test_an_event_no_position_covers_makes_the_stream_stale_and_resubscribes_it(caplog: pytest.LogCaptureFixture) -> None:
    async with FakeGateway(position_interval_ms=100) as gw, fast_client(gw.url) as client:
        assert client.position_interval == 0.1
        peer = await gw.accept()
        sub, _ = await subscribed(client, peer, 1)
        loop = asyncio.get_running_loop()
        with caplog.at_level(logging.WARNING, logger="tradesync"):
            await peer.send(ev(2))
            sent = loop.time()
            request = await peer.expect("subscribe", timeout=5)
        # Two intervals after the event at the earliest.
        assert loop.time() - sent >= 0.19
        assert request["data"]["since"] == {"epoch": "e1", "offset": 2}
        assert sub.stale and client.stats["stale"] == 1
        assert any(r.levelno == logging.WARNING and "stale" in r.getMessage() for r in caplog.records)
        await peer.send(recovered_reply(request, 2, []))
        await sub.wait_until(lambda s: s.synced, timeout=5)
        assert sub.stale  # until a position comes
        await peer.send(position(2, state_checksum(sub.state)))
        await sub.wait_until(lambda s: not s.stale and s.verified_offset == 2, timeout=5)
        assert sub.last_position_at is not None and client.stats["stale"] == 1


@run
async def test_a_quiet_stream_without_positions_for_twelve_intervals_turns_stale() -> None:
    async with FakeGateway(position_interval_ms=100) as gw, fast_client(gw.url) as client:
        peer = await gw.accept()
        sub, _ = await subscribed(client, peer, 1)
        proof = state_checksum(sub.state)
        # Positions every 2 intervals keep a quiet stream fresh (its deadline is 12), well past 12 intervals.
        for _ in range(10):
            await asyncio.sleep(0.2)
            await peer.send(position(1, proof))
        assert peer.inbox.empty() and not sub.stale
        # Then none: stale, resubscribed.
        request = await peer.expect("subscribe", timeout=5)
        assert sub.stale and request["data"]["since"] == {"epoch": "e1", "offset": 1}
