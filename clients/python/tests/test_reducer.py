"""The Python reducer gives, case for case, the state the protocol's TypeScript reducer gives.

The cases come from ``packages/protocol/test/fixtures/reducer-cases.json``, exported
(and kept up to date) by the protocol's own tests from the TypeScript reducer: every
state is compared as JSON text with keys in JavaScript's order, so a difference of
value, of type (``1`` vs ``true``) or of key order fails, and the state's checksum is
compared with the one TypeScript computed.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tradesync import CLOSED_ORDER_STATUSES, EVENT_KINDS, STATE_LIMITS, apply_event, apply_events, initial_state, state_checksum
from tradesync.jsvalue import js_keys

FIXTURES = Path(__file__).resolve().parents[3] / "packages" / "protocol" / "test" / "fixtures" / "reducer-cases.json"
EXPORTED = json.loads(FIXTURES.read_text("utf-8"))
CASES = EXPORTED["cases"]


def in_js_order(value: Any) -> Any:
    """The value with every object's keys in the order JavaScript lists them."""
    if isinstance(value, dict):
        return {key: in_js_order(value[key]) for key in js_keys(value)}
    if isinstance(value, list):
        return [in_js_order(item) for item in value]
    return value


def as_js_json(value: Any) -> str:
    return json.dumps(in_js_order(value), ensure_ascii=False)


def test_the_constants_are_the_protocols() -> None:
    assert STATE_LIMITS == EXPORTED["state_limits"]
    assert CLOSED_ORDER_STATUSES == set(EXPORTED["closed_order_statuses"])
    assert EVENT_KINDS == EXPORTED["event_kinds"]


def test_the_fixtures_cover_every_kind() -> None:
    assert {case["kind"] for case in CASES} == set(EVENT_KINDS.values())
    assert len(CASES) > 60


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_a_batch_gives_the_typescript_state(case: dict[str, Any]) -> None:
    initial, events = case["initial"], case["events"]
    before = copy.deepcopy((initial, events))
    state = apply_events(initial, events)
    assert as_js_json(state) == json.dumps(case["expected"], ensure_ascii=False)
    assert state_checksum(state) == case["checksum"]
    # Pure: neither the state nor the events were changed.
    assert as_js_json((initial, events)) == as_js_json(before)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_one_event_at_a_time_gives_the_same_state(case: dict[str, Any]) -> None:
    state = case["initial"]
    for event in case["events"]:
        state = apply_event(state, event)
    assert as_js_json(state) == json.dumps(case["expected"], ensure_ascii=False)


def test_initial_states_are_fresh_objects() -> None:
    a, b = initial_state("portfolio"), initial_state("portfolio")
    assert a == b and a is not b and a["balances"] is not b["balances"]
    with pytest.raises(ValueError):
        initial_state("nope")
