"""The Nchf v3 edge of a live `creditd chf` (granian, in the test's event loop) over real sockets:

- one cleartext HTTP/2 connection (prior knowledge) carries 2 000 requests of 50 concurrent sessions,
  and one HTTP/1.1 keep-alive connection 300: every answer is right and the client's source port
  never changes (no GOAWAY, no reconnect);
- every bad request gets a ProblemDetails (application/problem+json) whose invalidParams names the
  field as a JSON pointer, or 404/405/413/415, and Redis is byte for byte unchanged afterwards;
- a whole-request refusal is a 403 with TS 32.291's cause (QUOTA_LIMIT_REACHED for no money,
  END_USER_REQUEST_DENIED for a two-way suspended account), charging and holding nothing, and its
  repeat gets the same answer (the outcome is stored for idempotency, as for gRPC Charge);
- an SMS from an SMSF (oneTimeEvent, recipient GPSI) and an IMS call (calledPartyAddress tel: URI)
  are rated by destination; the identity rule maps msisdn-/imsi- and nothing else;
- the document is served at .../v3/openapi.yaml and requests are counted by operation and status.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import yaml

from creditd import metrics
from creditd.chf.app import DOCUMENT
from creditd.chf.identity import account_of, account_of_subscriber
from creditd.v1 import creditd_pb2 as pb
from tests.chf_smf import (
    API,
    SMF_NAME,
    h1_client,
    h2_client,
    pdu_request,
    ref_of,
    started_chf,
    time_stamp,
    unit_usage,
    used,
)
from tests.harness import MB, Harness, dump

pytestmark = pytest.mark.asyncio
ACCOUNT = "66822223333"


def client_port(response: httpx.Response) -> Any:
    return response.extensions["network_stream"].get_extra_info("client_addr")


async def session_of(client: httpx.AsyncClient, account_id: str, updates: int, ports: set[Any]) -> int:
    created_at = time_stamp()
    create = await client.post(
        API + "/chargingdata",
        json=pdu_request(account_id, 0, [unit_usage(1, requested_volume=MB)], created_at=created_at),
    )
    assert create.status_code == 201, create.text
    ports.add(client_port(create))
    ref = ref_of(create.headers["location"])
    for number in range(1, updates + 1):
        units = [unit_usage(1, requested_volume=MB, containers=[used(number, volume=1000)])]
        answer = await client.post(
            f"{API}/chargingdata/{ref}/update", json=pdu_request(account_id, number, units, created_at=created_at)
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["invocationSequenceNumber"] == number
        ports.add(client_port(answer))
    release = await client.post(
        f"{API}/chargingdata/{ref}/release", json=pdu_request(account_id, updates + 1, [], created_at=created_at)
    )
    assert release.status_code == 204
    return updates + 2


async def test_one_connection_carries_thousands_of_requests(creditd: Harness, redis_server: Any) -> None:
    await creditd.create_account(ACCOUNT, 10**9)
    async with started_chf(creditd.settings, redis_server.url, creditd.clock) as base:
        for make_client, sessions, updates, version in ((h2_client, 50, 38, "HTTP/2"), (h1_client, 10, 28, "HTTP/1.1")):
            ports: set[Any] = set()
            async with make_client(base) as client:
                counts = await asyncio.gather(*(session_of(client, ACCOUNT, updates, ports) for _ in range(sessions)))
                probe = await client.get(API + "/openapi.yaml")
            assert sum(counts) == sessions * (updates + 2) and probe.http_version == version
            assert len(ports) == 1, ports
    card = await creditd.get(ACCOUNT)
    assert card.open_sessions == 0 and card.reserved == 0
    # every session used 1000 bytes per update, at most 38 000 in all: whole blocks of a session's use,
    # so one started 1 MB block (10 satang) per session
    assert card.balance == 10**9 - (50 + 10) * 10


BAD_BODIES: list[tuple[str, dict[str, Any] | bytes, int, str, str]] = [
    # (what, body, status, cause, invalidParams[0].param)
    (
        "no sequence number",
        {"nfConsumerIdentification": {"nodeFunctionality": "SMF"}, "invocationTimeStamp": "2026-12-03T10:00:00Z"},
        400,
        "CHARGING_FAILED",
        "/invocationSequenceNumber",
    ),
    (
        "no node functionality",
        {"nfConsumerIdentification": {}, "invocationTimeStamp": "2026-12-03T10:00:00Z", "invocationSequenceNumber": 0},
        400,
        "CHARGING_FAILED",
        "/nfConsumerIdentification/nodeFunctionality",
    ),
    ("not JSON", b"{nope", 400, "CHARGING_FAILED", "/"),
]


def with_units(units: list[dict[str, Any]], **changes: Any) -> dict[str, Any]:
    body = pdu_request(ACCOUNT, 0, units, created_at="2026-12-03T10:00:00Z")
    body.update(changes)
    return body


CREATE_BAD = [
    (
        "negative sequence number",
        with_units([], invocationSequenceNumber=-1),
        400,
        "CHARGING_FAILED",
        "/invocationSequenceNumber",
    ),
    (
        "rating group not a number",
        with_units([{"ratingGroup": "one"}]),
        400,
        "CHARGING_FAILED",
        "/multipleUnitUsage/0/ratingGroup",
    ),
    (
        "rating group twice",
        with_units([unit_usage(1), unit_usage(1)]),
        400,
        "CHARGING_FAILED",
        "/multipleUnitUsage/1/ratingGroup",
    ),
    (
        "used units in a create",
        with_units([unit_usage(1, containers=[used(1, volume=5)])]),
        400,
        "CHARGING_FAILED",
        "/multipleUnitUsage/0",
    ),
    (
        "time stamp not a date-time",
        with_units([], invocationTimeStamp="yesterday"),
        400,
        "CHARGING_FAILED",
        "/invocationTimeStamp",
    ),
    (
        "bad called party",
        with_units([], iMSChargingInformation={"calledPartyAddress": "sip:alice@example.com"}),
        400,
        "CHARGING_FAILED",
        "/iMSChargingInformation/calledPartyAddress",
    ),
    ("no subscriber", with_units([], subscriberIdentifier=""), 400, "CHARGING_FAILED", "/subscriberIdentifier"),
    ("a NAI names no account", with_units([], subscriberIdentifier="nai-someone@example.com"), 404, "USER_UNKNOWN", ""),
    ("an unknown account", with_units([], subscriberIdentifier="imsi-66899999999"), 404, "USER_UNKNOWN", ""),
    (
        "too many units",
        with_units([unit_usage(group) for group in range(17)]),
        400,
        "CHARGING_FAILED",
        "/multipleUnitUsage",
    ),
    (
        "a huge request",
        with_units([unit_usage(1, requested_volume=10**16)]),
        400,
        "CHARGING_FAILED",
        "/multipleUnitUsage/0/requestedUnit",
    ),
]


async def test_bad_requests_name_the_field_and_write_nothing(creditd: Harness, redis_server: Any) -> None:
    await creditd.create_account(ACCOUNT, 5000)
    async with started_chf(creditd.settings, redis_server.url, creditd.clock) as base, h2_client(base) as client:
        created_at = time_stamp()
        create = await client.post(
            API + "/chargingdata", json=pdu_request(ACCOUNT, 0, [unit_usage(1)], created_at=created_at)
        )
        ref = ref_of(create.headers["location"])
        first = await client.post(
            f"{API}/chargingdata/{ref}/update", json=pdu_request(ACCOUNT, 5, [unit_usage(1)], created_at=created_at)
        )
        assert first.status_code == 200
        before = dump(creditd.redis)
        update = f"{API}/chargingdata/{ref}/update"
        cases: list[tuple[str, str, dict[str, Any] | bytes, int, str, str]] = [
            (what, API + "/chargingdata", body, status, cause, param)
            for what, body, status, cause, param in BAD_BODIES + CREATE_BAD
        ]
        cases += [
            (
                "an older sequence number",
                update,
                pdu_request(ACCOUNT, 4, [], created_at=created_at),
                400,
                "CHARGING_FAILED",
                "/invocationSequenceNumber",
            ),
            (
                "the same number, another payload",
                update,
                pdu_request(ACCOUNT, 5, [unit_usage(1, containers=[used(1, volume=9)])], created_at=created_at),
                400,
                "CHARGING_FAILED",
                "/invocationSequenceNumber",
            ),
            (
                "an unknown ref",
                f"{API}/chargingdata/{ACCOUNT}~{'0' * 24}/update",
                pdu_request(ACCOUNT, 1, [], created_at=created_at),
                404,
                "RESOURCE_NOT_FOUND",
                "",
            ),
            (
                "a ref of no form",
                f"{API}/chargingdata/xyz/release",
                pdu_request(ACCOUNT, 1, [], created_at=created_at),
                404,
                "RESOURCE_NOT_FOUND",
                "",
            ),
        ]
        for what, path, body, status, cause, param in cases:
            if isinstance(body, bytes):
                answer = await client.post(path, content=body, headers={"content-type": "application/json"})
            else:
                answer = await client.post(path, json=body)
            assert (answer.status_code, answer.headers["content-type"]) == (status, "application/problem+json"), (
                what,
                answer.text,
            )
            problem = answer.json()
            assert (problem["status"], problem["cause"]) == (status, cause), (what, problem)
            assert [p["param"] for p in problem.get("invalidParams", [])] == ([param] if param else []), (what, problem)
            assert dump(creditd.redis) == before, what
        edges = [
            (
                await client.post(
                    API + "/chargingdata", content=b"x" * 70_000, headers={"content-type": "application/json"}
                ),
                413,
            ),
            (
                await client.post(API + "/chargingdata", content=b"<x/>", headers={"content-type": "application/xml"}),
                415,
            ),
            (await client.get(API + "/chargingdata"), 405),
            (await client.post(API + "/elsewhere", json={}), 404),
            # bodies of no announced length, read chunk by chunk up to the limit
            (await client.post(API + "/chargingdata", content=chunks(b"x" * 35_000, 2), headers=JSON), 413),
            (await client.post(API + "/chargingdata", content=chunks(b"{}", 2), headers=JSON), 400),
        ]
        for answer, status in edges:
            assert answer.status_code == status and answer.headers["content-type"] == "application/problem+json"
        assert dump(creditd.redis) == before


JSON = {"content-type": "application/json"}


async def chunks(piece: bytes, count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield piece


async def test_a_whole_request_refused_is_a_403_with_its_cause(creditd: Harness, redis_server: Any) -> None:
    await creditd.create_account("66800000001", 5)  # a data block costs 10
    await creditd.create_account("66800000002", 5000)
    await creditd.accounts.SetStatus(
        pb.SetStatusRequest(account_id="66800000002", status=pb.TWO_WAY_SUSPENDED, reason="FRAUD")
    )
    async with started_chf(creditd.settings, redis_server.url, creditd.clock) as base, h2_client(base) as client:
        for account_id, cause in (("66800000001", "QUOTA_LIMIT_REACHED"), ("66800000002", "END_USER_REQUEST_DENIED")):
            card, ledger = await creditd.get(account_id), await creditd.ledger(account_id)
            body = pdu_request(account_id, 0, [unit_usage(1, requested_volume=MB)], created_at=time_stamp())
            answer = await client.post(API + "/chargingdata", json=body)
            assert answer.status_code == 403 and answer.json()["cause"] == cause, answer.text
            assert "location" not in answer.headers
            again = await client.post(API + "/chargingdata", json=body)  # the stored outcome, once more
            assert (again.status_code, again.content) == (403, answer.content)
            after = await creditd.get(account_id)
            assert (after.balance, after.reserved, after.open_sessions) == (card.balance, 0, 0)
            assert await creditd.ledger(account_id) == ledger


async def test_sms_and_ims_are_rated_by_destination(creditd: Harness, redis_server: Any) -> None:
    await creditd.create_account(ACCOUNT, 5000)
    async with started_chf(creditd.settings, redis_server.url, creditd.clock) as base, h2_client(base) as client:
        sms = {
            "subscriberIdentifier": f"imsi-{ACCOUNT}",
            "nfConsumerIdentification": {"nodeFunctionality": "SMSF", "nFName": SMF_NAME},
            "invocationTimeStamp": time_stamp(),
            "invocationSequenceNumber": 0,
            "oneTimeEvent": True,
            "multipleUnitUsage": [{"ratingGroup": 3, "requestedUnit": {"serviceSpecificUnits": 1}}],
            "sMSChargingInformation": {"recipientInfo": [{"recipientGPSI": "msisdn-442079460000"}]},
        }
        answer = await client.post(API + "/chargingdata", json=sms)
        assert answer.status_code == 201, answer.text
        [unit] = answer.json()["multipleUnitInformation"]
        assert unit["resultCode"] == "SUCCESS" and unit["grantedUnit"] == {"serviceSpecificUnits": 1}
        ims = {
            "subscriberIdentifier": f"imsi-{ACCOUNT}",
            "nfConsumerIdentification": {"nodeFunctionality": "IMS_Node", "nFName": SMF_NAME},
            "invocationTimeStamp": time_stamp(),
            "invocationSequenceNumber": 0,
            "multipleUnitUsage": [{"ratingGroup": 2, "requestedUnit": {"time": 120}}],
            "iMSChargingInformation": {"calledPartyAddress": "tel:+66898765432;phone-context=ims"},
        }
        call = await client.post(API + "/chargingdata", json=ims)
        assert call.status_code == 201, call.text
        [unit] = call.json()["multipleUnitInformation"]
        assert unit["grantedUnit"] == {"time": 120} and unit["resultCode"] == "SUCCESS"
        ref = ref_of(call.headers["location"])
        ims.update(
            invocationSequenceNumber=1,
            multipleUnitUsage=[{"ratingGroup": 2, "usedUnitContainer": [{"localSequenceNumber": 1, "time": 61}]}],
        )
        assert (await client.post(f"{API}/chargingdata/{ref}/release", json=ims)).status_code == 204
    ledger = await creditd.ledger(ACCOUNT)
    # sms_international 300; voice_out 2 started minutes of 100 (the harness's clock is daytime)
    assert sorted(-entry.amount for entry in ledger if entry.kind == "charge") == [200, 300]


async def test_the_identity_rule() -> None:
    assert account_of("msisdn-66812345678") == "66812345678"
    assert account_of("imsi-520031234567890") == "520031234567890"
    for other in ("nai-user@example.com", "extid-a@b", "msisdn-12", "imsi-", "msisdn-1234567890123456", "66812345678"):
        assert account_of(other) is None, other
    assert account_of_subscriber("imsi-520031234567890", "msisdn-66812345678") == "66812345678"
    assert account_of_subscriber("imsi-520031234567890", "extid-a@b") == "520031234567890"
    assert account_of_subscriber("nai-x", "") is None


async def test_the_document_is_served_and_requests_are_counted(creditd: Harness, redis_server: Any) -> None:
    def count(operation: str, status: str) -> float:
        labels = {"operation": operation, "result": status}
        return metrics.REGISTRY.get_sample_value("creditd_chf_requests_total", labels) or 0.0

    before = (count("openapi", "200"), count("create", "404"), count("update", "404"))
    async with started_chf(creditd.settings, redis_server.url, creditd.clock) as base, h1_client(base) as client:
        document = await client.get(API + "/openapi.yaml")
        assert document.content == DOCUMENT.read_bytes()
        assert yaml.safe_load(document.text)["paths"].keys() == {
            "/chargingdata",
            "/chargingdata/{ChargingDataRef}/update",
            "/chargingdata/{ChargingDataRef}/release",
        }
        unknown = pdu_request("66899999999", 0, [], created_at=time_stamp())
        assert (await client.post(API + "/chargingdata", json=unknown)).status_code == 404
        assert (await client.post(f"{API}/chargingdata/a~{'0' * 24}/update", json=unknown)).status_code == 404
    assert (count("openapi", "200"), count("create", "404"), count("update", "404")) == tuple(b + 1 for b in before)
    labels = {"operation": "create"}
    assert (metrics.REGISTRY.get_sample_value("creditd_chf_request_duration_seconds_count", labels) or 0) >= 1
