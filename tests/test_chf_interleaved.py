"""One account, two sessions at once: a PDU session through creditd chf (Nchf over HTTP/2) and a data
session through gRPC Charge, interleaved, each using every unit it was granted and asking for more
until refused. The account never overspends: the balance ends at or above zero with nothing reserved,
the units granted across both fronts never cost more than the opening balance, and the ledger's
charges are exactly the units used at the tariff's price."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.chf_smf import API, h2_client, pdu_request, ref_of, started_chf, time_stamp, unit_usage, used
from tests.harness import INITIAL, MB, TERMINATE, UPDATE, Harness

pytestmark = pytest.mark.asyncio
ACCOUNT = "66855556666"
OPENING = 1_000  # satang: 100 blocks of 1 MB at 10
PRICE_PER_MB = 10


async def test_nchf_and_grpc_sessions_on_one_account_never_overspend(creditd: Harness, redis_server: Any) -> None:
    await creditd.create_account(ACCOUNT, OPENING)
    used_mb = {"nchf": 0, "grpc": 0}

    async def nchf(client: Any) -> None:
        created_at = time_stamp()
        body = pdu_request(ACCOUNT, 0, [unit_usage(1, requested_volume=3 * MB)], created_at=created_at)
        answer = await client.post(API + "/chargingdata", json=body)
        ref = ref_of(answer.headers["location"])
        granted = answer.json()["multipleUnitInformation"][0].get("grantedUnit", {}).get("totalVolume", 0)
        number = 0
        while granted:
            number += 1
            used_mb["nchf"] += granted // MB
            units = [unit_usage(1, requested_volume=3 * MB, containers=[used(number, volume=granted)])]
            answer = await client.post(
                f"{API}/chargingdata/{ref}/update", json=pdu_request(ACCOUNT, number, units, created_at=created_at)
            )
            if answer.status_code != 200:
                break
            information = answer.json()["multipleUnitInformation"][0]
            granted = (
                information.get("grantedUnit", {}).get("totalVolume", 0)
                if information["resultCode"] == "SUCCESS"
                else 0
            )
            await asyncio.sleep(0)
        release = await client.post(
            f"{API}/chargingdata/{ref}/release", json=pdu_request(ACCOUNT, number + 1, [], created_at=created_at)
        )
        assert release.status_code in (204, 404), release.text

    async def grpc() -> None:
        answer = await creditd.charge("grpc-data", INITIAL, 0, ACCOUNT, [(1, 3 * MB, 0)], called_party="")
        granted = answer.grants[0].granted if answer.grants else 0
        number = 0
        while granted:
            number += 1
            used_mb["grpc"] += granted // MB
            answer = await creditd.charge("grpc-data", UPDATE, number, ACCOUNT, [(1, 3 * MB, granted)], called_party="")
            granted = answer.grants[0].granted if answer.grants and answer.grants[0].result == 2001 else 0
            await asyncio.sleep(0)
        await creditd.charge("grpc-data", TERMINATE, number + 1, ACCOUNT, [(1, 0, 0)], called_party="")

    async with started_chf(creditd.settings, redis_server.url, creditd.clock) as base, h2_client(base) as client:
        await asyncio.gather(nchf(client), grpc())
    card = await creditd.get(ACCOUNT)
    total_mb = used_mb["nchf"] + used_mb["grpc"]
    assert used_mb["nchf"] > 0 and used_mb["grpc"] > 0, used_mb
    assert total_mb * PRICE_PER_MB <= OPENING
    assert (card.balance, card.reserved, card.open_sessions) == (OPENING - total_mb * PRICE_PER_MB, 0, 0)
    assert card.balance >= 0
    ledger = await creditd.ledger(ACCOUNT, 1000)
    assert -sum(entry.amount for entry in ledger if entry.kind == "charge") == total_mb * PRICE_PER_MB
