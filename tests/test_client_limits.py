"""Per-caller limits without a server: calls in flight are bounded per caller and released when the
call ends (also by an exception), callers do not share budgets, and the token bucket refuses once the
burst is spent and refills at its rate."""

from __future__ import annotations

import time

import pytest

from creditd.api.client_limits import ClientLimits
from creditd.errors import ResourceExhausted


def test_in_flight_is_bounded_per_caller_and_released() -> None:
    limits = ClientLimits(max_in_flight=2, rate_per_s=1, burst=1)
    with limits.in_flight("pgw1"), limits.in_flight("pgw1"):
        with pytest.raises(ResourceExhausted) as refused, limits.in_flight("pgw1"):
            pass
        assert "pgw1 already has 2 calls in flight" in refused.value.message
        with limits.in_flight("pgw2"):  # another caller has its own budget
            pass
    with pytest.raises(RuntimeError), limits.in_flight("pgw1"):
        raise RuntimeError("the call failed")
    with limits.in_flight("pgw1"), limits.in_flight("pgw1"):  # both slots are free again
        pass


def test_token_bucket_refuses_past_the_burst_and_refills() -> None:
    limits = ClientLimits(max_in_flight=1, rate_per_s=50, burst=3)
    for _ in range(3):
        limits.take_token("crm")
    with pytest.raises(ResourceExhausted):
        limits.take_token("crm")
    limits.take_token("bank")  # its own bucket
    time.sleep(0.05)  # 50/s: at least two tokens back
    limits.take_token("crm")
