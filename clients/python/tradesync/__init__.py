"""TradeSync for Python: the exact, live state of a trading desk from a TradeSync gateway.

    from tradesync import Client

    async with Client("ws://127.0.0.1:8000/ws") as client:
        orders = await client.subscribe("orders:demo")
        print(orders.state["orders"])
        async for event in orders:
            print(event["offset"], event["type"], event["data"])

The replica is kept with the same reducer the gateway applies, in offset order, and
resumes by itself across reconnects; see the README for the guarantees.
"""

from .backoff import DEFAULT_BACKOFF, Backoff, CloseCode, close_policy
from .checksum import canonical_json, state_checksum
from .client import Client
from .connection import Status, Token
from .errors import CommandError, ConnectionLost, Disconnected, EventsDropped, ServerError, TradeSyncError
from .reducer import CLOSED_ORDER_STATUSES, EVENT_KINDS, STATE_LIMITS, Event, State, apply_event, apply_events, initial_state
from .replica import Position
from .streams import CONFLATABLE_KINDS, STREAM_KINDS, stream_kind
from .subscription import Subscription, SyncInfo

__version__ = "0.1.0"

__all__ = [
    "CLOSED_ORDER_STATUSES",
    "CONFLATABLE_KINDS",
    "DEFAULT_BACKOFF",
    "EVENT_KINDS",
    "STATE_LIMITS",
    "STREAM_KINDS",
    "Backoff",
    "Client",
    "CloseCode",
    "CommandError",
    "ConnectionLost",
    "Disconnected",
    "Event",
    "EventsDropped",
    "Position",
    "ServerError",
    "State",
    "Status",
    "Subscription",
    "SyncInfo",
    "Token",
    "TradeSyncError",
    "apply_event",
    "apply_events",
    "canonical_json",
    "close_policy",
    "initial_state",
    "state_checksum",
    "stream_kind",
]
