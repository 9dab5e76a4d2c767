"""PromptPay QR payments: a payment intent (a unique reference, an account, an amount, an expiry)
shown as a Thai QR bill payment (emvqr.py) with the operator's biller id and the reference; the
provider's confirmation (the webhook: its transaction id, the reference, the amount) applies it.

Exactly once, whatever the number, concurrency and order of deliveries: the top-up's key is the
intent's ('qr:<reference>'), so every delivery of every transaction for one intent moves its money
at most once; the first transaction id to be written into the intent (HSETNX) owns it, and a
delivery of another transaction id for a paid intent is refused as already_paid (its money was not
moved: the top-up answered 'replayed'). Refused and recorded: an unknown reference, an expired
intent (unless this very transaction paid it), an amount other than the intent's, a bad signature
or body. Each delivery's outcome goes to webhook_outcomes and creditd_payments_webhooks_total.
"""

from __future__ import annotations

import hashlib
import secrets

import msgspec

from creditd.config.payments import PaymentSettings
from creditd.errors import FailedPrecondition, InvalidArgument, NotFound
from creditd.payments import counters
from creditd.payments.agents import BadRequest, format_time
from creditd.payments.emvqr import REFERENCE, bill_payment_payload
from creditd.payments.money import Money
from creditd.store.codes import AccountStatus
from creditd.store.keys import payments_key
from creditd.store.replies import as_text

CHANNEL = "promptpay"
REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
# 'CD' and 14 of 32 symbols: 70 bits, never guessed nor repeated.
REFERENCE_LENGTH = 14
ACCEPTED = frozenset({"applied", "replayed"})


class Intent(msgspec.Struct, frozen=True, kw_only=True):
    reference: str
    account_id: str
    amount_minor: int
    currency: str
    created_at_ms: int
    expires_at_ms: int
    state: str  # pending, paid
    transaction_id: str = ""
    paid_at_ms: int = 0
    ledger_seq: int = 0


class WebhookOutcome(msgspec.Struct, frozen=True, kw_only=True):
    outcome: str  # applied, replayed, bad_signature, bad_request, unknown_reference, expired, ...
    message: str = ""
    reference: str = ""
    transaction_id: str = ""
    amount_minor: int = 0
    at_ms: int = 0

    @property
    def accepted(self) -> bool:
        return self.outcome in ACCEPTED


def new_reference() -> str:
    return "CD" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))


def intent_key(reference: str) -> str:
    return payments_key("payment_intent", hashlib.sha256(reference.encode()).hexdigest())


def intent_of(reference: str, stored: dict[str, str]) -> Intent:
    return Intent(
        reference=reference,
        account_id=stored["account_id"],
        amount_minor=int(stored["amount_minor"]),
        currency=stored["currency"],
        created_at_ms=int(stored["created_at_ms"]),
        expires_at_ms=int(stored["expires_at_ms"]),
        state="paid" if stored.get("transaction_id") else "pending",
        transaction_id=stored.get("transaction_id", ""),
        paid_at_ms=int(stored.get("paid_at_ms", "0")),
        ledger_seq=int(stored.get("ledger_seq", "0")),
    )


