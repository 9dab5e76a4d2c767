"""ChargingNotifyRequest from a live chf to the SMF's notifyUri (a real HTTP server of the test's):

- a bundle bought for an account with an open Nchf session (creditd's REAUTH) reaches the SMF as
  {"notificationType": "REAUTHORIZATION"} at the notifyUri of that session's create, and an operator's
  two-way suspension (ABORT_SESSION) as ABORT_CHARGING; other gateways' sessions get nothing;
- an SMF endpoint answering 503 is retried until it answers (counted as retried, then sent), and one
  that refuses connections is given up after the attempts (counted as failed), while charging goes on
  answering meanwhile;
- two chf processes' notifiers share one lease: a notice is sent once."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from creditd import metrics
from creditd.config.settings import Settings
from creditd.v1 import creditd_pb2 as pb
from tests.chf_smf import API, NotifySink, h2_client, pdu_request, ref_of, started_chf, time_stamp, unit_usage
from tests.harness import INITIAL, MB, Harness

pytestmark = pytest.mark.asyncio
ACCOUNT = "66844445555"


def fast_notify(settings: Settings) -> Settings:
    notify = msgspec.structs.replace(settings.chf.notify, backoff_s=0.05, attempts=3, timeout_s=1.0, lease_s=1.0)
    return msgspec.structs.replace(settings, chf=msgspec.structs.replace(settings.chf, notify=notify))


def count(kind: str, result: str) -> float:
    return metrics.REGISTRY.get_sample_value("creditd_chf_notifications_total", {"kind": kind, "result": result}) or 0.0


async def open_session(client: Any, account_id: str, notify_uri: str) -> str:
    body = pdu_request(
        account_id, 0, [unit_usage(1, requested_volume=MB)], created_at=time_stamp(), notify_uri=notify_uri
    )
    answer = await client.post(API + "/chargingdata", json=body)
    assert answer.status_code == 201, answer.text
    return ref_of(answer.headers["location"])


async def test_reauthorization_and_abort_reach_the_smf_once(creditd: Harness, redis_server: Any) -> None:
    settings = fast_notify(creditd.settings)
    await creditd.create_account(ACCOUNT, 100_000)
    await creditd.charge("grpc-1", INITIAL, 0, ACCOUNT, [(1, MB, 0)], called_party="")  # another gateway's
    async with (
        NotifySink() as smf_endpoint,
        started_chf(settings, redis_server.url, creditd.clock) as base,
        started_chf(settings, redis_server.url, creditd.clock),  # a second process: one lease, one notice
        h2_client(base) as client,
    ):
        await open_session(client, ACCOUNT, smf_endpoint.url)
        await creditd.accounts.PurchaseBundle(
            pb.PurchaseBundleRequest(account_id=ACCOUNT, bundle_id="data_1gb", idempotency_key="b1")
        )
        assert await smf_endpoint.wait_for(1) == [{"notificationType": "REAUTHORIZATION"}]
        await creditd.accounts.SetStatus(
            pb.SetStatusRequest(account_id=ACCOUNT, status=pb.TWO_WAY_SUSPENDED, reason="FRAUD")
        )
        received = await smf_endpoint.wait_for(2)
        assert received == [{"notificationType": "REAUTHORIZATION"}, {"notificationType": "ABORT_CHARGING"}]
        await asyncio.sleep(1.0)  # nothing more comes: not from the other process, not for the gRPC session
        assert len(smf_endpoint.received) == 2 and smf_endpoint.requests == 2


async def test_an_smf_that_is_down_is_retried_and_charging_goes_on(creditd: Harness, redis_server: Any) -> None:
    settings = fast_notify(creditd.settings)
    await creditd.create_account(ACCOUNT, 100_000)
    await creditd.create_account("66844446666", 100_000)
    before = (count("REAUTHORIZATION", "retried"), count("REAUTHORIZATION", "sent"), count("REAUTHORIZATION", "failed"))
    async with (
        NotifySink(failures=2) as flaky,
        started_chf(settings, redis_server.url, creditd.clock) as base,
        h2_client(base) as client,
    ):
        await open_session(client, ACCOUNT, flaky.url)
        await open_session(client, "66844446666", "http://127.0.0.1:1/down")  # nothing listens there
        for account_id, key in ((ACCOUNT, "b1"), ("66844446666", "b2")):
            await creditd.accounts.PurchaseBundle(
                pb.PurchaseBundleRequest(account_id=account_id, bundle_id="data_1gb", idempotency_key=key)
            )
        # charging is answered while the notices wait and retry
        for _ in range(20):
            await open_session(client, ACCOUNT, flaky.url)
        assert await flaky.wait_for(1) == [{"notificationType": "REAUTHORIZATION"}]
        assert flaky.requests == 3
        async with asyncio.timeout(10):
            while count("REAUTHORIZATION", "failed") == before[2]:
                await asyncio.sleep(0.05)
    retried, sent, failed = (
        count("REAUTHORIZATION", "retried"),
        count("REAUTHORIZATION", "sent"),
        count("REAUTHORIZATION", "failed"),
    )
    # the flaky endpoint: 2 retries then sent; the one that is down: 2 retries then failed
    assert (retried - before[0], sent - before[1], failed - before[2]) == (4, 1, 1)
