"""Property test: random sequences of top-ups (with replayed and conflicting keys), SMS, voice
calls, sms_50 purchases and clock moves (days at a time: grace periods, bundle expiry) on one
account agree, after every step, with the in-memory reference model (tests/reference_model.py) on
balance, status, status reason and SMS left (after a sweeper pass); after each sequence the auditor checks the
invariants of docs/design.md. hypothesis runs the sequences in a worker thread; every gRPC call goes to
the real server on the test's event loop."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from creditd.v1 import creditd_pb2 as pb
from tests.harness import EVENT, INITIAL, SMS, TERMINATE, VOICE, Harness
from tests.reference_model import Model

pytestmark = pytest.mark.asyncio
EXAMPLES = 300

operations = st.lists(
    st.one_of(
        st.tuples(st.just("top_up"), st.integers(1, 3_000), st.sampled_from(["k1", "k2", "k3"])),
        st.tuples(st.just("sms"), st.integers(1, 3)),
        st.tuples(st.just("call"), st.integers(0, 400)),
        st.tuples(st.just("buy"), st.just(0)),
        st.tuples(st.just("advance"), st.integers(1, 12 * 86_400)),
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

    def top_up(self, amount: int, key: str) -> str:
        try:
            answer = self.run(self.creditd.top_up(self.account_id, amount, key))
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
                return "conflict"
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error
            return "terminated"
        return "replayed" if answer.replayed else "applied"

    def sms(self) -> int:
        answer = self.run(
            self.creditd.charge(
                f"{self.account_id}-sms-{next(self.sessions)}", EVENT, 0, self.account_id, [(SMS, 0, 0)]
            )
        )
        return answer.grants[0].charged if answer.result == pb.SUCCESS else -1

    def call(self, used_s: int) -> int:
        session_id = f"{self.account_id}-call-{next(self.sessions)}"
        opened = self.run(self.creditd.charge(session_id, INITIAL, 0, self.account_id, [(VOICE, 0, 0)]))
        if opened.result != pb.SUCCESS:
            return -1
        closed = self.run(self.creditd.charge(session_id, TERMINATE, 1, self.account_id, [(VOICE, 0, used_s)]))
        return closed.grants[0].charged

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

    def compare(self, model: Model, step: object) -> None:
        """After a sweeper pass, so that both sides have applied every ladder step that is due (a
        refused request writes nothing, not even a due step; the sweeper applies it)."""
        self.run(self.creditd.server.sweeper.sweep_once())
        model.apply_ladder()
        card = self.run(self.creditd.get(self.account_id))
        now_ms = self.creditd.clock.now_ms()
        sms_left = sum(b.remaining for b in card.buckets if b.expires_at_ms > now_ms)
        assert (card.balance, card.status, card.status_reason, sms_left, card.reserved) == (
            model.balance,
            model.status,
            model.reason,
            model.sms_left,
            0,
        ), step


def apply(driver: Driver, model: Model, operation: tuple[str, int, str] | tuple[str, int]) -> None:
    kind, value = operation[0], operation[1]
    if kind == "top_up":
        key = f"{driver.account_id}-{operation[2]}"
        assert driver.top_up(value, key) == model.top_up(value, key), operation
    elif kind == "sms":
        for _ in range(value):
            assert driver.sms() == model.send_sms(), operation
    elif kind == "call":
        assert driver.call(value) == model.call(value), operation
    elif kind == "buy":
        assert driver.buy() == model.buy_sms_bundle(), operation
    else:
        driver.creditd.clock.advance(value)
        model.advance(value)
    driver.compare(model, operation)


async def test_random_sequences_agree_with_the_reference_model(creditd: Harness) -> None:
    loop = asyncio.get_running_loop()
    accounts = (f"6682525{n:04d}" for n in itertools.count())

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(initial_balance=st.integers(0, 3_000), steps=operations)
    def sequence(initial_balance: int, steps: list) -> None:
        driver = Driver(creditd, loop, next(accounts))
        driver.run(creditd.create_account(driver.account_id, balance=initial_balance))
        model = Model(balance=initial_balance, now_ms=creditd.clock.now_ms())
        driver.compare(model, "created")
        for operation in steps:
            apply(driver, model, operation)
        report = creditd.audit()
        assert report.violations == [], report.violations

    await asyncio.to_thread(sequence)
