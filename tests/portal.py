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

from creditd.config.fronts import PortalSettings, SmsChannelSettings
from creditd.config.settings import Settings, load_settings
from creditd.core.vouchers import code_hash, new_code
from creditd.devtools.ports import free_port
from creditd.display_names import load_names
from creditd.notifier.service import Notifier
from creditd.portal.app import create_app
from creditd.resources import default_config_path
from creditd.store.calls import Calls
from creditd.store.codes import Code
from creditd.v1 import creditd_pb2 as pb
from tests.harness import DATA, EVENT, INITIAL, SMS, TERMINATE, VOICE, Harness, charge_request


@contextlib.asynccontextmanager
async def running_portal(creditd: Harness, **options: object) -> AsyncIterator[str]:
    given = {"server": f"127.0.0.1:{creditd.server.port}", "csrf_secret": "test-secret", **options}
    settings = PortalSettings(**given)  # type: ignore[arg-type]
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


INTERNATIONAL_NUMBER = "442079460000"


async def lived_in_account(creditd: Harness, account: str, notifier: Notifier) -> None:
    """An account with a month's kinds of history: opened with ฿1, two SMS that leave nothing (its
    line barred for outgoing calls: a status row), a bank top-up (resumed: another), 300 MB of data,
    calls at home and abroad, an SMS abroad, a bundle bought; the usage summary folded by the notifier."""
    await creditd.create_account(account, balance=100)
    for n in range(2):
        await creditd.credit_control.Charge(charge_request(f"{account}-sms{n}", EVENT, 0, account, [(SMS, 0, 0)]))
    await creditd.top_up(account, 30_000, f"{account}-bank")
    await creditd.charge(f"{account}-d", INITIAL, 0, account, [(DATA, 300_000_000, 0)])
    await creditd.charge(f"{account}-d", TERMINATE, 1, account, [(DATA, 0, 300_000_000)])
    for name, number in (("home", "66812345678"), ("abroad", INTERNATIONAL_NUMBER)):
        await creditd.charge(f"{account}-v{name}", INITIAL, 0, account, [(VOICE, 120, 0)], called_party=number)
        await creditd.charge(f"{account}-v{name}", TERMINATE, 1, account, [(VOICE, 0, 95)], called_party=number)
    sms_abroad = charge_request(f"{account}-smsx", EVENT, 0, account, [(SMS, 0, 0)], called_party=INTERNATIONAL_NUMBER)
    await creditd.credit_control.Charge(sms_abroad)
    purchase = pb.PurchaseBundleRequest(account_id=account, bundle_id="voice_100min", idempotency_key=f"{account}-b")
    await creditd.accounts.PurchaseBundle(purchase)
    await notifier.pass_once()
