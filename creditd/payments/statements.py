"""Bank statement imports: each booked credit of a camt.053/054 (camt.py) is applied once to the
account its remittance information names ('<payments.bank.reference_prefix><account id>'), or
queued as unmatched for `creditd payments assign`.

The credit's account servicer reference is its identity: the record bank_entry (named by the
reference's SHA-256) says what became of it, so importing the same or an overlapping file again
skips every credit already applied or queued; the top-up's key 'bank:<reference>' (or
'bank:<SHA-256 prefix>' when the reference does not fit a key) makes two imports running at once
credit it once as well. A credit is unmatched when no reference is found, the account is unknown or
terminated, or its currency is not payments.currency (nor the account's): an operator assigns it,
converting a foreign amount by hand (--amount-minor).
"""

from __future__ import annotations

import hashlib
import json
import re

import msgspec

from creditd import contract
from creditd.config.payments import PaymentSettings
from creditd.errors import CreditdError, FailedPrecondition, InvalidArgument, NotFound
from creditd.payments import counters
from creditd.payments.camt import Credit
from creditd.payments.money import Money, NeedsReview
from creditd.store.codes import AccountStatus
from creditd.store.keys import payments_key
from creditd.store.replies import as_text

CHANNEL = "bank"
KEY_TEXT = contract.ID._replace(max_length=59).regex()  # "bank:" and it make an id


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    servicer_reference: str
    amount_minor: int
    currency: str
    outcome: str  # applied, duplicate, unmatched
    account_id: str = ""
    detail: str = ""


def _outcome(credit: Credit, outcome: str, account_id: str, detail: str) -> Outcome:
    return Outcome(
        servicer_reference=credit.servicer_reference,
        amount_minor=credit.amount_minor,
        currency=credit.currency,
        outcome=outcome,
        account_id=account_id,
        detail=detail,
    )


def reference_hash(servicer_reference: str) -> str:
    return hashlib.sha256(servicer_reference.encode()).hexdigest()


def top_up_key(servicer_reference: str) -> str:
    if KEY_TEXT.fullmatch(servicer_reference):
        return f"bank:{servicer_reference}"
    return f"bank:{reference_hash(servicer_reference)[:40]}"


