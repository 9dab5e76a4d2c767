"""The portal's sign-in takes numbers as people type them (creditd/phone_numbers.py, the shipped
config's region TH): 081-919-0021, 0819190022, +66 81 919 0023 and 66819190024 each sign in to the
account 6681919002x over HTTP against a real creditd server, the code reaching that account's SMS;
text that is no number is refused 400 in the browser's language, naming the field in its words,
and no code is sent."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from creditd.config.settings import Settings
from tests.harness import ServerAt
from tests.portal import last_code, running_portal, sms_notifier, texts_to
from tests.test_channels import http_server
from tests.test_portal import CSRF
from tests.test_rating import bangkok_ms

pytestmark = pytest.mark.asyncio
TYPED = {
    "081-919-0021": "66819190021",
    "0819190022": "66819190022",
    "+66 81 919 0023": "66819190023",
    "66819190024": "66819190024",
}


@pytest.fixture
def gateway() -> Iterator[object]:
    with http_server() as server:
        yield server


@pytest.mark.parametrize("typed", list(TYPED))
async def test_a_number_as_people_type_it_signs_in(
    typed: str, server_at: ServerAt, settings: Settings, gateway: object
) -> None:
    account = TYPED[typed]
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd, running_portal(creditd) as url:
        notifier = sms_notifier(creditd, gateway, settings)
        await creditd.create_account(account, balance=5_000)
        async with httpx.AsyncClient(base_url=url) as browser:
            page = await browser.get("/sign-in")
            sent = await browser.post("/sign-in", data={"phone": typed, "csrf": CSRF.findall(page.text)[0]})
            assert sent.status_code == 200, sent.text
            assert f'name="phone" value="{account}"' in sent.text
            await notifier.pass_once()
            code = last_code(gateway, account)
            form = {"phone": account, "code": code, "csrf": CSRF.findall(sent.text)[0]}
            done = await browser.post("/sign-in/code", data=form)
            assert done.status_code == 303 and done.headers["location"] == "/"
            overview = await browser.get("/")
            assert overview.status_code == 200 and "฿50.00" in overview.text


async def test_text_that_is_no_number_is_refused_in_the_visitors_words(
    server_at: ServerAt, settings: Settings, gateway: object
) -> None:
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd, running_portal(creditd) as url:
        notifier = sms_notifier(creditd, gateway, settings)
        await creditd.create_account("66819190025", balance=5_000)
        async with httpx.AsyncClient(base_url=url, headers={"Accept-Language": "th"}) as browser:
            for typed in ("08l-919-0025", "0819190025x", "+", "081 919 0025 ext"):
                page = await browser.get("/sign-in")
                refused = await browser.post("/sign-in", data={"phone": typed, "csrf": CSRF.findall(page.text)[0]})
                assert refused.status_code == 400, typed
                assert "กรุณาตรวจสอบข้อมูลที่กรอก (หมายเลขโทรศัพท์ของท่าน)" in refused.text
                assert not re.search(r"\bphone\b", refused.text.split("<main>")[1])
            await notifier.pass_once()
            assert texts_to(gateway, "66819190025") == []
