"""A portal session's check and the call it guards are one step (issue #29): a subscriber's session is
checked (SelfService.subscriber, as every SelfService RPC does first), then ended (signed out), then
each call it guarded is made: reading the card and the ledger, topping up (a voucher's payment),
buying a bundle, borrowing, setting preferences are all refused UNAUTHENTICATED by the function
itself and write nothing (on b7c6e5e the check was a separate EXISTS and each of these went through).
The same calls with the session alive succeed; a session key of another account's slot or a stray
extra key is a bug of ours, refused loudly by named_keys."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from creditd.config.settings import Settings
from creditd.core.accounts import Accounts
from creditd.core.self_service import SelfService
from creditd.errors import Unauthenticated
from creditd.store.calls import PreferencesSpec, with_session
from tests.harness import Harness, ServerAt, dump
from tests.portal import sms_notifier
from tests.test_channels import http_server
from tests.test_rating import bangkok_ms
from tests.test_self_service import signed_in

pytestmark = pytest.mark.asyncio
ACCOUNT = "66812120001"


@pytest.fixture
def gateway() -> Iterator[object]:
    with http_server() as server:
        yield server


def self_service(creditd: Harness, settings: Settings) -> SelfService:
    server = creditd.server
    accounts = Accounts(creditd.server_calls(), server.functions, creditd.clock)
    return SelfService(server.redis, server.functions, accounts, settings, creditd.clock)


async def test_a_session_ended_after_the_check_refuses_the_call(
    server_at: ServerAt, settings: Settings, gateway: object
) -> None:
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
        await creditd.create_account(ACCOUNT, balance=20_000)
        token = await signed_in(creditd, sms_notifier(creditd, gateway, settings), gateway, ACCOUNT)
        service = self_service(creditd, settings)
        alive = await service.subscriber(token)
        assert (await alive.accounts.get(ACCOUNT)).balance == 20_000  # guarded, session alive: answered
        checked = await service.subscriber(token)
        await service.sign_out(token)  # the session ends between the check and the call
        before = dump(creditd.redis)
        calls = {
            "get": checked.accounts.get(ACCOUNT),
            "ledger": checked.accounts.list_ledger(ACCOUNT, 10, 0),
            "top-up": checked.accounts.top_up(ACCOUNT, 500, "voucher", "voucher-x"),
            "bundle": checked.accounts.purchase_bundle(ACCOUNT, "sms_50", "k1"),
            "borrow": checked.accounts.borrow(ACCOUNT, "emergency_10", "k2"),
            "preferences": checked.accounts.set_preferences(ACCOUNT, PreferencesSpec(language="en")),
        }
        for name, call in calls.items():
            with pytest.raises(Unauthenticated, match="signed out or expired"):
                await call
            assert dump(creditd.redis) == before, name
        assert (await creditd.get(ACCOUNT)).balance == 20_000


async def test_a_stray_extra_key_is_a_loud_bug(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=100)
    command = creditd.server_calls().get_account(ACCOUNT, creditd.clock.now_ms())
    function, keys, args = command
    with pytest.raises(redis.ResponseError, match="expected 2 keys, got 3"):
        creditd.redis.fcall(function, len(keys) + 1, *keys, keys[0], *args)
    function, keys, args = with_session(command, keys[0].replace(":acct:", ":portal_session:") + "/nope")
    code, message, _ = creditd.redis.fcall(function, len(keys), *keys, *args)
    assert message == b"session_token: signed out or expired; sign in again"
