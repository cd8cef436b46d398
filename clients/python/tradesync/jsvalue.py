"""How JavaScript writes, orders and compares values, where a stream's state depends on it.

The gateway's reducer runs in JavaScript: the keys it makes come from ``String(value)``,
its objects list integer-like keys first, its alerts match ids with ``===``, and its JSON
writes numbers as ``Number.prototype.toString`` does. A Python replica that is to equal
the gateway's state key for key, and checksum for checksum, follows the same rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

__all__ = ["UNDEFINED", "js_keys", "js_string", "number_text", "strict_equal"]


class _Undefined:
    """JavaScript's ``undefined``: what a field that is absent reads as."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Final = _Undefined()

_MAX_ARRAY_INDEX: Final = 2**32 - 2
_EXACT_INTEGERS: Final = 2**53


def number_text(value: float) -> str:
    """``Number.prototype.toString()``: shortest round-trip digits, exponent outside 1e-7..1e21."""
    if isinstance(value, int):
        if abs(value) < _EXACT_INTEGERS:
            return str(value)
        try:
            value = float(value)
        except OverflowError:
            return "Infinity" if value > 0 else "-Infinity"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    if value < 0:
        return "-" + number_text(-value)
    # repr() gives the shortest digits that round-trip, as JavaScript does; only the layout differs.
    mantissa, _, exponent = repr(value).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    last = int(exponent or 0) - len(fraction)  # the power of ten of the last digit
    significant = digits.rstrip("0")
    last += len(digits) - len(significant)
    k = len(significant)
    n = k + last  # value = 0.<digits> * 10**n
    if k <= n <= 21:
        return significant + "0" * (n - k)
    if 0 < n <= 21:
        return significant[:n] + "." + significant[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + significant
    e = n - 1
    head = significant[0] + ("." + significant[1:] if k > 1 else "")
    return f"{head}e{'+' if e >= 0 else '-'}{abs(e)}"


def js_string(value: object) -> str:
    """``String(value)`` for a JSON value, or for :data:`UNDEFINED`."""
    if isinstance(value, str):
        return value
    if value is UNDEFINED:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return number_text(value)
    if isinstance(value, list):
        # Array.prototype.join writes null and undefined as nothing.
        return ",".join("" if item is None or item is UNDEFINED else js_string(item) for item in value)
    return "[object Object]"


def _is_array_index(key: str) -> bool:
    return key.isascii() and key.isdigit() and (key == "0" or key[0] != "0") and int(key) <= _MAX_ARRAY_INDEX


def js_keys(mapping: Mapping[str, object]) -> list[str]:
    """The keys in the order JavaScript lists an object's: array indices ascending, then the rest as inserted.

    A dict keeps insertion order for every key, which is JavaScript's order for all but
    integer-like keys; this is the order a state's "oldest" keys are dropped in.
    """
    indices = [key for key in mapping if _is_array_index(key)]
    if not indices:
        return list(mapping)
    indices.sort(key=int)
    return indices + [key for key in mapping if not _is_array_index(key)]


def strict_equal(a: object, b: object) -> bool:
    """``a === b`` for JSON values: objects and arrays are equal only to themselves, ``true`` is not ``1``."""
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return a is b
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b
