"""Property test: random sequences of top-ups (with replayed and conflicting keys), SMS and voice calls (to
Thai, international and unknown numbers, at home and roaming, some lasting across a band edge and
reporting the part after the tariff time change, some reporting half their use in an UPDATE), incoming
calls (free at home, priced roaming: what a line deep in debt and suspended one way may still receive),
sms_50 purchases, top-ups that grant bonus money (a rule of the test's own: 50 % of 10.00 or more, for 5
days, at home), half the accounts in a shared wallet of their own (refilled by the sweeper) and clock
moves (days at a time: grace periods, bundle expiry; or to a chosen Bangkok time, near the 07:00 and
22:00 band edges) on one account agree, after every step, with the in-memory reference model
(tests/reference_model.py) on balance, status, status reason, SMS left, bonus money left, the group's
money held and each call's tariff time change (after a sweeper pass); after each sequence the auditor
checks the invariants of docs/design.md. Every answer must be one of the contract: an INTERNAL (or any
gRPC error but the refusals the driver expects) fails the step. The server runs on a frozen clock (it
moves only when a step moves it) so that the model and the server see the same instant. hypothesis runs
the sequences in a worker thread; every gRPC call goes to the real server on the test's event loop. The
run must reach every state of STATES (each status, debt alone and with a suspension, an SMS bundle,
bonus money, a loan, group money, a suspended group member), or it fails naming what it never reached."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import grpc
import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from creditd.config.plans import TopupBonus
from creditd.config.settings import Settings
from creditd.store.connection import AnySyncRedis
from creditd.store.embedded import EmbeddedRedis
from creditd.v1 import creditd_pb2 as pb
from tests.harness import (
    EVENT,
    INITIAL,
    SMS,
    TERMINATE,
    UPDATE,
    VOICE,
    VOICE_IN,
    FrozenClock,
    Harness,
    charge_request,
    daytime_clock,
    started_server,
)
from tests.reference_model import (
    ACTIVE,
    BANGKOK_OFFSET_MS,
    BONUS_MIN_TOP_UP,
    BONUS_PERCENT,
    BONUS_VALIDITY_MS,
    GROUP_BALANCE,
    GROUP_CAP,
    GROUP_REFILL,
    ONE_WAY,
    TERMINATED,
    TWO_WAY,
    GroupShare,
    Model,
    used_after_change,
)

pytestmark = pytest.mark.asyncio
EXAMPLES = 200
BONUS_RULE = TopupBonus(
    min_amount_minor=BONUS_MIN_TOP_UP, bonus_percent=BONUS_PERCENT, validity_s=BONUS_VALIDITY_MS // 1000
)

NUMBERS = {"thai": "66812345678", "international": "442079460000", "unknown": "0123456"}
PLMNS = {"home": "52001", "roaming": "23415"}
destinations, zones = st.sampled_from(sorted(NUMBERS)), st.sampled_from(["home", "home", "roaming"])
# Local minutes of the day, often just before a band edge.
band_minutes = st.one_of(st.integers(0, 1439), st.integers(22 * 60 - 8, 22 * 60), st.integers(7 * 60 - 8, 7 * 60))
operations = st.lists(
    st.one_of(
        st.tuples(st.just("top_up"), st.integers(1, 3_000), st.sampled_from(["k1", "k2", "k3"])),
        st.tuples(st.just("sms"), st.integers(1, 3), destinations, zones),
        st.tuples(st.just("call"), st.integers(0, 400), destinations, zones, st.booleans(), st.booleans()),
        st.tuples(st.just("receive"), st.integers(0, 400), zones),
        st.tuples(st.just("buy"), st.just(0)),
        st.tuples(st.just("borrow"), st.just(0), st.sampled_from(["l1", "l2"])),
        st.tuples(st.just("advance"), st.integers(1, 12 * 86_400)),
        # Whole days, around and past both grace periods (7, then 30): hypothesis draws small integers
        # far more often than large ones, so seconds alone almost never add up to a week.
        st.tuples(st.just("advance"), st.sampled_from([1, 6, 7, 8, 29, 31, 38]).map(lambda days: days * 86_400)),
        st.tuples(st.just("until"), band_minutes),
    ),
    min_size=1,
    max_size=10,
)


class Driver:
    """Runs one sequence against the server (from the hypothesis thread) and the model."""

    def __init__(self, creditd: Harness, loop: asyncio.AbstractEventLoop, account_id: str) -> None:
        self.creditd, self.loop, self.account_id = creditd, loop, account_id
        self.sessions = itertools.count()

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def top_up(self, amount: int, key: str) -> tuple[str, int]:
        """The outcome and the top-up's ledger seq (0 unless applied)."""
        try:
            answer = self.run(self.creditd.top_up(self.account_id, amount, key))
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
                return "conflict", 0
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error
            return "terminated", 0
        return ("replayed", 0) if answer.replayed else ("applied", answer.ledger_seq)

    def charge(self, request: pb.ChargeRequest) -> pb.ChargeAnswer:
        async def call() -> pb.ChargeAnswer:  # a grpc.aio call must be made on its loop
            return await self.creditd.credit_control.Charge(request)

        return self.run(call())

    def sms(self, destination: str, zone: str) -> int:
        request = charge_request(
            f"{self.account_id}-sms-{next(self.sessions)}", EVENT, 0, self.account_id, [(SMS, 0, 0)]
        )
        request.called_party, request.visited_plmn = NUMBERS[destination], PLMNS[zone]
        answer = self.charge(request)
        return answer.grants[0].charged if answer.result == pb.SUCCESS else -1

    def receive(self, used_s: int, zone: str) -> int:
        session_id = f"{self.account_id}-in-{next(self.sessions)}"
        opening = charge_request(session_id, INITIAL, 0, self.account_id, [(VOICE_IN, 0, 0)], called_party="")
        opening.visited_plmn = PLMNS[zone]
        if self.charge(opening).result != pb.SUCCESS:
            return -1
        closing = charge_request(session_id, TERMINATE, 1, self.account_id, [(VOICE_IN, 0, used_s)], called_party="")
        closing.visited_plmn = opening.visited_plmn
        return self.charge(closing).grants[0].charged

    def call(self, used_s: int, destination: str, zone: str, spans: bool, updated: bool) -> tuple[int, int]:
        session_id = f"{self.account_id}-call-{next(self.sessions)}"
        opening = charge_request(session_id, INITIAL, 0, self.account_id, [(VOICE, 0, 0)])
        opening.called_party, opening.visited_plmn = NUMBERS[destination], PLMNS[zone]
        started_ms = self.creditd.clock.now_ms()
        opened = self.charge(opening)
        if opened.result != pb.SUCCESS:
            return -1, 0
        change_ms = opened.grants[0].tariff_time_change_ms
        charged, number = 0, 1
        if updated and not spans:
            update = charge_request(session_id, UPDATE, 1, self.account_id, [(VOICE, 0, used_s // 2)])
            update.called_party, update.visited_plmn = opening.called_party, opening.visited_plmn
            charged, number, used_s = self.charge(update).grants[0].charged, 2, used_s - used_s // 2
        closing = charge_request(session_id, TERMINATE, number, self.account_id, [(VOICE, 0, used_s)])
        closing.called_party, closing.visited_plmn = opening.called_party, opening.visited_plmn
        if spans:
            self.creditd.clock.advance(used_s)
            closing.units[0].used_after_tariff_change = used_after_change(started_ms, used_s, change_ms)
        closed = self.charge(closing)
        return charged + closed.grants[0].charged, change_ms

    def buy(self) -> bool:
        request = pb.PurchaseBundleRequest(
            account_id=self.account_id, bundle_id="sms_50", idempotency_key=f"buy-{next(self.sessions)}"
        )

        async def purchase() -> pb.Account:  # a grpc.aio call must be made on its loop
            return await self.creditd.accounts.PurchaseBundle(request)

        try:
            self.run(purchase())
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error
            return False
        return True

    def borrow(self, key: str) -> str:
        request = pb.BorrowRequest(account_id=self.account_id, offer_id="emergency_10", idempotency_key=key)

        async def lend() -> pb.TopUpAnswer:  # a grpc.aio call must be made on its loop
            return await self.creditd.accounts.Borrow(request)

        try:
            answer = self.run(lend())
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error
            return "refused"
        return "replayed" if answer.replayed else "applied"

    def compare(self, model: Model, step: object) -> None:
        """After a sweeper pass, so that both sides have applied every ladder step that is due (a
        refused request writes nothing, not even a due step; the sweeper applies it)."""
        self.run(self.creditd.server.sweeper.sweep_once())
        model.sweep()
        card = self.run(self.creditd.get(self.account_id))
        now_ms = self.creditd.clock.now_ms()
        live = [b for b in card.buckets if b.expires_at_ms > now_ms]
        sms_left = sum(b.remaining for b in live if b.unit == pb.EVENTS)
        bonus_left = sum(b.remaining for b in live if b.unit == pb.MONEY)
        reserved = card.reserved + sum(b.reserved for b in card.buckets)
        assert (card.balance, card.status, card.status_reason, sms_left, bonus_left, reserved) == (
            model.balance,
            model.status,
            model.reason,
            model.sms_left,
            model.bonus_left,
            0,
        ), step
        assert (card.loan_outstanding, card.group_holding) == (model.loan_outstanding, model.group_holding), step


def seconds_until(now_ms: int, local_minute: int) -> int:
    """Seconds from now to the next time the Bangkok clock shows local_minute:00 (at least 1)."""
    local_s = (now_ms + BANGKOK_OFFSET_MS) // 1000 % 86_400
    return (local_minute * 60 - local_s - 1) % 86_400 + 1


# Every state a line can be in that the sequences must reach (states_of): a run that reaches fewer
# fails, so the property cannot pass by never getting there.
STATES = {
    "active",
    "one-way suspended",
    "two-way suspended",
    "terminated",
    "in debt",
    "in debt, one-way suspended",
    "sms bundle",
    "bonus money",
    "loan outstanding",
    "group money held",
    "in a group, suspended",
}


def states_of(model: Model) -> set[str]:
    names = {ACTIVE: "active", ONE_WAY: "one-way suspended", TWO_WAY: "two-way suspended", TERMINATED: "terminated"}
    found = {names[model.status]}
    if model.balance < 0:
        found.add("in debt")
        if model.status == ONE_WAY:
            found.add("in debt, one-way suspended")
    if any(bucket.remaining > 0 for bucket in model.buckets):
        found.add("sms bundle")
    if any(bonus.remaining > 0 for bonus in model.bonuses):
        found.add("bonus money")
    if model.loan_outstanding > 0:
        found.add("loan outstanding")
    if model.group_holding > 0:
        found.add("group money held")
    if model.group is not None and model.status in (ONE_WAY, TWO_WAY):
        found.add("in a group, suspended")
    return found


def apply(driver: Driver, model: Model, operation: tuple[str, int, str] | tuple[str, int]) -> None:
    kind, value = operation[0], operation[1]
    if kind == "top_up":
        key = f"{driver.account_id}-{operation[2]}"
        outcome, seq = driver.top_up(value, key)
        assert outcome == model.top_up(value, key, seq), operation
    elif kind == "sms":
        for _ in range(value):
            assert driver.sms(*operation[2:]) == model.send_sms(*operation[2:]), operation  # type: ignore[arg-type]
    elif kind == "receive":
        assert driver.receive(value, operation[2]) == model.receive(value, operation[2]), operation  # type: ignore[misc]
    elif kind == "call":
        assert driver.call(value, *operation[2:]) == model.call(value, *operation[2:]), operation  # type: ignore[arg-type]
    elif kind == "buy":
        assert driver.buy() == model.buy_sms_bundle(), operation
    elif kind == "borrow":
        key = f"{driver.account_id}-{operation[2]}"
        assert driver.borrow(key) == model.borrow(key), operation
    else:
        seconds = value if kind == "advance" else seconds_until(model.now_ms, value)
        driver.creditd.clock.advance(seconds)
        model.advance(seconds)
    driver.compare(model, operation)


async def test_random_sequences_agree_with_the_reference_model(
    redis_server: EmbeddedRedis, redis_client: AnySyncRedis, settings: Settings
) -> None:
    plan = msgspec.structs.replace(settings.plans["standard"], topup_bonuses=[BONUS_RULE])
    with_bonus = msgspec.structs.replace(settings, plans={**settings.plans, "standard": plan})
    async with started_server(
        with_bonus, redis_server.url, redis_client, FrozenClock(daytime_clock().now_ms())
    ) as creditd:
        await run_sequences(creditd)
        creditd.assert_audit_clean()


async def join_a_group(creditd: Harness, account_id: str) -> None:
    """A group of the account's own, with the model's balance, refill amount and cap."""
    group_id = f"g{account_id}"
    accounts = creditd.accounts
    await accounts.CreateGroup(pb.CreateGroupRequest(group_id=group_id, currency="THB", refill_amount=GROUP_REFILL))
    await accounts.TopUpGroup(
        pb.TopUpGroupRequest(group_id=group_id, amount=GROUP_BALANCE, channel="bank", idempotency_key="g")
    )
    await accounts.SetGroupMember(pb.SetGroupMemberRequest(group_id=group_id, account_id=account_id, cap=GROUP_CAP))


async def run_sequences(creditd: Harness) -> None:
    loop = asyncio.get_running_loop()
    accounts = (f"6682525{n:04d}" for n in itertools.count())
    reached: set[str] = set()

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(initial_balance=st.integers(0, 3_000), steps=operations, in_group=st.booleans())
    # The rare states, always visited besides what hypothesis draws (a month in debt is a long way for
    # a random walk of ten steps): two-way, then terminated (and a top-up refused); a group member in
    # debt; bonus money, a loan and an SMS bundle.
    @example(initial_balance=0, steps=[("advance", 8 * 86_400), ("sms", 1, "thai", "home")], in_group=False)
    @example(initial_balance=0, steps=[("advance", 38 * 86_400), ("top_up", 500, "k1")], in_group=False)
    @example(initial_balance=0, steps=[("call", 400, "international", "home", False, False)], in_group=True)
    @example(initial_balance=0, steps=[("top_up", 2_000, "k1"), ("borrow", 0, "l1")], in_group=False)
    @example(initial_balance=3_000, steps=[("buy", 0), ("sms", 2, "thai", "home")], in_group=False)
    def sequence(initial_balance: int, steps: list, in_group: bool) -> None:
        driver = Driver(creditd, loop, next(accounts))
        driver.run(creditd.create_account(driver.account_id, balance=initial_balance))
        model = Model(balance=initial_balance, now_ms=creditd.clock.now_ms())
        if in_group:
            driver.run(join_a_group(creditd, driver.account_id))
            model.group = GroupShare(cycle_day=min(datetime.fromtimestamp(model.now_ms / 1000, UTC).day, 28))
        driver.compare(model, "created")
        for operation in steps:
            apply(driver, model, operation)
            reached.update(states_of(model))
        report = creditd.audit()
        assert report.violations == [], report.violations

    await asyncio.to_thread(sequence)
    print(f"states reached: {sorted(reached)}")
    assert reached >= STATES, f"never reached: {sorted(STATES - reached)}"
