"""The checksum that proves a replica holds the gateway's state at an offset.

``subscribed`` and ``stream_position`` carry the CRC-32 (zlib's) of the UTF-8 bytes of
the canonical JSON of the stream's state, as 8 lowercase hex digits. Canonical JSON is
what ``json.dumps(state, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
writes, with two differences that only JavaScript's ``JSON.stringify`` decides: numbers
are written as JavaScript writes them (``1e-7``, ``0.000001``, not ``1e-07``,
``1e-06``), and a lone surrogate is escaped (``\\ud800``) rather than written raw.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from typing import Final

from .jsvalue import number_text

__all__ = ["canonical_json", "state_checksum"]

_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _string(text: str) -> str:
    written = json.dumps(text, ensure_ascii=False)
    if _SURROGATE.search(written) is None:
        return written
    return _SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", written)


def canonical_json(value: object) -> str:
    """The canonical JSON text of a JSON value: keys sorted by code point at every level, no whitespace."""
    parts: list[str] = []
    write = parts.append

    def encode(item: object) -> None:
        if isinstance(item, str):
            write(_string(item))
        elif item is None:
            write("null")
        elif isinstance(item, bool):
            write("true" if item else "false")
        elif isinstance(item, (int, float)):
            # JSON.stringify writes null for what is not a finite number.
            write(number_text(item) if isinstance(item, int) or math.isfinite(item) else "null")
        elif isinstance(item, dict):
            write("{")
            for index, key in enumerate(sorted(item)):
                if index:
                    write(",")
                write(_string(key))
                write(":")
                encode(item[key])
            write("}")
        elif isinstance(item, (list, tuple)):
            write("[")
            for index, element in enumerate(item):
                if index:
                    write(",")
                encode(element)
            write("]")
        else:
            raise TypeError(f"not a JSON value: {type(item).__name__}")

    encode(value)
    return "".join(parts)


def state_checksum(state: object) -> str:
    """The CRC-32 of a state's canonical JSON, as the gateway sends it (8 lowercase hex digits)."""
    return f"{zlib.crc32(canonical_json(state).encode('utf-8')):08x}"
