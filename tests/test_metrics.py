"""Metrics on /metrics after real traffic: requests by method and result, charges by request type and
result code, batch sizes, top-ups by channel (unknown channels as "other"), and the cluster-wide state
read from Redis (open sessions, reserved money, status transitions, usage records kept and the age of
the oldest not yet exported) with exact values. The exposition
passes `promtool check metrics` when promtool is installed (CI installs it)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import urllib.request

import grpc
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from creditd.config.settings import Settings
from creditd.v1 import creditd_pb2 as pb
from tests.harness import DATA, INITIAL, TERMINATE, VOICE, charge_request, started_server

pytestmark = pytest.mark.asyncio
ACCOUNT = "66813130000"


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        return answer.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_after_traffic(redis_server, redis_client, settings: Settings) -> None:
    with_metrics = msgspec.structs.replace(
        settings, metrics=msgspec.structs.replace(settings.metrics, listen="127.0.0.1:0")
    )
    async with started_server(with_metrics, redis_server.url, redis_client) as creditd:
        server = creditd.server
        assert server.metrics is not None
        before = samples(await asyncio.to_thread(scrape, server.metrics.port))
        await creditd.create_account(ACCOUNT, balance=150)
        await creditd.charge("s1", INITIAL, 0, ACCOUNT, [(VOICE, 0, 0)])  # reserves 100
        await creditd.charge("s2", INITIAL, 0, ACCOUNT, [(DATA, 0, 0)])  # reserves 50 (5 MB)
        await creditd.charge("s2", TERMINATE, 1, ACCOUNT, [(DATA, 0, 30_000_000)])  # 300: into debt
        await creditd.top_up(ACCOUNT, 500, "k1", channel="bank")
        await creditd.top_up(ACCOUNT, 500, "k1", channel="bank")  # a replay is not a top-up
        await creditd.top_up(ACCOUNT, 7, "k2", channel="kiosk42")
        batch = [charge_request(f"b{n}", INITIAL, 0, ACCOUNT, [(DATA, 0, 0)]) for n in range(3)]
        await creditd.credit_control.ChargeBatch(pb.ChargeBatchRequest(requests=batch))
        with pytest.raises(grpc.aio.AioRpcError):
            await creditd.get("66800000404")

        text = await asyncio.to_thread(scrape, server.metrics.port)
        after = samples(text)

        def delta(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        assert value(after, "creditd_open_sessions") == 4  # s1 and three batch sessions
        card = await creditd.get(ACCOUNT)
        assert value(after, "creditd_reserved_minor") == card.reserved == 100 + 100 + 100 + 50  # the last: 57 left
        assert value(after, "creditd_status_transitions_total", status="ONE_WAY_SUSPENDED") == 1
        assert value(after, "creditd_status_transitions_total", status="ACTIVE") == 1
        assert value(after, "creditd_accounts_created_total") == 1
        # created, low_balance (0 crossed), suspended_one_way + REAUTH for s1 and s2, topup, resumed + REAUTH
        # for s1, topup
        assert value(after, "creditd_event_stream_entries") == 9
        assert delta("creditd_requests_total", method="Charge", result="OK") == 3
        assert delta("creditd_requests_total", method="GetAccount", result="NOT_FOUND") == 1
        assert delta("creditd_charges_total", request_type="INITIAL", result="SUCCESS") == 5
        assert delta("creditd_charges_total", request_type="TERMINATE", result="SUCCESS") == 1
        assert delta("creditd_charge_batch_requests_sum") == 3
        assert delta("creditd_top_ups_total", channel="bank") == 1
        assert delta("creditd_top_up_amount_minor_total", channel="bank") == 500
        assert delta("creditd_top_up_amount_minor_total", channel="other") == 7
        assert delta("creditd_request_duration_seconds_count", method="Charge") == 3
        assert value(after, "creditd_redis_up") == 1
        assert value(after, "creditd_usage_records") == 1  # the TERMINATE's data usage
        assert value(after, "creditd_usage_unexported_age_seconds") >= 0
        # once exported, nothing waits
        creditd.redis.set("cd:usage:exported", "9999999999999-0-0")
        assert (
            value(samples(await asyncio.to_thread(scrape, server.metrics.port)), "creditd_usage_unexported_age_seconds")
            == 0
        )
        creditd.redis.delete("cd:usage:exported")
        await asyncio.sleep(1.1)
        assert (
            value(samples(await asyncio.to_thread(scrape, server.metrics.port)), "creditd_usage_unexported_age_seconds")
            >= 1
        )
        assert ACCOUNT not in text
        if shutil.which("promtool"):
            lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
            assert lint.returncode == 0, lint.stdout + lint.stderr
