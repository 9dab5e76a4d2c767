"""Top-up by PromptPay QR in the portal. The subscriber types an amount on the top-up page (POST
/top-up/promptpay); the payments front creates a payment intent for their account (payments_front.py)
and /top-up/promptpay/<reference> shows its Thai QR (inline SVG, segno) with the amount, the
reference and until when it can be paid, in the subscriber's language. The page's one script
(/promptpay.js, allowed on that page only by its Content-Security-Policy; the rest of the portal runs
none) asks /top-up/promptpay/<reference>/state, a small JSON answer, every half second and, once
the provider's confirmation has reached the front, says "paid" in the page's live region, within a
second of it. Without scripts a link reloads the page, which then says it. Every one of these asks
creditd for the signed-in subscriber's card: an intent of another account is not found."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import msgspec
import segno
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from creditd.display_names import LanguageNames
from creditd.formatting import local_time
from creditd.portal import inputs, views
from creditd.portal.languages import language_of
from creditd.portal.payments_front import FrontRefused, FrontUnavailable, PaymentsFront
from creditd.portal.words import WORDS
from creditd.v1 import creditd_pb2 as pb

log = logging.getLogger(__name__)
SCRIPT = (Path(__file__).parent / "static" / "promptpay.js").read_bytes()
# The QR page may run its own script (and fetch its state from us); the portal's other pages none.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
REFERENCE = re.compile(r"^[A-Z0-9]{1,20}$")
# Baht as people type them: 150, 150.5, 1,500.00, ฿150.
AMOUNT = re.compile(r"^([0-9]{1,9})(?:\.([0-9]{1,2}))?$")
# The page's script stops asking this long after the intent's expiry.
ASK_PAST_EXPIRY_MS = 60_000
QR_SCALE = 5  # pixels a module: a version 6 code is 245 px wide, within a 360 px phone


class Portal(Protocol):
    """What these pages use of the portal (app.Portal), which imports this module to route to them."""

    async def card(self, request: Request) -> pb.Account: ...
    def token(self, request: Request) -> str: ...
    async def form(self, request: Request) -> dict[str, str]: ...
    async def failure(self, request: Request, status_code: int, key: str, **values: str) -> Response: ...
    def names_in(self, language: str) -> LanguageNames: ...
    def page(self, request: Request, name: str, language: str, status_code: int = 200, **context: Any) -> Response: ...


Page = Callable[[Request], Awaitable[Response]]


def routes(portal: Portal, front: PaymentsFront, guarded: Callable[[Page], Page]) -> list[Route]:
    """The PromptPay routes, each handler guarded as the portal's other pages are (app.Portal.guarded)."""

    def bound(handler: Callable[[Portal, PaymentsFront, Request], Awaitable[Response]]) -> Page:
        async def handle(request: Request) -> Response:
            return await handler(portal, front, request)

        return guarded(handle)

    return [
        Route("/top-up/promptpay", bound(create), methods=["POST"]),
        Route("/top-up/promptpay/{reference}", bound(page), methods=["GET"]),
        Route("/top-up/promptpay/{reference}/state", bound(state), methods=["GET"]),
        Route("/promptpay.js", script, methods=["GET"]),
    ]


def offer(front: PaymentsFront | None, card: pb.Account, language: str) -> dict[str, str] | None:
    """What the top-up page shows of PromptPay: the amount's label with its bounds; None without it."""
    if front is None:
        return None
    low = views.amount_text(front.min_amount_minor, card, language)
    high = views.amount_text(front.max_amount_minor, card, language)
    return {"label": WORDS[language]["promptpay_amount"].format(low=low, high=high)}


def amount_minor(text: str, front: PaymentsFront) -> int:
    """The amount typed, in satang, within the front's bounds; BadInput('amount') otherwise."""
    match = AMOUNT.match(text.strip().removeprefix("฿").replace(",", "").strip())
    if not match:
        raise inputs.BadInput("amount")
    value = int(match.group(1)) * 100 + int((match.group(2) or "0").ljust(2, "0"))
    if not front.min_amount_minor <= value <= front.max_amount_minor:
        raise inputs.BadInput("amount")
    return value


