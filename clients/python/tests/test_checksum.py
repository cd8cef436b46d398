"""The checksum of a state is the gateway's: CRC-32 of the canonical JSON, numbers as JavaScript writes them.

Checksums computed by the gateway's own code for every reducer case are compared in
test_reducer.py; these pin the parts of canonical JSON one at a time.
"""

from __future__ import annotations

import json
import zlib

import pytest

from tradesync import canonical_json, state_checksum
from tradesync.jsvalue import number_text


def test_is_json_dumps_sorted_and_compact_for_ordinary_states() -> None:
    state = {"orders": {"o-2": {"price": "42000.50", "qty": 2, "ok": True, "note": None, "é": "ü\n"}, "o-1": {}}, "list": [3, 1.5, {"b": 1, "a": 2}]}
    expected = json.dumps(state, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(state) == expected
    assert state_checksum(state) == f"{zlib.crc32(expected.encode('utf-8')):08x}"


def test_is_eight_lowercase_hex_digits() -> None:
    assert state_checksum({"orders": {}}) == format(zlib.crc32(b'{"orders":{}}'), "08x")
    assert len(state_checksum({"last": None})) == 8


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.1 + 0.2, "0.30000000000000004"),
        (1e-7, "1e-7"),
        (0.000001, "0.000001"),
        (1.5e-10, "1.5e-10"),
        (1e21, "1e+21"),
        (1.5e300, "1.5e+300"),
        (123456789012345680000, "123456789012345680000"),
        (2**53 + 2, "9007199254740994"),
        (-42, "-42"),
        (-0.0, "0"),
        (100.0, "100"),
        (5e-324, "5e-324"),
    ],
)
def test_numbers_are_written_as_javascript_writes_them(value: float, text: str) -> None:
    assert number_text(value) == text
    assert canonical_json([value]) == f"[{text}]"


def test_keys_sort_by_code_point_and_lone_surrogates_are_escaped() -> None:
    assert canonical_json({"\U0001F600": 1, "\uffff": 2, "a": 3}) == '{"a":3,"\uffff":2,"\U0001F600":1}'
    assert canonical_json("\ud800") == '"\\ud800"'


def test_refuses_what_is_not_json() -> None:
    with pytest.raises(TypeError):
        canonical_json({"when": object()})
