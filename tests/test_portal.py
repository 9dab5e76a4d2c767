"""The portal over HTTP (httpx against the real application served by uvicorn, talking gRPC to a real
creditd server; sign-in codes arrive by the notifier's SMS channel at a Kannel-form endpoint): the
sign-in flow sets an HttpOnly SameSite=Lax session cookie (not Secure on loopback); a form without
its CSRF token, or with another session's, is refused 403 and changes nothing; a session cookie
forged for another number, or replayed after sign-out, leads back to the sign-in page; the sign-in
page speaks the browser's language, the account pages the subscriber's (the limits on codes asked
from one address: tests/test_sign_in_limits.py); two browsers redeeming one voucher at the same
instant are paid once; a shared wallet's member sees how much of its balance came from the group."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import httpx
import pytest

from creditd.config.settings import Settings
from creditd.v1 import creditd_pb2 as pb
from tests.harness import Harness, ServerAt
from tests.portal import create_voucher, last_code, running_portal, sms_notifier
from tests.test_channels import http_server
from tests.test_rating import bangkok_ms

pytestmark = pytest.mark.asyncio
ACCOUNT, OTHER = "66819190001", "66819190002"
CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


@pytest.fixture
def gateway() -> Iterator[object]:
    with http_server() as server:
        yield server


async def sign_in(browser: httpx.AsyncClient, creditd: Harness, notifier: object, gateway: object, number: str) -> None:
    page = await browser.get("/sign-in")
    sent = await browser.post("/sign-in", data={"phone": number, "csrf": CSRF.findall(page.text)[0]})
    assert sent.status_code == 200, sent.text
    await notifier.pass_once()  # type: ignore[attr-defined]
    code = last_code(gateway, number)
    done = await browser.post("/sign-in/code", data={"phone": number, "code": code, "csrf": CSRF.findall(sent.text)[0]})
    assert done.status_code == 303 and done.headers["location"] == "/"


async def test_sign_in_cookies_csrf_and_forged_or_replayed_sessions(
    server_at: ServerAt, settings: Settings, gateway: object
) -> None:
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd, running_portal(creditd) as url:
        notifier = sms_notifier(creditd, gateway, settings)
        await creditd.create_account(ACCOUNT, balance=5_000)
        await creditd.create_account(OTHER, balance=9_000)
        async with httpx.AsyncClient(base_url=url) as browser:
            assert (await browser.get("/")).headers["location"] == "/sign-in"
            thai = await browser.get("/sign-in", headers={"Accept-Language": "de;q=1, th-TH;q=0.8, en;q=0.5"})
            assert 'lang="th"' in thai.text and "เข้าสู่ระบบ" in thai.text
            await sign_in(browser, creditd, notifier, gateway, ACCOUNT)
            cookie = next(c for c in browser.cookies.jar if c.name == "creditd_session")
            assert cookie.has_nonstandard_attr("HttpOnly") and not cookie.secure
            overview = await browser.get("/")
            assert "฿50.00" in overview.text and 'lang="th"' in overview.text  # the plan's language: th
            token = cookie.value
            # a form without its token, or with a token for another session: refused, nothing changed
            before = (await creditd.get(ACCOUNT)).preferences
            for csrf in ("", "0" * 64):
                refused = await browser.post("/preferences", data={"language": "en", "csrf": csrf})
                assert refused.status_code == 403
            assert (await creditd.get(ACCOUNT)).preferences == before
            # a cookie made up for another number reaches nothing
            forged = OTHER + token[len(ACCOUNT) :]
            async with httpx.AsyncClient(base_url=url, cookies={"creditd_session": forged}) as intruder:
                assert (await intruder.get("/")).headers["location"] == "/sign-in"
                assert (await intruder.get("/history")).headers["location"] == "/sign-in"
            csrf = CSRF.findall(overview.text)[0]
            assert (await browser.post("/sign-out", data={"csrf": csrf})).headers["location"] == "/sign-in"
            async with httpx.AsyncClient(base_url=url, cookies={"creditd_session": token}) as replay:
                assert (await replay.get("/")).headers["location"] == "/sign-in"


async def test_two_browsers_redeeming_one_voucher_are_paid_once(
    server_at: ServerAt, settings: Settings, gateway: object
) -> None:
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd, running_portal(creditd) as url:
        notifier = sms_notifier(creditd, gateway, settings)
        await creditd.create_account(ACCOUNT, balance=100)
        async with httpx.AsyncClient(base_url=url) as first, httpx.AsyncClient(base_url=url) as second:
            await sign_in(first, creditd, notifier, gateway, ACCOUNT)
            await sign_in(second, creditd, notifier, gateway, ACCOUNT)
            code = create_voucher(creditd, 10_000)
            forms = []
            for browser in (first, second):
                page = await browser.get("/top-up")
                forms.append((browser, CSRF.findall(page.text)[0]))
            answers = await asyncio.gather(
                *(browser.post("/top-up", data={"code": code, "csrf": csrf}) for browser, csrf in forms)
            )
            assert [answer.status_code for answer in answers] == [200, 200]
            assert (await creditd.get(ACCOUNT)).balance == 100 + 10_000
            top_ups = [entry for entry in await creditd.ledger(ACCOUNT) if entry.kind == "topup"]
            assert len(top_ups) == 1
            bad = await first.post("/top-up", data={"code": "1234", "csrf": forms[0][1]})
            assert bad.status_code == 400 and "รหัสบัตรเติมเงินใช้ไม่ได้" in bad.text  # in the subscriber's language


async def test_the_pages_of_a_signed_in_subscriber(server_at: ServerAt, settings: Settings, gateway: object) -> None:
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd, running_portal(creditd) as url:
        notifier = sms_notifier(creditd, gateway, settings)
        await creditd.create_account(ACCOUNT, balance=20_000)
        preferences = pb.Preferences(language="en")
        await creditd.accounts.SetPreferences(pb.SetPreferencesRequest(account_id=ACCOUNT, preferences=preferences))
        async with httpx.AsyncClient(base_url=url) as browser:
            await sign_in(browser, creditd, notifier, gateway, ACCOUNT)
            for path, text in (
                ("/", "Balance"),
                ("/usage", "Data per day"),
                ("/history", "Opening balance"),
                ("/bundles", "Day pass: internet 2 GB"),
                ("/top-up", "Voucher code"),
                ("/preferences", "Quiet hours"),
            ):
                page = await browser.get(path)
                assert page.status_code == 200 and text in page.text, path
            confirm = await browser.get("/bundles/sms_50")
            key = re.findall(r'name="key" value="([0-9a-f]+)"', confirm.text)[0]
            csrf = CSRF.findall(confirm.text)[0]
            bought = await asyncio.gather(
                *(browser.post("/bundles/sms_50", data={"key": key, "csrf": csrf}) for _ in range(2))
            )
            assert [b.status_code for b in bought] == [200, 200]  # a double click
            assert (await creditd.get(ACCOUNT)).balance == 20_000 - 1_900
            assert (await browser.get("/bundles/no_such")).status_code == 404


async def test_emergency_credit_page_lends_once_per_click(
    server_at: ServerAt, settings: Settings, gateway: object
) -> None:
    """The credit page lists what the subscriber may borrow; a double click on Borrow lends once, the
    page then says what is owed and offers nothing more; a form without its CSRF token lends nothing."""
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd, running_portal(creditd) as url:
        notifier = sms_notifier(creditd, gateway, settings)
        await creditd.create_account(ACCOUNT, balance=200)
        preferences = pb.Preferences(language="en")
        await creditd.accounts.SetPreferences(pb.SetPreferencesRequest(account_id=ACCOUNT, preferences=preferences))
        async with httpx.AsyncClient(base_url=url) as browser:
            await sign_in(browser, creditd, notifier, gateway, ACCOUNT)
            page = await browser.get("/credit")
            assert page.status_code == 200 and "Borrow THB10.00 now, repay THB11.00" in page.text
            assert "emergency_50" not in page.text  # silver and gold only
            key = re.findall(r'name="key" value="([0-9a-f]+)"', page.text)[0]
            forged = await browser.post("/credit/emergency_10", data={"key": key})
            assert forged.status_code == 403 and (await creditd.get(ACCOUNT)).balance == 200
            csrf = CSRF.findall(page.text)[0]
            clicks = await asyncio.gather(
                *(browser.post("/credit/emergency_10", data={"key": key, "csrf": csrf}) for _ in range(2))
            )
            assert [click.status_code for click in clicks] == [200, 200]
            assert "Done: THB10.00 lent. Balance: THB12.00." in clicks[0].text + clicks[1].text
            assert "You owe THB11.00" in clicks[0].text and "No emergency credit available now." in clicks[0].text
            card = await creditd.get(ACCOUNT)
            assert (card.balance, card.loan_outstanding) == (1200, 1100)
            creditd.assert_audit_clean()


async def test_a_group_member_sees_its_share_of_the_groups_money(
    server_at: ServerAt, settings: Settings, gateway: object
) -> None:
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd, running_portal(creditd) as url:
        notifier = sms_notifier(creditd, gateway, settings)
        await creditd.create_account(ACCOUNT, balance=500)
        await creditd.accounts.CreateGroup(
            pb.CreateGroupRequest(group_id="family", currency="THB", refill_amount=2_000)
        )
        await creditd.accounts.TopUpGroup(
            pb.TopUpGroupRequest(group_id="family", amount=5_000, channel="bank", idempotency_key="g1")
        )
        await creditd.accounts.SetGroupMember(pb.SetGroupMemberRequest(group_id="family", account_id=ACCOUNT))
        await creditd.server.sweeper.sweep_once()  # 500 is below the refill amount: 2 000 from the group
        async with httpx.AsyncClient(base_url=url) as browser:
            await sign_in(browser, creditd, notifier, gateway, ACCOUNT)
            overview = await browser.get("/")
            assert "กระเป๋าเงินร่วม family: ฿20.00 ในยอดเงินของคุณมาจากกลุ่ม" in overview.text
