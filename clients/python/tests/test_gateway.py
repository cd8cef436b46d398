"""The SDK against a real gateway: live events, state equal to the gateway's, publish,
commands, and resume after the connection drops or the gateway restarts.

Run through ``npx vitest run clients/python`` (python-sdk.test.ts), which starts the
gateway, a TCP proxy the tests can break, and a control endpoint; the tests skip when
those are not given.
"""

from __future__ import annotations

import asyncio
import os
import sys
import urllib.request
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from fakegateway import run, until

from tradesync import Backoff, Client, CommandError, ServerError, Subscription
from tradesync.rest import http_base, request_json

URL = os.environ.get("TRADESYNC_TEST_URL", "")
PROXY_URL = os.environ.get("TRADESYNC_TEST_PROXY_URL", "")
CONTROL = os.environ.get("TRADESYNC_TEST_CONTROL", "")

pytestmark = pytest.mark.skipif(not (URL and PROXY_URL and CONTROL), reason="needs a gateway: run `npx vitest run clients/python`")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fresh_account() -> str:
    """Every test its own account, so tests sharing the gateway do not see each other's events."""
    return f"py{uuid.uuid4().hex[:12]}"


def order(account: str, n: int, status: str = "open") -> dict[str, Any]:
    data = {"order_id": f"ord-{n % 5}", "symbol": "BTC-USD", "side": "buy", "order_type": "limit", "quantity": f"{n}.5", "price": "42000.00", "filled_quantity": "0", "status": status, "session_id": "s1", "created_at": now()}
    return {"stream": f"orders:{account}", "type": "order:updated", "data": data}


def position(account: str) -> dict[str, Any]:
    data = {"symbol": "ETH-USD", "side": "long", "quantity": "1.25", "avg_price": "2240.10", "mark_price": "2251.00", "unrealized_pnl": "13.63"}
    return {"stream": f"portfolio:{account}", "type": "position:updated", "data": data}


def tick(symbol: str, price: str) -> dict[str, Any]:
    return {"stream": f"market:{symbol}", "type": "market:tick", "data": {"symbol": symbol, "price": price, "timestamp": now()}}


def instance(account: str, instance_id: str, session: str) -> dict[str, Any]:
    data = {"instance_id": instance_id, "session_id": session, "strategy": "wyckoff", "symbol": "BTC-USD", "state": "MONITORING"}
    return {"stream": f"state_machines:{account}", "type": "instance_added", "data": data}


def state_change(account: str, instance_id: str, state: str) -> dict[str, Any]:
    return {"stream": f"state_machines:{account}", "type": "state_change", "data": {"instance_id": instance_id, "state": state, "previous_state": "MONITORING"}}


def for_session(state: dict[str, Any], session: str) -> dict[str, Any]:
    """A state_machines state as a subscription of ``session`` sees it: that session's instances and the account's."""
    return {"instances": {key: value for key, value in state["instances"].items() if value.get("session_id", session) == session}}


@asynccontextmanager
async def connected(url: str = "") -> AsyncIterator[Client]:
    client = Client(url or URL, http_url=http_base(URL), backoff=Backoff((0.05,), 0), max_attempts=None, connect_timeout=1.0, request_timeout=3.0)
    async with client:
        yield client


async def control(action: str) -> None:
    """Asks the test's harness to break or mend something (see python-sdk.test.ts)."""

    def post() -> None:
        with urllib.request.urlopen(urllib.request.Request(f"{CONTROL}/{action}", method="POST"), timeout=30):
            pass

    await asyncio.to_thread(post)


async def gateway_state(account: str, stream: str) -> dict[str, Any]:
    """The gateway's own state of a stream, with its position (GET /api/state/snapshot?streams=)."""
    answer = await asyncio.to_thread(request_json, "GET", f"{http_base(URL)}/api/state/snapshot?account={account}&streams={stream}")
    snapshot: dict[str, Any] = answer["snapshots"][stream]
    return snapshot


async def collect(sub: Subscription, until_offset: int, into: list[int]) -> None:
    async for event in sub:
        into.append(event["offset"])
        if event["offset"] >= until_offset:
            return


async def assert_equals_gateway(sub: Subscription, account: str) -> None:
    server = await gateway_state(account, sub.stream)
    assert (sub.epoch, sub.offset) == (server["epoch"], server["offset"])
    assert sub.state == server["state"]


@run
async def test_subscribe_follows_live_events_and_holds_the_gateways_state() -> None:
    account = fresh_account()
    async with connected() as client:
        await client.publish([order(account, n) for n in range(1, 4)])
        sub = await client.subscribe(f"orders:{account}")
        assert sub.offset == 3 and sub.last_sync is not None and not sub.last_sync.recovered
        offsets = await client.publish([order(account, 4), order(account, 5, status="filled"), order(account, 6)])
        assert [o["offset"] for o in offsets] == [4, 5, 6] and offsets[0]["epoch"] == sub.epoch
        received: list[int] = []
        await asyncio.wait_for(collect(sub, 6, received), 10)
        assert received == [4, 5, 6]
        assert "ord-0" not in sub.state["orders"]  # filled: no longer open
        await assert_equals_gateway(sub, account)


