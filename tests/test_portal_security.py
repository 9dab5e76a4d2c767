"""The portal against a hostile internet (issue #37), over HTTP against the real application served by
uvicorn and a real creditd: asking a sign-in code gets one answer, byte for byte but the number,
whether the number is ours, unknown, terminated or out of codes (no enumeration)."""

from __future__ import annotations

import re

import httpx
import pytest

from creditd.settings import Settings
from creditd.v1 import creditd_pb2 as pb
from tests.harness import ServerAt
from tests.portal import running_portal
from tests.test_portal import CSRF
from tests.test_rating import bangkok_ms

pytestmark = pytest.mark.asyncio
OURS, TERMINATED, RATIONED, UNKNOWN = "66816160001", "66816160002", "66816160003", "66816169999"


async def test_asking_a_code_tells_nothing_about_the_number(server_at: ServerAt, settings: Settings) -> None:
    async with (
        server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd,
        running_portal(creditd, max_codes_per_address=100) as url,
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
