"""No input makes the portal answer 5xx (issue #37, finding 6), over HTTP against the real application and
a real creditd: `/history?before=%C2%B2` (a digit str.isdigit accepts and int() does not) and a
`before` past uint64 are 400 in the subscriber's words (both were 500 on b7c6e5e); then a hypothesis
property test drives every route of the application (read from its route table, so a new route is
driven too) with generated path parameters, query strings, form fields, cookies and Accept-Language,
signed in or not, with the right CSRF token or not, and fails on any status of 500 or more. The
examples are derandomized, so a run is the same every time; the HTTP client runs in a thread so that
the portal and creditd keep serving in the test's event loop."""

from __future__ import annotations

import asyncio
import string
from typing import Any
from urllib.parse import quote

import grpc
import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from starlette.routing import Route

from creditd.config.fronts import PortalSettings
from creditd.config.settings import Settings
from creditd.portal.app import create_app
from tests.harness import ServerAt
from tests.portal import running_portal, sms_notifier
from tests.test_channels import http_server
from tests.test_portal import CSRF, sign_in
from tests.test_rating import bangkok_ms

pytestmark = pytest.mark.asyncio
ACCOUNT = "66814140001"
EXAMPLES_PER_ROUTE = 40
FIELDS = ["phone", "code", "csrf", "key", "language", "channels", "marketing", "quiet_from", "quiet_to", "x"]
TRICKY = [
    "²",
    "99999999999999999999999",
    "18446744073709551616",
    "9007199254740992",
    "-1",
    "0",
    "1e3",
    " 1",
    "\x00",
    "%C2%B2",
    "١٢٣",
    "66814140001",
    "123456",
    "en",
    "sms",
    "22:00",
    "sms_50",
    "emergency_10",
    "4111 1111 1111 1111",
    "a" * 300,
]
values = st.one_of(st.sampled_from(TRICKY), st.text(max_size=40), st.from_regex(r"[0-9]{1,25}", fullmatch=True))
header_text = st.text(alphabet=string.printable.strip("\r\n\x0b\x0c"), max_size=60).map(str.strip)
cookie_text = st.text(alphabet=string.ascii_letters + string.digits + "._-~", max_size=140)


def portal_routes() -> list[tuple[str, str]]:
    channel = grpc.aio.insecure_channel("127.0.0.1:1")
    app = create_app(PortalSettings(csrf_secret="x"), channel)
    routes = []
    for route in app.routes:
        assert isinstance(route, Route)
        routes += [(method, route.path) for method in sorted(route.methods or ()) if method != "HEAD"]
    return routes


def drive(url: str, session: str, csrf: str, route: tuple[str, str]) -> None:
    client = httpx.Client(base_url=url, timeout=30)

    @hypothesis_settings(
        max_examples=EXAMPLES_PER_ROUTE,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        path_value=values,
        query=st.dictionaries(st.sampled_from(["before", "cycle", "x"]), values, max_size=2),
        form=st.dictionaries(st.sampled_from(FIELDS), values, max_size=6),
        signed_in=st.booleans(),
        right_csrf=st.booleans(),
        bogus_cookie=st.one_of(st.none(), cookie_text),
        language=header_text,
    )
    def request_is_answered(
        path_value: str,
        query: dict[str, str],
        form: dict[str, str],
        signed_in: bool,
        right_csrf: bool,
        bogus_cookie: str | None,
        language: str,
    ) -> None:
        method, template = route
        path = template.replace("{bundle_id}", quote(path_value, safe="")).replace(
            "{offer_id}", quote(path_value, safe="")
        )
        cookies = {"creditd_session": session} if signed_in else {}
        if bogus_cookie is not None and not signed_in:
            cookies["creditd_session"] = bogus_cookie
        if right_csrf and signed_in and template != "/sign-out":  # signing out would end the session
            form = {**form, "csrf": csrf}
        options: dict[str, Any] = {"params": query, "headers": {"accept-language": language}}
        client.cookies.clear()
        for name, value in cookies.items():
            client.cookies.set(name, value)
        if method == "POST":
            options["data"] = form
        answer = client.request(method, path, **options)
        assert answer.status_code < 500, (method, path, query, form, cookies, answer.status_code, answer.text[:300])

    try:
        request_is_answered()
    finally:
        client.close()


async def test_no_input_makes_the_portal_fail(server_at: ServerAt, settings: Settings) -> None:
    with http_server() as gateway:
        async with (
            server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd,
            running_portal(creditd) as url,
        ):
            notifier = sms_notifier(creditd, gateway, settings)
            await creditd.create_account(ACCOUNT, balance=100_000)
            async with httpx.AsyncClient(base_url=url) as browser:
                await sign_in(browser, creditd, notifier, gateway, ACCOUNT)
                session = next(c.value for c in browser.cookies.jar if c.name == "creditd_session")
                for before in ("%C2%B2", "99999999999999999999999"):
                    answer = await browser.get(f"/history?before={before}")
                    assert answer.status_code == 400 and "ข้อมูลในแบบฟอร์มไม่ถูกต้อง" in answer.text  # the subscriber's Thai
                csrf = CSRF.findall((await browser.get("/")).text)[0]
            routes = portal_routes()
            assert len(routes) == 19  # with /statement, /statement.pdf and /favicon.ico
            for route in routes:
                await asyncio.to_thread(drive, url, session, csrf, route)
