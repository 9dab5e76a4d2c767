"""Crash safety: creditd and its embedded Redis are killed with SIGKILL in the middle of a load of
sessions and top-ups, while a writer keeps the disk busy (tests/busy_disk.py), then creditd is
restarted on the same data directory. Every client keeps retransmitting the request it got no answer
for, with the same ids, as a gateway would. Afterwards every balance is exactly initial + top-ups -
sum(charged) from the answers: no acknowledged write was lost and none was applied twice. The audit
is clean.

creditd runs with `redis.durability = "fsync"`, the setting that promises this, and its embedded
server with `appendfsync always` (checked): with "written", Redis may hold its AOF write back while a
slow fsync runs and answer meanwhile, so a crash can lose answered calls (docs/operating.md)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest
import redis

from creditd.core.audit import Auditor
from creditd.devtools.ports import free_port
from creditd.store.embedded import embedded_url
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc
from loadtest.runner import durability_config
from tests.busy_disk import busy_disk
from tests.harness import DATA, INITIAL, MB, TERMINATE, UPDATE, VOICE, charge_request
from tests.processes import CHANNEL_OPTIONS, embedded_redis_pid, kill_hard, start_server, stop, wait_serving

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]
ACCOUNTS = [f"6688800{n:04d}" for n in range(20)]
SESSIONS_PER_ACCOUNT = 4
UPDATES_PER_SESSION = 12
INITIAL_BALANCE = 5000
RETRY_DEADLINE_S = 60.0
CALL_TIMEOUT_S = 2.0


class Ledger:
    """What the clients know from answers alone."""

    def __init__(self) -> None:
        self.charged = {account_id: 0 for account_id in ACCOUNTS}
        self.topped_up = {account_id: 0 for account_id in ACCOUNTS}
        self.retransmissions = 0
        self.answers = 0


async def until_answered(call, request):
    deadline = time.monotonic() + RETRY_DEADLINE_S
    attempt = 0
    while True:
        try:
            return await call(request, timeout=CALL_TIMEOUT_S), attempt
        except grpc.aio.AioRpcError as error:
            if time.monotonic() > deadline or error.code() not in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.INTERNAL,
                grpc.StatusCode.CANCELLED,
                grpc.StatusCode.UNKNOWN,
            ):
                raise
            attempt += 1
            await asyncio.sleep(0.05)


async def play_session(stub: pb_grpc.CreditControlStub, account_id: str, index: int, ledger: Ledger) -> None:
    group = DATA if index % 2 else VOICE
    used = MB if group == DATA else 45
    steps = [(INITIAL, 0)] + [(UPDATE, used)] * UPDATES_PER_SESSION + [(TERMINATE, used)]
    for number, (kind, units) in enumerate(steps):
        request = charge_request(f"{account_id}-s{index}", kind, number, account_id, [(group, 0, units)])
        answer, retries = await until_answered(stub.Charge, request)
        ledger.retransmissions += retries
        ledger.answers += 1
        assert answer.result in (pb.SUCCESS, pb.CREDIT_LIMIT_REACHED, pb.END_USER_SERVICE_DENIED), answer
        ledger.charged[account_id] += sum(grant.charged for grant in answer.grants)
        if answer.result != pb.SUCCESS and kind == INITIAL:
            return
        await asyncio.sleep(0.02)


async def pay(stub: pb_grpc.AccountsStub, account_id: str, index: int, ledger: Ledger) -> None:
    amount = 100 + index
    request = pb.TopUpRequest(account_id=account_id, amount=amount, channel="bank", idempotency_key=f"t{index}")
    await asyncio.sleep(0.02 * index)
    answer, retries = await until_answered(stub.TopUp, request)
    ledger.retransmissions += retries
    ledger.topped_up[account_id] += amount  # counted once, replay or not: the key makes it one top-up


async def test_kill_nine_under_load_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    config = ("--config", str(durability_config(tmp_path, "fsync")))
    process = start_server(data_dir, port, *config)
    restarted = None
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS)
    try:
        wait_serving(port, process)
        accounts, credit_control = pb_grpc.AccountsStub(channel), pb_grpc.CreditControlStub(channel)
        for account_id in ACCOUNTS:
            await accounts.CreateAccount(
                pb.CreateAccountRequest(account_id=account_id, plan="standard", initial_balance=INITIAL_BALANCE)
            )
        ledger = Ledger()
        load = [play_session(credit_control, a, s, ledger) for a in ACCOUNTS for s in range(SESSIONS_PER_ACCOUNT)]
        load += [pay(accounts, a, n, ledger) for a in ACCOUNTS for n in range(3)]
        running = asyncio.gather(*load)
        expected_answers = len(ACCOUNTS) * SESSIONS_PER_ACCOUNT * (UPDATES_PER_SESSION + 2)
        with busy_disk(tmp_path):
            while ledger.answers < expected_answers // 3:  # crash in the middle of the load
                await asyncio.sleep(0.01)
            kill_hard(embedded_redis_pid(data_dir))
            kill_hard(process.pid)
        process.wait()
        restarted = start_server(data_dir, port, *config)
        await asyncio.to_thread(wait_serving, port, restarted)
        await running
        assert ledger.retransmissions > 0, "the crash happened after the load: nothing was tested"
        print(f"crash: {ledger.answers} answers, {ledger.retransmissions} retransmissions after the kill")

        for account_id in ACCOUNTS:
            card = await accounts.GetAccount(pb.GetAccountRequest(account_id=account_id))
            expected = INITIAL_BALANCE + ledger.topped_up[account_id] - ledger.charged[account_id]
            assert (card.balance, card.reserved, card.open_sessions) == (expected, 0, 0), account_id
        client = redis.Redis.from_url(embedded_url(data_dir))
        try:
            assert client.config_get("appendfsync") == {"appendfsync": "always"}
            report = Auditor(client, 256).run()
        finally:
            client.close()
        assert report.violations == [] and report.accounts == len(ACCOUNTS)
    finally:
        await channel.close()
        for started in (restarted, process):  # newest first: data_dir's redis.pid names its Redis
            if started is not None:
                stop(started, data_dir)
