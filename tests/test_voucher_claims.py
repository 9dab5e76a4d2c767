"""Vouchers are never burned or left half-redeemed (issue #37 finding 7, issue #29's voucher gap), against a
real server and Redis:

- a voucher redeemed through SelfService by a signed-in subscriber whose account was then terminated
  is refused and stays unused: another account redeems it and is paid (on b7c6e5e it was claimed by
  the terminated account and lost);
- a redemption that stopped between claim and top-up (Redis unreachable for the top-up: the process
  could as well have died there) leaves the voucher claimed and unpaid; the sweeper's pass a minute
  later pays it once (a second pass and a repeated redemption pay nothing more), or, when the account
  was terminated meanwhile, releases the voucher, which another account can then redeem. The top-up
  is failed by an Accounts whose top_up raises Unavailable: creditd's own code, not Redis, is faked;
- `creditd voucher reconcile`, run as a subprocess, does what the sweeper does.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator

import grpc
import pytest

from creditd.config.settings import Settings
from creditd.core.accounts import Accounts
from creditd.core.voucher_claims import voucher_claims
from creditd.errors import Unavailable
from creditd.store.keys import VOUCHER_CLAIMS_KEY
from creditd.store.replies import TopUpRecord
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc
from tests.harness import FrozenClock, Harness, ServerAt
from tests.portal import create_voucher, sms_notifier
from tests.test_channels import http_server
from tests.test_rating import bangkok_ms
from tests.test_self_service import signed_in

pytestmark = pytest.mark.asyncio
ACCOUNT, OTHER = "66815150001", "66815150002"


@pytest.fixture
def gateway() -> Iterator[object]:
    with http_server() as server:
        yield server


class UnreachableTopUp(Accounts):
    async def top_up(self, account_id: str, amount: int, channel: str, idempotency_key: str) -> TopUpRecord:
        raise Unavailable("redis: connection lost (the test's)")


async def terminate(creditd: Harness, account_id: str) -> None:
    request = pb.SetStatusRequest(account_id=account_id, status=pb.TERMINATED, reason="ADMIN")
    await creditd.accounts.SetStatus(request)


async def test_a_voucher_refused_to_a_terminated_account_is_not_burned(
    server_at: ServerAt, settings: Settings, gateway: object
) -> None:
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
        notifier = sms_notifier(creditd, gateway, settings)
        await creditd.create_account(ACCOUNT, balance=100)
        await creditd.create_account(OTHER, balance=100)
        token = await signed_in(creditd, notifier, gateway, ACCOUNT)
        other_token = await signed_in(creditd, notifier, gateway, OTHER)
        await terminate(creditd, ACCOUNT)
        code = create_voucher(creditd, 5_000)
        stub = pb_grpc.SelfServiceStub(creditd.channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.RedeemVoucher(pb.RedeemVoucherRequest(session_token=token, code=code))
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert (await creditd.get(ACCOUNT)).balance == 100
        paid = await stub.RedeemVoucher(pb.RedeemVoucherRequest(session_token=other_token, code=code))
        assert paid.account.balance == 100 + 5_000
        assert creditd.redis.zcard(VOUCHER_CLAIMS_KEY) == 0


async def test_a_redemption_stopped_between_claim_and_top_up_is_finished_by_the_sweeper(
    server_at: ServerAt, settings: Settings
) -> None:
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
        await creditd.create_account(ACCOUNT, balance=100)
        await creditd.create_account(OTHER, balance=100)
        server = creditd.server
        paid_code, released_code = create_voucher(creditd, 5_000), create_voucher(creditd, 7_000)
        broken = voucher_claims(server.redis, server.functions, settings, creditd.clock)
        broken.accounts = UnreachableTopUp(broken.calls, server.functions, creditd.clock)
        for code in (paid_code, released_code):
            with pytest.raises(Unavailable):
                await broken.redeem(ACCOUNT, code)
        assert (await creditd.get(ACCOUNT)).balance == 100
        assert creditd.redis.zcard(VOUCHER_CLAIMS_KEY) == 2
        await server.sweeper.sweep_once()  # within the grace: they may still be in flight
        assert (await creditd.get(ACCOUNT)).balance == 100
        creditd.clock.advance(61)
        result = await server.sweeper.sweep_once()
        assert result.vouchers_reconciled == 2
        assert (await creditd.get(ACCOUNT)).balance == 100 + 5_000 + 7_000
        assert creditd.redis.zcard(VOUCHER_CLAIMS_KEY) == 0
        assert (await server.sweeper.sweep_once()).vouchers_reconciled == 0
        claims = voucher_claims(server.redis, server.functions, settings, creditd.clock)
        again = await claims.redeem(ACCOUNT, paid_code)  # the subscriber tries again: nothing more
        assert again.replayed and (await creditd.get(ACCOUNT)).balance == 100 + 12_000
        top_ups = [entry for entry in await creditd.ledger(ACCOUNT) if entry.kind == "topup"]
        assert len(top_ups) == 2


async def test_a_stopped_redemption_for_an_account_terminated_meanwhile_releases_the_voucher(
    server_at: ServerAt, settings: Settings
) -> None:
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
        await creditd.create_account(ACCOUNT, balance=100)
        await creditd.create_account(OTHER, balance=100)
        server = creditd.server
        code = create_voucher(creditd, 5_000)
        broken = voucher_claims(server.redis, server.functions, settings, creditd.clock)
        broken.accounts = UnreachableTopUp(broken.calls, server.functions, creditd.clock)
        with pytest.raises(Unavailable):
            await broken.redeem(ACCOUNT, code)
        await terminate(creditd, ACCOUNT)
        creditd.clock.advance(61)
        assert (await server.sweeper.sweep_once()).vouchers_reconciled == 1
        assert creditd.redis.zcard(VOUCHER_CLAIMS_KEY) == 0
        claims = voucher_claims(server.redis, server.functions, settings, creditd.clock)
        paid = await claims.redeem(OTHER, code)
        assert not paid.replayed and (await creditd.get(OTHER)).balance == 100 + 5_000
        assert (await creditd.get(ACCOUNT)).balance == 100


async def test_the_reconcile_command_pays_a_stopped_redemption(creditd: Harness, settings: Settings) -> None:
    await creditd.create_account(ACCOUNT, balance=100)
    server = creditd.server
    code = create_voucher(creditd, 5_000)
    two_minutes_ago = FrozenClock(time.time_ns() // 1_000_000 - 120_000)  # the command's clock is the real one
    broken = voucher_claims(server.redis, server.functions, settings, two_minutes_ago)
    broken.accounts = UnreachableTopUp(broken.calls, server.functions, two_minutes_ago)
    with pytest.raises(Unavailable):
        await broken.redeem(ACCOUNT, code)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "creditd",
        "voucher",
        "reconcile",
        "--redis",
        creditd.server.redis_url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0 and "completed 1, released 0" in output.decode(), output.decode()
    assert (await creditd.get(ACCOUNT)).balance == 100 + 5_000
    assert creditd.redis.zcard(VOUCHER_CLAIMS_KEY) == 0
