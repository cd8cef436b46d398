"""The reducer ``(state, event) -> state`` of every stream kind, as the gateway applies it.

A replica equals the gateway's state only if both apply events by the same rules, so
this is a line-by-line port of the protocol's TypeScript reducer, proven against it by
the fixtures the protocol package exports (``reducer-cases.json``). Where JavaScript
semantics leak into the state (key order, ``String()`` of ids, ``===`` of alert ids)
they are followed too; see :mod:`tradesync.jsvalue`.

Pure: a new state is returned, the one given is never changed. Idempotent: events
carry whole entities, upserted or removed by id, so applying one twice changes nothing.
Within one :func:`apply_events` call a collection is copied at most once and then
changed in place, so a batch of a hundred signals copies the signals map once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypedDict, TypeVar

from .jsvalue import UNDEFINED, js_keys, js_string, strict_equal

__all__ = [
    "CLOSED_ORDER_STATUSES",
    "EVENT_KINDS",
    "STATE_LIMITS",
    "Event",
    "ReducibleEvent",
    "State",
    "apply_event",
    "apply_events",
    "initial_state",
]

State = dict[str, Any]
"""A stream's state: plain JSON data, shaped per kind (see :func:`initial_state`)."""

ReducibleEvent = Mapping[str, Any]
"""What the reducer reads of an event: its ``type`` and ``data``."""


class Event(TypedDict):
    """A stream event as the gateway delivers it, alone or inside a ``batch_update``."""

    type: str
    stream: str
    epoch: str
    offset: int
    timestamp: str
    data: dict[str, Any]


#: Bounds that keep a state from growing without end; the oldest entries go first.
#: Signals and patterns may pass theirs by a tenth before the oldest are dropped at once.
STATE_LIMITS: Final = {"signals": 1000, "patterns": 200, "alerts": 100}

#: Orders in these states are no longer open: the ``orders`` state drops them.
CLOSED_ORDER_STATUSES: Final = frozenset({"filled", "cancelled", "rejected", "expired"})

#: The stream kind of every event type: an event's type says which reducer applies.
EVENT_KINDS: Final = {
    "order:updated": "orders",
    "order:closed": "orders",
    "balance:updated": "portfolio",
    "position:updated": "portfolio",
    "position:closed": "portfolio",
    "portfolio:updated": "portfolio",
    "campaign:updated": "portfolio",
    "signal:new": "signals",
    "signal:executed": "signals",
    "signal:rejected": "signals",
    "pattern_detected": "signals",
    "instance_added": "state_machines",
    "state_change": "state_machines",
    "instance_removed": "state_machines",
    "full_update": "state_machines",
    "indicator:updated": "indicators",
    "liquidation_alert": "alerts",
    "reconciliation_mismatch": "alerts",
    "market:tick": "market",
}


def initial_state(kind: str) -> State:
    """The state of a stream of ``kind`` before its first event (a fresh object each call)."""
    states: dict[str, Callable[[], State]] = {
        "orders": lambda: {"orders": {}},
        "portfolio": lambda: {"balances": {}, "positions": {}, "portfolio": {}, "campaigns": {}},
        "signals": lambda: {"signals": {}, "patterns": {}},
        "state_machines": lambda: {"instances": {}},
        "indicators": lambda: {"indicators": {}},
        "alerts": lambda: {"alerts": []},
        "market": lambda: {"last": None},
    }
    if kind not in states:
        raise ValueError(f"unknown stream kind {kind!r}")
    return states[kind]()


_C = TypeVar("_C", dict[str, Any], list[Any])


class _Draft:
    """Copy-on-write for one batch: ``own(x)`` copies ``x`` the first time and returns that copy after.

    Objects the caller passed in are never written. Copies are held here (not only their
    ids) so that no id is reused by another object while the batch runs.
    """

    def __init__(self) -> None:
        self._fresh: dict[int, object] = {}

    def own(self, value: _C) -> _C:
        if id(value) in self._fresh:
            return value
        return self.made(value.copy())

    def made(self, value: _C) -> _C:
        """Registers a collection this batch built from scratch, so it is written in place."""
        self._fresh[id(value)] = value
        return value


_Reducer = Callable[[State, str, Mapping[str, Any], _Draft], State]


def _text(data: Mapping[str, Any], field: str) -> str:
    """``String(data.field)``: how the gateway turns a field into a key."""
    return js_string(data.get(field, UNDEFINED))


def _upsert(draft: _Draft, mapping: dict[str, Any], key: str, value: object) -> dict[str, Any]:
    changed = draft.own(mapping)
    changed[key] = value
    return changed


def _remove(draft: _Draft, mapping: dict[str, Any], key: str) -> dict[str, Any]:
    if key not in mapping:
        return mapping
    changed = draft.own(mapping)
    del changed[key]
    return changed


def _bounded(draft: _Draft, mapping: dict[str, Any], limit: int) -> dict[str, Any]:
    """At most ``limit`` + a tenth keys; past that, the newest ``limit`` in JavaScript key order."""
    if len(mapping) <= limit + math.ceil(limit / 10):
        return mapping
    keys = js_keys(mapping)
    return draft.made({key: mapping[key] for key in keys[len(keys) - limit :]})


def _orders(state: State, type_: str, data: Mapping[str, Any], draft: _Draft) -> State:
    if type_ == "order:updated":
        key = _text(data, "order_id")
        changed = draft.own(state)
        # An update that closes the order removes it: the state holds open orders only.
        if _text(data, "status") in CLOSED_ORDER_STATUSES:
            changed["orders"] = _remove(draft, state["orders"], key)
        else:
            changed["orders"] = _upsert(draft, state["orders"], key, data)
        return changed
    if type_ == "order:closed":
        orders = _remove(draft, state["orders"], _text(data, "order_id"))
        if orders is state["orders"]:
            return state
        changed = draft.own(state)
        changed["orders"] = orders
        return changed
    return state


