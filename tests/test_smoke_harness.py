"""The harness itself: the server runs on uvloop, answers health checks, and the auditor sees a
freshly created account as clean."""

from __future__ import annotations

import asyncio

import pytest
import uvloop
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.harness import Harness


@pytest.mark.asyncio
async def test_server_runs_on_uvloop_and_reports_serving(creditd: Harness) -> None:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    stub = health_pb2_grpc.HealthStub(creditd.channel)
    for service in ("", "creditd.v1.CreditControl", "creditd.v1.Accounts"):
        answer = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.asyncio
async def test_new_account_audits_clean(creditd: Harness) -> None:
    await creditd.create_account("66800000001", balance=1000)
    report = creditd.assert_audit_clean()
    assert report.accounts == 1 and report.total_balance == 1000
