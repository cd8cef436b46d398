"""The exceptions of the SDK: what the gateway refused, and what the connection could not do."""

from __future__ import annotations

from typing import Any

__all__ = ["CommandError", "ConnectionLost", "Disconnected", "EventsDropped", "ServerError", "TradeSyncError"]


class TradeSyncError(Exception):
    """Base of every error the SDK raises."""


class ServerError(TradeSyncError):
    """The gateway answered with an error: ``code`` is the contract's (``INVALID_STREAM``, ``FORBIDDEN``, …)."""

    def __init__(self, code: str, message: str, *, status: int | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        #: The HTTP status, for errors of REST calls.
        self.status = status
        #: The whole error answer, e.g. ``problems`` of a refused publish.
        self.details = details or {}


class CommandError(ServerError):
    """A command was refused or failed: ``command_result`` with ``success: false``, or an ``error`` reply."""


class ConnectionLost(TradeSyncError):
    """The connection closed (or could not be made) before the gateway answered.

    The WebSocket reconnects by itself. For ``publish()`` (HTTP), the events may or may
    not have been appended when the answer was lost.
    """


class Disconnected(TradeSyncError):
    """The client stopped: it gave up reconnecting, was refused for good, or was closed."""


class EventsDropped(TradeSyncError):
    """Raised by a subscription's iterator where its queue lost events (nobody took them in time).

    ``count`` events are missing there; iterating again goes on with the events after
    them. The subscription's ``state`` is exact all the same.
    """

    def __init__(self, stream: str, count: int) -> None:
        super().__init__(f"{stream}: {count} events were dropped here: the iterator did not keep up (raise max_queued_events, or read the state)")
        self.stream = stream
        self.count = count
