"""The sweeper: a session whose gateway stops reporting has its reservation returned once its
deadline plus the grace period has passed (policy release), or debited as used (policy charge); not a
moment before. The session is then closed: later requests get UNKNOWN_SESSION, a retransmission of
its last request still gets the stored answer. Partitions are held by one sweeper at a time through
leases that run out when their owner dies. The clock is moved, never slept on (leases, which Redis
expires on its own clock, excepted)."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from creditd.config.settings import Settings
from creditd.core.sweeper import Sweeper
from creditd.store.keys import partition_lease, partition_of
from creditd.v1 import creditd_pb2 as pb
from tests.harness import DATA, INITIAL, UPDATE, VOICE, Harness, started_server

pytestmark = pytest.mark.asyncio
ACCOUNT = "66899990001"
VALIDITY_S = 600
GRACE_S = 60


async def open_session(creditd: Harness, session_id: str = "s1") -> pb.ChargeAnswer:
    answer = await creditd.charge(session_id, INITIAL, 0, ACCOUNT, [(VOICE, 0, 0), (DATA, 0, 0)])
    assert answer.result == pb.SUCCESS
    return answer


async def test_orphan_is_released_after_deadline_plus_grace_and_not_before(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=1000)
    first = await open_session(creditd)
    assert (await creditd.get(ACCOUNT)).reserved == 600
    sweeper = creditd.server.sweeper
    creditd.clock.advance(VALIDITY_S + GRACE_S - 1)
    assert (await sweeper.sweep_once()).sessions_released == 0
    creditd.clock.advance(2)
    result = await sweeper.sweep_once()
    assert (result.sessions_released, result.charged_minor, result.partitions_held) == (1, 0, 256)
    card = await creditd.get(ACCOUNT)
    assert (card.balance, card.reserved, card.open_sessions) == (1000, 0, 0)
    late = await creditd.charge("s1", UPDATE, 1, ACCOUNT, [(VOICE, 0, 30)])
    assert late.result == pb.UNKNOWN_SESSION
    replay = await creditd.charge("s1", INITIAL, 0, ACCOUNT, [(VOICE, 0, 0), (DATA, 0, 0)])
    assert replay == first
    events = creditd.redis.xrange(creditd.server_keys().events(ACCOUNT))
    assert any(fields[b"kind"] == b"orphan_released" for _, fields in events)
    report = creditd.audit(now_ms=creditd.clock.now_ms(), grace_period_s=GRACE_S)
    assert report.violations == []


async def test_a_session_that_reports_is_not_swept(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=1000)
    await open_session(creditd)
    creditd.clock.advance(VALIDITY_S - 10)
    await creditd.charge("s1", UPDATE, 1, ACCOUNT, [(VOICE, 0, 30)])  # a new deadline
    creditd.clock.advance(GRACE_S + 20)
    assert (await creditd.server.sweeper.sweep_once()).sessions_released == 0
    assert (await creditd.get(ACCOUNT)).open_sessions == 1
    creditd.assert_audit_clean()


async def test_overdue_sessions_fail_the_audit_until_swept(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=1000)
    await open_session(creditd)
    creditd.clock.advance(VALIDITY_S + GRACE_S + 1)
    overdue = creditd.audit(now_ms=creditd.clock.now_ms(), grace_period_s=GRACE_S)
    assert len(overdue.violations) == 1 and "past its deadline" in overdue.violations[0]
    await creditd.server.sweeper.sweep_once()
    assert creditd.audit(now_ms=creditd.clock.now_ms(), grace_period_s=GRACE_S).violations == []


def with_sweeper(settings: Settings, **changes: object) -> Settings:
    return msgspec.structs.replace(settings, sweeper=msgspec.structs.replace(settings.sweeper, **changes))


async def test_charge_policy_debits_the_reservation(redis_server, redis_client, settings: Settings) -> None:
    async with started_server(
        with_sweeper(settings, orphan_policy="charge"), redis_server.url, redis_client
    ) as creditd:
        await creditd.create_account(ACCOUNT, balance=1000)
        await open_session(creditd)
        creditd.clock.advance(VALIDITY_S + GRACE_S + 1)
        result = await creditd.server.sweeper.sweep_once()
        assert (result.sessions_released, result.charged_minor) == (1, 600)
        card = await creditd.get(ACCOUNT)
        assert (card.balance, card.reserved) == (400, 0)
        creditd.assert_audit_clean()


async def test_background_sweeper_releases_without_being_asked(redis_server, redis_client, settings: Settings) -> None:
    background = with_sweeper(settings, enabled=True, interval_s=0.05)
    async with started_server(background, redis_server.url, redis_client) as creditd:
        await creditd.create_account(ACCOUNT, balance=1000)
        await open_session(creditd)
        creditd.clock.advance(VALIDITY_S + GRACE_S + 1)
        for _ in range(100):
            if (await creditd.get(ACCOUNT)).reserved == 0:
                break
            await asyncio.sleep(0.05)
        assert (await creditd.get(ACCOUNT)).open_sessions == 0


async def test_one_sweeper_per_partition_and_takeover_when_a_lease_runs_out(creditd: Harness) -> None:
    """The first sweeper's lease (1 s) is long enough for the three claims before it runs out on a
    busy machine, and the second's (6 s) for the last: only the sleep lets a lease run out."""
    functions = creditd.server.functions
    short, long = (with_sweeper(creditd.settings, lease_s=lease_s).sweeper for lease_s in (1.0, 6.0))
    first = Sweeper(functions, 256, short, creditd.clock, owner="first")
    second = Sweeper(functions, 256, long, creditd.clock, owner="second")
    assert len(await first.claim()) == 256
    assert await second.claim() == []
    assert len(await first.claim()) == 256  # renewal by the holder
    await asyncio.sleep(1.2)  # "first" died: its leases run out on Redis' clock
    assert len(await second.claim()) == 256
    assert await first.claim() == []


