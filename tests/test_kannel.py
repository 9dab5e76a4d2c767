"""SMS through a real Kannel (bearerbox, smsbox, and the fakesmsc test SMSC; tests/kannel.py): the SMS
channel's sendsms request reaches the SMSC end with its text intact, Thai as UCS-2 and Latin as plain
text; and the notifier, end to end from a real creditd server's event to the SMSC, tells a low
balance in Thai to the subscriber's number."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import msgspec
import pytest

from creditd.config.fronts import SmsChannelSettings
from creditd.config.settings import Settings
from creditd.notifier.channels import SmsChannel
from creditd.notifier.service import Notifier
from creditd.notifier.templates import Notice
from creditd.resources import default_config_path
from creditd.v1 import creditd_pb2 as pb
from tests.harness import EVENT, SMS, ServerAt, charge_request
from tests.kannel import PASSWORD, USER, Delivered, Kannel, running_kannel
from tests.test_rating import bangkok_ms

pytestmark = pytest.mark.asyncio
SUBSCRIBER = "66815160000"
WAIT_S = 15.0


async def delivered(kannel: Kannel, receiver: str, count: int) -> list[Delivered]:
    deadline = time.monotonic() + WAIT_S
    while len(found := kannel.delivered(receiver)) < count:
        assert time.monotonic() < deadline, f"the SMSC got {len(found)} of {count} messages for {receiver}"
        await asyncio.sleep(0.1)
    return found


def sms_settings(kannel: Kannel) -> SmsChannelSettings:
    return SmsChannelSettings(url=kannel.sendsms_url, username=USER, password=PASSWORD, sender="TOPUP")


async def test_thai_and_latin_texts_arrive_at_the_smsc(tmp_path: Path) -> None:
    with running_kannel(tmp_path) as kannel:
        channel = SmsChannel(sms_settings(kannel))
        thai = "ยอดเงินคงเหลือ ฿15.50 เติมเงินได้ที่ https://topup.example.net/"
        await channel.send(SUBSCRIBER, Notice(subject="-", text=thai), "n-1")
        await channel.send(SUBSCRIBER, Notice(subject="-", text="Balance THB 15.50"), "n-2")
        got = await delivered(kannel, SUBSCRIBER, 2)
        assert (got[0].sender, got[0].coding, got[0].text) == ("TOPUP", "ucs-2", thai)
        assert (got[1].coding, got[1].text) == ("text", "Balance THB 15.50")


async def test_the_notifier_tells_a_low_balance_by_sms_in_thai(
    server_at: ServerAt, settings: Settings, tmp_path: Path
) -> None:
    with running_kannel(tmp_path) as kannel:
        async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
            notifications = msgspec.structs.replace(
                settings.notifications,
                templates_dir=str(default_config_path().parent / "templates"),
                sms=sms_settings(kannel),
            )
            own = msgspec.structs.replace(creditd.settings, notifications=notifications)
            notifier = Notifier(creditd.server.redis, own, creditd.clock, "notify-kannel")
            await creditd.create_account(SUBSCRIBER, balance=2_050)  # the plan's defaults: Thai, by SMS
            for n in range(2):
                await creditd.credit_control.Charge(charge_request(f"s{n}", EVENT, 0, SUBSCRIBER, [(SMS, 0, 0)]))
            assert (await creditd.get(SUBSCRIBER)).preferences.language == "th"
            await notifier.pass_once()
            got = await delivered(kannel, SUBSCRIBER, 1)
            # the balance the event left (the first SMS reached 20.00), the greeting without a name
            assert got[0].coding == "ucs-2" and "฿20.00" in got[0].text and got[0].text.startswith("เรียนลูกค้า")
            assert (await creditd.get(SUBSCRIBER)).status == pb.ACTIVE
