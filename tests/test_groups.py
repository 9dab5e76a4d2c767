"""Shared wallets (lua/lib/group.lua, core/groups.py, the sweeper's refills) on a real server and its
sweeper, on a frozen clock, over gRPC: a group is topped up once per key; its members get refills
when their available money falls below the group's refill amount, within their caps per billing
cycle, and spend their own money first; a member whose cap is spent gets nothing more until the next
cycle; a member leaving gives back what it holds of the group's money that no session reserves; a
transfer left half done (opened at the group, never applied at the member) is completed by the
sweeper exactly once (the auditor counting it in flight meanwhile, and finding a group balance that
is not its ledger's sum); bad input names its field and changes nothing; and 200 concurrent sessions
of four members, with the sweeper refilling them meanwhile, never take a group below zero nor a
member past its cap, and money is conserved (members, group and what usage charged); a plan may have
the group's money spent first, and a member need have no cap (0). `creditd account show` names a
member's group. The auditor runs after every test."""

from __future__ import annotations

import asyncio
import random

import grpc
import msgspec
import pytest

from creditd.cli.render import account_card
from creditd.config.settings import Settings
from creditd.store.calls import GroupTransferSpec
from creditd.v1 import creditd_pb2 as pb
from tests.harness import INITIAL, TERMINATE, VOICE, Harness, ServerAt, dump
from tests.test_rating import utc_ms

pytestmark = pytest.mark.asyncio
NOON_BANGKOK = "2027-03-10T05:00:00"
GROUP = "family-1"
MEMBERS = [f"6681818000{n}" for n in range(4)]


async def make_group(creditd: Harness, balance: int, refill: int = 2_000) -> pb.Group:
    await creditd.accounts.CreateGroup(pb.CreateGroupRequest(group_id=GROUP, currency="THB", refill_amount=refill))
    answer = await creditd.accounts.TopUpGroup(
        pb.TopUpGroupRequest(group_id=GROUP, amount=balance, channel="bank", idempotency_key="g1")
    )
    return answer.group


async def join(creditd: Harness, account_id: str, cap: int) -> pb.Group:
    return await creditd.accounts.SetGroupMember(
        pb.SetGroupMemberRequest(group_id=GROUP, account_id=account_id, cap=cap)
    )


async def group_of(creditd: Harness) -> pb.Group:
    return await creditd.accounts.GetGroup(pb.GetGroupRequest(group_id=GROUP))


def allocated(group: pb.Group) -> dict[str, int]:
    return {m.account_id: m.allocated_this_cycle for m in group.members}


async def call(creditd: Harness, account_id: str, session_id: str, seconds: int) -> None:
    await creditd.charge(session_id, INITIAL, 0, account_id, [(VOICE, 0, 0)])
    await creditd.charge(session_id, TERMINATE, 1, account_id, [(VOICE, 0, seconds)])


async def test_members_are_refilled_within_their_caps_and_give_back_on_leaving(server_at: ServerAt) -> None:
    first, second = MEMBERS[:2]
    async with server_at(utc_ms(NOON_BANGKOK)) as creditd:
        await creditd.create_account(first, balance=1_000)
        await creditd.create_account(second, balance=200)
        await make_group(creditd, 10_000)
        again = await creditd.accounts.TopUpGroup(
            pb.TopUpGroupRequest(group_id=GROUP, amount=10_000, channel="bank", idempotency_key="g1")
        )
        assert again.replayed and again.group.balance == 10_000
        await join(creditd, first, 3_000)
        await join(creditd, second, 1_000)

        await creditd.server.sweeper.sweep_once()  # both below the refill amount of 2 000
        cards = {a: await creditd.get(a) for a in (first, second)}
        assert (cards[first].balance, cards[first].group_holding, cards[first].group_id) == (3_000, 2_000, GROUP)
        assert (cards[second].balance, cards[second].group_holding) == (1_200, 1_000)  # its cap: 1 000
        assert f"group        {GROUP}: 2000 of the balance is the group's (spent last)" in account_card(cards[first])
        assert (await group_of(creditd)).balance == 7_000

        await call(creditd, first, "c1", 1_200)  # 20 minutes: 2 000, own money (1 000) first
        card = await creditd.get(first)
        assert (card.balance, card.group_holding) == (1_000, 1_000)
        await creditd.server.sweeper.sweep_once()  # 1 000 of its cap left
        card = await creditd.get(first)
        assert (card.balance, card.group_holding) == (2_000, 2_000)
        await call(creditd, first, "c2", 900)  # 1 500
        await creditd.server.sweeper.sweep_once()  # its cap is spent: nothing
        group = await group_of(creditd)
        assert (group.balance, allocated(group)) == (6_000, {first: 3_000, second: 1_000})
        assert (await creditd.get(first)).balance == 500

        creditd.clock.advance(32 * 86_400)  # 11 April: a new billing cycle (the group's starts on the 10th)
        await creditd.server.sweeper.sweep_once()  # both below the refill amount again, both caps new
        assert (await creditd.get(first)).balance == 2_500
        assert allocated(await group_of(creditd)) == {first: 2_000, second: 1_000}

        left = await creditd.accounts.RemoveGroupMember(pb.RemoveGroupMemberRequest(group_id=GROUP, account_id=second))
        assert (left.balance, [m.account_id for m in left.members]) == (5_000, [first])
        card = await creditd.get(second)
        assert (card.balance, card.group_id, card.group_holding) == (200, "", 0)
        kinds = [(e.kind, e.amount) for e in reversed(await creditd.ledger(second))]
        # refilled once in each cycle (1 000, its cap), all of it given back on leaving
        assert kinds[-3:] == [("group_transfer", 1_000), ("group_transfer", 1_000), ("group_return", -2_000)]


