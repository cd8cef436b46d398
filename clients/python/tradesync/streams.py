"""Stream names: ``<kind>:<account>`` per account, ``market:<symbol>`` for public market data.

Checked on the client so that a typo fails at ``subscribe()`` with the rule it broke,
before a round trip to the gateway.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["ACCOUNT_STREAM_KINDS", "CONFLATABLE_KINDS", "STREAM_KINDS", "stream_kind"]

ACCOUNT_STREAM_KINDS: Final = ("portfolio", "orders", "signals", "state_machines", "indicators", "alerts")
STREAM_KINDS: Final = (*ACCOUNT_STREAM_KINDS, "market")

#: Kinds whose events carry the whole value of one entity, so the gateway may send only
#: the newest per entity (``max_rate``): their offsets then jump. Never orders, fills,
#: positions, signals or alerts.
CONFLATABLE_KINDS: Final = ("market", "indicators")

_ACCOUNT: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SYMBOL: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,31}")


def stream_kind(stream: str) -> str:
    """The kind of a stream name; ``ValueError`` when the name is malformed or of an unknown kind."""
    kind, colon, rest = stream.partition(":")
    pattern = _SYMBOL if kind == "market" else _ACCOUNT if kind in ACCOUNT_STREAM_KINDS else None
    if not colon or pattern is None or len(stream) > 100 or not pattern.fullmatch(rest):
        raise ValueError(f"invalid stream name {stream!r}: expected <kind>:<account> with a kind among {', '.join(STREAM_KINDS)}")
    return kind
