"""Bad input over gRPC: every malformed field gets a clear result code (Charge) or gRPC status
(Accounts, whole batches) whose message names the field, and Redis is unchanged, compared key by
key with DUMP before and after."""

from __future__ import annotations

import grpc
import pytest

from creditd.v1 import creditd_pb2 as pb
from tests.harness import DATA, INITIAL, TERMINATE, UPDATE, Harness, charge_request, dump

pytestmark = pytest.mark.asyncio
ACCOUNT = "66844440000"
TOO_BIG = 2**53


def good(**changes: object) -> pb.ChargeRequest:
    request = charge_request("s1", INITIAL, 0, ACCOUNT, [(DATA, 0, 0)])
    for field, value in changes.items():
        setattr(request, field, value)
    return request


def with_units(kind: int, units: list[tuple[int, int, int]]) -> pb.ChargeRequest:
    return charge_request("s1", kind, 1 if kind != INITIAL else 0, ACCOUNT, units)


CHARGE_CASES = [
    (good(session_id=""), "session_id"),
    (good(session_id="has space"), "session_id"),
    (good(session_id="brace{1}"), "session_id"),
    (good(session_id="x" * 129), "session_id"),
    (good(request_type=0), "request_type"),
    (good(request_type=9), "request_type"),
    (good(account_id=""), "account_id"),
    (good(account_id="bad id"), "account_id"),
    (good(account_id="a{b}"), "account_id"),
    (good(account_id="a" * 65), "account_id"),
    (good(gateway_id=""), "gateway_id"),
    (good(gateway_id="gw/1"), "gateway_id"),
    (with_units(INITIAL, [(DATA, -1, 0)]), "units[0].requested"),
    (with_units(INITIAL, [(DATA, TOO_BIG, 0)]), "units[0].requested"),
    (with_units(UPDATE, [(DATA, 0, -5)]), "units[0].used"),
    (with_units(UPDATE, [(DATA, 0, TOO_BIG)]), "units[0].used"),
    (with_units(INITIAL, [(DATA, 0, 10)]), "units[0].used"),
    (with_units(TERMINATE, [(DATA, 10, 0)]), "units[0].requested"),
    (with_units(INITIAL, [(DATA, 0, 0), (DATA, 0, 0)]), "units[1].rating_group"),
    (with_units(INITIAL, [(group, 0, 0) for group in range(17)]), "units"),
]


@pytest.mark.parametrize(("request_message", "field"), CHARGE_CASES, ids=[f for _, f in CHARGE_CASES])
async def test_bad_charge_is_invalid_request_naming_the_field(
    creditd: Harness, request_message: pb.ChargeRequest, field: str
) -> None:
    await creditd.create_account(ACCOUNT, balance=1000)
    before = dump(creditd.redis)
    answer = await creditd.credit_control.Charge(request_message)
    assert answer.result == pb.INVALID_REQUEST
    assert answer.error.startswith(field + ":"), answer.error
    batch = await creditd.credit_control.ChargeBatch(pb.ChargeBatchRequest(requests=[request_message]))
    assert batch.answers[0].error == answer.error
    assert dump(creditd.redis) == before


async def test_oversized_batch_is_refused_whole_and_one_bad_item_fails_alone(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=1000)
    limit = creditd.settings.limits.max_batch_requests
    before = dump(creditd.redis)
    oversized = [charge_request(f"s{n}", INITIAL, 0, ACCOUNT, [(DATA, 0, 0)]) for n in range(limit + 1)]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await creditd.credit_control.ChargeBatch(pb.ChargeBatchRequest(requests=oversized))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "requests" in refused.value.details()
    assert dump(creditd.redis) == before
    mixed = [charge_request("ok", INITIAL, 0, ACCOUNT, [(DATA, 0, 0)]), good(account_id="bad id")]
    answers = (await creditd.credit_control.ChargeBatch(pb.ChargeBatchRequest(requests=mixed))).answers
    assert [answer.result for answer in answers] == [pb.SUCCESS, pb.INVALID_REQUEST]


def create(**fields: object) -> pb.CreateAccountRequest:
    return pb.CreateAccountRequest(**{"account_id": "66844449999", "plan": "standard", "initial_balance": 10, **fields})


def data_bucket(**fields: object) -> pb.Bucket:
    return pb.Bucket(**{"bucket_id": "b1", "unit": pb.BYTES, "remaining": 100, "exhaustion_policy": pb.CAP, **fields})


