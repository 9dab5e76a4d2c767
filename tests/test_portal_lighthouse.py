"""Lighthouse (npm, pinned 12.2.3, run on Node 20 against Debian's Chromium; .ci/run installs it into
.ci/lighthouse) scores the portal's pages as a phone sees them (its mobile form factor and simulated
throttling): sign-in, overview, usage, history and statement of an account with a month's kinds of
history, signed in by its session cookie. Each page must score at least 95 for accessibility and
best practices and 90 for performance. The scores are printed (docs/portal.md)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from creditd.config.settings import Settings
from tests.harness import ServerAt
from tests.portal import last_code, lived_in_account, running_portal, sms_notifier
from tests.test_channels import http_server
from tests.test_portal import CSRF
from tests.test_rating import bangkok_ms

# alone: its performance score falls with another worker's test beside it (tests/conftest.py)
pytestmark = [pytest.mark.asyncio, pytest.mark.alone]
ACCOUNT = "66819190061"
LIGHTHOUSE = Path(__file__).resolve().parent.parent / ".ci" / "lighthouse" / "node_modules" / ".bin" / "lighthouse"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PAGES = ("/sign-in", "/", "/usage", "/history", "/statement")
MINIMUM = {"accessibility": 0.95, "best-practices": 0.95, "performance": 0.90}
RUN_TIMEOUT_S = 120

if not (LIGHTHOUSE.exists() and Path(CHROMIUM).exists()):
    pytest.skip(
        f"SKIPPED LOUDLY: Lighthouse ({LIGHTHOUSE}) or Chromium ({CHROMIUM}) is not installed; "
        "`.ci/run` installs both (npm lighthouse@12.2.3, Debian chromium)",
        allow_module_level=True,
    )


@pytest.fixture
def gateway() -> Iterator[object]:
    with http_server() as server:
        yield server


def scores(url: str, session: str) -> dict[str, float]:
    command = [
        str(LIGHTHOUSE),
        url,
        "--quiet",
        "--output=json",
        "--output-path=stdout",
        "--only-categories=performance,accessibility,best-practices",
        "--form-factor=mobile",
        "--chrome-flags=--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage",
        "--extra-headers=" + json.dumps({"Cookie": f"creditd_session={session}"}),
    ]
    environment = {**os.environ, "CHROME_PATH": CHROMIUM}
    done = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=environment)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    return {name: category["score"] for name, category in report["categories"].items()}


async def test_lighthouse_scores_every_page_high_on_a_phone(
    server_at: ServerAt, settings: Settings, gateway: object
) -> None:
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd, running_portal(creditd) as url:
        notifier = sms_notifier(creditd, gateway, settings)
        await lived_in_account(creditd, ACCOUNT, notifier)
        async with httpx.AsyncClient(base_url=url) as browser:
            page = await browser.get("/sign-in")
            sent = await browser.post("/sign-in", data={"phone": ACCOUNT, "csrf": CSRF.findall(page.text)[0]})
            await notifier.pass_once()
            form = {"phone": ACCOUNT, "code": last_code(gateway, ACCOUNT), "csrf": CSRF.findall(sent.text)[0]}
            assert (await browser.post("/sign-in/code", data=form)).status_code == 303
            session = str(browser.cookies["creditd_session"])
        low = []
        for path in PAGES:
            found = await asyncio.to_thread(scores, url + path, session)
            print(path, found)
            low += [f"{path} {name} {found[name]} < {least}" for name, least in MINIMUM.items() if found[name] < least]
        assert low == [], "\n".join(low)
