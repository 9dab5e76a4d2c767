"""The portal's pages (Starlette, Jinja2; no JavaScript): sign-in by a code sent by SMS, the overview,
usage, history, bundles, top-up by voucher and preferences of the signed-in subscriber, in their
language (their preference, else the browser's Accept-Language). Every page asks creditd's
SelfService with the subscriber's session token; the portal holds no account state.

Cookies: the session token (HttpOnly, SameSite=Lax, Secure when portal.public_url is https) and, before sign-in, a form
seed; every form carries a CSRF token bound to one of them (security.py). A request whose session
creditd no longer holds (signed out, expired) goes back to the sign-in page.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from creditd.config.fronts import CLIENT_ADDRESS_METADATA, LANGUAGES, PortalSettings
from creditd.display_names import NO_NAMES, LanguageNames, Names
from creditd.portal import inputs, statement_pages, views
from creditd.portal.client import CALL_TIMEOUT_S, self_service
from creditd.portal.languages import accepted_language, language_of
from creditd.portal.refusals import refusal
from creditd.portal.security import (
    SEED_COOKIE,
    SESSION_COOKIE,
    SecurityHeaders,
    check_public_url,
    client_address,
    csrf_ok,
    csrf_token,
    is_https,
    new_seed,
    trusted_networks,
)
from creditd.portal.words import WORDS
from creditd.v1 import creditd_pb2 as pb

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parent / "templates"
# Refusals of creditd told to the subscriber, in their words (refusals.py). Any other error (over a
# budget, Redis out of memory, unavailable) is told as "busy" or "unavailable": its details are for
# operators, and go to the log.
SHOWN = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND})
# The visitor's address, sent with every call (api/self_service.py counts budgets by it).
VISITOR_ADDRESS: contextvars.ContextVar[str] = contextvars.ContextVar("visitor_address", default="")
Page = Callable[[Request], Awaitable[Response]]
MAX_FORM_FIELDS = 16
MAX_FORM_PART_BYTES = 1024


# Fields of the portal's forms a subscriber can get wrong, by the word that names them; any other
# (csrf, key, a made-up one) is a broken form, told as such.
FIELD_LABELS = {
    "phone": "phone",
    "code": "code",
    "language": "language",
    "quiet_from": "quiet_from",
    "quiet_to": "quiet_to",
    "channels": "channels",
}


class SignInNeeded(Exception):
    pass


class Portal:
    def __init__(self, settings: PortalSettings, channel: grpc.aio.Channel, region: str, names: Names) -> None:
        self.settings = settings
        self.region = region
        self.names = names
        self.stub = self_service(channel)
        self.secret = settings.csrf_secret.encode() or secrets.token_bytes(32)
        self.trusted = trusted_networks(settings.trusted_proxies)
        self.pdf_renders = asyncio.Semaphore(statement_pages.MAX_PDF_RENDERS)
        self.environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))

    # -- rendering

    def names_in(self, language: str) -> LanguageNames:
        return self.names.get(language) or LanguageNames()

    async def failure(self, request: Request, status_code: int, key: str, **values: str) -> Response:
        language = await self.failure_language(request, status_code)
        message = WORDS[language][key].format(**values)
        return self.page(request, "message.html", language, status_code, message=message, failed=True)

    async def failure_language(self, request: Request, status_code: int) -> str:
        """A signed-in subscriber's language (asked of creditd once more: the refused call may have
        come before their card), else the browser's; the browser's when creditd is down or busy."""
        if status_code in (429, 503) or not request.cookies.get(SESSION_COOKIE):
            return accepted_language(request)
        try:
            return language_of(request, await self.card(request))
        except (SignInNeeded, grpc.aio.AioRpcError):
            return accepted_language(request)

    def page(self, request: Request, name: str, language: str, status_code: int = 200, **context: Any) -> Response:
        bound = request.cookies.get(SESSION_COOKIE) or request.cookies.get(SEED_COOKIE) or ""
        seed = "" if bound else new_seed()
        words = WORDS[language]
        html = self.environment.get_template(name).render(
            words=words,
            language=language,
            csrf=csrf_token(self.secret, bound or seed),
            path=request.url.path,
            signed_in=bool(request.cookies.get(SESSION_COOKIE)),
            **context,
        )
        response = HTMLResponse(html, status_code=status_code)
        if seed:
            self.set_cookie(request, response, SEED_COOKIE, seed)
        return response

    def set_cookie(self, request: Request, response: Response, name: str, value: str) -> None:
        secure = is_https(self.settings.public_url)
        response.set_cookie(name, value, httponly=True, samesite="lax", secure=secure, path="/")

    async def form(self, request: Request) -> dict[str, str]:
        """The posted form, after its CSRF token is checked against the cookie it is bound to."""
        form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FORM_PART_BYTES)
        data = {key: inputs.text(str(value), key[:32], MAX_FORM_PART_BYTES) for key, value in form.items()}
        bound = request.cookies.get(SESSION_COOKIE) or request.cookies.get(SEED_COOKIE) or ""
        if not csrf_ok(self.secret, bound, data.get("csrf", "")):
            raise PermissionError("csrf")
        return data

    # -- calls

    def token(self, request: Request) -> str:
        token = request.cookies.get(SESSION_COOKIE, "")
        if not token:
            raise SignInNeeded
        return token

    async def call(self, method: Callable[..., Any], message: Any) -> Any:
        try:
            metadata = ((CLIENT_ADDRESS_METADATA, VISITOR_ADDRESS.get()),)
            return await method(message, timeout=CALL_TIMEOUT_S, metadata=metadata)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.UNAUTHENTICATED:
                raise SignInNeeded from None
            raise

    async def entry_of(self, session_token: str, answer: pb.TopUpAnswer) -> pb.LedgerEntry:
        """The ledger entry a keyed money call (voucher top-up, loan) applied as, a replay's too."""
        entry = pb.ListMyLedgerRequest(session_token=session_token, limit=1, before_seq=answer.ledger_seq + 1)
        entries: list[pb.LedgerEntry] = list((await self.call(self.stub.ListMyLedger, entry)).entries)
        return entries[0]

    async def card(self, request: Request) -> pb.Account:
        card: pb.Account = await self.call(self.stub.GetMyAccount, pb.SessionRequest(session_token=self.token(request)))
        return card

    def guarded(self, handler: Page) -> Page:
        """Sends to sign-in when there is no session, answers 403 to a form without its CSRF token,
        and shows creditd's refusals (which name the field) on a page."""

        async def page(request: Request) -> Response:
            peer = request.client.host if request.client else ""
            VISITOR_ADDRESS.set(client_address(peer, request.headers.get("x-forwarded-for", ""), self.trusted))
            try:
                return await handler(request)
            except SignInNeeded:
                response = RedirectResponse("/sign-in", status_code=303)
                response.delete_cookie(SESSION_COOKIE, path="/")
                return response
            except PermissionError:
                return await self.failure(request, 403, "forbidden")
            except inputs.BadInput as bad:
                label = FIELD_LABELS.get(bad.field)
                if label is None:
                    return await self.failure(request, 400, "bad_request")
                language = await self.failure_language(request, 400)
                return await self.failure(request, 400, "bad_input", field=WORDS[language][label])
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    log.info("creditd answered RESOURCE_EXHAUSTED: %s", error.details())
                    return await self.failure(request, 429, "busy")
                if error.code() not in SHOWN:
                    log.warning("creditd answered %s: %s", error.code().name, error.details())
                    return await self.failure(request, 503, "unavailable")
                log.info("creditd refused: %s: %s", error.code().name, error.details())
                return await self.failure(request, 400, refusal(error.code(), error.details() or ""))

        return page

    # -- sign-in

    async def sign_in_form(self, request: Request) -> Response:
        return self.page(request, "sign_in.html", accepted_language(request))

    async def send_code(self, request: Request) -> Response:
        data = await self.form(request)
        language = accepted_language(request)
        number = inputs.phone(data.get("phone", ""), self.region)
        await self.call(self.stub.RequestSignInCode, pb.RequestSignInCodeRequest(account_id=number))
        return self.page(request, "code.html", language, phone=number)

    async def check_code(self, request: Request) -> Response:
        data = await self.form(request)
        language = accepted_language(request)
        number, code = inputs.phone(data.get("phone", ""), self.region), inputs.sign_in_code(data.get("code", ""))
        answer = await self.call(self.stub.SignIn, pb.SignInRequest(account_id=number, code=code))
        if not answer.session_token:
            words = WORDS[language]
            error = words["wrong_code"].format(tries=answer.tries_left) if answer.tries_left else words["code_dead"]
            return self.page(request, "code.html", language, 400, phone=number, error=error)
        response = RedirectResponse("/", status_code=303)
        self.set_cookie(request, response, SESSION_COOKIE, answer.session_token)
        response.delete_cookie(SEED_COOKIE, path="/")
        return response

    async def sign_out(self, request: Request) -> Response:
        await self.form(request)
        token = self.token(request)
        await self.call(self.stub.SignOut, pb.SessionRequest(session_token=token))
        response = RedirectResponse("/sign-in", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # -- the subscriber's pages

    async def overview(self, request: Request) -> Response:
        card = await self.card(request)
        language = language_of(request, card)
        return self.page(
            request, "overview.html", language, view=views.overview(card, language, self.names_in(language))
        )

    async def usage(self, request: Request) -> Response:
        card = await self.card(request)
        usage = await self.call(self.stub.GetMyUsage, pb.SessionRequest(session_token=self.token(request)))
        language = language_of(request, card)
        return self.page(
            request, "usage.html", language, view=views.usage(card, usage, language, self.names_in(language))
        )

    async def history(self, request: Request) -> Response:
        card = await self.card(request)
        before = inputs.whole_number(request.query_params.get("before", ""), "before")
        page = pb.ListMyLedgerRequest(
            session_token=self.token(request), limit=self.settings.history_page, before_seq=before
        )
        ledger = await self.call(self.stub.ListMyLedger, page)
        language = language_of(request, card)
        entries = list(ledger.entries)
        view = views.history(card, entries, language, self.settings.history_page, self.names_in(language))
        return self.page(request, "history.html", language, view=view)

    async def bundles(self, request: Request) -> Response:
        card = await self.card(request)
        catalogue = await self.call(self.stub.ListMyBundles, pb.SessionRequest(session_token=self.token(request)))
        language = language_of(request, card)
        return self.page(
            request, "bundles.html", language, bundles=views.catalogue(catalogue, language, self.names_in(language))
        )

    async def confirm_bundle(self, request: Request) -> Response:
        card = await self.card(request)
        catalogue = await self.call(self.stub.ListMyBundles, pb.SessionRequest(session_token=self.token(request)))
        language = language_of(request, card)
        bundle_id = inputs.text(request.path_params["bundle_id"], "bundle_id", 64)
        chosen = [b for b in views.catalogue(catalogue, language, self.names_in(language)) if b.bundle_id == bundle_id]
        if not chosen:
            message = WORDS[language]["no_such_bundle"]
            return self.page(request, "message.html", language, 404, message=message, failed=True)
        # One key per confirmation page: a double click sends it twice and buys once.
        return self.page(request, "confirm.html", language, bundle=chosen[0], key=secrets.token_hex(16))

    async def buy_bundle(self, request: Request) -> Response:
        data = await self.form(request)
        bundle_id = inputs.text(request.path_params["bundle_id"], "bundle_id", 64)
        key = inputs.text(data.get("key", ""), "key", 64)
        purchase = pb.PurchaseMyBundleRequest(
            session_token=self.token(request), bundle_id=bundle_id, idempotency_key=key
        )
        card = await self.call(self.stub.PurchaseMyBundle, purchase)
        language = language_of(request, card)
        name = views.bundle_name(bundle_id, self.names_in(language), language)
        return self.page(request, "message.html", language, message=WORDS[language]["bought"].format(bundle=name))

    async def top_up_form(self, request: Request) -> Response:
        card = await self.card(request)
        language = language_of(request, card)
        return self.page(request, "top_up.html", language, view=views.overview(card, language, self.names_in(language)))

    async def redeem(self, request: Request) -> Response:
        data = await self.form(request)
        code = inputs.text(data.get("code", ""), "code", 64)
        redeem = pb.RedeemVoucherRequest(session_token=self.token(request), code=code)
        answer = await self.call(self.stub.RedeemVoucher, redeem)
        card = answer.account
        top_up = await self.entry_of(redeem.session_token, answer)
        language = language_of(request, card)
        view = views.overview(card, language, self.names_in(language))
        amount = views.amount_text(top_up.amount, card, language)
        message = WORDS[language]["topped_up"].format(amount=amount, balance=view.balance)
        return self.page(request, "top_up.html", language, view=view, message=message)

    async def credit(self, request: Request, message: str = "", card: pb.Account | None = None) -> Response:
        card = card or await self.card(request)
        offers = await self.call(self.stub.ListMyLoanOffers, pb.SessionRequest(session_token=self.token(request)))
        language = language_of(request, card)
        owed = views.amount_text(offers.loan_outstanding, card, language) if offers.loan_outstanding else ""
        offer_views = views.loan_offers(offers, card, language)
        return self.page(request, "credit.html", language, offers=offer_views, owed=owed, message=message)

    async def borrow(self, request: Request) -> Response:
        data = await self.form(request)
        borrow = pb.BorrowMyCreditRequest(
            session_token=self.token(request),
            offer_id=inputs.text(request.path_params["offer_id"], "offer_id", 64),
            idempotency_key=inputs.text(data.get("key", ""), "key", 64),
        )
        answer = await self.call(self.stub.BorrowMyCredit, borrow)
        card, language = answer.account, language_of(request, answer.account)
        lent = await self.entry_of(borrow.session_token, answer)
        view = views.overview(card, language, self.names_in(language))
        amount = views.amount_text(lent.amount, card, language)
        return await self.credit(request, WORDS[language]["borrowed"].format(amount=amount, balance=view.balance), card)

    async def preferences_form(self, request: Request) -> Response:
        card = await self.card(request)
        language = language_of(request, card)
        return self.page(request, "preferences.html", language, prefs=card.preferences, languages=LANGUAGES)

    async def save_preferences(self, request: Request) -> Response:
        data = await self.form(request)
        form = await request.form()
        preferences = pb.Preferences(
            language=inputs.text(data.get("language", ""), "language", 8),
            channels=inputs.channels([str(channel) for channel in form.getlist("channels")]),
            marketing_opt_in=data.get("marketing") == "on",
            quiet_hours_start=inputs.text(data.get("quiet_from", ""), "quiet_from", 5),
            quiet_hours_end=inputs.text(data.get("quiet_to", ""), "quiet_to", 5),
        )
        request_message = pb.SetMyPreferencesRequest(session_token=self.token(request), preferences=preferences)
        card = await self.call(self.stub.SetMyPreferences, request_message)
        language = language_of(request, card)
        return self.page(
            request,
            "preferences.html",
            language,
            prefs=card.preferences,
            languages=LANGUAGES,
            message=WORDS[language]["saved"],
        )


async def no_icon(request: Request) -> Response:
    return Response(status_code=204)


def create_app(
    settings: PortalSettings, channel: grpc.aio.Channel, region: str = "", names: Names = NO_NAMES
) -> Starlette:
    """region: where numbers typed in national form are ([numbers] region); names: display names."""
    check_public_url(settings.listen, settings.public_url)
    portal = Portal(settings, channel, region, names)
    g = portal.guarded
    routes = [
        Route("/sign-in", g(portal.sign_in_form), methods=["GET"]),
        Route("/sign-in", g(portal.send_code), methods=["POST"]),
        Route("/sign-in/code", g(portal.check_code), methods=["POST"]),
        Route("/sign-out", g(portal.sign_out), methods=["POST"]),
        Route("/", g(portal.overview), methods=["GET"]),
        Route("/usage", g(portal.usage), methods=["GET"]),
        Route("/history", g(portal.history), methods=["GET"]),
        Route("/bundles", g(portal.bundles), methods=["GET"]),
        Route("/bundles/{bundle_id}", g(portal.confirm_bundle), methods=["GET"]),
        Route("/bundles/{bundle_id}", g(portal.buy_bundle), methods=["POST"]),
        Route("/top-up", g(portal.top_up_form), methods=["GET"]),
        Route("/top-up", g(portal.redeem), methods=["POST"]),
        Route("/credit", g(portal.credit), methods=["GET"]),
        Route("/credit/{offer_id}", g(portal.borrow), methods=["POST"]),
        Route("/statement", g(functools.partial(statement_pages.page, portal)), methods=["GET"]),
        Route("/statement.pdf", g(functools.partial(statement_pages.pdf, portal)), methods=["GET"]),
        Route("/preferences", g(portal.preferences_form), methods=["GET"]),
        # Browsers ask for it on every site; a 404 would be an error in their console.
        Route("/favicon.ico", no_icon, methods=["GET"]),
        Route("/preferences", g(portal.save_preferences), methods=["POST"]),
    ]
    return Starlette(routes=routes, middleware=[Middleware(SecurityHeaders, public_url=settings.public_url)])
