"""Limits on calls in flight, so that one client cannot starve the others and all of them together
cannot exhaust the server: a bound on each caller's calls in flight and on the whole server's (every
RPC through api/rpc.py), and a token bucket on each caller's Accounts calls. The caller is its
certificate name ("local" without TLS, where every caller shares one budget).

The whole server's bound is counted here rather than by grpc.aio's maximum_concurrent_rpcs, which
adds a done callback to every RPC's task (some 3 000 instructions an RPC on the echo server,
loadtest.server_instructions) where two counter steps here cost next to nothing; it refuses as that
one did, RESOURCE_EXHAUSTED, and names the setting."""

from __future__ import annotations

import time

from creditd.errors import ResourceExhausted

MAX_TRACKED_CALLERS = 100_000


class ClientLimits:
    def __init__(self, max_in_flight: int, rate_per_s: float, burst: int, max_server_in_flight: int) -> None:
        self._max_in_flight = max_in_flight
        self._max_server_in_flight = max_server_in_flight
        self._server_in_flight = 0
        self._rate_per_s = rate_per_s
        self._burst = burst
        self._in_flight: dict[str, int] = {}
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, at monotonic time)

    def enter(self, caller: str) -> None:
        """Counts a call of the caller in flight, or refuses it over either limit; leave() ends it.
        (Two plain calls rather than a context manager: this runs on every request.)"""
        if self._server_in_flight >= self._max_server_in_flight:
            raise ResourceExhausted(
                f"server: {self._max_server_in_flight} calls already in flight (limits.max_concurrent_rpcs); retry"
            )
        count = self._in_flight.get(caller, 0)
        if count >= self._max_in_flight:
            raise ResourceExhausted(f"caller: {caller} already has {self._max_in_flight} calls in flight")
        self._in_flight[caller] = count + 1
        self._server_in_flight += 1

    def leave(self, caller: str) -> None:
        self._server_in_flight -= 1
        assert self._server_in_flight >= 0, "a call left that never entered"
        remaining = self._in_flight[caller] - 1
        if remaining:
            self._in_flight[caller] = remaining
        else:
            del self._in_flight[caller]

    def take_token(self, caller: str) -> None:
        now = time.monotonic()
        tokens, at = self._buckets.get(caller, (float(self._burst), now))
        tokens = min(float(self._burst), tokens + (now - at) * self._rate_per_s)
        if tokens < 1.0:
            raise ResourceExhausted(f"caller: {caller} is over {self._rate_per_s:g} Accounts calls per second")
        if len(self._buckets) >= MAX_TRACKED_CALLERS and caller not in self._buckets:
            self._buckets.clear()  # bounded memory; forgetting full buckets only errs on the generous side
        self._buckets[caller] = (tokens - 1.0, now)
