"""The portal against a hostile internet (issue #37), over HTTP against the real application served by
uvicorn and a real creditd: asking a sign-in code gets one answer, byte for byte but the number,
whether the number is ours, unknown, terminated or out of codes (no enumeration); cookies are Secure
and HSTS is sent because the configured public URL is https, whatever the Host header says (nginx
sends Host: 127.0.0.1), and neither without it; a portal listening off loopback without an https
public URL does not start; every answer (sign-in page, redirect, 404, each account page of a
signed-in subscriber) carries a CSP without script and with frame-ancestors 'none', nosniff,
X-Frame-Options, Referrer-Policy and Cache-Control: no-store; Redis out of memory under a signed-in
subscriber's save is 429 in the subscriber's words, and none of Redis' or creditd's text reaches
the page (on b7c6e5e: 400 with "redis: out of memory (maxmemory reached; noeviction ...)")."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import httpx
import pytest

from creditd.config.fronts import PortalSettings
from creditd.config.settings import Settings
from creditd.errors import ConfigError
from creditd.portal.app import create_app
from creditd.store.embedded import EmbeddedRedis
from creditd.v1 import creditd_pb2 as pb
from tests.harness import FrozenClock, ServerAt, library_client, started_server
from tests.portal import running_portal, sms_notifier
from tests.test_channels import http_server
from tests.test_portal import CSRF, sign_in
from tests.test_rating import bangkok_ms

pytestmark = pytest.mark.asyncio
OURS, TERMINATED, RATIONED, UNKNOWN = "66816160001", "66816160002", "66816160003", "66816169999"


async def test_asking_a_code_tells_nothing_about_the_number(server_at: ServerAt, settings: Settings) -> None:
    async with (
        server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd,
        running_portal(creditd) as url,
    ):
        for number in (OURS, TERMINATED, RATIONED):
            await creditd.create_account(number, balance=100)
        terminate = pb.SetStatusRequest(account_id=TERMINATED, status=pb.TERMINATED, reason="ADMIN")
        await creditd.accounts.SetStatus(terminate)
        async with httpx.AsyncClient(base_url=url) as browser:
            csrf = CSRF.findall((await browser.get("/sign-in")).text)[0]
            for _ in range(settings.limits.max_sign_in_codes):
                assert (await browser.post("/sign-in", data={"phone": RATIONED, "csrf": csrf})).status_code == 200
            answers = {}
            for number in (OURS, TERMINATED, RATIONED, UNKNOWN):
                answer = await browser.post("/sign-in", data={"phone": number, "csrf": csrf})
                answers[number] = (answer.status_code, re.sub(r"\b\d{11}\b", "N", answer.text))
            assert len(set(answers.values())) == 1, answers
            assert answers[OURS][0] == 200 and "If N is one of our numbers" in answers[OURS][1]


async def test_cookies_and_hsts_follow_the_public_url_not_the_host(server_at: ServerAt) -> None:
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
        async with (
            running_portal(creditd, public_url="https://my.example.test") as url,
            httpx.AsyncClient(base_url=url) as browser,
        ):
            page = await browser.get("/sign-in", headers={"Host": "127.0.0.1"})
            assert "secure" in page.headers["set-cookie"].lower()
            assert page.headers["strict-transport-security"].startswith("max-age=31536000")
        # development: plain http on loopback
        async with running_portal(creditd) as url, httpx.AsyncClient(base_url=url) as browser:
            page = await browser.get("/sign-in", headers={"Host": "portal.example.test"})
            assert "secure" not in page.headers["set-cookie"].lower()
            assert "strict-transport-security" not in page.headers


async def test_a_portal_off_loopback_needs_an_https_public_url() -> None:
    channel = grpc.aio.insecure_channel("127.0.0.1:1")
    for listen, public_url in (("0.0.0.0:8080", ""), ("10.1.2.3:8080", "http://my.example.test")):
        with pytest.raises(ConfigError, match="portal.public_url"):
            create_app(PortalSettings(listen=listen, public_url=public_url, csrf_secret="x"), channel)
    create_app(PortalSettings(listen="0.0.0.0:8080", public_url="https://my.example.test", csrf_secret="x"), channel)


async def test_every_answer_carries_the_security_headers(server_at: ServerAt, settings: Settings) -> None:
    with http_server() as gateway:
        async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd, running_portal(creditd) as url:
            notifier = sms_notifier(creditd, gateway, settings)
            await creditd.create_account(OURS, balance=10_000)
            async with httpx.AsyncClient(base_url=url) as browser:
                answers = [await browser.get(path) for path in ("/sign-in", "/", "/no-such-page")]
                await sign_in(browser, creditd, notifier, gateway, OURS)
                for path in ("/", "/usage", "/history", "/bundles", "/top-up", "/credit", "/preferences"):
                    answers.append(await browser.get(path))
                    assert answers[-1].status_code == 200, path
        for answer in answers:
            headers = answer.headers
            policy = headers["content-security-policy"]
            assert "script-src 'none'" in policy and "frame-ancestors 'none'" in policy, answer.url
            assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
            assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
            assert headers["referrer-policy"] == "no-referrer" and headers["cache-control"] == "no-store"


async def test_redis_out_of_memory_is_told_in_the_subscribers_words(tmp_path: Path, settings: Settings) -> None:
    with (
        http_server() as gateway,
        EmbeddedRedis(tmp_path / "data") as embedded,
        library_client(embedded.url, settings) as client,
    ):
        async with (
            started_server(settings, embedded.url, client, FrozenClock(bangkok_ms("2027-03-10T12:00:00"))) as creditd,
            running_portal(creditd) as url,
            httpx.AsyncClient(base_url=url) as browser,
        ):
            await creditd.create_account(OURS, balance=10_000)
            await sign_in(browser, creditd, sms_notifier(creditd, gateway, settings), gateway, OURS)
            csrf = CSRF.findall((await browser.get("/preferences")).text)[0]
            # below what is used: every write is refused OOM (noeviction), reads still served
            client.config_set("maxmemory", int(client.info("memory")["used_memory"]) // 2)
            saved = await browser.post("/preferences", data={"language": "en", "csrf": csrf})
            client.config_set("maxmemory", 0)
        assert saved.status_code == 429 and "The service is busy just now" in saved.text
        assert "memory" not in saved.text and "redis" not in saved.text.lower()
