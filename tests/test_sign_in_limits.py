"""Sign-in limits that hold across processes and proxies (issue #37, findings 2 and 5), over HTTP against
the real portal and real creditd servers on one Redis:

- one address asking codes for three numbers gets its third refused 429, for an unknown number too,
  and an X-Forwarded-For it makes up changes nothing (the portal trusts no proxy by default; on
  b7c6e5e uvicorn took the header from 127.0.0.1 and 12 made-up addresses were never refused);
- behind a trusted proxy each forwarded client has its own budget, an IPv6 /64 is one client;
- two creditd servers (two portals) share the budget: it lives in Redis, not in a process;
- the global budget of failed sign-ins, spent from many addresses, stops even a right code from a
  fresh address (429), and the counters Redis keeps stay within the global budgets however many
  addresses ask;
- a signed-in subscriber's calls take their own budget: visitors with bogus cookies spending theirs
  from other addresses do not refuse the subscriber (on b7c6e5e one budget for the portal's
  certificate: 400 'caller: local is over 1 Accounts calls per second'), and the subscriber over a
  budget sees 429 in their words, never creditd's text.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest

from creditd.config.settings import Settings
from creditd.core.sign_in_limits import address_bucket
from creditd.store.connection import AnySyncRedis
from creditd.store.embedded import EmbeddedRedis
from tests.harness import FrozenClock, Harness, started_server
from tests.portal import last_code, running_portal, sms_notifier
from tests.test_channels import http_server
from tests.test_portal import CSRF, sign_in
from tests.test_rating import bangkok_ms

pytestmark = pytest.mark.asyncio
NUMBERS = ["66813130001", "66813130002", "66813130003"]
NOON = bangkok_ms("2027-03-10T12:00:00")


@contextlib.asynccontextmanager
async def server_with(
    settings: Settings, redis_server: EmbeddedRedis, redis_client: AnySyncRedis, **limits: object
) -> AsyncIterator[Harness]:
    own = msgspec.structs.replace(settings, limits=msgspec.structs.replace(settings.limits, **limits))
    async with started_server(own, redis_server.url, redis_client, FrozenClock(NOON)) as harness:
        yield harness


async def ask(browser: httpx.AsyncClient, number: str, forwarded: str = "") -> int:
    csrf = CSRF.findall((await browser.get("/sign-in")).text)[0]
    headers = {"x-forwarded-for": forwarded} if forwarded else {}
    return (await browser.post("/sign-in", data={"phone": number, "csrf": csrf}, headers=headers)).status_code


async def test_one_address_is_bounded_whatever_it_forwards(
    settings: Settings, redis_server: EmbeddedRedis, redis_client: AnySyncRedis
) -> None:
    async with server_with(settings, redis_server, redis_client, sign_in_codes_per_address=2) as creditd:
        for number in NUMBERS:
            await creditd.create_account(number, balance=100)
        async with running_portal(creditd) as url, httpx.AsyncClient(base_url=url) as browser:
            codes = [await ask(browser, number, forwarded=f"203.0.113.{i}") for i, number in enumerate(NUMBERS)]
            assert codes == [200, 200, 429]
            assert await ask(browser, "123") == 429  # counted before creditd looks at the number
            refused = await browser.post("/sign-in", data={"phone": NUMBERS[0], "csrf": "x"})
            assert refused.status_code == 403


async def test_behind_a_trusted_proxy_each_client_counts_and_a_64_is_one(
    settings: Settings, redis_server: EmbeddedRedis, redis_client: AnySyncRedis
) -> None:
    async with (
        server_with(settings, redis_server, redis_client, sign_in_codes_per_address=1) as creditd,
        running_portal(creditd, trusted_proxies=["127.0.0.0/8"]) as url,
        httpx.AsyncClient(base_url=url) as browser,
    ):
        assert await ask(browser, NUMBERS[0], "203.0.113.7") == 200
        assert await ask(browser, NUMBERS[0], "203.0.113.8") == 200
        assert await ask(browser, NUMBERS[0], "203.0.113.7") == 429
        # what the visitor wrote before the proxy's own entry is not believed: the proxy's is
        assert await ask(browser, NUMBERS[0], "198.51.100.1, 203.0.113.7") == 429
        assert await ask(browser, NUMBERS[0], "2001:db8:0:1::1") == 200
        assert await ask(browser, NUMBERS[0], "2001:db8:0:1::ffff") == 429  # the same /64
        assert await ask(browser, NUMBERS[0], "2001:db8:0:2::1") == 200
    assert address_bucket("::ffff:192.0.2.1") == "192.0.2.1" and address_bucket("junk") == "unknown"


async def test_two_servers_share_the_budget(
    settings: Settings, redis_server: EmbeddedRedis, redis_client: AnySyncRedis
) -> None:
    async with (
        server_with(settings, redis_server, redis_client, sign_in_codes_per_address=2) as first,
        server_with(settings, redis_server, redis_client, sign_in_codes_per_address=2) as second,
        running_portal(first) as first_url,
        running_portal(second) as second_url,
        httpx.AsyncClient(base_url=first_url) as one,
        httpx.AsyncClient(base_url=second_url) as other,
    ):
        assert [await ask(one, NUMBERS[0]), await ask(other, NUMBERS[1]), await ask(one, NUMBERS[2])] == [
            200,
            200,
            429,
        ]
        assert await ask(other, NUMBERS[2]) == 429


async def test_the_global_budget_of_failures_and_bounded_counters(
    settings: Settings, redis_server: EmbeddedRedis, redis_client: AnySyncRedis
) -> None:
    bounds = {"failed_sign_ins_global": 3, "sign_in_codes_global": 5, "sign_in_codes_per_address": 100}
    with http_server() as gateway:
        async with (
            server_with(settings, redis_server, redis_client, **bounds) as creditd,
            running_portal(creditd, trusted_proxies=["127.0.0.1"]) as url,
            httpx.AsyncClient(base_url=url) as browser,
        ):
            await creditd.create_account(NUMBERS[0], balance=100)
            csrf = CSRF.findall((await browser.get("/sign-in")).text)[0]
            for i in range(3):
                wrong = {"phone": NUMBERS[1], "code": "000000", "csrf": csrf}
                answer = await browser.post("/sign-in/code", data=wrong, headers={"x-forwarded-for": f"192.0.2.{i}"})
                assert answer.status_code == 400  # a wrong code, counted
            assert await ask(browser, NUMBERS[0], "198.51.100.9") == 200
            await sms_notifier(creditd, gateway, settings).pass_once()
            code = last_code(gateway, NUMBERS[0])
            right = {"phone": NUMBERS[0], "code": code, "csrf": csrf}
            refused = await browser.post("/sign-in/code", data=right, headers={"x-forwarded-for": "198.51.100.9"})
            assert refused.status_code == 429 and "The service is busy just now" in refused.text
            for i in range(50):  # fifty addresses ask: the global budget of codes (5, one spent) caps them
                await ask(browser, NUMBERS[0], f"10.0.{i}.1")
            counters = list(creditd.redis.scan_iter("cd:limit:*"))
            assert len(counters) <= 2 + 3 + 2 + 5, counters  # two totals, 3 failed and 5 code addresses


async def test_a_subscriber_has_a_budget_of_their_own(
    settings: Settings, redis_server: EmbeddedRedis, redis_client: AnySyncRedis
) -> None:
    own_limits = msgspec.structs.replace(settings.limits, accounts_calls_per_client_s=1, accounts_burst_per_client=3)
    own = msgspec.structs.replace(settings, limits=own_limits)
    with http_server() as gateway:
        async with (
            started_server(own, redis_server.url, redis_client, FrozenClock(NOON)) as creditd,
            running_portal(creditd, trusted_proxies=["127.0.0.1"]) as url,
            httpx.AsyncClient(base_url=url) as browser,
        ):
            await creditd.create_account(NUMBERS[0], balance=100)
            await sign_in(browser, creditd, sms_notifier(creditd, gateway, own), gateway, NUMBERS[0])
            async with httpx.AsyncClient(base_url=url, cookies={"creditd_session": "6681.bogus"}) as visitors:
                for i in range(10):
                    await visitors.get("/", headers={"x-forwarded-for": f"203.0.113.{i % 2}"})
            page = await browser.get("/")
            assert page.status_code == 200
            answers = [await browser.get("/") for _ in range(5)]
            over = [answer for answer in answers if answer.status_code == 429]
            assert over and all("The service is busy just now" in a.text and "caller" not in a.text for a in over)