def qr_svg(payload: str, label: str) -> str:
    """The payload's QR as inline SVG, an image named by label (segno escapes it)."""
    svg = segno.make(payload, error="m", micro=False).svg_inline(scale=QR_SCALE, border=4, title=label)
    return str(svg).replace("<svg ", '<svg role="img" ', 1)


def expires_ms(intent: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(str(intent["expires_at"])).timestamp() * 1000)


async def owned_intent(
    portal: Portal, front: PaymentsFront, request: Request
) -> tuple[dict[str, Any] | None, pb.Account]:
    """The intent named in the path if it is the signed-in subscriber's, and their card. The intent
    is read first, the card after, so that a paid intent's top-up is in the card's balance (a visitor
    without a session goes to sign-in before the front is asked)."""
    portal.token(request)
    reference = request.path_params["reference"]
    intent = await front.intent(reference) if REFERENCE.match(reference) else None
    card = await portal.card(request)
    if intent is None or intent.get("account_id") != card.account_id:
        return None, card
    return intent, card


def state_message(intent: dict[str, Any], card: pb.Account, language: str, names: LanguageNames) -> str:
    words = WORDS[language]
    if intent["state"] == "paid":
        amount = views.amount_text(int(intent["amount_minor"]), card, language)
        balance = views.overview(card, language, names).balance
        return words["topped_up"].format(amount=amount, balance=balance)
    if intent["state"] == "expired":
        return words["promptpay_expired"]
    return words["promptpay_waiting"]


async def create(portal: Portal, front: PaymentsFront, request: Request) -> Response:
    data = await portal.form(request)
    value = amount_minor(data.get("amount", ""), front)
    card = await portal.card(request)
    try:
        intent = await front.create_intent(card.account_id, value)
    except FrontRefused as refused:
        if refused.field == "amount_minor":
            raise inputs.BadInput("amount") from None
        log.info("the payments front refused an intent for %s: %s", card.account_id, refused.field)
        return await portal.failure(request, 400, "refused")
    except FrontUnavailable as error:
        log.warning("payments front: %s", error)
        return await portal.failure(request, 503, "unavailable")
    return Response(status_code=303, headers={"location": f"/top-up/promptpay/{intent['reference']}"})


async def page(portal: Portal, front: PaymentsFront, request: Request) -> Response:
    try:
        intent, card = await owned_intent(portal, front, request)
    except FrontUnavailable as error:
        log.warning("payments front: %s", error)
        return await portal.failure(request, 503, "unavailable")
    if intent is None:
        return await portal.failure(request, 404, "not_found")
    language = language_of(request, card)
    names, words = portal.names_in(language), WORDS[language]
    if intent["state"] != "pending":
        message = state_message(intent, card, language, names)
        return portal.page(request, "message.html", language, message=message, failed=intent["state"] != "paid")
    amount = views.amount_text(int(intent["amount_minor"]), card, language)
    expiry_ms = expires_ms(intent)
    until = local_time(expiry_ms, views.time_zone_of(card), language, "short")
    response = portal.page(
        request,
        "promptpay.html",
        language,
        reference=intent["reference"],
        # how long the script may ask, from now: the browser's clock need not agree with ours
        asking_ms=max(0, expiry_ms - int(time.time() * 1000)) + ASK_PAST_EXPIRY_MS,
        scan=words["promptpay_scan"].format(amount=amount),
        until=words["promptpay_until"].format(time=until),
        svg=qr_svg(str(intent["payload"]), words["promptpay_qr"].format(amount=amount)),
    )
    response.headers["content-security-policy"] = PAGE_POLICY
    return response


async def state(portal: Portal, front: PaymentsFront, request: Request) -> Response:
    """{"state": pending | paid | expired, "message": what the page says}, for the page's script."""
    try:
        intent, card = await owned_intent(portal, front, request)
    except FrontUnavailable as error:
        log.warning("payments front: %s", error)
        return Response(b'{"state": "unavailable"}', status_code=503, media_type="application/json")
    if intent is None:
        return Response(b'{"state": "unknown"}', status_code=404, media_type="application/json")
    language = language_of(request, card)
    message = state_message(intent, card, language, portal.names_in(language))
    document = {"state": intent["state"], "message": message}
    return Response(msgspec.json.encode(document), media_type="application/json")


async def script(request: Request) -> Response:
    return Response(SCRIPT, media_type="text/javascript")
