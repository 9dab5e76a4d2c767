"""What a line may still use in each state, and at what price: one table of expected results for every
account state (ACTIVE with money, ACTIVE in debt within its credit limit, ONE_WAY_SUSPENDED and
TWO_WAY_SUSPENDED in debt) x what is asked for (data, voice out, voice in, SMS, voice in paid by bonus
money, voice out paid by a shared wallet's money) x the tariff's price (priced, free) x the request type
(INITIAL, UPDATE, TERMINATE, EVENT), checked cell by cell against a real server over gRPC.

Each cell gets an account of its own: funded (the bonus cell by a top-up that grants bonus money, the
group cell by its group's refill), with a session opened while it was funded for UPDATE and TERMINATE,
then moved to its state by an operator's debit (and, for two-way, an operator's suspension), then the
cell's request. The rule the table encodes is docs/design.md's "What a line in debt may use": the
status decides what is served at all (one-way: terminating and always-allowed tariffs; two-way:
nothing); what is served is paid from buckets, free tariffs, bonus money, then main available money;
commits (used units) are always charged. No cell may answer anything but a result of the contract
(an INTERNAL fails the test), a commit charges exactly one block at the tariff's price, and the
auditor finds every invariant holding afterwards."""

from __future__ import annotations

import itertools

import grpc
import msgspec
import pytest

from creditd.config.plans import TopupBonus
from creditd.config.settings import Settings
from creditd.store.connection import AnySyncRedis
from creditd.store.embedded import EmbeddedRedis
from creditd.v1 import creditd_pb2 as pb
from tests.harness import (
    DATA,
    EVENT,
    INITIAL,
    MB,
    SMS,
    TERMINATE,
    THAI_NUMBER,
    UPDATE,
    VOICE,
    VOICE_IN,
    Harness,
    started_server,
)

pytestmark = pytest.mark.asyncio

S, C, D = pb.SUCCESS, pb.CREDIT_LIMIT_REACHED, pb.END_USER_SERVICE_DENIED
LETTERS = {"S": S, "C": C, "D": D}
REQUEST_TYPES = (INITIAL, UPDATE, TERMINATE, EVENT)
STATES = ("active", "credit", "one_way", "two_way")

# Results for INITIAL, UPDATE, TERMINATE, EVENT, in each state:
#   active   ACTIVE, 100.00 of its own         credit   ACTIVE, -50.00 within a 300.00 credit limit
#   one_way  ONE_WAY_SUSPENDED at -54.00       two_way  TWO_WAY_SUSPENDED at -54.00
# S SUCCESS, C CREDIT_LIMIT_REACHED, D END_USER_SERVICE_DENIED.
EXPECTED = [
    # kind       price     active  credit  one_way two_way
    ("data", "priced", "SSSS", "SSSS", "DDSD", "DDSD"),
    ("data", "free", "SSSS", "SSSS", "DDSD", "DDSD"),
    ("voice_out", "priced", "SSSS", "SSSS", "DDSD", "DDSD"),
    ("voice_out", "free", "SSSS", "SSSS", "DDSD", "DDSD"),
    ("voice_in", "priced", "SSSS", "SSSS", "CCSC", "DDSD"),
    ("voice_in", "free", "SSSS", "SSSS", "SSSS", "DDSD"),
    ("sms", "priced", "SSSS", "SSSS", "DDSD", "DDSD"),
    ("sms", "free", "SSSS", "SSSS", "DDSD", "DDSD"),
    # an EVENT is all or nothing: an hour (60.00) is more than the 10.00 of bonus money
    ("bonus", "priced", "SSSS", "SSSS", "SSSC", "DDSD"),
    ("bonus", "free", "SSSS", "SSSS", "SSSS", "DDSD"),
    ("group", "priced", "SSSS", "SSSS", "DDSD", "DDSD"),
    ("group", "free", "SSSS", "SSSS", "DDSD", "DDSD"),
]

# kind -> (rating group, called party, one block of used units, the priced plan's price of that block)
KINDS = {
    "data": (DATA, "", MB, 10),
    "voice_out": (VOICE, THAI_NUMBER, 60, 100),
    "voice_in": (VOICE_IN, "", 60, 100),
    "sms": (SMS, THAI_NUMBER, 1, 50),
    "bonus": (VOICE_IN, "", 60, 100),
    "group": (VOICE, THAI_NUMBER, 60, 100),
}
FUNDED, DEBT, CREDIT_LIMIT, CREDIT_BALANCE = 10_000, -5_400, 30_000, -5_000
BONUS_TOP_UP, BONUS_RULE = 2_000, TopupBonus(min_amount_minor=1_000, bonus_percent=50, validity_s=5 * 86_400)
GROUP_FUNDS = 50_000


def table_settings(settings: Settings) -> Settings:
    """The sample plan as `priced` (incoming calls at home cost 1.00 a minute) and `free` (every tariff
    0), both granting bonus money on top-ups and spending a shared wallet's money first."""
    standard = settings.plans["standard"]
    extras = {"topup_bonuses": [BONUS_RULE], "group_money_first": True}
    priced = msgspec.structs.replace(
        standard,
        tariffs=[msgspec.structs.replace(t, price_minor=100) if t.name == "voice_in" else t for t in standard.tariffs],
        **extras,
    )
    free = msgspec.structs.replace(
        standard, tariffs=[msgspec.structs.replace(t, price_minor=0) for t in standard.tariffs], **extras
    )
    return msgspec.structs.replace(settings, plans={**settings.plans, "priced": priced, "free": free})