async def test_a_pass_renews_a_lease_only_when_a_third_of_it_has_passed(creditd: Harness) -> None:
    """A pass claims a partition again only when a third of its lease has passed since the last
    claim (the lease's remaining time on Redis' clock shows whether it did), and still sweeps the
    partitions it holds in between."""
    settings = with_sweeper(creditd.settings, lease_s=6.0)
    sweeper = Sweeper(creditd.server.functions, 256, settings.sweeper, creditd.clock, owner="one")
    lease = partition_lease(7, "sweeper")
    assert (await sweeper.sweep_once()).partitions_held == 256
    await asyncio.sleep(0.3)
    assert (await sweeper.sweep_once()).partitions_held == 256
    assert creditd.redis.pttl(lease) <= 5700  # not renewed: 0.3 s of a 6 s lease went by
    await asyncio.sleep(1.8)
    assert (await sweeper.sweep_once()).partitions_held == 256
    assert creditd.redis.pttl(lease) > 5700  # renewed: over 2 s (a third) since the first claim


async def test_a_pass_takes_over_within_the_lease_and_a_third_of_it(creditd: Harness) -> None:
    # a 1 s lease: the two first passes fit well inside it on a busy machine
    settings = with_sweeper(creditd.settings, lease_s=1.0)
    functions = creditd.server.functions
    first = Sweeper(functions, 256, settings.sweeper, creditd.clock, owner="first")
    second = Sweeper(functions, 256, settings.sweeper, creditd.clock, owner="second")
    assert (await first.sweep_once()).partitions_held == 256
    assert (await second.sweep_once()).partitions_held == 0
    await asyncio.sleep(1.45)  # "first" died: its leases ran out, and a third of one since "second" asked
    assert (await second.sweep_once()).partitions_held == 256


async def test_background_passes_step_through_every_partition(redis_server, redis_client, settings: Settings) -> None:
    """A pass goes over the partitions in steps (partitions_per_step), spread over interval_s: orphans
    of accounts in many partitions are all released."""
    stepped = with_sweeper(settings, enabled=True, interval_s=0.1, partitions_per_step=8)
    accounts = [f"6689998{n:04d}" for n in range(40)]
    async with started_server(stepped, redis_server.url, redis_client) as creditd:
        assert len({partition_of(account, settings.redis.partitions) for account in accounts}) > 20
        for account in accounts:
            await creditd.create_account(account, balance=1000)
            assert (await creditd.charge(f"s-{account}", INITIAL, 0, account, [(VOICE, 0, 0)])).result == pb.SUCCESS
        creditd.clock.advance(VALIDITY_S + GRACE_S + 1)
        for _ in range(200):
            cards = [await creditd.get(account) for account in accounts]
            if all(card.open_sessions == 0 for card in cards):
                break
            await asyncio.sleep(0.05)
        assert [card.account_id for card in cards if card.open_sessions or card.reserved] == []
        creditd.assert_audit_clean()


async def test_a_step_releases_at_most_its_budget(creditd: Harness) -> None:
    accounts = [f"6689997{n:04d}" for n in range(3)]
    for account in accounts:
        await creditd.create_account(account, balance=1000)
        assert (await creditd.charge(f"s-{account}", INITIAL, 0, account, [(VOICE, 0, 0)])).result == pb.SUCCESS
    creditd.clock.advance(VALIDITY_S + GRACE_S + 1)
    assert (await creditd.server.sweeper.sweep_once(budget=1)).sessions_released == 1
    assert (await creditd.server.sweeper.sweep_once()).sessions_released == 2
