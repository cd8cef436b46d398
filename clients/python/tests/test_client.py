"""The client's rules against a scripted gateway (fakegateway.py): sequencing, resume,
checksum verification, heartbeats, close codes, commands."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Any

import pytest
from fakegateway import FakeGateway, Peer, fast_client, run, until

from tradesync import CommandError, ConnectionLost, Disconnected, EventsDropped, ServerError, TradeSyncError, state_checksum
from tradesync.client import Client
from tradesync.reducer import Event, State, apply_events, initial_state
from tradesync.subscription import Subscription

ORDERS = "orders:acme"


def ev(offset: int, order_id: str | None = None, epoch: str = "e1", stream: str = ORDERS, type_: str = "order:updated") -> Event:
    data = {"order_id": order_id or f"o{offset}", "symbol": "BTC-USD", "side": "buy", "order_type": "limit", "quantity": str(offset), "price": "1", "filled_quantity": "0", "status": "open", "session_id": None, "created_at": "2024-01-01T00:00:00Z"}
    return {"type": type_, "stream": stream, "epoch": epoch, "offset": offset, "timestamp": "2024-01-01T00:00:00Z", "data": data}


def tick(offset: int, price: str) -> Event:
    data = {"symbol": "BTC-USD", "price": price, "timestamp": "2024-01-01T00:00:00Z"}
    return {"type": "market:tick", "stream": "market:BTC-USD", "epoch": "e1", "offset": offset, "timestamp": "2024-01-01T00:00:00Z", "data": data}


def orders_after(*offsets: int) -> State:
    return apply_events(initial_state("orders"), [ev(offset) for offset in offsets])


def snapshot_reply(request: dict[str, Any], offset: int, state: State, epoch: str = "e1", **extra: Any) -> dict[str, Any]:
    stream = request["data"]["stream"]
    return {"type": "subscribed", "id": request["id"], "stream": stream, "epoch": epoch, "offset": offset, "recovered": False, "snapshot": {"epoch": epoch, "offset": offset, "state": state}, **extra}


def recovered_reply(request: dict[str, Any], offset: int, events: list[Event], **extra: Any) -> dict[str, Any]:
    stream = request["data"]["stream"]
    return {"type": "subscribed", "id": request["id"], "stream": stream, "epoch": "e1", "offset": offset, "recovered": True, "events": events, **extra}


def position(offset: int, checksum: str, epoch: str = "e1", stream: str = ORDERS) -> dict[str, Any]:
    return {"type": "stream_position", "stream": stream, "epoch": epoch, "offset": offset, "checksum": checksum}


async def subscribed(client: Client, peer: Peer, offset: int, stream: str = ORDERS, **options: Any) -> tuple[Subscription, dict[str, Any]]:
    """Subscribes ``stream`` and answers with a snapshot of events 1..offset."""
    task = asyncio.create_task(client.subscribe(stream, **options))
    request = await peer.expect("subscribe")
    state = orders_after(*range(1, offset + 1)) if stream == ORDERS else initial_state("market")
    await peer.send(snapshot_reply(request, offset, state))
    return await task, request


async def offsets_of(sub: Subscription, count: int) -> list[int]:
    return [(await asyncio.wait_for(anext(sub), 5))["offset"] for _ in range(count)]


@run
async def test_subscribe_takes_the_snapshot_and_its_checksum_proves_it() -> None:
    async with FakeGateway() as gw, fast_client(gw.url) as client:
        peer = await gw.accept()
        task = asyncio.create_task(client.subscribe(ORDERS, session_id="s1"))
        request = await peer.expect("subscribe")
        assert request["data"] == {"stream": ORDERS, "params": {"session_id": "s1"}}
        state = orders_after(1, 2)
        await peer.send(snapshot_reply(request, 2, state, checksum=state_checksum(state)))
        sub = await task
        assert (sub.state, sub.epoch, sub.offset, sub.verified_offset) == (state, "e1", 2, 2)
        assert sub.synced and sub.last_sync is not None and not sub.last_sync.recovered
        assert client.stats["snapshots"] == 1 and client.stats["verified"] == 1


@run
async def test_live_events_apply_each_offset_once_in_order() -> None:
    async with FakeGateway() as gw, fast_client(gw.url) as client:
        peer = await gw.accept()
        sub, _ = await subscribed(client, peer, 0)
        await peer.send(ev(1))
        await peer.send({"type": "batch_update", "events": [ev(2), ev(1), ev(3)]})
        await peer.send(ev(3))
        assert await offsets_of(sub, 3) == [1, 2, 3]
        assert sub.state == orders_after(1, 2, 3)
        assert client.stats["duplicates"] == 2
        await peer.nothing_more()


@run
async def test_a_hole_resumes_from_the_offset_and_events_arriving_meanwhile_are_buffered() -> None:
    async with FakeGateway() as gw, fast_client(gw.url) as client:
        peer = await gw.accept()
        sub, _ = await subscribed(client, peer, 2)
        await peer.send(ev(4))
        request = await peer.expect("subscribe")
        assert request["data"] == {"stream": ORDERS, "since": {"epoch": "e1", "offset": 2}}
        await peer.send(ev(5))  # while the subscribe is in flight
        await peer.send(recovered_reply(request, 4, [ev(3), ev(4)]))
        await peer.send(ev(6))
        assert await offsets_of(sub, 4) == [3, 4, 5, 6]
        assert sub.state == orders_after(*range(1, 7))
        assert client.stats["gaps"] == 1 and client.stats["recovered"] == 1


@run
async def test_stream_position_verifies_resumes_when_behind_and_resyncs_when_diverged(caplog: pytest.LogCaptureFixture) -> None:
    async with FakeGateway() as gw, fast_client(gw.url) as client:
        peer = await gw.accept()
        sub, _ = await subscribed(client, peer, 2)
        assert sub.verified_offset is None
        await peer.send(position(2, state_checksum(orders_after(1, 2))))
        await sub.wait_until(lambda s: s.verified_offset == 2, timeout=5)
        assert sub.verified_at is not None and abs(sub.verified_at - time.time()) < 5

        # The gateway is past the replica: resume from its offset.
        await peer.send(position(3, state_checksum(orders_after(1, 2, 3))))
        request = await peer.expect("subscribe")
        assert request["data"]["since"] == {"epoch": "e1", "offset": 2}
        await peer.send(recovered_reply(request, 3, [ev(3)]))
        await sub.wait_until(lambda s: s.offset == 3 and s.synced, timeout=5)

        # Same offset, another checksum: a fresh snapshot, a warning, a count.
        with caplog.at_level(logging.WARNING, logger="tradesync"):
            await peer.send(position(3, "deadbeef"))
            request = await peer.expect("subscribe")
        assert "since" not in request["data"]
        assert client.stats["diverged"] == 1
        assert any(r.levelno == logging.WARNING and "diverged" in r.getMessage() for r in caplog.records)
        repaired = apply_events(initial_state("orders"), [ev(3, "only")])
        await peer.send(snapshot_reply(request, 3, repaired, checksum=state_checksum(repaired)))
        await sub.wait_until(lambda s: s.state == repaired and s.verified_offset == 3, timeout=5)
        await peer.nothing_more()


@run
async def test_unknown_messages_are_ignored_and_an_unknown_event_type_still_takes_its_offset() -> None:
    async with FakeGateway() as gw, fast_client(gw.url) as client:
        peer = await gw.accept()
        sub, _ = await subscribed(client, peer, 0)
        await peer.send({"type": "something_new", "stream": ORDERS, "offset": 7})
        await peer.send(ev(1, type_="order:archived"))
        await peer.send(ev(2))
        assert await offsets_of(sub, 2) == [1, 2]
        assert sub.state == orders_after(2)
        await peer.nothing_more()


@run
async def test_conflated_subscriptions_accept_offset_jumps() -> None:
    async with FakeGateway() as gw, fast_client(gw.url) as client:
        peer = await gw.accept()
        with pytest.raises(ValueError, match="max_rate"):
            await client.subscribe(ORDERS, max_rate=10)
        sub, request = await subscribed(client, peer, 5, stream="market:BTC-USD", max_rate=10)
        assert request["data"] == {"stream": "market:BTC-USD", "params": {"max_rate": 10}}
        await peer.send(tick(9, "1"))
        await peer.send({"type": "batch_update", "events": [tick(14, "2"), tick(12, "0")]})
        assert await offsets_of(sub, 2) == [9, 14]
        assert sub.state["last"]["price"] == "2"
        await peer.nothing_more()


@run
async def test_a_reconnect_resumes_every_stream_from_its_position() -> None:
    async with FakeGateway() as gw, fast_client(gw.url) as client:
        peer = await gw.accept()
        orders, _ = await subscribed(client, peer, 2)
        market, _ = await subscribed(client, peer, 1, stream="market:BTC-USD")
        await peer.close(1001, "going away")
        peer = await gw.accept()
        requests = {r["data"]["stream"]: r for r in [await peer.expect("subscribe"), await peer.expect("subscribe")]}
        assert requests[ORDERS]["data"]["since"] == {"epoch": "e1", "offset": 2}
        assert requests["market:BTC-USD"]["data"]["since"] == {"epoch": "e1", "offset": 1}
        await peer.send(recovered_reply(requests[ORDERS], 3, [ev(2), ev(3)]))
        await peer.send(recovered_reply(requests["market:BTC-USD"], 1, []))
        assert await offsets_of(orders, 1) == [3]
        await market.wait_until(lambda s: s.synced, timeout=5)
        assert orders.state == orders_after(1, 2, 3) and client.stats["reconnects"] == 1 and client.status == "open"


@run
async def test_close_4009_resubscribes_with_snapshots() -> None:
    async with FakeGateway() as gw, fast_client(gw.url) as client:
        peer = await gw.accept()
        sub, _ = await subscribed(client, peer, 2)
        await peer.close(4009, "state invalidated")
        peer = await gw.accept()
        request = await peer.expect("subscribe")
        assert "since" not in request["data"]
        await peer.send(snapshot_reply(request, 1, orders_after(1), epoch="e2"))
        await sub.wait_until(lambda s: s.epoch == "e2" and s.offset == 1, timeout=5)


@run
async def test_an_unrequested_snapshot_replaces_the_state() -> None:
    async with FakeGateway() as gw, fast_client(gw.url) as client:
        peer = await gw.accept()
        sub, _ = await subscribed(client, peer, 3)
        fresh = orders_after(1)
        await peer.send({"type": "subscribed", "stream": ORDERS, "epoch": "e2", "offset": 1, "recovered": False, "snapshot": {"epoch": "e2", "offset": 1, "state": fresh}})
        await sub.wait_until(lambda s: s.epoch == "e2", timeout=5)
        assert sub.state == fresh and sub.offset == 1
        await peer.send(ev(2, epoch="e2"))
        assert await offsets_of(sub, 1) == [2]


@run
async def test_a_refused_fixed_token_stops_the_client() -> None:
    async with FakeGateway() as gw:
        client = fast_client(gw.url, token="t1")
        connecting = asyncio.create_task(client.connect())
        peer = await gw.accept()
        auth = await peer.expect("auth")
        assert auth["data"] == {"token": "t1"}
        await peer.send({"type": "authenticated", "id": auth["id"], "subject": "bot", "accounts": ["acme"], "can_trade": True})
        await connecting
        sub, _ = await subscribed(client, peer, 0)
        await peer.close(4001, "unauthorized")
        with pytest.raises(Disconnected, match="fixed token"):
            await asyncio.wait_for(anext(sub), 5)
        assert client.status == "stopped"
        with pytest.raises(asyncio.TimeoutError):
            await gw.accept(timeout=0.3)
        await client.close()


@run
async def test_a_token_function_is_asked_again_after_the_token_expired() -> None:
    tokens = iter(["t1", "t2"])

    async def token() -> str:
        return next(tokens)

    async with FakeGateway() as gw:
        client = fast_client(gw.url, token=token)
        connecting = asyncio.create_task(client.connect())
        for expected in ("t1", "t2"):
            peer = await gw.accept()
            auth = await peer.expect("auth")
            assert auth["data"]["token"] == expected
            await peer.send({"type": "authenticated", "id": auth["id"]})
            if expected == "t1":
                await connecting
                await peer.close(4101, "token expired")
        await until(lambda: client.status == "open")
        await client.close()


@run
async def test_close_codes_4200_to_4299_stop_the_client() -> None:
    async with FakeGateway() as gw, fast_client(gw.url) as client:
        peer = await gw.accept()
        await peer.close(4200, "rejected")
        await until(lambda: client.status == "stopped")
        with pytest.raises(Disconnected, match="refused this client"):
            await client.subscribe(ORDERS)
        with pytest.raises(asyncio.TimeoutError):
            await gw.accept(timeout=0.3)


@run
async def test_two_silent_heartbeat_intervals_mean_a_dead_connection() -> None:
    async with FakeGateway(heartbeat_ms=200, pong=False) as gw:
        # Counted from before the client connects: the silence it measures starts later.
        started = asyncio.get_running_loop().time()
        async with fast_client(gw.url) as client:
            assert client.heartbeat_interval == 0.2
            peer = await gw.accept()
            await asyncio.wait_for(peer.closed.wait(), 10)
            silent_for = asyncio.get_running_loop().time() - started
            # Not before two intervals; the upper bound leaves room for a busy machine.
            assert 0.4 <= silent_for < 5.0, silent_for
            assert peer.pings >= 1
            await gw.accept()


@run
async def test_a_ping_stuck_in_a_full_write_buffer_does_not_stop_the_silence_check() -> None:
    async with FakeGateway(heartbeat_ms=200, pong=False) as gw, fast_client(gw.url) as client:
        peer = await gw.accept()
        stuck = asyncio.Event()

        async def never(message: str) -> None:
            stuck.set()
            await asyncio.Future()  # as a send waiting for a write buffer that never drains

        ws = client._connection._ws
        assert ws is not None
        ws.send = never  # type: ignore[method-assign]
        await asyncio.wait_for(stuck.wait(), 5)
        await asyncio.wait_for(peer.closed.wait(), 10)
        await gw.accept()  # and it reconnects


@run
async def test_a_cancelled_async_with_does_not_leave_the_reconnect_loop_running() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = fast_client(f"ws://127.0.0.1:{port}/ws", max_attempts=None)

    async def enter() -> None:
        async with client:
            pass

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(enter(), 0.3)
    assert client.status == "closed"


@run
async def test_a_token_function_that_raises_counts_as_a_failed_attempt(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    def token() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the vault is unreachable")
        return "t2"

    async with FakeGateway() as gw:
        client = fast_client(gw.url, token=token)
        with caplog.at_level(logging.WARNING, logger="tradesync"):
            connecting = asyncio.create_task(client.connect())
            await gw.accept()  # the first attempt: no token, closed
            peer = await gw.accept()
            auth = await peer.expect("auth")
        assert auth["data"]["token"] == "t2"
        assert any("token function failed" in r.getMessage() for r in caplog.records)
        await peer.send({"type": "authenticated", "id": auth["id"]})
        await asyncio.wait_for(connecting, 5)
        assert client.status == "open"
        await client.close()


@run
async def test_commands_return_their_result_raise_their_refusal_and_survive_a_drop() -> None:
    async with FakeGateway() as gw, fast_client(gw.url) as client:
        peer = await gw.accept()
        task = asyncio.create_task(client.command("cancel_order", {"order_id": "o1"}))
        request = await peer.expect("command")
        data = request["data"]
        assert data["action"] == "cancel_order" and data["order_id"] == "o1" and data["command_id"].startswith("py-")
        await peer.send({"type": "command_result", "id": request["id"], "success": True, "action": "cancel_order", "command_id": data["command_id"], "result": {"ok": 1}})
        assert (await task)["result"] == {"ok": 1}

        task = asyncio.create_task(client.command("execute_signal", {"signal_id": "s1"}, command_id="cmd-1"))
        request = await peer.expect("command")
        await peer.send({"type": "command_result", "id": request["id"], "success": False, "error": {"code": "UNKNOWN_COMMAND", "message": "no engine accepts commands"}})
        with pytest.raises(CommandError) as refused:
            await task
        assert refused.value.code == "UNKNOWN_COMMAND"

        task = asyncio.create_task(client.command("place_order", {"symbol": "BTC-USD"}, command_id="cmd-2"))
        assert (await peer.expect("command"))["data"]["command_id"] == "cmd-2"
        await peer.close(1001, "restart")
        peer = await gw.accept()
        request = await peer.expect("command")
        assert request["data"]["command_id"] == "cmd-2"
        await peer.send({"type": "command_result", "id": request["id"], "success": True, "command_id": "cmd-2"})
        assert (await task)["success"] is True


@run
async def test_a_command_answered_with_an_error_raises_command_error() -> None:
    async with FakeGateway() as gw, fast_client(gw.url) as client:
        peer = await gw.accept()
        task = asyncio.create_task(client.command("place_order", {"symbol": "BTC-USD"}))
        request = await peer.expect("command")
        await peer.send({"type": "error", "id": request["id"], "success": False, "error": {"code": "INVALID_MESSAGE", "message": "quantity is required"}})
        with pytest.raises(CommandError) as refused:
            await task
        assert refused.value.code == "INVALID_MESSAGE" and refused.value.message == "quantity is required"


@run
async def test_a_command_waits_longer_than_the_gateways_engine_timeout_by_default() -> None:
    assert Client("ws://127.0.0.1:9/ws").command_timeout > 15
    # Requests give up after 0.2 s; a command, by default, waits for its result.
    async with FakeGateway() as gw, fast_client(gw.url, request_timeout=0.2) as client:
        peer = await gw.accept()
        task = asyncio.create_task(client.command("cancel_order", {"order_id": "o1"}))
        request = await peer.expect("command")
        await asyncio.sleep(0.5)  # an engine taking its time
        await peer.send({"type": "command_result", "id": request["id"], "success": True, "command_id": request["data"]["command_id"]})
        assert (await task)["success"] is True


@run
async def test_a_publish_that_cannot_reach_the_gateway_raises_connection_lost() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = Client(f"ws://127.0.0.1:{port}/ws")
    with pytest.raises(ConnectionLost, match="/api/v1/events") as lost:
        await client.publish([{"stream": ORDERS, "type": "order:updated", "data": {}}])
    assert isinstance(lost.value, TradeSyncError)


@run
async def test_an_iterator_that_falls_behind_raises_events_dropped_where_the_events_were_lost() -> None:
    async with FakeGateway() as gw, fast_client(gw.url, max_queued_events=2) as client:
        peer = await gw.accept()
        sub, _ = await subscribed(client, peer, 0)
        await peer.send({"type": "batch_update", "events": [ev(n) for n in range(1, 4)]})
        await peer.send({"type": "batch_update", "events": [ev(n) for n in range(4, 6)]})
        await sub.wait_until(lambda s: s.offset == 5, timeout=5)
        with pytest.raises(EventsDropped) as dropped:
            await anext(sub)
        assert dropped.value.count == 3 and sub.dropped == 3
        # Then on with the events after the hole; the state is whole.
        assert await offsets_of(sub, 2) == [4, 5]
        assert sub.state == orders_after(*range(1, 6))
        # A reader of the state only keeps nothing, drops nothing, and cannot iterate.
        market, _ = await subscribed(client, peer, 0, stream="market:BTC-USD", max_queued_events=0)
        await peer.send(tick(1, "1"))
        await market.wait_until(lambda s: s.offset == 1, timeout=5)
        assert market.dropped == 0 and market.state["last"]["price"] == "1"
        with pytest.raises(TypeError, match="keeps no events"):
            await anext(market)


@run
async def test_subscribe_raises_what_the_gateway_refused_and_checks_names_first() -> None:
    async with FakeGateway() as gw, fast_client(gw.url) as client:
        peer = await gw.accept()
        with pytest.raises(ValueError, match="invalid stream name"):
            await client.subscribe("orders")
        task = asyncio.create_task(client.subscribe("orders:secret"))
        request = await peer.expect("subscribe")
        await peer.send({"type": "error", "id": request["id"], "success": False, "error": {"code": "FORBIDDEN", "message": "not allowed to read orders:secret"}})
        with pytest.raises(ServerError) as refused:
            await task
        assert refused.value.code == "FORBIDDEN"
        # The stream is not held: subscribing again sends a new subscribe.
        again = asyncio.create_task(client.subscribe("orders:secret"))
        request = await peer.expect("subscribe")
        await peer.send(snapshot_reply(request, 0, initial_state("orders")))
        await again


@run
async def test_closing_the_client_ends_iteration() -> None:
    async with FakeGateway() as gw:
        client = fast_client(gw.url)
        await client.connect()
        peer = await gw.accept()
        sub, _ = await subscribed(client, peer, 0)
        waiting = asyncio.create_task(anext(sub))
        await client.close()
        with pytest.raises(StopAsyncIteration):
            await waiting
        assert client.status == "closed"


@run
async def test_gives_up_after_max_attempts() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = fast_client(f"ws://127.0.0.1:{port}/ws", max_attempts=2)
    with pytest.raises(Disconnected, match="gave up after 2 attempts"):
        await client.connect()
    assert client.status == "stopped"
