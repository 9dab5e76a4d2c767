"""The traffic: gateways with concurrent sessions of realistic shape, sent unary or in ChargeBatch
rounds, with top-ups arriving meanwhile on the same accounts.

A session is INITIAL, a few UPDATEs reporting used units, TERMINATE; about one in ten sessions is an
SMS EVENT instead. Calls and SMS go to Thai or foreign numbers, and some sessions roam, so the sample
plan's destinations, zones and time bands all rate the traffic. Accounts start with small balances,
so some run out mid-run (one-way suspension) and are resumed by the top-ups. Everything is bounded by
a deadline and a request budget.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import grpc
import msgspec

from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc
from loadtest.report import TOP_UP, Recorder

DATA, VOICE, SMS = 1, 2, 3
MB = 1_000_000
RESULT_NAMES = {value: name for name, value in pb.ResultCode.items()}
CALL_TIMEOUT_S = 10.0


class Shape(msgspec.Struct, frozen=True):
    gateways: int = 4
    sessions_per_gateway: int = 16
    updates_per_session: int = 3
    accounts: int = 200
    # One account in ten starts small, runs out mid-run (one-way suspension) and is resumed by top-ups.
    initial_balance: int = 10_000_000
    small_initial_balance: int = 2_000
    top_up_amount: int = 1_000
    top_ups_per_s: float = 20.0
    event_share: float = 0.1
    duration_s: float = 10.0
    max_requests: int = 1_000_000
    # Unary only: requests per second across all sessions (0: as fast as answers come back).
    rate_per_s: float = 0.0
    # Called numbers of calls and SMS, drawn at random (Thai ones twice as often here).
    called_parties: tuple[str, ...] = ("66812345678", "66898765432", "442079460000")
    # Sessions served by a foreign network (the sample plan's "roaming" zone).
    roaming_share: float = 0.1
    roaming_plmn: str = "23415"


class Pacer:
    """Spaces requests at a fixed rate, shared by every session loop of a phase."""

    def __init__(self, rate_per_s: float) -> None:
        self.interval_s = 1.0 / rate_per_s if rate_per_s > 0 else 0.0
        self.next_slot = time.monotonic()

    async def wait(self) -> None:
        if not self.interval_s:
            return
        now = time.monotonic()
        slot = max(self.next_slot, now)
        self.next_slot = slot + self.interval_s
        await asyncio.sleep(slot - now)


class Budget:
    def __init__(self, shape: Shape) -> None:
        self.deadline = time.monotonic() + shape.duration_s
        self.left = shape.max_requests

    def take(self, count: int = 1) -> bool:
        if self.left < count or time.monotonic() >= self.deadline:
            return False
        self.left -= count
        return True


def account_ids(shape: Shape) -> list[str]:
    return [f"6690{n:07d}" for n in range(shape.accounts)]


class SessionScript:
    """The requests of one session, produced one at a time."""

    def __init__(self, gateway: int, serial: int, shape: Shape, rng: random.Random, run_id: str) -> None:
        self.account_id = f"6690{rng.randrange(shape.accounts):07d}"
        self.gateway_id = f"lt-gw{gateway}"
        self.session_id = f"lt-{run_id}-{gateway}-{serial}"
        self.is_event = rng.random() < shape.event_share
        self.group = DATA if rng.random() < 0.6 else VOICE
        self.used = 3 * MB if self.group == DATA else 70
        self.steps = 1 if self.is_event else shape.updates_per_session + 2
        self.called_party = "" if self.group == DATA and not self.is_event else rng.choice(shape.called_parties)
        self.visited_plmn = shape.roaming_plmn if rng.random() < shape.roaming_share else ""
        self.number = 0
        self.stopped = False

    def next_request(self) -> pb.ChargeRequest | None:
        if self.stopped or self.number >= self.steps:
            return None
        number, self.number = self.number, self.number + 1
        if self.is_event:
            kind, unit = pb.ChargeRequest.EVENT, pb.UnitRequest(rating_group=SMS)
        elif number == 0:
            kind, unit = pb.ChargeRequest.INITIAL, pb.UnitRequest(rating_group=self.group)
        elif number == self.steps - 1:
            kind, unit = pb.ChargeRequest.TERMINATE, pb.UnitRequest(rating_group=self.group, used=self.used)
        else:
            kind, unit = pb.ChargeRequest.UPDATE, pb.UnitRequest(rating_group=self.group, used=self.used)
        return pb.ChargeRequest(
            session_id=self.session_id,
            request_type=kind,
            request_number=number,
            account_id=self.account_id,
            gateway_id=self.gateway_id,
            units=[unit],
            called_party=self.called_party,
            visited_plmn=self.visited_plmn,
        )

    def closing_request(self) -> pb.ChargeRequest | None:
        """TERMINATE for a session still open when the run ends, so that nothing stays reserved."""
        if self.is_event or self.stopped or not 0 < self.number < self.steps:
            return None
        number, self.number = self.number, self.steps
        return pb.ChargeRequest(
            session_id=self.session_id,
            request_type=pb.ChargeRequest.TERMINATE,
            request_number=number,
            account_id=self.account_id,
            gateway_id=self.gateway_id,
            units=[pb.UnitRequest(rating_group=self.group)],
            called_party=self.called_party,
            visited_plmn=self.visited_plmn,
        )

    def answered(self, request: pb.ChargeRequest, answer: pb.ChargeAnswer) -> None:
        if request.request_type == pb.ChargeRequest.INITIAL and answer.result != pb.SUCCESS:
            self.stopped = True  # no session was opened: nothing to terminate


def _failure(error: grpc.aio.AioRpcError) -> str:
    return error.code().name


async def unary_session_loop(
    stub: pb_grpc.CreditControlStub,
    gateway: int,
    slot: int,
    shape: Shape,
    budget: Budget,
    recorder: Recorder,
    rng: random.Random,
    pacer: Pacer,
    run_id: str,
) -> None:
    serial = slot
    while True:
        script = SessionScript(gateway, serial, shape, rng, run_id)
        serial += shape.sessions_per_gateway
        while (request := script.next_request()) is not None:
            if not budget.take():
                script.number = request.request_number  # the unsent request never happened
                closing = script.closing_request()
                if closing is not None:
                    await stub.Charge(closing, timeout=CALL_TIMEOUT_S)
                return
            await pacer.wait()
            started = time.perf_counter()
            try:
                answer = await stub.Charge(request, timeout=CALL_TIMEOUT_S)
            except grpc.aio.AioRpcError as error:
                recorder.error(_failure(error))
                script.stopped = True
                continue
            recorder.record(time.perf_counter() - started, 1)
            recorder.result(RESULT_NAMES.get(answer.result, str(answer.result)))
            script.answered(request, answer)


async def batch_gateway_loop(
    stub: pb_grpc.CreditControlStub,
    gateway: int,
    shape: Shape,
    budget: Budget,
    recorder: Recorder,
    rng: random.Random,
    run_id: str,
) -> None:
    """One gateway sending the next request of each of its sessions in one ChargeBatch per round."""
    serial = 0
    scripts: list[SessionScript] = []
    while True:
        requests, owners = [], []
        for index in range(shape.sessions_per_gateway):
            if index >= len(scripts) or scripts[index].stopped or scripts[index].number >= scripts[index].steps:
                script = SessionScript(gateway, serial, shape, rng, run_id)
                serial += 1
                scripts[index : index + 1] = [script]
            request = scripts[index].next_request()
            if request is not None:
                requests.append(request)
                owners.append(scripts[index])
        if not budget.take(len(requests)):
            for script, request in zip(owners, requests, strict=True):
                script.number = request.request_number  # the unsent requests never happened
            closing = [c for c in (script.closing_request() for script in scripts) if c is not None]
            if closing:
                await stub.ChargeBatch(pb.ChargeBatchRequest(requests=closing), timeout=CALL_TIMEOUT_S)
            return
        started = time.perf_counter()
        try:
            answer = await stub.ChargeBatch(pb.ChargeBatchRequest(requests=requests), timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            recorder.error(_failure(error))
            for script in owners:
                script.stopped = True
            continue
        recorder.record(time.perf_counter() - started, len(requests))
        for script, request, item in zip(owners, requests, answer.answers, strict=True):
            recorder.result(RESULT_NAMES.get(item.result, str(item.result)))
            script.answered(request, item)


async def top_up_loop(
    stub: pb_grpc.AccountsStub, shape: Shape, budget: Budget, recorder: Recorder, rng: random.Random, run_id: str
) -> None:
    serial = 0
    while time.monotonic() < budget.deadline:
        await asyncio.sleep(1.0 / shape.top_ups_per_s)
        account_id = f"6690{rng.randrange(shape.accounts):07d}"
        request = pb.TopUpRequest(
            account_id=account_id, amount=shape.top_up_amount, channel="loadtest", idempotency_key=f"{run_id}-{serial}"
        )
        serial += 1
        try:
            await stub.TopUp(request, timeout=CALL_TIMEOUT_S)
            recorder.result(TOP_UP)
        except grpc.aio.AioRpcError as error:
            recorder.error(f"topup {_failure(error)}")


async def create_accounts(stub: pb_grpc.AccountsStub, shape: Shape) -> None:
    def balance(n: int) -> int:
        return shape.small_initial_balance if n % 10 == 0 else shape.initial_balance

    requests = [
        pb.CreateAccountRequest(account_id=a, plan="standard", initial_balance=balance(n))
        for n, a in enumerate(account_ids(shape))
    ]
    for start in range(0, len(requests), 200):
        await asyncio.gather(*(stub.CreateAccount(r, timeout=CALL_TIMEOUT_S) for r in requests[start : start + 200]))


async def run_traffic(
    target: str, mode: str, shape: Shape, seed: int, run_id: str, progress: Callable[[int], None] | None = None
) -> tuple[Recorder, float]:
    """Plays the traffic against target; returns what was recorded and the elapsed seconds."""
    recorder, rng = Recorder(), random.Random(seed)
    budget = Budget(shape)
    channels = [grpc.aio.insecure_channel(target) for _ in range(shape.gateways)]
    try:
        stubs = [pb_grpc.CreditControlStub(channel) for channel in channels]
        if mode == "batch":
            loops = [
                batch_gateway_loop(stubs[g], g, shape, budget, recorder, rng, run_id) for g in range(shape.gateways)
            ]
        else:
            pacer = Pacer(shape.rate_per_s)
            loops = [
                unary_session_loop(stubs[g], g, s, shape, budget, recorder, rng, pacer, run_id)
                for g in range(shape.gateways)
                for s in range(shape.sessions_per_gateway)
            ]
        tasks = [asyncio.create_task(loop) for loop in loops]
        if shape.top_ups_per_s > 0:
            tasks.append(
                asyncio.create_task(
                    top_up_loop(pb_grpc.AccountsStub(channels[0]), shape, budget, recorder, rng, run_id)
                )
            )
        started = time.perf_counter()
        watcher = asyncio.create_task(_report_progress(recorder, budget, progress))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
        watcher.cancel()
        return recorder, elapsed
    finally:
        await asyncio.gather(*(channel.close() for channel in channels))


async def _report_progress(recorder: Recorder, budget: Budget, progress: Callable[[int], None] | None) -> None:
    seen = 0
    while progress is not None:
        await asyncio.sleep(0.25)
        progress(recorder.charges - seen)
        seen = recorder.charges
