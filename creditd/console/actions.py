"""What staff do from the subscriber's card, each with a mandatory reason and a row in the staff audit
log (with the creditd ledger entry it wrote, so that the card shows the reason beside the entry):

- adjust: a credit or debit; above the threshold (either way) it waits for a second person;
- gift: a bundle of the subscriber's plan, free to them: creditd credits its price (an adjustment)
  and buys it with that money (PurchaseBundle), both under keys of the gift's own, so a retried form
  or a second approver gives it once; a refused purchase takes the credit back. A bundle priced above
  the threshold waits for a second person;
- suspend (one way, or both ways for fraud) and resume, at once;
- blacklist: terminate the account for good (its id can never be used again), so it always waits for
  a second person;
- resend a kept notice (core/notice_history.py), never a sign-in code;
- change plan, to another plan of the account's currency (creditd's SetPlan), at once.

The second person is a supervisor who is not the requester (StaffStore.decidable): four eyes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import NamedTuple

import grpc

from creditd.config.plans import Plan
from creditd.console.staff import Approval, ApprovalAction, Staff, StaffError, StaffStore
from creditd.core.notice_history import resend_notice
from creditd.errors import CreditdError
from creditd.store.connection import AnySyncRedis
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc

MAX_REASON_LENGTH = 100
MAX_AMOUNT_MINOR = 10**12
# creditd keeps at most this many bytes of an adjustment's reason (limits.max_contact_field_length's
# default); the whole reason is in the staff audit log, joined to the entry by its ledger seq.
LEDGER_REASON_BYTES = 128
# What staff may set from the card at once, and the server's reason for it.
STATUS_ACTIONS = {
    "suspend": (pb.ONE_WAY_SUSPENDED, "ADMIN"),
    "suspend-fraud": (pb.TWO_WAY_SUSPENDED, "FRAUD"),
    "resume": (pb.ACTIVE, "ADMIN"),
}
BLACKLIST_REASONS = ("FRAUD", "ADMIN")
# Answers after which a purchase may have been made: its credit stays (the same request again, under
# the same key, finishes the gift or replays it).
UNSURE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN}
)


class Refused(Exception):
    """Bad input from the form: shown on the card, nothing written."""


class UsageSource(NamedTuple):
    """Where the console reads what creditd's gRPC does not answer: usage records (to explain charges),
    notices sent, and the search by name, voucher or payment; creditd's Redis and the plans."""

    client: AnySyncRedis
    partitions: int
    plans: dict[str, Plan]
    # How long a resent notice's delivery record is kept (notifications.notice_retention_s).
    notice_retention_s: int = 7 * 86400


def reason_of(data: dict[str, str]) -> str:
    reason = " ".join(data.get("reason", "").split())
    if not reason or len(reason) > MAX_REASON_LENGTH:
        raise Refused(f"Reason: required, at most {MAX_REASON_LENGTH} characters.")
    return reason


def ledger_reason(text: str) -> str:
    return text.encode()[:LEDGER_REASON_BYTES].decode(errors="ignore")


