"""Every word a subscriber sees is theirs: every page of the portal (sign-in, code, overview, usage,
history, bundles, confirmation, top-up, credit, statement, preferences, and the pages that tell a
purchase, a top-up, a loan, a saved form, a refused voucher, a wrong form, a broken form (403), an
unknown bundle and creditd being down (503)) is rendered in th, en, ru and zh over HTTP against a
real creditd server, for an account with every kind of history (tests/portal.py, lived_in_account).
The visible text (text nodes and the attributes a screen reader speaks) of each page must hold no
config id (bundles, destinations, plans, tariffs, loan offers, tiers, rating-group numbers), no
internal ledger kind (charge, topup, opening, status...; in English too) and, on a non-English
page, no Latin word but SMS, GB, MB, PDF, THB and the language selector's "English"; each page must
also show the display names the case calls for (so the check cannot pass on an empty page; the
statement names the destinations its charges went to), and history shows no ledger entry that
moves no money (status rows)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import msgspec
import pytest

from creditd.config.settings import Settings, load_settings
from creditd.devtools.ports import free_port
from creditd.display_names import load_names, missing
from creditd.portal.words import WORDS
from creditd.resources import default_config_path
from creditd.v1 import creditd_pb2 as pb
from tests.harness import Harness, ServerAt
from tests.portal import create_voucher, last_code, lived_in_account, running_portal, sms_notifier
from tests.test_channels import http_server
from tests.test_portal import CSRF
from tests.test_rating import bangkok_ms

ACCOUNT = "66819190031"
LANGUAGES = ("th", "en", "ru", "zh")
PAGES = ("/", "/usage", "/history", "/bundles", "/bundles/data_1gb", "/top-up", "/credit", "/statement", "/preferences")
BOUGHT = {"th": "data_1gb", "en": "sms_50", "ru": "data_day_2gb", "zh": "data_5gb"}
SPOKEN_ATTRIBUTES = ("aria-label", "title", "placeholder", "alt")
ALLOWED_LATIN = {"SMS", "GB", "MB", "PDF", "English", "THB"}
# Ledger kinds as creditd writes them (lowercase, whole words): on any page, English included, a kind is
# told in the subscriber's words ("Top-up", "Opening balance"), never by its internal name. Those that
# are also plain English (fee, loan, bonus, plan) are left out.
INTERNAL_WORDS = frozenset(
    [
        "adjustment",
        "allocation",
        "charge",
        "credit_limit",
        "group_created",
        "group_return",
        "group_transfer",
        "loan_recovery",
        "opening",
        "purchase",
        "rollover",
        "status",
        "topup",
    ]
)
NAMES = load_names(default_config_path().parent / "names")


@pytest.fixture
def gateway() -> Iterator[object]:
    with http_server() as server:
        yield server


class VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "title"):
            self.hidden += 1
        self.parts += [value or "" for name, value in attrs if name in SPOKEN_ATTRIBUTES]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "title"):
            self.hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def config_ids(settings: Settings) -> set[str]:
    ids = set(settings.destinations) | set(settings.plans)
    for plan in settings.plans.values():
        ids |= {bundle.bundle_id for bundle in plan.bundles} | {offer.offer_id for offer in plan.loan_offers}
        ids |= {tariff.name for tariff in plan.tariffs if "_" in tariff.name}
        ids |= {tier.name for tier in plan.credit_tiers}
    return ids


def faults(language: str, text: str, ids: set[str]) -> list[str]:
    words = re.findall(r"[A-Za-z0-9_]+", text)
    found = [f"config id {word!r}" for word in words if word in ids]
    found += [f"internal word {word!r}" for word in words if word in INTERNAL_WORDS]
    found += [f"rating group {group!r}" for group in re.findall(r"\(\d\)", text)]
    if language != "en":
        found += [f"Latin word {word!r}" for word in re.findall(r"[A-Za-z]{2,}", text) if word not in ALLOWED_LATIN]
    return found


async def sign_in_pages(browser: httpx.AsyncClient, language: str) -> dict[str, str]:
    """The sign-in pages in the browser's language: the form, the code page, a wrong code."""
    headers = {"Accept-Language": f"{language};q=0.9"}
    seen = {"sign-in": (await browser.get("/sign-in", headers=headers)).text}
    csrf = CSRF.findall(seen["sign-in"])[0]
    seen["code"] = (await browser.post("/sign-in", data={"phone": "081-919-0031", "csrf": csrf}, headers=headers)).text
    form = {"phone": ACCOUNT, "code": "000000", "csrf": CSRF.findall(seen["code"])[0]}
    seen["wrong code"] = (await browser.post("/sign-in/code", data=form, headers=headers)).text
    return seen


async def signed_in(url: str, notifier: object, gateway: object) -> str:
    """A session of the account (its cookie value)."""
    async with httpx.AsyncClient(base_url=url) as browser:
        page = await browser.get("/sign-in")
        sent = await browser.post("/sign-in", data={"phone": ACCOUNT, "csrf": CSRF.findall(page.text)[0]})
        await notifier.pass_once()  # type: ignore[attr-defined]
        form = {"phone": ACCOUNT, "code": last_code(gateway, ACCOUNT), "csrf": CSRF.findall(sent.text)[0]}
        assert (await browser.post("/sign-in/code", data=form)).status_code == 303
        return str(browser.cookies["creditd_session"])