@run
async def test_a_refused_publish_raises_the_gateways_reason() -> None:
    async with connected() as client:
        with pytest.raises(ServerError) as refused:
            await client.publish([{"stream": f"orders:{fresh_account()}", "type": "market:tick", "data": {"symbol": "X"}}])
        assert refused.value.status == 400 and refused.value.code == "INVALID_EVENT"
        assert refused.value.details["problems"]


@run
async def test_a_command_no_engine_accepts_raises_unknown_command() -> None:
    async with connected() as client:
        with pytest.raises(CommandError) as refused:
            await client.command("cancel_order", {"order_id": "ord-1"}, account=fresh_account())
        assert refused.value.code == "UNKNOWN_COMMAND"


@run
async def test_resumes_the_missed_events_after_the_connection_drops() -> None:
    account = fresh_account()
    async with connected(PROXY_URL) as client:
        sub = await client.subscribe(f"orders:{account}")
        await client.publish([order(account, 1), order(account, 2)])
        received: list[int] = []
        await asyncio.wait_for(collect(sub, 2, received), 10)
        # Cut, and keep it down while events are published.
        await control("refuse")
        await control("cut")
        await until(lambda: client.status != "open")
        await client.publish([order(account, n) for n in range(3, 7)])
        await control("heal")
        await asyncio.wait_for(collect(sub, 6, received), 10)
        assert received == [1, 2, 3, 4, 5, 6]
        assert sub.last_sync is not None and sub.last_sync.recovered and sub.last_sync.replayed == 4
        assert client.stats["reconnects"] >= 1
        await assert_equals_gateway(sub, account)


@run
async def test_resumes_every_stream_after_the_gateway_restarts() -> None:
    account, symbol = fresh_account(), f"PY{uuid.uuid4().hex[:6].upper()}-USD"
    async with connected(PROXY_URL) as client:
        orders = await client.subscribe(f"orders:{account}")
        market = await client.subscribe(f"market:{symbol}")
        await client.publish([order(account, 1), tick(symbol, "1.5"), order(account, 2)])
        got_orders: list[int] = []
        got_ticks: list[int] = []
        await asyncio.wait_for(collect(orders, 2, got_orders), 10)
        await asyncio.wait_for(collect(market, 1, got_ticks), 10)
        await control("refuse")
        await control("restart")
        await client.publish([order(account, 3), tick(symbol, "2.5"), order(account, 4)])
        await control("heal")
        await asyncio.wait_for(collect(orders, 4, got_orders), 15)
        await asyncio.wait_for(collect(market, 2, got_ticks), 15)
        assert got_orders == [1, 2, 3, 4] and got_ticks == [1, 2]
        assert orders.last_sync is not None and orders.last_sync.recovered
        await assert_equals_gateway(orders, account)
        await assert_equals_gateway(market, account)


@run
async def test_notices_a_silent_connection_within_two_heartbeats_and_resumes() -> None:
    account = fresh_account()
    async with connected(PROXY_URL) as client:
        sub = await client.subscribe(f"orders:{account}")
        assert client.heartbeat_interval == 1.0
        await control("blackhole")
        await client.publish([order(account, 1), order(account, 2)])
        started = asyncio.get_running_loop().time()
        await until(lambda: client.status != "open", timeout=15)
        # Two intervals, and room for a busy machine.
        assert asyncio.get_running_loop().time() - started < 2 * client.heartbeat_interval + 5.0
        await control("heal")
        received: list[int] = []
        await asyncio.wait_for(collect(sub, 2, received), 15)
        assert received == [1, 2]
        await assert_equals_gateway(sub, account)


@run
async def test_applies_each_offset_exactly_once_while_the_connection_keeps_dropping() -> None:
    account = fresh_account()
    batches, size = 30, 10
    total = batches * size
    async with connected(PROXY_URL) as client:
        sub = await client.subscribe(f"orders:{account}")
        received: list[int] = []
        reader = asyncio.create_task(collect(sub, total, received))
        cuts = 0
        away = False
        for batch in range(1, batches + 1):
            start = (batch - 1) * size + 1
            await client.publish([order(account, n) for n in range(start, start + size)])
            if away:
                # The batch after a cut was published while the client could not come back.
                await control("heal")
                away = False
            if batch % 10 == 0:
                # Cut after batches 10, 20 and 30, each time a connection back from the last cut.
                await until(lambda: client.status == "open" and client.stats["reconnects"] >= cuts, timeout=15)
                await control("refuse")
                await control("cut")
                cuts += 1
                away = True
        await control("heal")
        # Back from the third cut, and every reconnect resumed with a replay (not a snapshot).
        await until(lambda: client.status == "open" and client.stats["reconnects"] >= 3 and client.stats["recovered"] >= 3, timeout=15)
        await asyncio.wait_for(reader, 20)
        assert received == list(range(1, total + 1))
        await assert_equals_gateway(sub, account)


