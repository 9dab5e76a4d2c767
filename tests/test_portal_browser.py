"""The portal in a real browser: Debian's headless Chromium driven by Selenium (chromedriver), against
the portal served by uvicorn and a real creditd server, the sign-in code read from the SMS the
notifier sent to a Kannel-form endpoint. A subscriber whose line is barred for outgoing calls signs
in, sees the status and balance, tops up with a voucher (the status on the page turns active), finds
the day pass recommended after a day of data, buys a bundle with confirmation, sees it on the
overview, and signs out; the session cookie copied from before the sign-out leads back to the
sign-in page.

The layout at phone widths, accessibility and the screenshots in docs/screenshots: tests/test_portal_layout.py."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from creditd.config.settings import Settings
from tests.harness import DATA, EVENT, INITIAL, SMS, TERMINATE, VOICE, ServerAt, charge_request
from tests.portal import create_voucher, last_code, running_portal, sms_notifier
from tests.test_channels import http_server
from tests.test_rating import bangkok_ms

pytestmark = pytest.mark.asyncio
ACCOUNT = "66816160001"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WIDTHS = {"phone": (390, 844), "desktop": (1280, 900)}
WAIT_S = 15

if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip(
        f"SKIPPED LOUDLY: headless Chromium is not installed ({CHROMIUM}, {CHROMEDRIVER}); "
        "`.ci/run` installs Debian's chromium and chromium-driver",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402 - only once Chromium is known to be there
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--lang=en-US"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


class Pages:
    """The browser's steps, each run in a thread so that the event loop keeps serving creditd and the
    portal meanwhile."""

    def __init__(self, driver: webdriver.Chrome, url: str) -> None:
        self.driver, self.url = driver, url

    async def run(self, step: object, *arguments: object) -> object:
        return await asyncio.to_thread(step, *arguments)  # type: ignore[arg-type]

    def open(self, path: str) -> None:
        self.driver.get(self.url + path)

    def fill(self, field_id: str, text: str, button_id: str) -> None:
        field = self.driver.find_element(By.ID, field_id)
        field.clear()
        field.send_keys(text)
        self.click(button_id)

    def click(self, element_id: str) -> None:
        """Clicks, then waits until the page the click leads to has replaced this one (a click returns
        before the navigation it starts is done)."""
        page = self.driver.find_element(By.TAG_NAME, "html")
        self.driver.find_element(By.ID, element_id).click()

        def replaced(_: object) -> bool:
            try:
                page.tag_name  # noqa: B018 - asks the browser about the old page's root
            except WebDriverException:  # stale, or (Chromium, mid-navigation) no longer in any document
                return True
            return False

        WebDriverWait(self.driver, WAIT_S).until(replaced)
        WebDriverWait(self.driver, WAIT_S).until(
            lambda driver: driver.execute_script("return document.readyState") == "complete"
        )

    def text(self, element_id: str) -> str:
        return str(self.driver.find_element(By.ID, element_id).text)


async def test_a_barred_subscriber_signs_in_tops_up_buys_and_signs_out(
    server_at: ServerAt, settings: Settings, browser: webdriver.Chrome
) -> None:
    with http_server() as gateway:
        async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd, running_portal(creditd) as url:
            notifier = sms_notifier(creditd, gateway, settings)
            await creditd.create_account(ACCOUNT, balance=100)
            for n in range(2):  # two SMS at 50: nothing left, outgoing calls barred
                await creditd.credit_control.Charge(charge_request(f"sms{n}", EVENT, 0, ACCOUNT, [(SMS, 0, 0)]))
            pages = Pages(browser, url)
            await pages.run(pages.open, "/")
            assert browser.current_url.endswith("/sign-in")
            await pages.run(pages.fill, "phone", ACCOUNT, "send-code")
            await notifier.pass_once()
            await pages.run(pages.fill, "code", last_code(gateway, ACCOUNT), "check-code")
            status = await pages.run(pages.text, "status")
            assert "ระงับการโทรออก" in str(status)  # the plan's language, Thai: outgoing calls barred
            assert await pages.run(pages.text, "balance") == "฿0.00"

            await pages.run(pages.open, "/top-up")
            await pages.run(pages.fill, "code", create_voucher(creditd, 15_000), "redeem")
            assert "฿150.00" in str(await pages.run(pages.text, "message"))
            assert await pages.run(pages.text, "status") == "ใช้งานได้"  # active

            # a day of use: 300 MB of data and a call, folded into the usage summary by the notifier
            await creditd.charge("d1", INITIAL, 0, ACCOUNT, [(DATA, 300_000_000, 0)])
            await creditd.charge("d1", TERMINATE, 1, ACCOUNT, [(DATA, 0, 300_000_000)])
            await creditd.charge("v1", INITIAL, 0, ACCOUNT, [(VOICE, 60, 0)])
            await creditd.charge("v1", TERMINATE, 1, ACCOUNT, [(VOICE, 0, 45)])
            await notifier.pass_once()
            await pages.run(pages.open, "/bundles")
            recommended = str(await pages.run(pages.text, "bundle-data_day_2gb"))
            assert recommended.startswith("แนะนำสำหรับท่าน")  # recommended: a 29-baht day pass covers the month
            await pages.run(pages.click, "buy-sms_50")
            await pages.run(pages.click, "confirm")
            assert "ข้อความ 50 ข้อความ" in str(await pages.run(pages.text, "message"))  # its Thai name
            await pages.run(pages.open, "/")
            balance = (await creditd.get(ACCOUNT)).balance
            assert await pages.run(pages.text, "balance") == f"฿{balance / 100:,.2f}"
            assert "ข้อความ 50 ข้อความ" in browser.page_source
            for path in ("/usage", "/history", "/preferences"):
                await pages.run(pages.open, path)
                assert browser.current_url.endswith(path)

            session = browser.get_cookie("creditd_session")
            assert session is not None and session["httpOnly"] and session["sameSite"] == "Lax"
            await pages.run(pages.click, "sign-out")
            assert browser.current_url.endswith("/sign-in")
            browser.add_cookie({"name": "creditd_session", "value": session["value"], "path": "/"})
            await pages.run(pages.open, "/")
            assert browser.current_url.endswith("/sign-in")  # the old cookie opens nothing
            top_ups = [entry.amount for entry in await creditd.ledger(ACCOUNT) if entry.kind == "topup"]
            assert top_ups == [15_000]