async def pages_in(language: str, url: str, creditd: Harness, session: str) -> dict[str, str]:
    """Every page in `language`: the subscriber's preference for theirs, the browser's before sign-in."""
    preferences = pb.Preferences(language=language, channels=["sms"])
    await creditd.accounts.SetPreferences(pb.SetPreferencesRequest(account_id=ACCOUNT, preferences=preferences))
    async with httpx.AsyncClient(base_url=url) as stranger:
        seen = await sign_in_pages(stranger, language)
    cookies = {"creditd_session": session}
    async with httpx.AsyncClient(base_url=url, headers={"Accept-Language": "en"}, cookies=cookies) as browser:
        for path in PAGES:
            answer = await browser.get(path)
            assert answer.status_code == 200, (language, path)
            seen[path] = answer.text
            if path == "/history":
                moving = [entry for entry in await creditd.ledger(ACCOUNT) if entry.amount != 0]
                shown_rows = answer.text.count("<tr") - 1
                assert shown_rows == min(len(moving), 20) and len(moving) < 20, (language, shown_rows, len(moving))
        csrf = CSRF.findall(seen["/"])[0]
        voucher = create_voucher(creditd, 30_000)
        seen["topped up"] = (await browser.post("/top-up", data={"code": voucher, "csrf": csrf})).text
        bundle = BOUGHT[language]
        key = re.findall(r'name="key" value="([0-9a-f]+)"', (await browser.get(f"/bundles/{bundle}")).text)[0]
        seen["bought"] = (await browser.post(f"/bundles/{bundle}", data={"key": key, "csrf": csrf})).text
        seen["voucher used"] = (await browser.post("/top-up", data={"code": voucher, "csrf": csrf})).text
        seen["voucher wrong"] = (await browser.post("/top-up", data={"code": "1234", "csrf": csrf})).text
        key = re.findall(r'name="key" value="([0-9a-f]+)"', seen["/credit"])
        if key:
            seen["borrowed"] = (await browser.post("/credit/emergency_10", data={"key": key[0], "csrf": csrf})).text
        saved = {"language": language, "channels": "sms", "csrf": csrf, "quiet_from": "21:00", "quiet_to": "08:00"}
        seen["saved"] = (await browser.post("/preferences", data=saved)).text
        seen["bad time"] = (await browser.post("/preferences", data={**saved, "quiet_from": "x" * 9})).text
        seen["forbidden"] = (await browser.post("/preferences", data={**saved, "csrf": "0" * 64})).text
        seen["unknown bundle"] = (await browser.get("/bundles/no_such_bundle")).text
        seen["broken link"] = (await browser.get("/history?before=x")).text
    return seen


@pytest.mark.asyncio
async def test_every_page_speaks_the_subscribers_words(
    server_at: ServerAt, settings: Settings, gateway: object
) -> None:
    ids = config_ids(settings)
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd, running_portal(creditd) as url:
        notifier = sms_notifier(creditd, gateway, settings)
        await lived_in_account(creditd, ACCOUNT, notifier)
        async with running_portal(creditd, server=f"127.0.0.1:{free_port()}") as down:
            unavailable = {}
            for language in LANGUAGES:
                async with httpx.AsyncClient(base_url=down, headers={"Accept-Language": language}) as browser:
                    page = await browser.get("/sign-in")
                    sent = await browser.post("/sign-in", data={"phone": ACCOUNT, "csrf": CSRF.findall(page.text)[0]})
                    assert sent.status_code == 503, sent.text
                    assert WORDS[language]["unavailable"] in sent.text  # creditd down, told in the visitor's words
                    unavailable[language] = sent.text
        problems = []
        session = await signed_in(url, notifier, gateway)
        for language in LANGUAGES:
            seen = await pages_in(language, url, creditd, session)
            seen["unavailable"] = unavailable[language]
            names = NAMES[language]
            expected = {
                "/usage": [names.services["1"], names.services["2"], names.destinations["international"]],
                "/statement": [names.destinations["thailand"], names.destinations["international"]],
                "/history": [names.bundles["voice_100min"]],
                "/bundles": [names.bundles["data_day_2gb"]],
                "/": [names.bundles["voice_100min"]],
                "bought": [names.bundles[BOUGHT[language]]],
            }
            for page_name, html in seen.items():
                assert f'lang="{language}"' in html, (language, page_name)
                text = visible_text(html)
                problems += [f"{language} {page_name}: {fault}" for fault in faults(language, text, ids)]
                problems += [
                    f"{language} {page_name}: {name!r} not shown"
                    for name in expected.get(page_name, [])
                    if name not in text
                ]
        assert problems == [], "\n".join(problems)


def test_the_shipped_config_names_every_bundle_destination_and_service_in_every_language() -> None:
    shipped = load_settings(default_config_path())
    assert missing(shipped, NAMES) == []
    without_thai = {**NAMES, "th": msgspec.structs.replace(NAMES["th"], bundles={})}
    assert "th: bundles.data_1gb" in missing(shipped, without_thai)


def test_the_portal_refuses_to_start_with_a_config_id_unnamed(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(default_config_path().parent, config)
    thai = config / "names" / "th.toml"
    thai.write_text("\n".join(line for line in thai.read_text().splitlines() if not line.startswith("data_1gb ")))
    command = [
        sys.executable,
        "-m",
        "creditd",
        "portal",
        "--config",
        str(config / "creditd.toml"),
        "--listen",
        "127.0.0.1:0",
    ]
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=environment)
    assert done.returncode != 0 and "no display name for th: bundles.data_1gb" in done.stderr, done.stderr