class Actions:
    """The card's actions: each takes the staff member, the account, the form's fields and the client
    address, and answers what happened (Refused: why nothing did)."""

    def __init__(
        self,
        accounts: pb_grpc.AccountsAsyncStub,
        store: StaffStore,
        usage: UsageSource | None,
        approval_threshold_minor: int,
        call_timeout_s: float,
    ) -> None:
        self.accounts, self.store, self.usage = accounts, store, usage
        self.threshold, self.call_timeout_s = approval_threshold_minor, call_timeout_s
        self.by_name = {
            "adjust": self.adjust,
            "status": self.set_status,
            "gift": self.gift,
            "blacklist": self.blacklist,
            "resend": self.resend,
            "plan": self.change_plan,
        }

    def plans_for(self, currency: str) -> list[str]:
        """The plans an account in this currency may move to; empty without the plans."""
        plans = self.usage.plans if self.usage is not None else {}
        return sorted(name for name, plan in plans.items() if plan.currency == currency)

    def bundle_prices(self, plan: str) -> dict[str, int]:
        """The plan's bundles and their prices; empty without the plans (no UsageSource)."""
        found = self.usage.plans.get(plan) if self.usage is not None else None
        return {bundle.bundle_id: bundle.price_minor for bundle in found.bundles} if found else {}

    def waits(
        self,
        staff: Staff,
        account_id: str,
        amount: int,
        reason: str,
        address: str,
        action: ApprovalAction = "adjust",
        subject: str = "",
    ) -> str:
        approval_id = self.store.request_approval(account_id, amount, reason, staff.name, action, subject)
        detail = f"{subject or amount} (#{approval_id})"
        noun = "adjustment" if action == "adjust" else action
        self.store.record(staff.name, f"{noun} requested", account_id, detail, reason, address)
        return f"#{approval_id} waits for a supervisor's approval."

    # -- the actions

    async def adjust(self, staff: Staff, account_id: str, data: dict[str, str], address: str) -> str:
        try:
            amount = int(data.get("amount", ""))
        except ValueError:
            amount = 0
        if amount == 0 or abs(amount) > MAX_AMOUNT_MINOR:
            raise Refused("Amount: a whole number of minor units, not 0.")
        reason = reason_of(data)
        threshold = self.threshold
        if abs(amount) > threshold:
            return f"Above {threshold}: " + self.waits(staff, account_id, amount, reason, address)
        answer = await self.move_money(account_id, amount, f"{staff.name}: {reason}", f"console-{uuid.uuid4().hex}")
        detail = f"{amount}, ledger seq {answer.ledger_seq}"
        self.store.record(staff.name, "adjustment", account_id, detail, reason, address, answer.ledger_seq)
        return f"Adjusted by {amount}: balance {answer.balance}."

    async def set_status(self, staff: Staff, account_id: str, data: dict[str, str], address: str) -> str:
        action = data.get("action", "")
        if action not in STATUS_ACTIONS:
            raise Refused(f"Action: one of {', '.join(STATUS_ACTIONS)}.")
        reason = reason_of(data)
        status, server_reason = STATUS_ACTIONS[action]
        before = await self.card(account_id)
        card = await self.accounts.SetStatus(
            pb.SetStatusRequest(account_id=account_id, status=status, reason=server_reason),
            timeout=self.call_timeout_s,
        )
        detail = f"{pb.AccountStatus.Name(card.status)} ({card.status_reason})"
        seq = card.ledger_seq if card.ledger_seq != before.ledger_seq else 0
        self.store.record(staff.name, action, account_id, detail, reason, address, seq)
        return f"Status now {detail}."

    async def gift(self, staff: Staff, account_id: str, data: dict[str, str], address: str) -> str:
        bundle_id = data.get("bundle", "")
        card = await self.card(account_id)
        price = self.bundle_prices(card.plan).get(bundle_id)
        if price is None:
            offered = ", ".join(self.bundle_prices(card.plan)) or "none"
            raise Refused(f"Bundle: one of the plan's ({offered}).")
        reason = reason_of(data)
        threshold = self.threshold
        if price > threshold:
            waiting = self.waits(staff, account_id, price, reason, address, action="gift", subject=bundle_id)
            return f"Priced above {threshold}: " + waiting
        seq = await self.give_bundle(account_id, bundle_id, price, staff.name, f"console-gift-{uuid.uuid4().hex}")
        self.store.record(staff.name, "gift", account_id, f"{bundle_id} ({price})", reason, address, seq)
        return f"Gave {bundle_id} (worth {price})."

    async def blacklist(self, staff: Staff, account_id: str, data: dict[str, str], address: str) -> str:
        server_reason = data.get("why", "")
        if server_reason not in BLACKLIST_REASONS:
            raise Refused(f"Why: one of {', '.join(BLACKLIST_REASONS)}.")
        reason = reason_of(data)
        await self.card(account_id)  # NOT_FOUND before anything waits
        waiting = self.waits(staff, account_id, 0, reason, address, action="blacklist", subject=server_reason)
        return "Blacklisting " + waiting

    async def resend(self, staff: Staff, account_id: str, data: dict[str, str], address: str) -> str:
        reason = reason_of(data)
        source = self.usage
        if source is None:
            raise Refused("Notices: the console reads no Redis (see `creditd console serve --redis`).")
        name = data.get("notice", "")
        now_ms = time.time_ns() // 1_000_000
        try:
            new_name = await asyncio.to_thread(
                resend_notice, source.client, source.partitions, account_id, name, now_ms, source.notice_retention_s
            )
        except CreditdError as error:
            raise Refused(f"{error.message}.") from None
        self.store.record(staff.name, "resend notice", account_id, f"{name} as {new_name}", reason, address)
        return f"Notice {name} queued again as {new_name}."

    async def change_plan(self, staff: Staff, account_id: str, data: dict[str, str], address: str) -> str:
        card = await self.card(account_id)
        plan = data.get("plan", "")
        offered = self.plans_for(card.currency)
        if plan not in offered:
            raise Refused(f"Plan: one of {', '.join(offered) or 'none (the console has no plans)'}.")
        reason = reason_of(data)
        changed = await self.accounts.SetPlan(
            pb.SetPlanRequest(account_id=account_id, plan=plan), timeout=self.call_timeout_s
        )
        seq = changed.ledger_seq if changed.ledger_seq != card.ledger_seq else 0
        self.store.record(staff.name, "change plan", account_id, f"{card.plan} -> {plan}", reason, address, seq)
        return f"Plan now {changed.plan} (from {card.plan})."

    # -- approvals

    async def carry_out(self, approval: Approval, approver: str) -> tuple[str, int]:
        """Does what the approved request asked, under keys of the request's own (a second approval
        moves nothing); a detail for the audit log and the ledger seq it wrote."""
        key = f"console-approval-{approval.id}"
        if approval.action == "gift":
            seq = await self.give_bundle(
                approval.account_id, approval.subject, approval.amount_minor, f"{approval.requested_by}+{approver}", key
            )
            return f"{approval.subject} ({approval.amount_minor})", seq
        if approval.action == "blacklist":
            card = await self.accounts.SetStatus(
                pb.SetStatusRequest(account_id=approval.account_id, status=pb.TERMINATED, reason=approval.subject),
                timeout=self.call_timeout_s,
            )
            return f"{pb.AccountStatus.Name(card.status)} ({card.status_reason})", card.ledger_seq
        reason = f"{approval.requested_by}+{approver}: {approval.reason}"
        answer = await self.move_money(approval.account_id, approval.amount_minor, reason, key)
        return f"{approval.amount_minor}", answer.ledger_seq

    async def decide(self, staff: Staff, approval_id: int, approve: bool, address: str) -> str:
        """StaffError when staff may not decide it (the requester, already decided)."""
        store = self.store
        try:
            found = store.decidable(approval_id, staff.name)
        except StaffError as error:
            store.record(staff.name, "approval refused", "-", str(error), "", address)
            raise
        detail, seq = f"#{found.id}, asked by {found.requested_by}", 0
        if approve:
            done, seq = await self.carry_out(found, staff.name)
            detail = f"{done} ({detail}), ledger seq {seq}"
        store.decide(found.id, staff.name, approve)
        noun = "adjustment" if found.action == "adjust" else found.action
        action = f"{noun} {'approved' if approve else 'refused'}"
        store.record(staff.name, action, found.account_id, detail, found.reason, address, seq)
        return f"#{found.id}: {action}."

    # -- creditd calls

    async def card(self, account_id: str) -> pb.Account:
        request = pb.GetAccountRequest(account_id=account_id)
        found: pb.Account = await self.accounts.GetAccount(request, timeout=self.call_timeout_s)
        return found

    async def move_money(self, account_id: str, amount: int, reason: str, key: str) -> pb.AdjustAnswer:
        request = pb.AdjustRequest(
            account_id=account_id, amount=amount, reason=ledger_reason(reason), idempotency_key=key
        )
        answer: pb.AdjustAnswer = await self.accounts.Adjust(request, timeout=self.call_timeout_s)
        return answer

    async def give_bundle(self, account_id: str, bundle_id: str, price: int, by: str, key: str) -> int:
        """Credits the price and buys the bundle with it; the purchase's ledger seq. A refused purchase
        takes the credit back (under its own key) and the refusal is raised."""
        if price > 0:
            await self.move_money(account_id, price, f"{by}: gift {bundle_id}", f"{key}-credit")
        try:
            card = await self.accounts.PurchaseBundle(
                pb.PurchaseBundleRequest(account_id=account_id, bundle_id=bundle_id, idempotency_key=key),
                timeout=self.call_timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            if price > 0 and error.code() not in UNSURE:
                await self.move_money(account_id, -price, f"{by}: gift {bundle_id} not given", f"{key}-undo")
            raise
        return int(card.ledger_seq)