class PromptPay:
    def __init__(self, money: Money, settings: PaymentSettings) -> None:
        self.money = money
        self.settings = settings

    async def create_intent(self, account_id: str, amount_minor: int) -> Intent:
        """A new intent; BadRequest naming the field when the account or amount cannot be paid."""
        promptpay = self.settings.promptpay
        if not promptpay.min_amount_minor <= amount_minor <= promptpay.max_amount_minor:
            bounds = f"{promptpay.min_amount_minor}..{promptpay.max_amount_minor}"
            raise BadRequest(f"amount_minor: between {bounds}")
        account = await self.money.account(account_id)
        if account is None or account.status == AccountStatus.TERMINATED:
            raise BadRequest("account_id: no account that may be paid")
        if account.currency != self.settings.currency:
            raise BadRequest(f"account_id: the account is in {account.currency}")
        now_ms = self.money.clock.now_ms()
        reference = new_reference()
        fields = {
            "reference": reference,
            "account_id": account_id,
            "amount_minor": str(amount_minor),
            "currency": self.settings.currency,
            "created_at_ms": str(now_ms),
            "expires_at_ms": str(now_ms + promptpay.intent_validity_s * 1000),
        }
        key = intent_key(reference)
        client = self.money.client
        await client.hset(key, mapping=fields)  # type: ignore[arg-type]
        await client.expire(key, promptpay.retention_s)
        index = payments_key("payment_intents")
        await client.zadd(index, {reference: now_ms})
        await client.zremrangebyscore(index, 0, now_ms - promptpay.retention_s * 1000)
        counters.INTENTS.inc()
        return intent_of(reference, fields)

    def payload(self, intent: Intent) -> str:
        promptpay = self.settings.promptpay
        reference_2 = intent.account_id if REFERENCE.match(intent.account_id) else ""
        return bill_payment_payload(
            promptpay.biller_id,
            intent.reference,
            reference_2,
            intent.amount_minor,
            promptpay.merchant_name,
            promptpay.merchant_city,
        )

    async def intent(self, reference: str) -> Intent | None:
        if not REFERENCE.match(reference):
            return None
        stored = await self.money.client.hgetall(intent_key(reference))
        return intent_of(reference, {as_text(k): as_text(v) for k, v in stored.items()}) if stored else None

    async def intents(self, limit: int) -> list[Intent]:
        """The newest intents first."""
        references = await self.money.client.zrevrange(payments_key("payment_intents"), 0, limit - 1)
        found = [await self.intent(as_text(reference)) for reference in references]
        return [intent for intent in found if intent is not None]

    async def record(self, outcome: WebhookOutcome) -> WebhookOutcome:
        stamped = msgspec.structs.replace(outcome, at_ms=self.money.clock.now_ms())
        key = payments_key("webhook_outcomes")
        await self.money.client.lpush(key, msgspec.json.encode(stamped))
        await self.money.client.ltrim(key, 0, self.settings.promptpay.max_outcomes - 1)
        counters.WEBHOOKS.labels(outcome.outcome).inc()
        return stamped

    async def outcomes(self, limit: int) -> list[WebhookOutcome]:
        raw = await self.money.client.lrange(payments_key("webhook_outcomes"), 0, limit - 1)
        return [msgspec.json.decode(item, type=WebhookOutcome) for item in raw]

    @staticmethod
    def _as(base: WebhookOutcome, outcome: str, message: str = "") -> WebhookOutcome:
        return msgspec.structs.replace(base, outcome=outcome, message=message)

    async def confirm(self, transaction_id: str, reference: str, amount_minor: int) -> WebhookOutcome:
        """The provider's confirmation of a payment, applied at most once; its outcome, recorded."""
        base = WebhookOutcome(outcome="", reference=reference, transaction_id=transaction_id, amount_minor=amount_minor)
        intent = await self.intent(reference)
        if intent is None:
            return await self.record(self._as(base, "unknown_reference", "reference: unknown"))
        if intent.transaction_id and intent.transaction_id != transaction_id:
            message = f"reference: already paid by another transaction ({intent.transaction_id})"
            return await self.record(self._as(base, "already_paid", message))
        if intent.transaction_id:  # this transaction's, recorded: its top-up's key may be forgotten by now
            return await self.record(self._as(base, "replayed"))
        if amount_minor != intent.amount_minor:
            message = f"amount_minor: the intent is for {intent.amount_minor}"
            return await self.record(self._as(base, "amount_mismatch", message))
        if not intent.transaction_id and self.money.clock.now_ms() > intent.expires_at_ms:
            message = f"reference: expired at {format_time(intent.expires_at_ms)}"
            return await self.record(self._as(base, "expired", message))
        return await self._apply(intent, transaction_id, base)

    async def _apply(self, intent: Intent, transaction_id: str, base: WebhookOutcome) -> WebhookOutcome:
        key = intent_key(intent.reference)
        try:
            record = await self.money.top_up(intent.account_id, intent.amount_minor, CHANNEL, f"qr:{intent.reference}")
        except (InvalidArgument, NotFound, FailedPrecondition) as error:
            return await self.record(self._as(base, "refused", error.message))
        client = self.money.client
        if not await client.hsetnx(key, "transaction_id", transaction_id):
            owner = as_text(await client.hget(key, "transaction_id"))
            if owner != transaction_id:
                message = f"reference: already paid by another transaction ({owner})"
                return await self.record(self._as(base, "already_paid", message))
            return await self.record(self._as(base, "replayed"))
        now_ms = self.money.clock.now_ms()
        paid = {"paid_at_ms": str(now_ms), "ledger_seq": str(record.ledger_seq)}
        await client.hset(key, mapping=paid)  # type: ignore[arg-type]
        if not record.replayed:
            counters.APPLIED.labels(CHANNEL).inc()
            counters.APPLIED_AMOUNT.labels(CHANNEL).inc(intent.amount_minor)
        return await self.record(self._as(base, "applied"))


def outcome_document(outcome: WebhookOutcome) -> dict[str, object]:
    return {field: getattr(outcome, field) for field in outcome.__struct_fields__}
