"""A circuit breaker in front of Redis, so that requests fail fast while Redis does not answer.

A frozen process, a path that drops packets without a reset, a long-running script: Redis stops
answering without closing anything, and every request would queue behind the stalled pipelines until
the gateway's own timer runs out. Instead, a call without an answer within redis.call_timeout_s trips
the circuit open; while it is open, calls are refused at once with UNAVAILABLE (safe to retry: every
function is idempotent). The health check is the probe: each of its rounds (PING and the library
version on every primary, itself bounded by call_timeout_s) that succeeds closes the circuit again,
so service resumes within health_check_interval_s of Redis answering.
"""

from __future__ import annotations

import logging
import time

from creditd import metrics
from creditd.errors import Unavailable

log = logging.getLogger(__name__)


class Circuit:
    def __init__(self) -> None:
        self._opened_at: float | None = None
        self._reason = ""

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def check(self) -> None:
        """Raises Unavailable while the circuit is open."""
        if self._opened_at is not None:
            raise self.refusal()

    def refusal(self) -> Unavailable:
        """The refusal of one call while the circuit is open (counted)."""
        assert self._opened_at is not None, "a refusal while the circuit is closed"
        metrics.REDIS_REFUSED.inc()
        open_s = time.monotonic() - self._opened_at
        return Unavailable(
            f"refused at once for {open_s:.1f} s: {self._reason}; until a health probe succeeds; "
            "retry (calls are idempotent)"
        )

    def trip(self, reason: str) -> None:
        """Opens the circuit, or keeps it open for a new reason (Redis gave no answer in time, or
        this server's clock is off)."""
        if reason != self._reason:
            log.error("redis circuit open: %s; requests are refused until a probe succeeds", reason)
            self._reason = reason
        if self._opened_at is None:
            self._opened_at = time.monotonic()
            metrics.REDIS_CIRCUIT_OPEN.set(1)

    def close(self) -> None:
        """Closes the circuit (a probe was answered)."""
        if self._opened_at is not None:
            log.warning("redis circuit closed after %.1f s: redis answers again", time.monotonic() - self._opened_at)
            self._opened_at, self._reason = None, ""
            metrics.REDIS_CIRCUIT_OPEN.set(0)
