"""The one timer of the pipelines out on the lean connection (store/deadlines.py), on a real uvloop
loop with real futures: a pipeline expires at its own deadline, not at that of the earlier pipeline
the timer was armed for; pipelines answered in time never expire, in or out of order; several past
their deadlines at one firing all expire, oldest first; and with nothing out the timer stays unarmed
(an idle server is not woken), to be armed again by the next pipeline."""

from __future__ import annotations

import asyncio
from typing import Any

import uvloop

from creditd.store.deadlines import Deadlines, OutPipeline


def pipeline_due(loop: asyncio.AbstractEventLoop, deadline_at: float, name: str) -> OutPipeline:
    replies: asyncio.Future[list[Any]] = loop.create_future()
    replies.set_result([name])  # what close() would wait for; its value names the pipeline here
    out = OutPipeline([], deadline_at, 0.0)
    out.replies = replies
    return out


def name_of(out: OutPipeline) -> str:
    name: str = out.replies.result()[0]
    return name


async def expiries(script: Any) -> list[tuple[str, float]]:
    loop = asyncio.get_running_loop()
    expired: list[tuple[str, float]] = []
    deadlines = Deadlines(loop, lambda out: expired.append((name_of(out), round(loop.time() - out.deadline_at, 3))))
    await script(loop, deadlines)
    deadlines.stop()
    return expired


def test_a_pipeline_expires_at_its_own_deadline_after_an_earlier_one_was_answered() -> None:
    async def script(loop: asyncio.AbstractEventLoop, deadlines: Deadlines) -> None:
        now = loop.time()
        first, second = pipeline_due(loop, now + 0.05, "first"), pipeline_due(loop, now + 0.15, "second")
        deadlines.add(first)  # arms the timer for 50 ms
        deadlines.add(second)
        deadlines.remove(first)  # answered in time
        await asyncio.sleep(0.1)  # the timer has fired, found nothing due, and waits for the second
        assert deadlines.replies() == [second.replies]
        await asyncio.sleep(0.1)
        assert deadlines.replies() == []

    expired = uvloop.run(expiries(script))
    assert [name for name, _ in expired] == ["second"]
    assert 0 <= expired[0][1] < 0.05  # not before its deadline (the loop's clock), nor long after


def test_pipelines_answered_in_time_never_expire_in_or_out_of_order() -> None:
    async def script(loop: asyncio.AbstractEventLoop, deadlines: Deadlines) -> None:
        now = loop.time()
        outs = [pipeline_due(loop, now + 0.03 * (n + 1), f"p{n}") for n in range(3)]
        for out in outs:
            deadlines.add(out)
        deadlines.remove(outs[1])  # out of order: a failed connection answers its batches alike
        deadlines.remove(outs[0])
        deadlines.remove(outs[2])
        deadlines.remove(outs[2])  # again: already gone, as one expired would be
        await asyncio.sleep(0.15)

    assert uvloop.run(expiries(script)) == []


def test_every_pipeline_past_its_deadline_expires_at_one_firing_oldest_first() -> None:
    async def script(loop: asyncio.AbstractEventLoop, deadlines: Deadlines) -> None:
        now = loop.time()
        for n in range(3):
            deadlines.add(pipeline_due(loop, now + 0.02, f"p{n}"))
        deadlines.add(pipeline_due(loop, now + 0.2, "late"))
        time_blocked = loop.time() + 0.05
        while loop.time() < time_blocked:  # the loop is busy past the first three deadlines
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)
        assert len(deadlines.replies()) == 1  # the late one only

    expired = uvloop.run(expiries(script))
    assert [name for name, _ in expired] == ["p0", "p1", "p2"]


def test_with_nothing_out_the_timer_stays_unarmed_until_the_next_pipeline() -> None:
    async def script(loop: asyncio.AbstractEventLoop, deadlines: Deadlines) -> None:
        answered = pipeline_due(loop, loop.time() + 0.02, "answered")
        deadlines.add(answered)
        assert deadlines.armed
        deadlines.remove(answered)
        assert deadlines.armed  # left where it was: it fires at the answered one's deadline...
        await asyncio.sleep(0.05)
        assert not deadlines.armed  # ...finds nothing out, and is not armed again
        deadlines.add(pipeline_due(loop, loop.time() + 0.02, "next"))
        assert deadlines.armed
        await asyncio.sleep(0.05)
        assert not deadlines.armed  # the next expired, nothing is left

    assert [name for name, _ in uvloop.run(expiries(script))] == ["next"]