ACCOUNT_CASES = [
    ("CreateAccount", create(account_id="bad id"), "INVALID_ARGUMENT", "account_id"),
    ("CreateAccount", create(plan="gold"), "INVALID_ARGUMENT", "plan"),
    ("CreateAccount", create(initial_balance=-1), "INVALID_ARGUMENT", "initial_balance"),
    ("CreateAccount", create(initial_balance=TOO_BIG), "INVALID_ARGUMENT", "initial_balance"),
    ("CreateAccount", create(credit_limit=-1), "INVALID_ARGUMENT", "credit_limit"),
    ("CreateAccount", create(contact=pb.Contact(name="a\nb")), "INVALID_ARGUMENT", "contact.name"),
    ("CreateAccount", create(contact=pb.Contact(email="e" * 200)), "INVALID_ARGUMENT", "contact.email"),
    ("CreateAccount", create(buckets=[data_bucket(unit=0)]), "INVALID_ARGUMENT", "buckets[0].unit"),
    ("CreateAccount", create(buckets=[data_bucket(remaining=0)]), "INVALID_ARGUMENT", "buckets[0].remaining"),
    ("CreateAccount", create(buckets=[data_bucket(reserved=5)]), "INVALID_ARGUMENT", "buckets[0].reserved"),
    (
        "CreateAccount",
        create(buckets=[data_bucket(exhaustion_policy=0)]),
        "INVALID_ARGUMENT",
        "buckets[0].exhaustion_policy",
    ),
    (
        "CreateAccount",
        create(buckets=[data_bucket(exhaustion_policy=9)]),
        "INVALID_ARGUMENT",
        "buckets[0].exhaustion_policy",
    ),
    ("CreateAccount", create(buckets=[data_bucket(), data_bucket()]), "INVALID_ARGUMENT", "buckets[1].bucket_id"),
    (
        "CreateAccount",
        create(buckets=[data_bucket(bucket_id=f"b{n}") for n in range(17)]),
        "INVALID_ARGUMENT",
        "buckets",
    ),
    ("CreateAccount", create(account_id=ACCOUNT), "ALREADY_EXISTS", "account_id"),
    ("GetAccount", pb.GetAccountRequest(account_id=""), "INVALID_ARGUMENT", "account_id"),
    ("GetAccount", pb.GetAccountRequest(account_id="66800000404"), "NOT_FOUND", "account_id"),
    (
        "TopUp",
        pb.TopUpRequest(account_id=ACCOUNT, amount=0, channel="bank", idempotency_key="k"),
        "INVALID_ARGUMENT",
        "amount",
    ),
    (
        "TopUp",
        pb.TopUpRequest(account_id=ACCOUNT, amount=-5, channel="bank", idempotency_key="k"),
        "INVALID_ARGUMENT",
        "amount",
    ),
    (
        "TopUp",
        pb.TopUpRequest(account_id=ACCOUNT, amount=10**13, channel="bank", idempotency_key="k"),
        "INVALID_ARGUMENT",
        "amount",
    ),
    (
        "TopUp",
        pb.TopUpRequest(account_id=ACCOUNT, amount=5, channel="", idempotency_key="k"),
        "INVALID_ARGUMENT",
        "channel",
    ),
    (
        "TopUp",
        pb.TopUpRequest(account_id=ACCOUNT, amount=5, channel="bank", idempotency_key=""),
        "INVALID_ARGUMENT",
        "idempotency_key",
    ),
    (
        "TopUp",
        pb.TopUpRequest(account_id=ACCOUNT, amount=5, channel="bank", idempotency_key="a/b"),
        "INVALID_ARGUMENT",
        "idempotency_key",
    ),
    (
        "TopUp",
        pb.TopUpRequest(account_id="66800000404", amount=5, channel="bank", idempotency_key="k"),
        "NOT_FOUND",
        "account_id",
    ),
    ("SetStatus", pb.SetStatusRequest(account_id=ACCOUNT, status=0, reason="ADMIN"), "INVALID_ARGUMENT", "status"),
    ("SetStatus", pb.SetStatusRequest(account_id=ACCOUNT, status=7, reason="ADMIN"), "INVALID_ARGUMENT", "status"),
    ("SetStatus", pb.SetStatusRequest(account_id=ACCOUNT, status=2, reason="CREDIT"), "INVALID_ARGUMENT", "reason"),
    ("ListLedger", pb.ListLedgerRequest(account_id=ACCOUNT, limit=100_000), "INVALID_ARGUMENT", "limit"),
    ("ListLedger", pb.ListLedgerRequest(account_id="66800000404"), "NOT_FOUND", "account_id"),
]


@pytest.mark.parametrize(
    ("method", "request_message", "status", "field"),
    ACCOUNT_CASES,
    ids=[f"{m}-{f}-{n}" for n, (m, _, _, f) in enumerate(ACCOUNT_CASES)],
)
async def test_bad_accounts_call_is_refused_naming_the_field(
    creditd: Harness, method: str, request_message: object, status: str, field: str
) -> None:
    await creditd.create_account(ACCOUNT, balance=1000)
    before = dump(creditd.redis)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await getattr(creditd.accounts, method)(request_message)
    assert refused.value.code().name == status
    assert refused.value.details().startswith(field + ":"), refused.value.details()
    assert dump(creditd.redis) == before


async def test_terminated_account_refuses_top_up_and_status_change(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=1000)
    await creditd.accounts.SetStatus(pb.SetStatusRequest(account_id=ACCOUNT, status=pb.TERMINATED, reason="ADMIN"))
    before = dump(creditd.redis)
    with pytest.raises(grpc.aio.AioRpcError) as top_up:
        await creditd.top_up(ACCOUNT, 100, "late")
    assert top_up.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as resume:
        await creditd.accounts.SetStatus(pb.SetStatusRequest(account_id=ACCOUNT, status=pb.ACTIVE, reason="ADMIN"))
    assert resume.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert dump(creditd.redis) == before
