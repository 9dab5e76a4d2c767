"""One timer for all of a Diameter connection's read deadlines, instead of one a read.

A connection reads under three deadlines: the CER within handshake_timeout_s, the next message
within watchdog_interval_s (then a DWR), and the rest of a message within handshake_timeout_s of
its header. Each read under asyncio.wait_for cost a task and a timer, two a message: a tenth of the
front's CPU per CCR (loadtest.diameter). Here a read moves a float, and one timer per connection
does the waiting. It is never armed later than `period_s` from when it was armed, so a deadline set
earlier than the armed time (the rest of a message, after a watchdog's longer wait) is met at the
timer's next firing without arming it again: under steady traffic it fires once a period, finds
the deadline ahead, and is armed for the sooner of the deadline and a period on.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable


class ReadDeadline:
    def __init__(self, loop: asyncio.AbstractEventLoop, period_s: float, expired: Callable[[], None]) -> None:
        assert period_s > 0, "a deadline is checked at least once a period"
        self._loop, self._period_s, self._expired = loop, period_s, expired
        self.deadline_at = math.inf
        self._timer: asyncio.TimerHandle | None = None
        self._armed_at = math.inf

    def set(self, deadline_at: float) -> None:
        """Watches deadline_at (loop time) in place of the deadline watched until now."""
        self.deadline_at = deadline_at
        if deadline_at < self._armed_at:
            self._arm(self._loop.time())

    def clear(self) -> None:
        """Nothing to watch: the timer, if armed, fires once more and is left unarmed."""
        self.deadline_at = math.inf

    def stop(self) -> None:
        self.deadline_at = math.inf
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._armed_at = None, math.inf

    @property
    def armed_at(self) -> float:
        """When the timer fires next (loop time), inf when it is not armed."""
        return self._armed_at

    def _arm(self, now: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed_at = min(self.deadline_at, now + self._period_s)
        self._timer = self._loop.call_at(self._armed_at, self._fire)

    def _fire(self) -> None:
        self._timer, self._armed_at = None, math.inf
        if self.deadline_at == math.inf:
            return
        now = self._loop.time()
        # uvloop keeps time in milliseconds: a timer may fire a fraction of one before its time
        if now < self.deadline_at:
            self._arm(now)
            return
        self.deadline_at = math.inf
        self._expired()  # may set the next deadline (a watchdog's DWR), which arms the timer again
