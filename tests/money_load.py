"""A bounded money load for failure scenarios, and the books it must balance afterwards.

Concurrent clients send top-ups and SMS events, each request with its own identity (idempotency key,
session id). An answer is acknowledged money. A retryable error (UNAVAILABLE) leaves the request to be
sent again later, exactly as it was; any other error is a defect. After the disturbance, settle()
resends what is left until everything is answered, and then, for every account,
    balance == start + acknowledged top-ups - what acknowledged SMS charged,
and resending any acknowledged request replays its first answer: nothing acknowledged was lost, and
nothing was applied twice.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
from typing import Any

import grpc

from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc
from tests.harness import EVENT, SMS, Harness, charge_request

REQUEST_DEADLINE_S = 15.0
RETRYABLE = (grpc.StatusCode.UNAVAILABLE,)
PAUSE_AFTER_ERROR_S = 0.05
SETTLE_ATTEMPTS = 120
SETTLE_PAUSE_S = 0.25
REPLAY_CHUNK = 100


class MoneyLoad:
    def __init__(
        self,
        channel: grpc.aio.Channel,
        account_ids: list[str],
        start_balance: int,
        max_requests: int,
        prefix: str = "load",
    ) -> None:
        # Request ids (top-up keys, session ids) start with it: two loads on one Redis stay apart.
        self.prefix = prefix
        self.accounts = pb_grpc.AccountsStub(channel)
        self.credit_control = pb_grpc.CreditControlStub(channel)
        self.account_ids = account_ids
        self.start_balance = start_balance
        self.max_requests = max_requests
        self._numbers = itertools.count()
        self.acknowledged: list[tuple[Any, Any]] = []
        self.pending: list[Any] = []
        self.errors: collections.Counter[str] = collections.Counter()
        self.unexpected: list[str] = []
        self.acknowledged_during_load = 0
        self.last_error = ""
        # The longest any one attempt waited for its answer (a result or an error), in seconds.
        self.slowest_s = 0.0

    def _request(self, number: int) -> Any:
        account_id = self.account_ids[number % len(self.account_ids)]
        if number % 3 == 0:
            return pb.TopUpRequest(
                account_id=account_id,
                amount=100 + number % 50,
                channel="bank",
                idempotency_key=f"{self.prefix}-{number}",
            )
        return charge_request(f"{self.prefix}-sms-{number}", EVENT, 0, account_id, [(SMS, 0, 0)], gateway_id="gw-load")

    async def send(self, request: Any) -> Any:
        method = self.accounts.TopUp if isinstance(request, pb.TopUpRequest) else self.credit_control.Charge
        return await method(request, timeout=REQUEST_DEADLINE_S)

    async def _attempt(self, request: Any) -> bool:
        """True when answered; a retryable failure puts nothing anywhere (the caller keeps it)."""
        started = time.monotonic()
        try:
            answer = await self.send(request)
        except grpc.aio.AioRpcError as error:
            self.slowest_s = max(self.slowest_s, time.monotonic() - started)
            self.errors[error.code().name] += 1
            self.last_error = f"{error.code().name}: {error.details()}"
            if error.code() not in RETRYABLE:
                self.unexpected.append(f"{error.code().name}: {error.details()}")
            await asyncio.sleep(PAUSE_AFTER_ERROR_S)
            return False
        self.slowest_s = max(self.slowest_s, time.monotonic() - started)
        self.acknowledged.append((request, answer))
        return True

    async def _worker(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set() and (number := next(self._numbers)) < self.max_requests:
            request = self._request(number)
            if not await self._attempt(request):
                self.pending.append(request)

    async def run(self, stopping: asyncio.Event, workers: int) -> None:
        await asyncio.gather(*(self._worker(stopping) for _ in range(workers)))
        self.acknowledged_during_load = len(self.acknowledged)

    async def settle(self) -> None:
        """Resends every unanswered request, as it was, until each is answered."""
        for _ in range(SETTLE_ATTEMPTS):
            if not self.pending:
                return
            # In chunks, as a gateway resends: one connection with thousands of calls at once gets
            # CANCELLED from gRPC itself for those past about 2 000 (see docs/faults.md).
            outcomes: list[bool] = []
            for start in range(0, len(self.pending), REPLAY_CHUNK):
                chunk = self.pending[start : start + REPLAY_CHUNK]
                outcomes += await asyncio.gather(*(self._attempt(request) for request in chunk))
            self.pending = [request for request, answered in zip(self.pending, outcomes, strict=True) if not answered]
            await asyncio.sleep(SETTLE_PAUSE_S)
        raise AssertionError(
            f"{len(self.pending)} requests still unanswered after settling; errors {self.errors}, "
            f"the last: {self.last_error}"
        )

    def expected_balances(self) -> dict[str, int]:
        balances = dict.fromkeys(self.account_ids, self.start_balance)
        for request, answer in self.acknowledged:
            if isinstance(request, pb.TopUpRequest):
                # The answer is this request's: a reply read from a connection reused after a
                # time-out would carry another account's card.
                assert answer.account.account_id == request.account_id, (request, answer)
                balances[request.account_id] += request.amount
            else:
                assert answer.result == pb.SUCCESS, answer
                balances[request.account_id] -= answer.grants[0].charged
        return balances

    async def _resend(self, request: Any) -> Any:
        """The request sent again until answered, as a gateway does: UNAVAILABLE tells it to retry (on a
        loaded machine a replay can still meet a call time-out); any other error is raised."""
        for _ in range(SETTLE_ATTEMPTS):
            try:
                return await self.send(request)
            except grpc.aio.AioRpcError as error:
                if error.code() not in RETRYABLE:
                    raise
                self.errors[f"{error.code().name} (replay)"] += 1
                await asyncio.sleep(SETTLE_PAUSE_S)
        raise AssertionError(f"{request}: still UNAVAILABLE after {SETTLE_ATTEMPTS} replays")

    async def replay_mismatches(self) -> list[str]:
        """Every acknowledged request sent again: each must replay its first answer."""
        mismatches = []
        for start in range(0, len(self.acknowledged), REPLAY_CHUNK):
            chunk = self.acknowledged[start : start + REPLAY_CHUNK]
            replies = await asyncio.gather(*(self._resend(request) for request, _ in chunk))
            for (request, first), again in zip(chunk, replies, strict=True):
                if isinstance(request, pb.TopUpRequest):
                    if not again.replayed or again.ledger_seq != first.ledger_seq:
                        mismatches.append(f"top-up {request.idempotency_key}: applied anew (ledger {again.ledger_seq})")
                elif again.SerializeToString() != first.SerializeToString():
                    mismatches.append(f"charge {request.session_id}: {first} then {again}")
        return mismatches

    async def assert_books_balance(self, harness: Harness) -> None:
        """Every acknowledged request is in the books once, each replays, and the audit is clean."""
        assert self.unexpected == [], self.unexpected[:5]
        assert self.acknowledged_during_load > 0
        print(
            f"acknowledged during load {self.acknowledged_during_load}, after settling {len(self.acknowledged)}, "
            f"retryable errors {dict(self.errors)}"
        )
        cards = [await harness.get(account_id) for account_id in self.account_ids]
        assert {card.account_id: card.balance for card in cards} == self.expected_balances()
        assert all(card.reserved == 0 and card.open_sessions == 0 for card in cards)  # nothing left held
        assert await self.replay_mismatches() == []
        harness.assert_audit_clean()