@run
async def test_a_session_scoped_subscription_holds_its_sessions_view_verified_at_the_head() -> None:
    account = fresh_account()
    stream = f"state_machines:{account}"
    async with connected() as client:
        assert 0 < client.position_interval <= 1.0  # the harness's gateway sends positions often
        await client.publish([instance(account, "a1", "A"), instance(account, "b1", "B")])
        sub = await client.subscribe(stream, session_id="A")
        assert list(sub.state["instances"]) == ["a1"]
        # B's, A's, then A's and B's: the subscription is given A's only.
        await client.publish([state_change(account, "b1", "SIGNAL_DETECTED")])
        given = await client.publish([instance(account, "a2", "A")])
        given += (await client.publish([state_change(account, "a1", "ENTRY_PENDING"), instance(account, "b2", "B")]))[:1]
        received: list[int] = []
        await asyncio.wait_for(collect(sub, given[-1]["offset"], received), 10)
        assert received == [o["offset"] for o in given]
        # The last event was B's: a position at the head proves A's view there, and the replica stands at the head.
        server = await gateway_state(account, stream)
        await sub.wait_until(lambda s: s.offset == server["offset"] and s.verified_offset == server["offset"], timeout=10)
        assert sub.epoch == server["epoch"] and sub.state == for_session(server["state"], "A")
        assert sorted(sub.state["instances"]) == ["a1", "a2"] and sub.state["instances"]["a1"]["state"] == "ENTRY_PENDING"
        # No resync loop: more positions come, each verified, and nothing is subscribed again.
        syncs = client.stats["snapshots"] + client.stats["recovered"]
        verified = client.stats["verified"]
        await sub.wait_until(lambda s: client.stats["verified"] >= verified + 2, timeout=15)
        assert client.stats["gaps"] == 0 and client.stats["diverged"] == 0
        # (A stream the watchdog found stale on a busy machine resubscribes once: not a loop.)
        assert client.stats["snapshots"] + client.stats["recovered"] - syncs <= client.stats["stale"]


@run
async def test_a_conflated_market_subscription_ends_at_the_gateways_state() -> None:
    symbol = f"PY{uuid.uuid4().hex[:6].upper()}-USD"
    async with connected() as client:
        sub = await client.subscribe(f"market:{symbol}", max_rate=20)
        offsets = await client.publish([tick(symbol, f"{100 + n}.25") for n in range(30)])
        last = offsets[-1]["offset"]
        received: list[int] = []
        await asyncio.wait_for(collect(sub, last, received), 10)
        assert received == sorted(set(received)) and received[-1] == last
        await assert_equals_gateway(sub, "demo")


@run
async def test_the_desk_example_prints_the_desk() -> None:
    account, symbol = fresh_account(), f"PY{uuid.uuid4().hex[:6].upper()}-USD"
    async with connected() as client:
        await client.publish([order(account, 1), position(account), tick(symbol, "42.75")])
    sdk = Path(__file__).resolve().parents[1]
    desk = sdk.parents[1] / "examples" / "python" / "desk.py"
    args = ["--url", URL, "--account", account, "--symbols", symbol, "--once", "--cancel", "ord-1"]
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(desk), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(sdk)}
    )
    output, _ = await asyncio.wait_for(process.communicate(), 20)
    text = output.decode()
    assert process.returncode == 0, text
    assert f"account {account}" in text and "ord-1" in text and "2240.10" in text and "42.75" in text, text
    # No engine accepts commands here: the refusal is reported, the desk still printed.
    assert "UNKNOWN_COMMAND" in text, text


@run
async def test_the_producers_guide_python_example_runs() -> None:
    """The Python example of docs/PRODUCERS.md, run as written against this gateway and a fresh account."""
    guide = (Path(__file__).resolve().parents[3] / "docs" / "PRODUCERS.md").read_text("utf-8")
    example = guide.split("## Python\n", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    account = fresh_account()
    script = example.replace('"ws://127.0.0.1:8000/ws"', repr(URL)).replace('account = "demo"', f"account = {account!r}")
    assert script != example
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    )
    output, _ = await asyncio.wait_for(process.communicate(), 20)
    text = output.decode()
    assert process.returncode == 0, text
    assert f"'stream': 'orders:{account}'" in text and "1 open" in text, text
    assert (await gateway_state(account, f"alerts:{account}"))["state"]["alerts"][0]["id"] == "liq-1"
