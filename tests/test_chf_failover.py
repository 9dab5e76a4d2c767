"""kill -9 of a `creditd chf` process in the middle of SMF sessions: the SMF sends what got no answer
again, with the same ChargingDataRef, sequence number and body, to another chf process on the same
Redis, and carries on there. 16 sessions update over one HTTP/2 connection to chf A; A is killed with
SIGKILL during the burst; every request is then sent to chf B until answered. Afterwards each
session's ledger holds exactly one charge per sequence number, of the usage it reported (charged once
whether A had applied the killed request or not), no session stays open and the audit is clean."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from creditd.devtools.ports import free_port, wait_listening
from tests.chf_smf import (
    API,
    h2_client,
    pdu_request,
    ref_of,
    start_chf_process,
    stop_process,
    time_stamp,
    unit_usage,
    used,
)
from tests.harness import MB, Harness

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]
SESSIONS = 16
UPDATES = 30
KILL_AFTER_ANSWERS = 150
USED_BYTES = 1_000_000  # per update: one whole 1 MB block, 10 satang (none left over for the next)


async def test_an_smf_retries_on_another_chf_after_kill_9(creditd: Harness, redis_server: Any, tmp_path: Path) -> None:
    accounts = [f"6687700{n:04d}" for n in range(SESSIONS)]
    for account_id in accounts:
        await creditd.create_account(account_id, 100_000)
    ports = free_port(), free_port()
    first, second = (start_chf_process(redis_server.url, port, tmp_path / f"chf-{port}.log") for port in ports)
    answered = resent = 0
    killed = asyncio.Event()
    try:
        for port, process in zip(ports, (first, second), strict=True):
            wait_listening(port, process)
        clients = [h2_client(f"http://127.0.0.1:{port}") for port in ports]

        async def send(path: str, body: dict[str, Any], expected: int) -> httpx.Response:
            nonlocal answered, resent
            for client in clients:
                if client is clients[0] and killed.is_set():
                    continue
                try:
                    answer = await client.post(path, json=body)
                except httpx.HTTPError:
                    resent += 1
                    continue  # no answer from A: the same request goes to B
                assert answer.status_code == expected, answer.text
                answered += 1
                if answered == KILL_AFTER_ANSWERS and not killed.is_set():
                    first.send_signal(signal.SIGKILL)
                    killed.set()
                return answer
            raise AssertionError(f"no chf answered {path}")

        async def session(account_id: str) -> str:
            created_at = time_stamp()
            create = pdu_request(account_id, 0, [unit_usage(1, requested_volume=MB)], created_at=created_at)
            ref = ref_of((await send(API + "/chargingdata", create, 201)).headers["location"])
            for number in range(1, UPDATES + 1):
                units = [unit_usage(1, requested_volume=MB, containers=[used(number, volume=USED_BYTES)])]
                await send(
                    f"{API}/chargingdata/{ref}/update",
                    pdu_request(account_id, number, units, created_at=created_at),
                    200,
                )
            release = pdu_request(
                account_id,
                UPDATES + 1,
                [unit_usage(1, containers=[used(UPDATES + 1, volume=USED_BYTES)])],
                created_at=created_at,
            )
            await send(f"{API}/chargingdata/{ref}/release", release, 204)
            return ref

        try:
            refs = await asyncio.wait_for(asyncio.gather(*(session(account_id) for account_id in accounts)), 120)
        finally:
            for client in clients:
                await client.aclose()
        assert killed.is_set() and first.wait(5) == -signal.SIGKILL
        assert resent > 0  # requests were in flight on A when it died
    finally:
        stop_process(first)
        stop_process(second)
    for account_id, ref in zip(accounts, refs, strict=True):
        ledger = await creditd.ledger(account_id, 1000)
        charges = sorted((entry.reference, entry.amount) for entry in ledger if entry.kind == "charge")
        assert charges == sorted((f"nchf {ref} {number}", -10) for number in range(1, UPDATES + 2)), account_id
        card = await creditd.get(account_id)
        assert (card.balance, card.reserved, card.open_sessions) == (100_000 - 10 * (UPDATES + 1), 0, 0)