class Cell:
    """One account driven to one state, and the request of one cell."""

    numbers = itertools.count()

    def __init__(self, creditd: Harness, kind: str, price: str, state: str, request_type: int) -> None:
        self.creditd, self.kind, self.price, self.state, self.request_type = creditd, kind, price, state, request_type
        self.account_id = f"6683{next(self.numbers):07d}"
        self.rating_group, self.called_party, self.block, _ = KINDS[kind]
        self.session_id = f"s-{self.account_id}"

    def units(self, used: int) -> list[tuple[int, int, int]]:
        return [(self.rating_group, 0, used)]

    async def charge(self, kind: int, number: int, used: int) -> pb.ChargeAnswer:
        return await self.creditd.charge(
            self.session_id, kind, number, self.account_id, self.units(used), called_party=self.called_party
        )

    async def fund(self) -> None:
        accounts = self.creditd.accounts
        plan = self.price
        if self.kind != "group":
            await accounts.CreateAccount(
                pb.CreateAccountRequest(account_id=self.account_id, plan=plan, initial_balance=FUNDED)
            )
            if self.kind == "bonus":
                await self.creditd.top_up(self.account_id, BONUS_TOP_UP, f"bonus-{self.account_id}")
            return
        await accounts.CreateAccount(pb.CreateAccountRequest(account_id=self.account_id, plan=plan))
        group_id = f"g{self.account_id}"
        await accounts.CreateGroup(pb.CreateGroupRequest(group_id=group_id, currency="THB", refill_amount=FUNDED))
        await accounts.TopUpGroup(
            pb.TopUpGroupRequest(group_id=group_id, amount=GROUP_FUNDS, channel="bank", idempotency_key="g")
        )
        await accounts.SetGroupMember(pb.SetGroupMemberRequest(group_id=group_id, account_id=self.account_id))

    async def enter_state(self) -> None:
        if self.state == "active":
            return
        accounts = self.creditd.accounts
        target = CREDIT_BALANCE if self.state == "credit" else DEBT
        if self.state == "credit":
            await accounts.SetCreditLimit(
                pb.SetCreditLimitRequest(account_id=self.account_id, credit_limit=CREDIT_LIMIT)
            )
        balance = (await self.creditd.get(self.account_id)).balance
        await accounts.Adjust(
            pb.AdjustRequest(
                account_id=self.account_id, amount=target - balance, reason="table", idempotency_key="debt"
            )
        )
        if self.state == "two_way":
            await accounts.SetStatus(
                pb.SetStatusRequest(account_id=self.account_id, status=pb.TWO_WAY_SUSPENDED, reason="ADMIN")
            )

    async def run(self) -> pb.ChargeAnswer:
        if self.request_type in (UPDATE, TERMINATE):
            opened = await self.charge(INITIAL, 0, 0)
            assert opened.result == S, (self.kind, self.price, opened)
        await self.enter_state()
        expected_status = {"active": pb.ACTIVE, "credit": pb.ACTIVE, "one_way": pb.ONE_WAY_SUSPENDED}
        status = (await self.creditd.get(self.account_id)).status
        assert status == expected_status.get(self.state, pb.TWO_WAY_SUSPENDED), (self.kind, self.state, status)
        used = self.block if self.request_type in (UPDATE, TERMINATE) else 0
        number = 1 if self.request_type in (UPDATE, TERMINATE) else 0
        return await self.charge(self.request_type, number, used)


async def test_every_state_unit_and_price_gets_the_tabled_result(
    redis_server: EmbeddedRedis, redis_client: AnySyncRedis, settings: Settings
) -> None:
    async with started_server(table_settings(settings), redis_server.url, redis_client) as creditd:
        cells: list[tuple[Cell, int]] = []
        for kind, price, *columns in EXPECTED:
            for state, results in zip(STATES, columns, strict=True):
                for request_type, letter in zip(REQUEST_TYPES, results, strict=True):
                    cells.append((Cell(creditd, kind, price, state, request_type), LETTERS[letter]))
        for cell, _ in cells:
            await cell.fund()
        await creditd.server.sweeper.sweep_once()  # the group cells' only money: their group's refill
        mismatches = []
        for cell, expected in cells:
            try:
                answer = await cell.run()
            except grpc.aio.AioRpcError as error:  # INTERNAL and the like: never an answer of the contract
                name = pb.ChargeRequest.RequestType.Name(cell.request_type)
                mismatches.append((cell.kind, cell.price, cell.state, name, error.code().name))
                continue
            seen = (answer.result, [g.charged for g in answer.grants])
            cost = KINDS[cell.kind][3] if cell.price == "priced" else 0
            expected_charged = [cost] if cell.request_type in (UPDATE, TERMINATE) else None
            charged_ok = expected_charged is None or seen[1] == expected_charged
            if answer.result != expected or not charged_ok:
                mismatches.append(
                    (cell.kind, cell.price, cell.state, pb.ChargeRequest.RequestType.Name(cell.request_type), seen)
                )
        assert mismatches == [], mismatches
        creditd.assert_audit_clean()
