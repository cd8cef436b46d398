"""When to reconnect: the delays between attempts, and what a close code allows.

Delays are 1 s, 2 s, 4 s, 8 s, 16 s, then 30 s for every later attempt, each spread by
±20% so that a thousand clients cut at once do not come back in the same millisecond.
The close-code ranges are the wire contract's: 4000–4099 resume, 4100–4199
re-authenticate first, 4200–4299 do not come back.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

__all__ = ["DEFAULT_BACKOFF", "Backoff", "CloseCode", "close_policy"]


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays in seconds; the last one repeats."""

    delays: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
    #: Fraction of each delay added or removed at random (0.2 = ±20%).
    jitter: float = 0.2

    def delay(self, attempt: int, random: Callable[[], float] = _random.random) -> float:
        """The wait before reconnect attempt ``attempt`` (1-based); ``random`` returns [0, 1)."""
        if not self.delays:
            return 0.0
        base = self.delays[min(max(attempt, 1), len(self.delays)) - 1]
        spread = base * self.jitter
        return max(0.0, base - spread + random() * 2 * spread)


DEFAULT_BACKOFF = Backoff()


class CloseCode(IntEnum):
    """The WebSocket close codes the client acts on."""

    NORMAL = 1000
    #: Closed by the client itself: two heartbeat intervals without a message.
    HEARTBEAT_TIMEOUT = 4000
    #: No token, or an invalid or expired one.
    UNAUTHORIZED = 4001
    #: The gateway dropped this connection's state: reconnect and take snapshots.
    STATE_INVALIDATED = 4009


def close_policy(code: int) -> Literal["resume", "reauthenticate", "stop"]:
    """What a close with ``code`` allows: resume (with backoff), only with a new token, or nothing."""
    if code == CloseCode.UNAUTHORIZED or 4100 <= code <= 4199:
        return "reauthenticate"
    if 4200 <= code <= 4299:
        return "stop"
    return "resume"