async def test_a_transfer_left_half_done_is_completed_once(server_at: ServerAt) -> None:
    member = MEMBERS[0]
    async with server_at(utc_ms(NOON_BANGKOK)) as creditd:
        await creditd.create_account(member, balance=5_000)
        await make_group(creditd, 10_000)
        await join(creditd, member, 5_000)
        calls, functions = creditd.server_calls(), creditd.server.functions
        spec = GroupTransferSpec(GROUP, member, "gt-crashed", 1, 1_500)
        await functions.call(calls.open_group_transfer(spec, creditd.clock.now_ms(), "test"))  # then a crash
        group = await group_of(creditd)
        assert group.balance == 8_500 and [t.transfer_id for t in group.pending_transfers] == ["gt-crashed"]
        assert creditd.audit().violations == []  # 1 500 in flight: left the group, not at the member yet
        group_key = creditd.server_keys().layout(("group",), GROUP)[0]
        creditd.redis.hset(group_key, "balance", "9000")
        assert creditd.audit().violations == [
            f"group {GROUP}: balance 9000 but the ledger sums to 8500",
        ]
        creditd.redis.hset(group_key, "balance", "8500")
        await creditd.server.sweeper.sweep_once()  # too fresh to complete
        assert (await creditd.get(member)).balance == 5_000
        creditd.clock.advance(creditd.settings.limits.group_transfer_completion_s + 1)
        for _ in range(2):
            await creditd.server.sweeper.sweep_once()
        card, group = await creditd.get(member), await group_of(creditd)
        assert (card.balance, card.group_holding, group.balance, list(group.pending_transfers)) == (
            6_500,
            1_500,
            8_500,
            [],
        )


async def test_bad_group_input_names_the_field_and_changes_nothing(server_at: ServerAt) -> None:
    async with server_at(utc_ms(NOON_BANGKOK)) as creditd:
        await creditd.create_account(MEMBERS[0], balance=100)
        await creditd.create_account("66818180099", balance=100)
        await make_group(creditd, 1_000)
        other = pb.CreateGroupRequest(group_id="other", currency="THB", refill_amount=100)
        await creditd.accounts.CreateGroup(other)
        await join(creditd, "66818180099", 100)
        before = dump(creditd.redis)
        cases = [
            (
                creditd.accounts.CreateGroup(pb.CreateGroupRequest(group_id="a b", currency="THB", refill_amount=1)),
                grpc.StatusCode.INVALID_ARGUMENT,
                "group_id",
            ),
            (
                creditd.accounts.CreateGroup(pb.CreateGroupRequest(group_id="g", currency="thb", refill_amount=1)),
                grpc.StatusCode.INVALID_ARGUMENT,
                "currency",
            ),
            (
                creditd.accounts.CreateGroup(pb.CreateGroupRequest(group_id=GROUP, currency="THB", refill_amount=7)),
                grpc.StatusCode.INVALID_ARGUMENT,
                "group_id: the group exists with another currency or refill_minor",
            ),
            (
                creditd.accounts.TopUpGroup(
                    pb.TopUpGroupRequest(group_id=GROUP, amount=0, channel="b", idempotency_key="k")
                ),
                grpc.StatusCode.INVALID_ARGUMENT,
                "amount",
            ),
            (
                creditd.accounts.TopUpGroup(
                    pb.TopUpGroupRequest(group_id=GROUP, amount=5, channel="b", idempotency_key="g1")
                ),
                grpc.StatusCode.INVALID_ARGUMENT,
                "idempotency_key: already used with a different payload",
            ),
            (
                creditd.accounts.SetGroupMember(pb.SetGroupMemberRequest(group_id=GROUP, account_id="x", cap=-1)),
                grpc.StatusCode.INVALID_ARGUMENT,
                "cap",
            ),
            (
                creditd.accounts.SetGroupMember(
                    pb.SetGroupMemberRequest(group_id="nope", account_id=MEMBERS[0], cap=5)
                ),
                grpc.StatusCode.NOT_FOUND,
                "group_id: unknown group",
            ),
            (
                creditd.accounts.SetGroupMember(
                    pb.SetGroupMemberRequest(group_id="other", account_id="66818180099", cap=5)
                ),
                grpc.StatusCode.FAILED_PRECONDITION,
                f"account_id: a member of group {GROUP}",
            ),
            (
                creditd.accounts.RemoveGroupMember(pb.RemoveGroupMemberRequest(group_id=GROUP, account_id=MEMBERS[0])),
                grpc.StatusCode.NOT_FOUND,
                "account_id: not a member of the group",
            ),
            (creditd.accounts.GetGroup(pb.GetGroupRequest(group_id="")), grpc.StatusCode.INVALID_ARGUMENT, "group_id"),
        ]
        for pending, code, message in cases:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await pending
            assert refused.value.code() == code and message in (refused.value.details() or ""), refused.value
        assert dump(creditd.redis) == before


