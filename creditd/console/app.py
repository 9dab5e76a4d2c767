"""The customer-care console's pages: staff sign-in (password and TOTP code), search by number as people
type it, the subscriber's card with their ledger, balance adjustments (above a threshold they wait for
a supervisor who is not the requester: four eyes), the approvals queue and the staff audit log.

Roles: agent (search, view, adjust or ask for an adjustment), supervisor (the same, and approve or
refuse others' requests, read the audit log), auditor (view and read the audit log; no actions).
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
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NamedTuple

import grpc
import msgspec
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from creditd import contract
from creditd.config.plans import Plan
from creditd.console.staff import Staff, StaffError, StaffStore
from creditd.core.charge_explanation import Explained, explain, recent_usage
from creditd.phone_numbers import account_id_of
from creditd.store.connection import AnySyncRedis
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parent / "templates"
SESSION_COOKIE = "creditd_console"
SEED_COOKIE = "creditd_console_form"
CALL_TIMEOUT_S = 10.0
ACCOUNT_ID = contract.ID.regex()
MAX_REASON_LENGTH = 100
MAX_AMOUNT_MINOR = 10**12
LEDGER_PAGE = 20
# Refused sign-ins of one name within the window, then that name is locked out for the window.
MAX_REFUSED_SIGN_INS = 5
SIGN_IN_WINDOW_S = 900
USAGE_PAGE = 20
# Who may do what.
MAY = {
    "adjust": frozenset({"agent", "supervisor"}),
    "approve": frozenset({"supervisor"}),
    "audit": frozenset({"supervisor", "auditor"}),
    "status": frozenset({"agent", "supervisor"}),
}
# What staff may set from the card, and the server's reason for it (the staff's own goes to the log).
STATUS_ACTIONS = {
    "suspend": (pb.ONE_WAY_SUSPENDED, "ADMIN"),
    "suspend-fraud": (pb.TWO_WAY_SUSPENDED, "FRAUD"),
    "resume": (pb.ACTIVE, "ADMIN"),
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
    # creditd's gRPC address (plaintext: loopback development only).
    server: str = "127.0.0.1:50051"
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


def loopback(host: str) -> bool:
    return host.split(":")[0].strip("[]") in ("127.0.0.1", "localhost", "::1", "")


class UsageSource(NamedTuple):
    """Where the console reads usage records to explain charges: creditd's Redis and the plans."""

    client: AnySyncRedis
    partitions: int
    plans: dict[str, Plan]


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
        found = self.store.check_sign_in(name, data.get("password", ""), data.get("code", "").strip())
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
        typed = request.query_params.get("number", "")[:64]
        if not typed:
            return self.page(request, "search.html", staff)
        number = account_id_of(typed, self.settings.region)
        if not ACCOUNT_ID.fullmatch(number):
            return self.page(request, "search.html", staff, 400, typed=typed, error="Not a number.")
        try:
            await self.accounts.GetAccount(pb.GetAccountRequest(account_id=number), timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return self.page(request, "search.html", staff, 404, typed=typed, error=f"No subscriber {number}.")
        return RedirectResponse(f"/subscriber/{number}", status_code=303)

    async def subscriber(self, request: Request, message: str = "", status_code: int = 200) -> Response:
        staff = self.staff(request)
        account_id = request.path_params["account_id"]
        if not ACCOUNT_ID.fullmatch(account_id):
            return self.page(request, "message.html", staff, 400, message="Not an account id.")
        card = await self.accounts.GetAccount(pb.GetAccountRequest(account_id=account_id), timeout=CALL_TIMEOUT_S)
        ledger = await self.accounts.ListLedger(
            pb.ListLedgerRequest(account_id=account_id, limit=LEDGER_PAGE), timeout=CALL_TIMEOUT_S
        )
        charges = await self.explained_usage(card)
        return self.page(
            request,
            "subscriber.html",
            staff,
            status_code,
            charges=charges,
            usage_shown=self.usage is not None,
            card=card,
            status=pb.AccountStatus.Name(card.status),
            units={value: pb.Unit.Name(value) for value in pb.Unit.values()},
            ledger=list(ledger.entries),
            pending=self.store.pending(account_id),
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

    async def adjust(self, request: Request) -> Response:
        staff = self.staff(request)
        data = await self.form(request)
        self.allowed(staff, "adjust", request)
        account_id = request.path_params["account_id"]
        reason = " ".join(data.get("reason", "").split())
        try:
            amount = int(data.get("amount", ""))
        except ValueError:
            amount = 0
        if not ACCOUNT_ID.fullmatch(account_id):
            return self.page(request, "message.html", staff, 400, message="Not an account id.")
        if amount == 0 or abs(amount) > MAX_AMOUNT_MINOR:
            return await self.subscriber(request, "Amount: a whole number of minor units, not 0.", 400)
        if not reason or len(reason) > MAX_REASON_LENGTH:
            return await self.subscriber(request, f"Reason: required, at most {MAX_REASON_LENGTH} characters.", 400)
        address = self.address(request)
        if abs(amount) > self.settings.approval_threshold_minor:
            approval_id = self.store.request_approval(account_id, amount, reason, staff.name)
            self.store.record(
                staff.name, "adjustment requested", account_id, f"{amount} (#{approval_id})", reason, address
            )
            return await self.subscriber(
                request, f"Above {self.settings.approval_threshold_minor}: waits for a supervisor."
            )
        answer = await self.move_money(account_id, amount, f"{staff.name}: {reason}", f"console-{uuid.uuid4().hex}")
        self.store.record(
            staff.name, "adjustment", account_id, f"{amount}, ledger seq {answer.ledger_seq}", reason, address
        )
        return await self.subscriber(request, f"Adjusted by {amount}: balance {answer.balance}.")

    async def move_money(self, account_id: str, amount: int, reason: str, key: str) -> pb.AdjustAnswer:
        request = pb.AdjustRequest(account_id=account_id, amount=amount, reason=reason, idempotency_key=key)
        answer: pb.AdjustAnswer = await self.accounts.Adjust(request, timeout=CALL_TIMEOUT_S)
        return answer

    async def set_status(self, request: Request) -> Response:
        staff = self.staff(request)
        data = await self.form(request)
        self.allowed(staff, "status", request)
        account_id = request.path_params["account_id"]
        action = data.get("action", "")
        reason = " ".join(data.get("reason", "").split())
        if not ACCOUNT_ID.fullmatch(account_id):
            return self.page(request, "message.html", staff, 400, message="Not an account id.")
        if action not in STATUS_ACTIONS:
            return await self.subscriber(request, f"Action: one of {', '.join(STATUS_ACTIONS)}.", 400)
        if not reason or len(reason) > MAX_REASON_LENGTH:
            return await self.subscriber(request, f"Reason: required, at most {MAX_REASON_LENGTH} characters.", 400)
        status, server_reason = STATUS_ACTIONS[action]
        request_message = pb.SetStatusRequest(account_id=account_id, status=status, reason=server_reason)
        card = await self.accounts.SetStatus(request_message, timeout=CALL_TIMEOUT_S)
        detail = f"{pb.AccountStatus.Name(card.status)} ({card.status_reason})"
        self.store.record(staff.name, action, account_id, detail, reason, self.address(request))
        return await self.subscriber(request, f"Status now {detail}.")

    async def approvals(self, request: Request) -> Response:
        staff = self.staff(request)
        self.allowed(staff, "approve", request)
        return self.page(request, "approvals.html", staff, pending=self.store.pending())

    async def decide(self, request: Request) -> Response:
        staff = self.staff(request)
        data = await self.form(request)
        self.allowed(staff, "approve", request)
        approve = data.get("decision") == "approve"
        address = self.address(request)
        try:
            found = self.store.decidable(int(request.path_params["approval_id"]), staff.name)
        except StaffError as error:
            self.store.record(staff.name, "approval refused", "-", str(error), "", address)
            return self.page(request, "approvals.html", staff, 409, pending=self.store.pending(), error=str(error))
        detail = f"{found.amount_minor} (#{found.id}, asked by {found.requested_by})"
        if approve:
            reason = f"{found.requested_by}+{staff.name}: {found.reason}"
            answer = await self.move_money(found.account_id, found.amount_minor, reason, f"console-approval-{found.id}")
            detail += f", ledger seq {answer.ledger_seq}"
        try:
            self.store.decide(found.id, staff.name, approve)
        except StaffError as error:
            return self.page(request, "approvals.html", staff, 409, pending=self.store.pending(), error=str(error))
        action = "adjustment approved" if approve else "adjustment refused"
        self.store.record(staff.name, action, found.account_id, detail, found.reason, address)
        return self.page(request, "approvals.html", staff, pending=self.store.pending(), done=f"#{found.id}: {action}.")

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

    routes = [
        Route("/sign-in", guarded(console.sign_in), methods=["GET", "POST"]),
        Route("/sign-out", guarded(console.sign_out), methods=["POST"]),
        Route("/", guarded(console.search)),
        Route("/subscriber/{account_id}", guarded(console.subscriber)),
        Route("/subscriber/{account_id}/adjust", guarded(console.adjust), methods=["POST"]),
        Route("/subscriber/{account_id}/status", guarded(console.set_status), methods=["POST"]),
        Route("/approvals", guarded(console.approvals)),
        Route("/approvals/{approval_id:int}", guarded(console.decide), methods=["POST"]),
        Route("/audit", guarded(console.audit)),
    ]
    return Starlette(routes=routes)