#: The portfolio's upserts: event type -> (collection, the field that keys it).
_PORTFOLIO_UPSERTS: Final = {
    "balance:updated": ("balances", "currency"),
    "position:updated": ("positions", "symbol"),
    "campaign:updated": ("campaigns", "campaign_id"),
}


def _portfolio(state: State, type_: str, data: Mapping[str, Any], draft: _Draft) -> State:
    if type_ in _PORTFOLIO_UPSERTS:
        part, field = _PORTFOLIO_UPSERTS[type_]
        changed = draft.own(state)
        changed[part] = _upsert(draft, state[part], _text(data, field), data)
        return changed
    if type_ == "position:closed":
        positions = _remove(draft, state["positions"], _text(data, "symbol"))
        if positions is state["positions"]:
            return state
        changed = draft.own(state)
        changed["positions"] = positions
        return changed
    if type_ == "portfolio:updated":
        changed = draft.own(state)
        changed["portfolio"] = dict(data)
        return changed
    return state


def _signals(state: State, type_: str, data: Mapping[str, Any], draft: _Draft) -> State:
    if type_ == "signal:new":
        changed = draft.own(state)
        changed["signals"] = _bounded(draft, _upsert(draft, state["signals"], _text(data, "id"), data), STATE_LIMITS["signals"])
        return changed
    if type_ in ("signal:executed", "signal:rejected"):
        key = _text(data, "id")
        existing = state["signals"].get(key)
        if existing is None:
            return state
        status = "executed" if type_ == "signal:executed" else "rejected"
        changed = draft.own(state)
        changed["signals"] = _upsert(draft, state["signals"], key, {**existing, "status": status, **data})
        return changed
    if type_ == "pattern_detected":
        changed = draft.own(state)
        changed["patterns"] = _bounded(draft, _upsert(draft, state["patterns"], _text(data, "id"), data), STATE_LIMITS["patterns"])
        return changed
    return state


def _state_machines(state: State, type_: str, data: Mapping[str, Any], draft: _Draft) -> State:
    if type_ == "instance_added":
        changed = draft.own(state)
        changed["instances"] = _upsert(draft, state["instances"], _text(data, "instance_id"), data)
        return changed
    if type_ == "state_change":
        key = _text(data, "instance_id")
        existing = state["instances"].get(key)
        # A change for an instance never seen cannot make a whole entity: ignore it.
        if existing is None:
            return state
        changed = draft.own(state)
        changed["instances"] = _upsert(draft, state["instances"], key, {**existing, **data})
        return changed
    if type_ == "instance_removed":
        instances = _remove(draft, state["instances"], _text(data, "instance_id"))
        if instances is state["instances"]:
            return state
        changed = draft.own(state)
        changed["instances"] = instances
        return changed
    if type_ == "full_update":
        changed = draft.own(state)
        changed["instances"] = draft.made({_text(instance, "instance_id"): instance for instance in data["instances"]})
        return changed
    return state


def _indicators(state: State, type_: str, data: Mapping[str, Any], draft: _Draft) -> State:
    if type_ != "indicator:updated":
        return state
    symbol = _text(data, "symbol")
    values = _upsert(draft, state["indicators"].get(symbol, {}), _text(data, "name"), _text(data, "value"))
    changed = draft.own(state)
    changed["indicators"] = _upsert(draft, state["indicators"], symbol, values)
    return changed


def _alerts(state: State, type_: str, data: Mapping[str, Any], draft: _Draft) -> State:
    if type_ not in ("liquidation_alert", "reconciliation_mismatch"):
        return state
    entry = {**data, "alert_type": type_}
    alerts: list[Any] = draft.own(state["alerts"])
    ident = entry.get("id", UNDEFINED)
    index = next((i for i, alert in enumerate(alerts) if strict_equal(alert.get("id", UNDEFINED), ident)), -1)
    if index >= 0:
        alerts[index] = entry
    else:
        alerts.append(entry)
        del alerts[: max(0, len(alerts) - STATE_LIMITS["alerts"])]
    changed = draft.own(state)
    changed["alerts"] = alerts
    return changed


def _market(state: State, type_: str, data: Mapping[str, Any], draft: _Draft) -> State:
    if type_ != "market:tick":
        return state
    changed = draft.own(state)
    changed["last"] = data
    return changed


_REDUCERS: Final[dict[str, _Reducer]] = {
    "orders": _orders,
    "portfolio": _portfolio,
    "signals": _signals,
    "state_machines": _state_machines,
    "indicators": _indicators,
    "alerts": _alerts,
    "market": _market,
}


def _reduce(state: State, event: ReducibleEvent, draft: _Draft) -> State:
    type_ = event["type"]
    kind = EVENT_KINDS.get(type_) if isinstance(type_, str) else None
    if kind is None:
        return state
    return _REDUCERS[kind](state, type_, event["data"], draft)


def apply_event(state: State, event: ReducibleEvent) -> State:
    """Applies one event to the state of the kind its type belongs to; an unknown type changes nothing."""
    return _reduce(state, event, _Draft())


def apply_events(state: State, events: Iterable[ReducibleEvent]) -> State:
    """Applies events in order, copying each collection they touch once for the whole batch."""
    draft = _Draft()
    for event in events:
        state = _reduce(state, event, draft)
    return state
