"""The portal's statement pages: /statement (?cycle=YYYYMMDD, one of the account's last cycles;
else the newest) and /statement.pdf, the same statement rendered by WeasyPrint; what they show is
worked out in statement.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from babel.dates import format_date
from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import Response

from creditd.display_names import LanguageNames
from creditd.portal import inputs, statement
from creditd.portal.languages import language_of
from creditd.portal.words import WORDS
from creditd.v1 import creditd_pb2 as pb


class Portal(Protocol):
    """What these pages use of the portal (app.Portal), which imports this module to route to them."""

    stub: Any
    environment: Environment
    pdf_renders: asyncio.Semaphore

    async def card(self, request: Request) -> pb.Account: ...
    def token(self, request: Request) -> str: ...
    async def call(self, method: Callable[..., Awaitable[Any]], message: Any) -> Any: ...
    def names_in(self, language: str) -> LanguageNames: ...
    def page(self, request: Request, name: str, language: str, status_code: int = 200, **context: Any) -> Response: ...


# Statements rendered as PDF at once (WeasyPrint takes a core for a moment); more wait their turn.
MAX_PDF_RENDERS = 2


async def statement_view(
    portal: Portal, request: Request
) -> tuple[statement.StatementView, pb.Account, str, list[tuple[str, str]]]:
    """The statement of the cycle asked for (?cycle=YYYYMMDD, one of the account's last cycles),
    else of the newest; with the cycles to choose from."""
    card = await portal.card(request)
    token, language = portal.token(request), language_of(request, card)

    async def page_of(before_seq: int) -> list[pb.LedgerEntry]:
        page = pb.ListMyLedgerRequest(session_token=token, limit=statement.LEDGER_PAGE, before_seq=before_seq)
        return list((await portal.call(portal.stub.ListMyLedger, page)).entries)

    newest = await page_of(0)
    now_ms = int(time.time() * 1000)
    starts = statement.cycles(card, max([now_ms] + [entry.time_ms for entry in newest[:1]]))
    asked = inputs.text(request.query_params.get("cycle", ""), "cycle", 8)
    chosen = next((start for start in starts if start.strftime("%Y%m%d") == asked), starts[0])
    end = statement.months_before(chosen, -1)
    entries = await statement.entries_between(page_of, int(chosen.timestamp() * 1000), int(end.timestamp() * 1000))
    usage = await portal.call(portal.stub.GetMyUsage, pb.SessionRequest(session_token=token))
    view = statement.statement(card, chosen, entries, usage, language, portal.names_in(language))
    choices = [(start.strftime("%Y%m%d"), format_date(start.date(), "MMMM y", locale=language)) for start in starts]
    return view, card, language, choices


async def page(portal: Portal, request: Request) -> Response:
    view, _, language, choices = await statement_view(portal, request)
    return portal.page(request, "statement.html", language, view=view, cycles=choices)


async def pdf(portal: Portal, request: Request) -> Response:
    view, card, language, _ = await statement_view(portal, request)
    html = portal.environment.get_template("statement_document.html").render(
        words=WORDS[language], language=language, view=view, account=card.account_id
    )
    async with portal.pdf_renders:
        document = await asyncio.to_thread(pdf_of, html)
    disposition = f'attachment; filename="statement-{view.cycle}.pdf"'
    return Response(document, media_type="application/pdf", headers={"Content-Disposition": disposition})


def pdf_of(html: str) -> bytes:
    import weasyprint  # type: ignore[import-untyped]  # heavy: loaded with the first PDF asked for

    document: bytes = weasyprint.HTML(string=html).write_pdf()
    return document