async def test_concurrent_members_never_overdraw_the_group_or_their_caps(server_at: ServerAt) -> None:
    caps = {member: 3_000 for member in MEMBERS}
    async with server_at(utc_ms(NOON_BANGKOK)) as creditd:
        for member in MEMBERS:
            await creditd.create_account(member, balance=500)
        await make_group(creditd, 10_000, refill=1_000)
        for member, cap in caps.items():
            await join(creditd, member, cap)
        rng = random.Random(7)
        stopping = asyncio.Event()

        async def refills() -> None:
            while not stopping.is_set():
                await creditd.server.sweeper.sweep_once()
                creditd.clock.advance(creditd.settings.limits.group_refill_retry_s)
                await asyncio.sleep(0.01)

        async def session(n: int) -> None:
            member = MEMBERS[n % len(MEMBERS)]
            for round_ in range(3):
                await call(creditd, member, f"s{n}-{round_}", rng.randrange(30, 400))

        refilling = asyncio.create_task(refills())
        await asyncio.gather(*(session(n) for n in range(200)))
        stopping.set()
        await refilling
        for round_ in range(20):  # then spend on until the group's money is all handed out
            group = await group_of(creditd)
            if group.balance == 0:
                break
            await creditd.server.sweeper.sweep_once()
            creditd.clock.advance(creditd.settings.limits.group_refill_retry_s)
            await asyncio.gather(*(call(creditd, m, f"drain-{round_}-{m}", 600) for m in MEMBERS))
        group = await group_of(creditd)
        cards = [await creditd.get(member) for member in MEMBERS]
        assert group.balance >= 0 and all(allocated(group)[m] <= caps[m] for m in MEMBERS)
        assert group.balance == 10_000 - sum(allocated(group).values())
        charged = 0
        for member in MEMBERS:
            charged -= sum(e.amount for e in await creditd.ledger(member, 1000) if e.kind == "charge")
        assert sum(c.balance for c in cards) + group.balance + charged == 4 * 500 + 10_000
        assert all(c.reserved == 0 for c in cards)
        assert group.balance == 0  # refills handed out all of it, none past a cap (caps sum to 12 000)


async def test_a_plan_may_spend_the_groups_money_first_and_a_member_need_have_no_cap(
    server_at: ServerAt, settings: Settings
) -> None:
    plan = msgspec.structs.replace(settings.plans["standard"], group_money_first=True)
    group_first = msgspec.structs.replace(settings, plans={**settings.plans, "standard": plan})
    member = MEMBERS[0]
    async with server_at(utc_ms(NOON_BANGKOK), loaded=group_first) as creditd:
        await creditd.create_account(member, balance=5_000)
        await make_group(creditd, 10_000, refill=1_000)
        await join(creditd, member, 0)  # no cap
        await creditd.server.sweeper.sweep_once()  # it holds none of the group's money: a refill
        card = await creditd.get(member)
        assert (card.balance, card.group_holding) == (6_000, 1_000)
        await call(creditd, member, "c1", 360)  # 600, from the group's money first
        card = await creditd.get(member)
        assert (card.balance, card.group_holding) == (5_400, 400)
        for _ in range(3):  # refilled while it holds less than 1 000, with no cap to stop it
            await creditd.server.sweeper.sweep_once()
            await call(creditd, member, f"c{_ + 2}", 600)  # 1 000
            creditd.clock.advance(creditd.settings.limits.group_refill_retry_s)
        group = await group_of(creditd)
        assert (group.balance, allocated(group)) == (6_000, {member: 4_000})
        card = await creditd.get(member)
        assert (card.balance, card.group_holding) == (5_400 + 3_000 - 3_000, 400)
