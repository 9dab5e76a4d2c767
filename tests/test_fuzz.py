"""Fuzzing a real server process: random bytes sent to every unary RPC, and well-formed messages whose
fields hold anything a protobuf can carry (any ints, unicode, unknown enum values, many units,
called numbers and PLMNs of every shape).
Whatever comes in, every call gets an answer or a gRPC status, the server stays up and healthy, and
the audit of what it wrote is clean."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from creditd.core.audit import Auditor
from creditd.devtools.ports import free_port
from creditd.store.embedded import embedded_url
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc
from tests.processes import start_server, stop, wait_serving

pytestmark = pytest.mark.slow
ACCOUNTS = ["66818180000", "66818180001"]
METHODS = [f"/creditd.v1.CreditControl/{m}" for m in ("Charge", "ChargeBatch")] + [
    f"/creditd.v1.Accounts/{m}"
    for m in (
        "CreateAccount",
        "GetAccount",
        "TopUp",
        "PurchaseBundle",
        "SetStatus",
        "SetCreditLimit",
        "ListLedger",
        "Adjust",
    )
]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
uint32 = st.integers(min_value=0, max_value=2**32 - 1)
text = st.text(max_size=80) | st.sampled_from(ACCOUNTS + ["", "gw1", "s1", "{p:1}", "a b", "x" * 70])


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[grpc.Channel, Path, object]]:
    data_dir, port = Path(tmp_path_factory.mktemp("fuzz")) / "data", free_port()
    process = start_server(data_dir, port)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        wait_serving(port, process)
        accounts = pb_grpc.AccountsStub(channel)
        for account_id in ACCOUNTS:
            accounts.CreateAccount(pb.CreateAccountRequest(account_id=account_id, plan="standard", initial_balance=500))
        yield channel, data_dir, process
    finally:
        channel.close()
        stop(process, data_dir)


def call(channel: grpc.Channel, method: str, payload: bytes) -> None:
    invoke = channel.unary_unary(method, request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw)
    try:
        invoke(payload, timeout=10)
    except grpc.RpcError as error:
        assert error.code() != grpc.StatusCode.DEADLINE_EXCEEDED, method  # an answer, not a hang


@FUZZ
@given(method=st.sampled_from(METHODS), payload=st.binary(max_size=300))
def test_random_bytes_to_every_rpc(fuzzed_server, method: str, payload: bytes) -> None:
    call(fuzzed_server[0], method, payload)


units = st.builds(
    pb.UnitRequest,
    rating_group=uint32 | st.sampled_from([1, 2, 3, 4]),
    requested=int64,
    used=int64,
    service_id=uint32,
    used_after_tariff_change=int64,
)
numbers = text | st.sampled_from(["66812345678", "+442079460000", "0123", "+", "6" * 16, "٦٦"])
charges = st.builds(
    pb.ChargeRequest,
    session_id=text,
    request_type=st.integers(min_value=-5, max_value=9),
    request_number=uint32,
    account_id=text,
    gateway_id=text,
    units=st.lists(units, max_size=20),
    called_party=numbers,
    visited_plmn=text | st.sampled_from(["52001", "23415", "2341", "5200100"]),
)


@FUZZ
@given(request=charges, batch=st.booleans())
def test_hostile_charges_always_get_an_answer(fuzzed_server, request: pb.ChargeRequest, batch: bool) -> None:
    stub = pb_grpc.CreditControlStub(fuzzed_server[0])
    if batch:
        answers = stub.ChargeBatch(pb.ChargeBatchRequest(requests=[request, request]), timeout=10).answers
        assert len(answers) == 2 and answers[0].result != 0
    else:
        assert stub.Charge(request, timeout=10).result != 0


@FUZZ
@given(account_id=text, amount=int64, channel=text, key=text, status=st.integers(-3, 9), reason=text)
def test_hostile_accounts_calls_are_answered(fuzzed_server, account_id, amount, channel, key, status, reason) -> None:
    accounts = pb_grpc.AccountsStub(fuzzed_server[0])
    for invoke, message in (
        (accounts.TopUp, pb.TopUpRequest(account_id=account_id, amount=amount, channel=channel, idempotency_key=key)),
        (accounts.SetStatus, pb.SetStatusRequest(account_id=account_id, status=status, reason=reason)),
        (accounts.CreateAccount, pb.CreateAccountRequest(account_id=account_id, plan=channel, initial_balance=amount)),
        (accounts.SetCreditLimit, pb.SetCreditLimitRequest(account_id=account_id, credit_limit=amount)),
        (accounts.Adjust, pb.AdjustRequest(account_id=account_id, amount=amount, reason=reason, idempotency_key=key)),
        (
            accounts.PurchaseBundle,
            pb.PurchaseBundleRequest(account_id=account_id, bundle_id=channel, idempotency_key=key),
        ),
    ):
        try:
            invoke(message, timeout=10)
        except grpc.RpcError as error:
            assert error.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), error.details()


def test_after_the_fuzzing_the_server_is_healthy_and_the_audit_clean(fuzzed_server) -> None:
    channel, data_dir, process = fuzzed_server
    assert process.poll() is None
    answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    client = redis.Redis.from_url(embedded_url(data_dir))
    try:
        report = Auditor(client, 256).run()
    finally:
        client.close()
    assert report.violations == [] and report.accounts >= len(ACCOUNTS)
