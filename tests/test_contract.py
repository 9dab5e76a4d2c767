"""The public contract: a client generated from protos/ alone (compiled into a scratch directory, run
in its own process, importing nothing of creditd) plays a session lifecycle against a real server;
server reflection lists the services."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.harness import Harness

pytestmark = pytest.mark.asyncio
PROTO_ROOT = Path(__file__).resolve().parent.parent / "protos"

CLIENT = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    import grpc
    from creditd.v1 import creditd_pb2 as pb, creditd_pb2_grpc as rpc
    assert pb.__file__.startswith(sys.argv[1]), pb.__file__
    channel = grpc.insecure_channel(sys.argv[2])
    accounts, gateway = rpc.AccountsStub(channel), rpc.CreditControlStub(channel)
    accounts.CreateAccount(pb.CreateAccountRequest(account_id="66877770000", plan="standard", initial_balance=1000))
    def charge(kind, number, requested, used):
        unit = pb.UnitRequest(rating_group=1, requested=requested, used=used)
        return gateway.Charge(pb.ChargeRequest(session_id="vendor-1", request_type=kind, request_number=number,
                                               account_id="66877770000", gateway_id="vendor-pgw", units=[unit]))
    first = charge(pb.ChargeRequest.INITIAL, 0, 5000000, 0)
    assert first.result == pb.SUCCESS and first.grants[0].granted == 5000000 and first.grants[0].unit == pb.BYTES
    second = charge(pb.ChargeRequest.UPDATE, 1, 0, 4000000)
    assert second.grants[0].charged == 40
    last = charge(pb.ChargeRequest.TERMINATE, 2, 0, 100)
    assert last.grants[0].charged == 10
    card = accounts.GetAccount(pb.GetAccountRequest(account_id="66877770000"))
    assert (card.balance, card.reserved, card.status) == (950, 0, pb.ACTIVE), card
    print("lifecycle ok")
""")


async def run(*command: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, output.decode()


async def test_client_generated_from_the_protos_alone_runs_the_lifecycle(creditd: Harness, tmp_path: Path) -> None:
    code, output = await run(
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={tmp_path}",
        f"--grpc_python_out={tmp_path}",
        str(PROTO_ROOT / "creditd" / "v1" / "creditd.proto"),
    )
    assert code == 0, output
    for package in (tmp_path / "creditd", tmp_path / "creditd" / "v1"):
        (package / "__init__.py").write_text("")
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    code, output = await run(sys.executable, str(script), str(tmp_path), f"127.0.0.1:{creditd.server.port}")
    assert code == 0 and "lifecycle ok" in output, output
    creditd.assert_audit_clean()


async def test_reflection_lists_the_services(creditd: Harness) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(creditd.channel)

    async def requests():
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    async for answer in stub.ServerReflectionInfo(requests()):
        names = {service.name for service in answer.list_services_response.service}
        break
    assert {"creditd.v1.CreditControl", "creditd.v1.Accounts", "grpc.health.v1.Health"} <= names
