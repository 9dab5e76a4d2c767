"""A running portal for the tests: the Starlette application served by uvicorn on a free loopback
port in the test's own event loop, talking gRPC to the test's creditd server, with the shipped
config's number region and display names; stopped on exit. Also
the notifier that delivers the sign-in codes by SMS to a Kannel-form HTTP endpoint, and a helper
that reads the latest code sent to a number."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlparse

import grpc
import msgspec
import uvicorn

from creditd.core.vouchers import code_hash, new_code
from creditd.devtools.ports import free_port
from creditd.notifier.service import Notifier
from creditd.portal.app import create_app
from creditd.portal.names import load_names
from creditd.resources import default_config_path
from creditd.settings import PortalSettings, Settings, SmsChannelSettings, load_settings
from creditd.store.calls import Calls
from creditd.store.codes import Code
from tests.harness import Harness


@contextlib.asynccontextmanager
async def running_portal(creditd: Harness, **options: object) -> AsyncIterator[str]:
    settings = PortalSettings(server=f"127.0.0.1:{creditd.server.port}", csrf_secret="test-secret", **options)  # type: ignore[arg-type]
    shipped = default_config_path()
    region = load_settings(shipped).numbers.region
    names = load_names(shipped.parent / settings.names_dir)
    channel = grpc.aio.insecure_channel(settings.server)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, channel, region, names),
            host="127.0.0.1",
            port=port,
            lifespan="off",
            log_level="warning",
            proxy_headers=False,  # as creditd portal: the portal decides whom to believe (trusted_proxies)
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "the portal did not start"
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        await channel.close()


def sms_notifier(creditd: Harness, gateway: object, settings: Settings) -> Notifier:
    sms = SmsChannelSettings(url=f"http://127.0.0.1:{gateway.server_port}/cgi-bin/sendsms", sender="CREDITD")  # type: ignore[attr-defined]
    notifications = msgspec.structs.replace(
        settings.notifications, templates_dir=str(default_config_path().parent / "templates"), sms=sms
    )
    own = msgspec.structs.replace(creditd.settings, notifications=notifications)
    return Notifier(creditd.server.redis, own, creditd.clock, "notify-portal")


def texts_to(gateway: object, number: str) -> list[str]:
    found = []
    for _, path, _, _ in gateway.seen:  # type: ignore[attr-defined]
        query = parse_qs(urlparse(path).query)
        if query["to"] == [number]:
            found.append(query["text"][0])
    return found


def last_code(gateway: object, number: str) -> str:
    return re.findall(r"\b(\d{6})\b", texts_to(gateway, number)[-1])[0]


def create_voucher(creditd: Harness, amount: int) -> str:
    code = new_code()
    now_ms = creditd.clock.now_ms()
    command = Calls(256).create_voucher(code_hash(code), amount, "THB", now_ms + 86_400_000, "test", now_ms, "tester")
    function, keys, args = command
    assert creditd.redis.fcall(function, len(keys), *keys, *args)[0] == Code.SUCCESS
    return code
