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


def raise_if_cancelled() -> None:
    """Raises the current task's cancellation when an await below dropped it. Python 3.11's
    asyncio.wait_for returns its result when the task is cancelled in the turn that result arrives
    (CPython gh-86296, fixed in 3.12), and redis-py awaits commands through it: a stream whose client
    had gone went on polling Redis until the server stopped. A task asked to stop keeps
    cancelling() > 0 until it ends, so a loop that calls this each turn ends as asked."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def wait_or_stop(stopping: asyncio.Event, seconds: float) -> None:
    """Sleeps for `seconds`, or less when `stopping` is set meanwhile; raises a cancellation an
    earlier await dropped (raise_if_cancelled), since every loop of the server idles here."""
    raise_if_cancelled()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stopping.wait()
