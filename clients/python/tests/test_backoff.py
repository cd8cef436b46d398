"""Reconnect delays and the close-code policy of the wire contract."""

from __future__ import annotations

import pytest

from tradesync import DEFAULT_BACKOFF, Backoff, close_policy


def test_delays_double_up_to_sixteen_seconds_then_stay_at_thirty() -> None:
    middle = lambda: 0.5  # noqa: E731 - no jitter at the middle of the range
    assert [DEFAULT_BACKOFF.delay(attempt, middle) for attempt in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]


@pytest.mark.parametrize("attempt", [1, 3, 6, 12])
def test_jitter_spreads_each_delay_by_a_fifth_either_way(attempt: int) -> None:
    base = DEFAULT_BACKOFF.delay(attempt, lambda: 0.5)
    assert DEFAULT_BACKOFF.delay(attempt, lambda: 0.0) == pytest.approx(base * 0.8)
    assert DEFAULT_BACKOFF.delay(attempt, lambda: 0.999999) == pytest.approx(base * 1.2, rel=1e-5)


def test_custom_delays_repeat_the_last_one() -> None:
    fast = Backoff(delays=(0.05, 0.1), jitter=0)
    assert [fast.delay(attempt) for attempt in (0, 1, 2, 3)] == [0.05, 0.05, 0.1, 0.1]


@pytest.mark.parametrize(
    ("code", "policy"),
    [
        (1000, "resume"),
        (1001, "resume"),
        (1006, "resume"),
        (1013, "resume"),
        (4000, "resume"),
        (4008, "resume"),
        (4009, "resume"),
        (4099, "resume"),
        (4001, "reauthenticate"),
        (4100, "reauthenticate"),
        (4101, "reauthenticate"),
        (4199, "reauthenticate"),
        (4200, "stop"),
        (4299, "stop"),
        (4300, "resume"),
    ],
)
def test_close_codes(code: int, policy: str) -> None:
    assert close_policy(code) == policy
