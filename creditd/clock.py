"""The server's clock. Functions never read time themselves: every call gets now_ms from here, so
tests can move time by an offset instead of sleeping."""

from __future__ import annotations

import asyncio
import contextlib
import time


class Clock:
    def __init__(self, offset_ms: int = 0) -> None:
        self.offset_ms = offset_ms

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms

    def advance(self, seconds: float) -> None:
        self.offset_ms += int(seconds * 1000)


async def wait_or_stop(stopping: asyncio.Event, seconds: float) -> None:
    """Sleeps for `seconds`, or less when `stopping` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
