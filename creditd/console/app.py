"""The customer-care console's pages: staff sign-in (password and TOTP code), search (by number as people
type it, name, voucher code or payment reference: console/lookup.py), the subscriber's card on one page
(contract terms, contact, status history, balance, credit, buckets, bonus, loans, group, payments,
every usage record with why it cost what it did, notices sent with their delivery state, the ledger
with the staff's reason beside each entry staff caused, and the staff's actions on the account), the
card's actions (console/actions.py: adjust, gift a bundle, suspend, resume, blacklist, resend a notice,
change plan;
those that move money above a threshold, and every blacklisting, wait for a supervisor who is not the
requester: four eyes), the approvals queue and the staff audit log.

Roles: agent (search, view, act or ask for an approval), supervisor (the same, and approve or refuse
others' requests, read the audit log), auditor (view and read the audit log; no actions).
Every sign-in, refusal and action is written to the audit log with the staff member, the time, the
account, the reason and the client address. Money moves only through creditd's Adjust, with an
idempotency key of its own per adjustment or approval, so a retried form or a second approver moves it
once; the ledger entry's reference carries the staff member and the reason.

Cookies: the session token (HttpOnly, SameSite=Strict, Secure off loopback) and, before sign-in, a form
seed; every form carries a CSRF token bound to one of them.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import msgspec
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from creditd import contract
from creditd.console.actions import STATUS_ACTIONS, Actions, Refused, UsageSource
from creditd.console.lookup import WAYS, Found, find
from creditd.console.staff import Staff, StaffError, StaffStore
from creditd.core.charge_explanation import Explained, explain, recent_usage
from creditd.core.notice_history import NoticeSent, recent_notices
from creditd.errors import CreditdError
from creditd.formatting import money
from creditd.phone_numbers import account_id_of
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parent / "templates"
SESSION_COOKIE = "creditd_console"
SEED_COOKIE = "creditd_console_form"
CALL_TIMEOUT_S = 10.0
ACCOUNT_ID = contract.ID.regex()
LEDGER_PAGE = 20
# The ledger entries read for the card's status history and payments (the newest 20 are listed).
LEDGER_READ = 500
STATUS_KINDS = frozenset({"status", "opening"})
PAYMENT_KINDS = frozenset({"topup", "loan", "loan_recovery", "group_transfer", "group_return"})
NOTICE_PAGE = 20
# Refused sign-ins of one name within the window, then that name is locked out for the window.
MAX_REFUSED_SIGN_INS = 5
SIGN_IN_WINDOW_S = 900
USAGE_PAGE = 20
# Who may do what.
ACTING = frozenset({"agent", "supervisor"})
MAY = {
    "adjust": ACTING,
    "gift": ACTING,
    "status": ACTING,
    "blacklist": ACTING,
    "resend": ACTING,
    "plan": ACTING,
    "approve": frozenset({"supervisor"}),
    "audit": frozenset({"supervisor", "auditor"}),
}
Page = Callable[[Request], Awaitable[Response]]
# creditd's answers shown to staff as they are (each names the field or the state), by HTTP status.
SHOWN_STATUS = {
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.INVALID_ARGUMENT: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
}


class ConsoleSettings(msgspec.Struct, frozen=True):
    listen: str = "127.0.0.1:8090"
    # creditd's gRPC address; plaintext (every caller admin: loopback development only) unless the
    # console has a client certificate, whose name [security.roles] maps to the role care.
    server: str = "127.0.0.1:50051"
    tls_ca_path: str = ""
    tls_cert_path: str = ""
    tls_key_path: str = ""
    database_path: str = "console.sqlite3"
    # Signs the CSRF tokens; empty: a random one per process.
    csrf_secret: str = ""
    session_ttl_s: int = 1800
    # Adjustments larger than this (either way, minor units) wait for a supervisor's approval.
    approval_threshold_minor: int = 50_000
    # Where numbers typed in national form are (creditd/phone_numbers.py): ISO 3166 alpha-2.
    region: str = "TH"


class SignInNeeded(Exception):
    pass


class Forbidden(Exception):
    pass


def utc_time(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def as_money(amount_minor: int, currency: str) -> str:
    """As the subscriber says it on the phone: ฿27.00 for 2700 THB minor units."""
    return money(amount_minor, currency, "th" if currency == "THB" else "en")


def loopback(host: str) -> bool:
    return host.split(":")[0].strip("[]") in ("127.0.0.1", "localhost", "::1", "")


class Console:
    def __init__(
        self, settings: ConsoleSettings, channel: grpc.aio.Channel, store: StaffStore, usage: UsageSource | None
    ) -> None:
        self.settings = settings
        self.usage = usage
        self.accounts = pb_grpc.AccountsStub(channel)
        self.store = store
        self.secret = settings.csrf_secret.encode() or secrets.token_bytes(32)
        self.environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
        self.environment.filters["utc"] = utc_time
        self.environment.filters["money"] = as_money
        self.actions = Actions(self.accounts, store, usage, settings.approval_threshold_minor, CALL_TIMEOUT_S)

    # -- sessions, CSRF, rendering

    def staff(self, request: Request) -> Staff:
        found = self.store.session(request.cookies.get(SESSION_COOKIE, ""))
        if found is None:
            raise SignInNeeded
        return found

    def csrf(self, bound_to: str) -> str:
        return hmac.new(self.secret, bound_to.encode(), hashlib.sha256).hexdigest()

    async def form(self, request: Request) -> dict[str, str]:
        data = {key: str(value) for key, value in (await request.form()).items()}
        bound = request.cookies.get(SESSION_COOKIE) or request.cookies.get(SEED_COOKIE) or ""
        if not bound or not hmac.compare_digest(self.csrf(bound), data.get("csrf", "")):
            raise Forbidden("csrf")
        return data

    def page(
        self, request: Request, name: str, staff: Staff | None, status_code: int = 200, **context: Any
    ) -> Response:
        bound = request.cookies.get(SESSION_COOKIE) or request.cookies.get(SEED_COOKIE) or ""
        seed = "" if bound else secrets.token_urlsafe(24)
        html = self.environment.get_template(name).render(
            csrf=self.csrf(bound or seed), staff=staff, may=MAY, path=request.url.path, **context
        )
        response = HTMLResponse(html, status_code=status_code)
        if seed:
            self.set_cookie(request, response, SEED_COOKIE, seed)
        return response

    def set_cookie(self, request: Request, response: Response, name: str, value: str) -> None:
        secure = not loopback(request.headers.get("host", ""))
        response.set_cookie(name, value, httponly=True, samesite="strict", secure=secure, path="/")

    def address(self, request: Request) -> str:
        return request.client.host if request.client else "-"

    def allowed(self, staff: Staff, action: str, request: Request) -> None:
        if staff.role not in MAY[action]:
            self.store.record(staff.name, f"refused:{action}", "-", f"role {staff.role}", "", self.address(request))
            raise Forbidden(action)

    # -- pages

    async def sign_in(self, request: Request) -> Response:
        if request.method == "GET":
            return self.page(request, "sign_in.html", None)
        data = await self.form(request)
        name = data.get("name", "")[:64]
        if self.store.recent_refusals(name, SIGN_IN_WINDOW_S) >= MAX_REFUSED_SIGN_INS:
            self.store.record(name or "-", "sign-in locked", "-", "", "", self.address(request))
            message = f"Too many wrong attempts: wait {SIGN_IN_WINDOW_S // 60} minutes."
            return self.page(request, "sign_in.html", None, 429, error=message)
        found = await self.store.check_sign_in(name, data.get("password", ""), data.get("code", "").strip())
        if found is None:
            self.store.record(name or "-", "sign-in refused", "-", "", "", self.address(request))
            return self.page(request, "sign_in.html", None, 401, error="Name, password or code is wrong.")
        self.store.record(found.name, "sign-in", "-", f"role {found.role}", "", self.address(request))
        response = RedirectResponse("/", status_code=303)
        self.set_cookie(request, response, SESSION_COOKIE, self.store.open_session(found))
        return response

    async def sign_out(self, request: Request) -> Response:
        staff = self.staff(request)
        await self.form(request)
        self.store.close_session(request.cookies.get(SESSION_COOKIE, ""))
        self.store.record(staff.name, "sign-out", "-", "", "", self.address(request))
        response = RedirectResponse("/sign-in", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def search(self, request: Request) -> Response:
        staff = self.staff(request)
        typed = request.query_params.get("q", "")[:64]
        way = request.query_params.get("by", "number")
        if not typed:
            return self.page(request, "search.html", staff, ways=WAYS, way=way)
        shown = {"ways": WAYS, "way": way, "typed": typed}
        if way != "number" and self.usage is None:
            return self.page(request, "search.html", staff, 400, error="Only numbers: no Redis to read.", **shown)
        try:
            if way == "number":  # the number alone: no Redis read
                found = Found([account_id_of(typed, self.settings.region)])
            else:
                assert self.usage is not None
                found = await asyncio.to_thread(find, self.usage.client, way, typed, self.settings.region)
        except CreditdError as error:
            return self.page(request, "search.html", staff, 400, error=f"{error.message}.", **shown)
        candidates = [account_id for account_id in found.account_ids if ACCOUNT_ID.fullmatch(account_id)]
        if way == "number" and not candidates:
            return self.page(request, "search.html", staff, 400, error="Not a number.", **shown)
        if len(candidates) == 1 and not found.note:
            try:
                request_message = pb.GetAccountRequest(account_id=candidates[0])
                await self.accounts.GetAccount(request_message, timeout=CALL_TIMEOUT_S)
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND:
                    raise
                return self.page(request, "search.html", staff, 404, error=f"No subscriber {candidates[0]}.", **shown)
            return RedirectResponse(f"/subscriber/{candidates[0]}", status_code=303)
        status = 200 if candidates else 404
        listed = {"found": candidates, "names": found.names, "note": found.note}
        return self.page(request, "search.html", staff, status, **listed, **shown)

    async def subscriber(self, request: Request, message: str = "", status_code: int = 200) -> Response:
        staff = self.staff(request)
        account_id = request.path_params["account_id"]
        if not ACCOUNT_ID.fullmatch(account_id):
            return self.page(request, "message.html", staff, 400, message="Not an account id.")
        card = await self.accounts.GetAccount(pb.GetAccountRequest(account_id=account_id), timeout=CALL_TIMEOUT_S)
        ledger = list(
            (
                await self.accounts.ListLedger(
                    pb.ListLedgerRequest(account_id=account_id, limit=LEDGER_READ), timeout=CALL_TIMEOUT_S
                )
            ).entries
        )
        charges, notices = await self.explained_usage(card), await self.notices_sent(account_id)
        staff_rows = self.store.audit_of_account(account_id)
        reasons = {row.ledger_seq: f"{row.staff}: {row.reason}" for row in reversed(staff_rows) if row.ledger_seq}
        return self.page(
            request,
            "subscriber.html",
            staff,
            status_code,
            card=card,
            status=pb.AccountStatus.Name(card.status),
            next_status=pb.AccountStatus.Name(card.next_status) if card.next_status_at_ms else "",
            units={value: pb.Unit.Name(value) for value in pb.Unit.values()},
            redis_read=self.usage is not None,
            charges=charges,
            notices=notices,
            ledger=ledger[:LEDGER_PAGE],
            status_history=[entry for entry in ledger if entry.kind in STATUS_KINDS],
            payments=[entry for entry in ledger if entry.kind in PAYMENT_KINDS],
            ledger_read=len(ledger),
            reasons=reasons,
            staff_rows=staff_rows,
            pending=self.store.pending(account_id),
            bundles=self.actions.bundle_prices(card.plan),
            plans=[plan for plan in self.actions.plans_for(card.currency) if plan != card.plan],
            status_actions=STATUS_ACTIONS,
            threshold=self.settings.approval_threshold_minor,
            message=message,
            failed=status_code >= 400,
        )

    async def explained_usage(self, card: pb.Account) -> list[Explained]:
        if self.usage is None:
            return []
        source = self.usage
        records = await asyncio.to_thread(recent_usage, source.client, source.partitions, card.account_id, USAGE_PAGE)
        return [explain(record, source.plans.get(card.plan)) for record in records]

    async def notices_sent(self, account_id: str) -> list[NoticeSent]:
        if self.usage is None:
            return []
        source = self.usage
        return await asyncio.to_thread(recent_notices, source.client, source.partitions, account_id, NOTICE_PAGE)

    async def act(self, request: Request, action: str) -> Response:
        """Runs the card's form `action` (console/actions.py) for the signed-in staff member; the card
        again, with what happened or why nothing did."""
        staff = self.staff(request)
        data = await self.form(request)
        self.allowed(staff, action, request)
        account_id = request.path_params["account_id"]
        if not ACCOUNT_ID.fullmatch(account_id):
            return self.page(request, "message.html", staff, 400, message="Not an account id.")
        try:
            message = await self.actions.by_name[action](staff, account_id, data, self.address(request))
        except Refused as refused:
            return await self.subscriber(request, str(refused), 400)
        return await self.subscriber(request, message)

    async def approvals(self, request: Request) -> Response:
        staff = self.staff(request)
        self.allowed(staff, "approve", request)
        return self.page(request, "approvals.html", staff, pending=self.store.pending())

    async def decide(self, request: Request) -> Response:
        staff = self.staff(request)
        data = await self.form(request)
        self.allowed(staff, "approve", request)
        approve = data.get("decision") == "approve"
        try:
            done = await self.actions.decide(
                staff, int(request.path_params["approval_id"]), approve, self.address(request)
            )
        except StaffError as error:
            return self.page(request, "approvals.html", staff, 409, pending=self.store.pending(), error=str(error))
        return self.page(request, "approvals.html", staff, pending=self.store.pending(), done=done)

    async def audit(self, request: Request) -> Response:
        staff = self.staff(request)
        self.allowed(staff, "audit", request)
        return self.page(request, "audit.html", staff, rows=self.store.audit_log())


def create_app(
    settings: ConsoleSettings, channel: grpc.aio.Channel, store: StaffStore, usage: UsageSource | None = None
) -> Starlette:
    console = Console(settings, channel, store, usage)

    def guarded(handler: Page) -> Page:
        async def page(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInNeeded:
                return RedirectResponse("/sign-in", status_code=303)
            except Forbidden:
                staff = console.store.session(request.cookies.get(SESSION_COOKIE, ""))
                return console.page(request, "message.html", staff, 403, message="Not allowed.")
            except grpc.aio.AioRpcError as error:
                log.warning("creditd answered %s: %s", error.code().name, error.details())
                staff = console.store.session(request.cookies.get(SESSION_COOKIE, ""))
                status = SHOWN_STATUS.get(error.code(), 502)
                return console.page(request, "message.html", staff, status, message=f"creditd: {error.details()}")

        return page

    def acting(action: str) -> Page:
        async def page(request: Request) -> Response:
            return await console.act(request, action)

        return page

    routes = [
        Route("/sign-in", guarded(console.sign_in), methods=["GET", "POST"]),
        Route("/sign-out", guarded(console.sign_out), methods=["POST"]),
        Route("/", guarded(console.search)),
        Route("/subscriber/{account_id}", guarded(console.subscriber)),
        *[
            Route(f"/subscriber/{{account_id}}/{action}", guarded(acting(action)), methods=["POST"])
            for action in ("adjust", "status", "gift", "blacklist", "resend", "plan")
        ],
        Route("/approvals", guarded(console.approvals)),
        Route("/approvals/{approval_id:int}", guarded(console.decide), methods=["POST"]),
        Route("/audit", guarded(console.audit)),
    ]
    return Starlette(routes=routes)
