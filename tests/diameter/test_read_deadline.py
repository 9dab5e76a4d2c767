"""diameter/read_deadline.py on a real event loop: a deadline expires once, when it passes and not
before; moved later, it waits for the new time; set earlier than the timer's, it is still met on
time; cleared or stopped, nothing expires and the timer goes unarmed. Under steady traffic (a
deadline moved forward at every message) the timer is not armed again at each move: it fires once
a period at most."""

from __future__ import annotations

import asyncio
import math

import pytest

from creditd.diameter.read_deadline import ReadDeadline

pytestmark = pytest.mark.asyncio


class Expiries:
    def __init__(self) -> None:
        self.at: list[float] = []

    def __call__(self) -> None:
        self.at.append(asyncio.get_running_loop().time())


def watch(period_s: float) -> tuple[ReadDeadline, Expiries, asyncio.AbstractEventLoop]:
    loop = asyncio.get_running_loop()
    expiries = Expiries()
    return ReadDeadline(loop, period_s, expiries), expiries, loop


async def test_a_deadline_expires_once_when_it_passes() -> None:
    deadline, expiries, loop = watch(period_s=1.0)
    due = loop.time() + 0.05
    deadline.set(due)
    await asyncio.sleep(0.2)
    assert len(expiries.at) == 1 and expiries.at[0] >= due
    assert deadline.armed_at == math.inf and deadline.deadline_at == math.inf


async def test_a_deadline_moved_later_waits_for_its_new_time() -> None:
    deadline, expiries, loop = watch(period_s=1.0)
    deadline.set(loop.time() + 0.05)
    later = loop.time() + 1.0
    deadline.set(later)
    await asyncio.sleep(0.3)
    assert expiries.at == []  # the first time passed: nothing is due then
    await asyncio.sleep(1.0)
    assert len(expiries.at) == 1 and expiries.at[0] >= later


async def test_a_deadline_set_earlier_than_the_timer_is_met_on_time() -> None:
    deadline, expiries, loop = watch(period_s=5.0)
    first = loop.time() + 3.0
    deadline.set(first)
    due = loop.time() + 0.05
    deadline.set(due)
    assert deadline.armed_at == due  # armed again: the timer's time was later
    await asyncio.sleep(0.3)
    assert len(expiries.at) == 1 and due <= expiries.at[0] < first


async def test_cleared_or_stopped_nothing_expires() -> None:
    deadline, expiries, loop = watch(period_s=0.05)
    deadline.set(loop.time() + 0.03)
    deadline.clear()
    await asyncio.sleep(0.15)
    assert expiries.at == [] and deadline.armed_at == math.inf  # fired once, found nothing, unarmed
    deadline.set(loop.time() + 0.03)
    deadline.stop()
    await asyncio.sleep(0.1)
    assert expiries.at == [] and deadline.armed_at == math.inf


async def test_an_expiry_may_set_the_next_deadline() -> None:
    loop = asyncio.get_running_loop()
    expiries: list[float] = []

    def again() -> None:
        expiries.append(loop.time())
        if len(expiries) < 3:
            deadline.set(loop.time() + 0.03)

    deadline = ReadDeadline(loop, 1.0, again)
    deadline.set(loop.time() + 0.03)
    await asyncio.sleep(0.4)
    assert len(expiries) == 3 and deadline.armed_at == math.inf


async def test_steady_traffic_does_not_arm_the_timer_at_each_message() -> None:
    """A message every 10 ms moves the deadline (the next message's, then the rest of it): the
    timer is armed for a period and armed again only when it fires."""
    deadline, expiries, loop = watch(period_s=0.5)
    started = loop.time()
    armed_times, messages = set(), 0
    while loop.time() - started < 1.0:
        deadline.set(loop.time() + 1.0)  # waiting for the next message
        armed_times.add(deadline.armed_at)
        deadline.set(loop.time() + 0.5)  # inside a message
        armed_times.add(deadline.armed_at)
        messages += 1
        await asyncio.sleep(0.01)
    assert expiries.at == []
    assert messages > 20 and len(armed_times) <= 3  # one per period (1 s / 0.5) and the first
