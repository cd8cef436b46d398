#!/usr/bin/env python3
"""Mirrors a trading desk in the terminal: open orders, positions, balances and last prices, live.

    npx tradesync serve                  # a gateway whose simulator trades the "demo" account
    pip install ./clients/python         # the SDK (or run with PYTHONPATH=clients/python)
    python3 examples/python/desk.py --account demo --symbols BTC-USD,ETH-USD

Every panel is a replica the SDK keeps exact across reconnects; the screen is redrawn
at most five times a second, however fast events come. ``--once`` prints the desk once
and exits. ``--cancel ORDER_ID`` asks the engine to cancel an order first. When the
client stops for good (the gateway refused it, or reconnects ran out) the desk says why
and exits with status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any

from tradesync import Client, CommandError, EventsDropped, Subscription, TradeSyncError

CLEAR = "\x1b[H\x1b[2J"
REDRAW_EVERY = 0.2


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A plain text table: a title, a header and one line per row."""
    cells = [[str(column) for column in columns], *[["-" if value is None else str(value) for value in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = [f"{title} ({len(rows)})"]
    lines += ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in cells]
    return [*lines, ""]


def render(client: Client, account: str, orders: Subscription, portfolio: Subscription, markets: Sequence[Subscription]) -> str:
    open_orders = sorted(orders.state["orders"].values(), key=lambda o: str(o.get("created_at")))
    positions = portfolio.state["positions"].values()
    balances = portfolio.state["balances"].values()
    totals = portfolio.state["portfolio"]
    lines = [f"TradeSync desk — account {account} — {client.status}", ""]
    lines += table(
        "Open orders",
        ("order", "symbol", "side", "type", "qty", "filled", "price", "status"),
        [(o.get("order_id"), o.get("symbol"), o.get("side"), o.get("order_type"), o.get("quantity"), o.get("filled_quantity"), o.get("price"), o.get("status")) for o in open_orders],
    )
    lines += table(
        "Positions",
        ("symbol", "side", "qty", "avg price", "mark", "unrealized P&L"),
        [(p.get("symbol"), p.get("side"), p.get("quantity"), p.get("avg_price"), p.get("mark_price"), p.get("unrealized_pnl")) for p in positions],
    )
    lines += table("Balances", ("currency", "total", "available", "reserved"), [(b.get("currency"), b.get("total"), b.get("available"), b.get("reserved")) for b in balances])
    if totals:
        lines += [f"Portfolio: value {totals.get('total_value_usd')} USD, unrealized {totals.get('unrealized_pnl')}, realized {totals.get('realized_pnl')}, heat {totals.get('total_heat')}", ""]
    ticks = [(m.stream.removeprefix("market:"), m.state["last"]) for m in markets]
    lines += table("Last prices", ("symbol", "price", "at"), [(symbol, (last or {}).get("price"), (last or {}).get("timestamp")) for symbol, last in ticks])
    streams = [orders, portfolio, *markets]
    lines.append("  ".join(f"{s.stream}@{s.offset}{'' if s.verified_offset is None else ' ✓' + str(s.verified_offset)}" for s in streams))
    lines.append(f"reconnects {client.stats['reconnects']}, snapshots {client.stats['snapshots']}, replays {client.stats['recovered']}, checksum mismatches {client.stats['diverged']}")
    return "\n".join(lines)


async def watch(sub: Subscription, changed: asyncio.Event) -> None:
    """Marks the desk changed at every event; ends when the subscription does, raises when it fails."""
    while True:
        try:
            async for _ in sub:
                changed.set()
            return
        except EventsDropped:
            # Events came faster than this loop took them: the state is exact all the same.
            changed.set()


async def redraw(client: Client, account: str, orders: Subscription, portfolio: Subscription, markets: Sequence[Subscription], changed: asyncio.Event) -> None:
    while True:
        # Redraw on change, and once a second anyway (the connection status may have changed).
        try:
            await asyncio.wait_for(changed.wait(), 1.0)
        except TimeoutError:
            pass
        changed.clear()
        sys.stdout.write(CLEAR + render(client, account, orders, portfolio, markets) + "\n")
        sys.stdout.flush()
        await asyncio.sleep(REDRAW_EVERY)


async def main(args: argparse.Namespace) -> int:
    """Runs the desk; the exit status: 0, or 1 when the client stopped (the reason on stderr)."""
    symbols = [s for s in args.symbols.split(",") if s]
    status = 0
    try:
        async with Client(args.url, token=args.token or None) as client:
            if args.cancel:
                try:
                    await client.command("cancel_order", {"order_id": args.cancel}, account=args.account)
                except CommandError as err:
                    print(f"cancel {args.cancel}: {err}", file=sys.stderr)
            orders = await client.subscribe(f"orders:{args.account}")
            portfolio = await client.subscribe(f"portfolio:{args.account}")
            markets = [await client.subscribe(f"market:{symbol}") for symbol in symbols]
            if args.once:
                print(render(client, args.account, orders, portfolio, markets))
                return 0
            changed = asyncio.Event()
            # One failure (a stream that ends with an error, the client stopping) ends the desk.
            async with asyncio.TaskGroup() as group:
                for sub in (orders, portfolio, *markets):
                    group.create_task(watch(sub, changed), name=f"watch {sub.stream}")
                group.create_task(redraw(client, args.account, orders, portfolio, markets, changed), name="redraw")
    except* TradeSyncError as failed:
        for error in failed.exceptions:
            print(f"desk: {error}", file=sys.stderr)
        status = 1  # (no return in an except* clause)
    return status


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Mirror a TradeSync desk in the terminal.")
    parser.add_argument("--url", default=os.environ.get("TRADESYNC_URL", "ws://127.0.0.1:8000/ws"), help="the gateway's WebSocket endpoint")
    parser.add_argument("--token", default=os.environ.get("TRADESYNC_TOKEN"), help="a JWT, when the gateway requires auth")
    parser.add_argument("--account", default="demo")
    parser.add_argument("--symbols", default="BTC-USD,ETH-USD", help="comma-separated market symbols")
    parser.add_argument("--cancel", metavar="ORDER_ID", help="cancel this order first")
    parser.add_argument("--once", action="store_true", help="print the desk once and exit")
    return parser.parse_args(argv)


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main(parse())))
    except KeyboardInterrupt:
        pass