class Statements:
    def __init__(self, money: Money, settings: PaymentSettings) -> None:
        self.money = money
        self.settings = settings
        prefix = re.escape(settings.bank.reference_prefix)
        self.reference = re.compile(prefix + r"([A-Za-z0-9_:-]+(?:\.[A-Za-z0-9_:-]+)*)", re.IGNORECASE)

    def entry_key(self, servicer_reference: str) -> str:
        return payments_key("bank_entry", reference_hash(servicer_reference))

    def account_named(self, credit: Credit) -> str:
        for text in credit.remittance:
            found = self.reference.search(text)
            if found:
                return found.group(1)
        return ""

    async def _unmatched_reason(self, credit: Credit, account_id: str) -> str:
        if not account_id:
            return f"no {self.settings.bank.reference_prefix}<account> in the remittance information"
        if credit.currency != self.settings.currency:
            return f"currency {credit.currency}, payments are in {self.settings.currency}"
        account = await self.money.account(account_id)
        if account is None:
            return f"unknown account {account_id}"
        if account.status == AccountStatus.TERMINATED:
            return f"account {account_id} is terminated"
        if account.currency != credit.currency:
            return f"account {account_id} is in {account.currency}"
        return ""

    async def import_credit(self, credit: Credit) -> Outcome:
        key = self.entry_key(credit.servicer_reference)
        stored = {as_text(name): as_text(value) for name, value in (await self.money.client.hgetall(key)).items()}
        if stored.get("state") in ("applied", "assigned", "unmatched"):
            counters.STATEMENT_ENTRIES.labels("duplicate").inc()
            detail = f"already {stored['state']}"
            return _outcome(credit, "duplicate", stored.get("account_id", ""), detail)
        if stored.get("state") == "applying":  # an import cut off after it chose the account
            account_id, amount = stored["account_id"], int(stored["applied_minor"])
            return await self._applied(credit, key, account_id, amount, int(stored["since_ms"]))
        account_id = self.account_named(credit)
        reason = await self._unmatched_reason(credit, account_id)
        if reason:
            await self._queue(credit, key, reason)
            counters.STATEMENT_ENTRIES.labels("unmatched").inc()
            return _outcome(credit, "unmatched", account_id, reason)
        return await self._applied(credit, key, account_id, credit.amount_minor, None)

    async def _applied(
        self, credit: Credit, key: str, account_id: str, amount_minor: int, since_ms: int | None
    ) -> Outcome:
        try:
            seq = await self._apply(credit, key, account_id, amount_minor, "applied", since_ms)
        except NeedsReview as error:
            return _outcome(credit, "review", account_id, error.message)
        except (InvalidArgument, NotFound, FailedPrecondition) as error:
            await self._queue(credit, key, f"the account refused it: {error.message}")
            counters.STATEMENT_ENTRIES.labels("unmatched").inc()
            return _outcome(credit, "unmatched", account_id, error.message)
        counters.STATEMENT_ENTRIES.labels("applied").inc()
        return _outcome(credit, "applied", account_id, f"ledger {seq}")

    def _fields(self, credit: Credit) -> dict[str, str]:
        return {
            "servicer_reference": credit.servicer_reference,
            "amount_minor": str(credit.amount_minor),
            "currency": credit.currency,
            "booking_date": credit.booking_date,
            "remittance": json.dumps(credit.remittance[:8])[:2000],
        }

    async def _apply(
        self, credit: Credit, key: str, account_id: str, amount_minor: int, state: str, since_ms: int | None
    ) -> int:
        """since_ms: when an earlier, cut-off attempt chose this account and amount; None: now."""
        if since_ms is None:  # the intention first: a cut-off import leaves a record to finish
            since_ms = self.money.clock.now_ms()
            applying = self._fields(credit) | {
                "state": "applying",
                "account_id": account_id,
                "applied_minor": str(amount_minor),
                "since_ms": str(since_ms),
            }
            await self.money.client.hset(key, mapping=applying)  # type: ignore[arg-type]
            await self.money.client.expire(key, self.settings.bank.retention_s)
        top_up_reference = top_up_key(credit.servicer_reference)
        seq, replayed = await self.money.top_up_once(account_id, amount_minor, CHANNEL, top_up_reference, since_ms)
        if not replayed:
            counters.APPLIED.labels(CHANNEL).inc()
            counters.APPLIED_AMOUNT.labels(CHANNEL).inc(amount_minor)
        fields = self._fields(credit) | {
            "state": state,
            "account_id": account_id,
            "applied_minor": str(amount_minor),
            "ledger_seq": str(seq),
            "at_ms": str(self.money.clock.now_ms()),
        }
        await self.money.client.hset(key, mapping=fields)  # type: ignore[arg-type]
        await self.money.client.expire(key, self.settings.bank.retention_s)
        return seq

    async def _queue(self, credit: Credit, key: str, reason: str) -> None:
        queue = payments_key("bank_unmatched")
        if await self.money.client.zcard(queue) >= self.settings.bank.max_unmatched:
            raise CreditdError(f"payments.bank.max_unmatched: {self.settings.bank.max_unmatched} credits wait already")
        fields = self._fields(credit) | {
            "state": "unmatched",
            "reason": reason,
            "at_ms": str(self.money.clock.now_ms()),
        }
        await self.money.client.hset(key, mapping=fields)  # type: ignore[arg-type]
        await self.money.client.expire(key, self.settings.bank.retention_s)
        await self.money.client.zadd(queue, {credit.servicer_reference: self.money.clock.now_ms()})

    async def unmatched(self, limit: int) -> list[dict[str, str]]:
        """The queue, oldest first: each credit's stored fields."""
        references = await self.money.client.zrange(payments_key("bank_unmatched"), 0, limit - 1)
        found = []
        for reference in references:
            key = self.entry_key(as_text(reference))
            found.append({as_text(k): as_text(v) for k, v in (await self.money.client.hgetall(key)).items()})
        return found

    async def assign(self, servicer_reference: str, account_id: str, amount_minor: int | None) -> Outcome:
        """Applies an unmatched credit to an account; a foreign currency's needs amount_minor (in
        payments.currency). Repeating it answers the first assignment."""
        key = self.entry_key(servicer_reference)
        stored = {as_text(name): as_text(value) for name, value in (await self.money.client.hgetall(key)).items()}
        if not stored:
            raise NotFound(f"reference: no credit {servicer_reference!r} was imported")
        credit = Credit(
            servicer_reference=servicer_reference,
            amount_minor=int(stored["amount_minor"]),
            currency=stored["currency"],
            booking_date=stored.get("booking_date", ""),
            remittance=json.loads(stored.get("remittance", "[]")),
            line=0,
        )
        if stored["state"] in ("applied", "assigned"):
            if stored.get("account_id") != account_id:
                raise FailedPrecondition(f"reference: already {stored['state']} to {stored.get('account_id')}")
            return _outcome(credit, "duplicate", account_id, f"already {stored['state']}")
        if credit.currency != self.settings.currency and amount_minor is None:
            raise InvalidArgument(
                f"amount_minor: the credit is in {credit.currency}: give it in {self.settings.currency}"
            )
        account = await self.money.account(account_id)
        if account is None:
            raise NotFound("account_id: unknown account")
        if account.currency != self.settings.currency:
            raise FailedPrecondition(f"account_id: the account is in {account.currency}")
        amount = credit.amount_minor if amount_minor is None else amount_minor
        since_ms = int(stored["since_ms"]) if stored["state"] == "applying" else None
        if since_ms is not None and stored.get("account_id") != account_id:
            raise FailedPrecondition(f"reference: being applied to {stored.get('account_id')}")
        seq = await self._apply(credit, key, account_id, amount, "assigned", since_ms)
        await self.money.client.zrem(payments_key("bank_unmatched"), servicer_reference)
        return _outcome(credit, "applied", account_id, f"ledger {seq}")
