"""One account, three sessions at once: a PDU session through creditd chf (Nchf over HTTP/2), a Gy data
session through creditd's Diameter front (CCR over TCP) and a data session through gRPC Charge,
interleaved, each using every unit it was granted and asking for more until refused. The account never
overspends: the balance ends at or above zero with nothing reserved, the units granted across the three
fronts never cost more than the opening balance, and the ledger's charges are exactly the units used
at the tariff's price."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from creditd.diameter.dictionary import Code
from creditd.diameter.server import DiameterServer
from tests.chf_smf import API, h2_client, pdu_request, ref_of, started_chf, time_stamp, unit_usage, used
from tests.diameter import client as gy
from tests.diameter.conftest import TEST_DIAMETER
from tests.harness import INITIAL, MB, TERMINATE, UPDATE, Harness

pytestmark = pytest.mark.asyncio
ACCOUNT = "66855556666"
OPENING = 1_000  # satang: 100 blocks of 1 MB at 10
PRICE_PER_MB = 10


def gy_granted(answer: Any) -> int:
    """The octets a CCA grants rating group 1; 0 when the answer or its MSCC refuses."""
    data = gy.grants(answer).get(1) if gy.result_of(answer) == 2001 else None
    result = data.child(Code.RESULT_CODE) if data is not None else None
    units = data.child(Code.GRANTED_SERVICE_UNIT) if data is not None else None
    if units is None or (result is not None and result.value != 2001):
        return 0
    octets = units.child(Code.CC_TOTAL_OCTETS)
    return octets.value if octets is not None and isinstance(octets.value, int) else 0


async def test_nchf_diameter_and_grpc_sessions_on_one_account_never_overspend(
    creditd: Harness, redis_server: Any
) -> None:
    await creditd.create_account(ACCOUNT, OPENING)
    used_mb = {"nchf": 0, "diameter": 0, "grpc": 0}

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

    async def diameter(port: int) -> None:
        def request(kind: int, number: int, requested: int | None, used: int | None) -> Any:
            service = gy.Service(1, requested, used, unit=Code.CC_TOTAL_OCTETS)
            return gy.ccr("gy-data", kind, number, ACCOUNT, [service], context=gy.GY)

        async with gy.connected(port) as peer:
            granted = gy_granted(await peer.ask(request(gy.INITIAL, 0, 3 * MB, None)))
            number = 0
            while granted:
                number += 1
                used_mb["diameter"] += granted // MB
                granted = gy_granted(await peer.ask(request(gy.UPDATE, number, 3 * MB, granted)))
            assert gy.result_of(await peer.ask(request(gy.TERMINATE, number + 1, None, 0))) == 2001

    gy_settings = msgspec.structs.replace(creditd.settings, diameter=TEST_DIAMETER)
    gy_front = DiameterServer(gy_settings, redis_server.url, "127.0.0.1:0", creditd.clock)
    await gy_front.start()
    try:
        async with started_chf(creditd.settings, redis_server.url, creditd.clock) as base, h2_client(base) as client:
            await asyncio.gather(nchf(client), diameter(gy_front.port), grpc())
    finally:
        await gy_front.stop(2.0)
    card = await creditd.get(ACCOUNT)
    total_mb = sum(used_mb.values())
    assert all(used_mb.values()), used_mb
    assert total_mb * PRICE_PER_MB <= OPENING
    assert (card.balance, card.reserved, card.open_sessions) == (OPENING - total_mb * PRICE_PER_MB, 0, 0)
    assert card.balance >= 0
    ledger = await creditd.ledger(ACCOUNT, 1000)
    assert -sum(entry.amount for entry in ledger if entry.kind == "charge") == total_mb * PRICE_PER_MB
