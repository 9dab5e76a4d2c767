"""The monthly statement (creditd/portal/statement.py) over HTTP against a real creditd server, for
an account with a month's kinds of history (tests/portal.py, lived_in_account): the figures the
page shows (opening balance, top-ups, charges, bundles, fees, other, closing balance), read back
from its HTML, equal the sums of the account's ledger entries of the cycle by kind, read with
Accounts.ListLedger; opening plus every movement is the closing balance, which is the account's
balance; the charges split by service and destination (by their Thai display names, never the config ids)
add up to the charges. The same statement as a PDF
(WeasyPrint) is a PDF with its fonts embedded, in Thai and in English."""

from __future__ import annotations

import contextlib
import re
import zlib
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from creditd.config.settings import Settings
from tests.harness import ServerAt
from tests.portal import last_code, lived_in_account, running_portal, sms_notifier
from tests.test_channels import http_server
from tests.test_portal import CSRF
from tests.test_rating import bangkok_ms

pytestmark = pytest.mark.asyncio
ACCOUNT = "66819190051"
THAI_FONTS = ("Loma", "Garuda", "Norasi", "Kinnari", "Sawasdee", "Umpush", "Waree", "Purisa", "Thai")
FIGURES = ("opening", "top-ups", "charges", "bundles", "fees", "other", "closing")


@pytest.fixture
def gateway() -> Iterator[object]:
    with http_server() as server:
        yield server


def minor_units(shown: str) -> int:
    """'-฿1,234.50' (en/th) -> -123450."""
    digits = re.sub(r"[^0-9.\-]", "", shown.replace("\u2212", "-"))
    return int(Decimal(digits) * 100)


def embedded_fonts(pdf: bytes) -> set[str]:
    """The names of the fonts a PDF embeds (a font file each), from its deflated streams."""
    parts = [pdf]
    for stream in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.DOTALL):
        with contextlib.suppress(zlib.error):
            parts.append(zlib.decompress(stream.group(1)))
    found = b"".join(parts)
    assert b"/FontFile" in found, "no embedded font file"
    return {name.decode() for name in re.findall(rb"/FontName\s*/([A-Za-z0-9+_-]+)", found)}


def figures(html: str) -> dict[str, int]:
    found = {}
    for name in FIGURES:
        shown = re.search(rf'id="{name}">(?:<strong>)?([^<]+)<', html)
        assert shown, name
        found[name] = minor_units(shown.group(1))
    return found


def charge_part(html: str, heading: str) -> str:
    return html.split(f"<h2>{heading}</h2>", 1)[1].split("</table>", 1)[0]


def service_costs(html: str, heading: str) -> list[int]:
    return [minor_units(amount) for amount in re.findall(r'class="number"[^>]*>([^<]+)<', charge_part(html, heading))]


def service_labels(html: str, heading: str) -> list[str]:
    return re.findall(r"<tr><td[^>]*>([^<]+)</td>", charge_part(html, heading))


async def test_the_statement_reconciles_with_the_ledger_and_comes_as_a_pdf(
    server_at: ServerAt, settings: Settings, gateway: object
) -> None:
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd, running_portal(creditd) as url:
        notifier = sms_notifier(creditd, gateway, settings)
        await lived_in_account(creditd, ACCOUNT, notifier)
        # A generous time-out: on a loaded machine a PDF once took longer than httpx's default 5 s, and
        # how fast the portal answers is loadtest's business, not this test's.
        async with httpx.AsyncClient(base_url=url, headers={"Accept-Language": "en"}, timeout=60) as browser:
            page = await browser.get("/sign-in")
            sent = await browser.post("/sign-in", data={"phone": ACCOUNT, "csrf": CSRF.findall(page.text)[0]})
            await notifier.pass_once()
            form = {"phone": ACCOUNT, "code": last_code(gateway, ACCOUNT), "csrf": CSRF.findall(sent.text)[0]}
            assert (await browser.post("/sign-in/code", data=form)).status_code == 303
            shown = await browser.get("/statement")
            assert shown.status_code == 200 and 'lang="th"' in shown.text
            pdf_thai = await browser.get("/statement.pdf")
        card = await creditd.get(ACCOUNT)
        ledger = await creditd.ledger(ACCOUNT)
        by_kind: dict[str, int] = {}
        for entry in ledger:  # all of this account's history is in the one cycle
            by_kind[entry.kind] = by_kind.get(entry.kind, 0) + entry.amount
        seen = figures(shown.text)
        assert seen == {
            "opening": 0,
            "top-ups": by_kind["topup"] + by_kind["opening"],
            "charges": by_kind["charge"],
            "bundles": by_kind["purchase"],
            "fees": by_kind.get("fee", 0),
            "other": sum(
                amount
                for kind, amount in by_kind.items()
                if kind not in {"topup", "opening", "charge", "purchase", "fee"}
            ),
            "closing": card.balance,
        }
        assert seen["top-ups"] == 30_100 and seen["charges"] < 0 and seen["bundles"] == -7_900
        assert seen["opening"] + sum(seen[name] for name in FIGURES[1:-1]) == seen["closing"]
        assert sum(service_costs(shown.text, "ค่าโทร ข้อความ และอินเทอร์เน็ต")) == seen["charges"]
        labels = service_labels(shown.text, "ค่าโทร ข้อความ และอินเทอร์เน็ต")  # by service and destination
        assert {"โทรออก · ในประเทศ", "โทรออก · ต่างประเทศ", "ข้อความ · ต่างประเทศ"} <= set(labels), labels
        assert not any(raw in label for label in labels for raw in ("thailand", "international")), labels
        assert pdf_thai.status_code == 200 and pdf_thai.headers["content-type"] == "application/pdf"
        assert pdf_thai.content.startswith(b"%PDF")
        thai_fonts = embedded_fonts(pdf_thai.content)
        assert any(font.endswith(THAI_FONTS) for font in thai_fonts), thai_fonts  # the Thai text has its font
