"""Payment agents and terminals: check, pay, cancel.

A payment is the agent's (agent id, transaction id): first claimed in the agent's day book under its
daily limit (lua/functions/record_agent_payment.lua), then applied by top_up under the key
'<agent_id>:<transaction_id>' (channel 'agent', so the ledger entry reads 'agent <agent>:<txn>'),
then recorded as applied with its ledger entry. A process that stops between the steps leaves the
payment claimed; the agent's retry finds the claim and finishes it, and top_up's key makes the money
move once. A repeat of a finished payment is answered from the day book with the same result code
and receipt. A refusal (unknown account, a payment above the limits, a reused transaction id) writes
nothing, or (the account refused the top-up) records the payment failed and gives its amount back to
the day.

Cancel takes a payment back within payments.cancel_window_s of its application, when the line allows
it: not terminated, and the amount still unspent (balance - reserved). The adjustment's key is
'<agent_id>:<transaction_id>:c'; a cancel retried after the adjustment is recognised by that key.
"""

from __future__ import annotations

import enum
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import msgspec

from creditd import contract
from creditd.config.payments import AgentSettings, PaymentSettings
from creditd.errors import CreditdError, FailedPrecondition, InvalidArgument, NotFound
from creditd.payments import counters
from creditd.payments.money import ACTOR, Money, NeedsReview
from creditd.store.calls import AgentPaymentStep
from creditd.store.codes import AccountStatus
from creditd.store.replies import AccountRecord, as_text

CHANNEL = "agent"
TRANSACTION_ID = re.compile(r"^[A-Za-z0-9._-]{1,40}$")
ACCOUNT_ID = contract.ID.regex()
REUSED = "transaction_id: already used for another account or amount"


class Result(enum.IntEnum):
    """The stable result codes of the agents' API (the README lists them)."""

    OK = 0
    TEMPORARY_ERROR = 1
    ACCOUNT_UNKNOWN = 5
    ACCOUNT_NOT_PAYABLE = 7
    AMOUNT_TOO_SMALL = 241
    AMOUNT_TOO_LARGE = 242
    DAILY_LIMIT_REACHED = 243
    TRANSACTION_REUSED = 244
    CANCEL_WINDOW_PASSED = 245
    CANCEL_NOT_ALLOWED = 246
    TRANSACTION_UNKNOWN = 247
    UNDER_REVIEW = 248
    BAD_REQUEST = 300


class BadRequest(Exception):
    """A field the agent sent is malformed: the message names it. Nothing is applied."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DayEntry(msgspec.Struct, frozen=True):
    state: str
    account_id: str
    amount: int
    paid_at_ms: int
    ledger_seq: int
    updated_at_ms: int
    replayed: int
    day_total: int


DAY_ENTRY = msgspec.json.Decoder(DayEntry)


class Receipt(msgspec.Struct, frozen=True, kw_only=True):
    agent_id: str
    transaction_id: str
    account_id: str
    amount_minor: int
    currency: str
    paid_at_ms: int
    state: str  # applied, cancelled, failed
    ledger_seq: int
    recorded_at_ms: int


class Answer(msgspec.Struct, frozen=True, kw_only=True):
    result: int
    message: str = ""
    receipt: Receipt | None = None
    min_amount_minor: int | None = None
    max_amount_minor: int | None = None


class Payment(msgspec.Struct, frozen=True, kw_only=True):
    transaction_id: str
    account_id: str
    amount_minor: int
    paid_at_ms: int


def check_transaction_id(value: object) -> str:
    if not isinstance(value, str) or not TRANSACTION_ID.match(value):
        raise BadRequest("transaction_id: 1 to 40 of A-Z a-z 0-9 . _ -")
    return value


def check_account_id(value: object) -> str:
    if not isinstance(value, str) or not ACCOUNT_ID.fullmatch(value):
        raise BadRequest("account_id: 1 to 64 of A-Z a-z 0-9 . _ : -")
    return value


def check_amount(value: object, field: str = "amount_minor") -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1 or value > 10**15:
        raise BadRequest(f"{field}: a positive integer in minor units")
    return value


def parse_time_ms(value: object, field: str = "time") -> int:
    """An RFC 3339 time with its offset ('2026-12-03T20:15:00+07:00'), as Unix ms."""
    if not isinstance(value, str) or len(value) > 40:
        raise BadRequest(f"{field}: an RFC 3339 time with offset, e.g. 2026-12-03T20:15:00+07:00")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{field}: an RFC 3339 time with offset, e.g. 2026-12-03T20:15:00+07:00") from None
    if moment.tzinfo is None:
        raise BadRequest(f"{field}: needs its offset (+07:00, Z)")
    return int(moment.timestamp() * 1000)


def format_time(time_ms: int) -> str:
    return datetime.fromtimestamp(time_ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def payment_key(agent_id: str, transaction_id: str) -> str:
    return f"{agent_id}:{transaction_id}"


class Agents:
    def __init__(self, money: Money, settings: PaymentSettings) -> None:
        self.money = money
        self.settings = settings
        self.zone = ZoneInfo(settings.time_zone)

    def day_of(self, time_ms: int) -> str:
        """The agent's business day (payments.time_zone) of an instant: YYYY-MM-DD."""
        return datetime.fromtimestamp(time_ms / 1000, self.zone).date().isoformat()

    def agent(self, agent_id: str) -> AgentSettings:
        return self.settings.agents[agent_id]

    def _receipt(self, agent_id: str, transaction_id: str, entry: DayEntry) -> Receipt:
        return Receipt(
            agent_id=agent_id,
            transaction_id=transaction_id,
            account_id=entry.account_id,
            amount_minor=entry.amount,
            currency=self.settings.currency,
            paid_at_ms=entry.paid_at_ms,
            state=entry.state,
            ledger_seq=entry.ledger_seq,
            recorded_at_ms=entry.updated_at_ms,
        )

    def _payable(self, account: AccountRecord | None) -> Answer | None:
        """None when the account may be paid here; else the refusal."""
        if account is None:
            return Answer(result=Result.ACCOUNT_UNKNOWN, message="account_id: unknown account")
        if account.status == AccountStatus.TERMINATED:
            return Answer(result=Result.ACCOUNT_NOT_PAYABLE, message="account_id: the line is terminated")
        if account.currency != self.settings.currency:
            return Answer(result=Result.ACCOUNT_NOT_PAYABLE, message=f"account_id: the line is in {account.currency}")
        return None

    def _amount_refusal(self, agent: AgentSettings, amount_minor: int) -> Answer | None:
        lowest, highest = agent.min_amount_minor, agent.max_amount_minor
        if lowest <= amount_minor <= highest:
            return None
        result, word = (
            (Result.AMOUNT_TOO_SMALL, "below") if amount_minor < lowest else (Result.AMOUNT_TOO_LARGE, "above")
        )
        message = f"amount_minor: {word} the agent's {lowest}..{highest}"
        return Answer(result=result, message=message, min_amount_minor=lowest, max_amount_minor=highest)

    async def check(self, agent_id: str, account_id: str, amount_minor: int | None) -> Answer:
        """May this account be paid (and this amount, when given)? Writes nothing."""
        agent = self.agent(agent_id)
        refusal = self._payable(await self.money.account(account_id))
        if refusal is None and amount_minor is not None:
            refusal = self._amount_refusal(agent, amount_minor)
        if refusal is not None:
            return refusal
        return Answer(
            result=Result.OK, min_amount_minor=agent.min_amount_minor, max_amount_minor=agent.max_amount_minor
        )

    async def _step(
        self, agent_id: str, payment: Payment, action: str, daily_limit_minor: int, ledger_seq: int = 0
    ) -> DayEntry:
        step = AgentPaymentStep(
            action=action,
            transaction_id=payment.transaction_id,
            account_id=payment.account_id,
            amount=payment.amount_minor,
            paid_at_ms=payment.paid_at_ms,
            daily_limit_minor=daily_limit_minor,
            retention_s=self.settings.agent_retention_s,
            ledger_seq=ledger_seq,
        )
        command = self.money.calls.record_agent_payment(
            agent_id, self.day_of(payment.paid_at_ms), step, self.money.clock.now_ms(), ACTOR
        )
        return DAY_ENTRY.decode((await self.money.call(command)).body)

    def check_payment_time(self, paid_at_ms: int) -> None:
        now_ms = self.money.clock.now_ms()
        if paid_at_ms > now_ms + self.settings.signature_tolerance_s * 1000:
            raise BadRequest("time: in the future")
        if paid_at_ms < now_ms - self.settings.max_payment_age_s * 1000:
            raise BadRequest(f"time: older than {self.settings.max_payment_age_s} s (reconciliation applies it)")

    async def pay(self, agent_id: str, payment: Payment, daily_limit_minor: int | None = None) -> Answer:
        """Applies the payment once. daily_limit_minor: the agent's unless given (reconcile applies
        what the agent's registry proves was paid, above the limit too)."""
        agent = self.agent(agent_id)
        limit = agent.daily_limit_minor if daily_limit_minor is None else daily_limit_minor
        refusal = self._amount_refusal(agent, payment.amount_minor) if daily_limit_minor is None else None
        refusal = refusal or self._payable(await self.money.account(payment.account_id))
        if refusal is not None:
            # a repeat of a payment made before the account changed is answered as it was made
            known = await self.entry(agent_id, payment.transaction_id, payment.paid_at_ms)
            if known is None:
                return refusal
            if (known.account_id, known.amount) != (payment.account_id, payment.amount_minor):
                return Answer(result=Result.TRANSACTION_REUSED, message=REUSED)
        try:
            entry = await self._step(agent_id, payment, "claim", limit)
        except InvalidArgument as error:
            if error.message.startswith("transaction_id: already used"):
                return Answer(result=Result.TRANSACTION_REUSED, message=error.message)
            raise
        except FailedPrecondition as error:
            return Answer(result=Result.DAILY_LIMIT_REACHED, message=error.message)
        if entry.state == "claimed":
            try:
                entry = await self._apply(agent_id, payment, limit, entry.updated_at_ms)
            except NeedsReview as error:  # left claimed: never guessed
                return Answer(result=Result.UNDER_REVIEW, message=error.message)
        return self._answer_of(agent_id, payment.transaction_id, entry)

    async def _apply(self, agent_id: str, payment: Payment, limit: int, claimed_at_ms: int) -> DayEntry:
        key = payment_key(agent_id, payment.transaction_id)
        try:
            seq, replayed = await self.money.top_up_once(
                payment.account_id, payment.amount_minor, CHANNEL, key, claimed_at_ms
            )
        except (InvalidArgument, NotFound, FailedPrecondition):
            return await self._step(agent_id, payment, "failed", limit)
        if not replayed:
            counters.APPLIED.labels(CHANNEL).inc()
            counters.APPLIED_AMOUNT.labels(CHANNEL).inc(payment.amount_minor)
        return await self._step(agent_id, payment, "applied", limit, seq)

    def _answer_of(self, agent_id: str, transaction_id: str, entry: DayEntry) -> Answer:
        receipt = self._receipt(agent_id, transaction_id, entry)
        if entry.state == "failed":
            return Answer(result=Result.ACCOUNT_NOT_PAYABLE, message="account_id: the line refused it", receipt=receipt)
        return Answer(result=Result.OK, receipt=receipt)

    async def entry(self, agent_id: str, transaction_id: str, paid_at_ms: int) -> DayEntry | None:
        """The day book's entry of a transaction (a plain read), or None."""
        return (await self.day_book(agent_id, self.day_of(paid_at_ms))).get(transaction_id)

    async def day_book(self, agent_id: str, day: str) -> dict[str, DayEntry]:
        """Every transaction of an agent's day: transaction id -> entry."""
        key = self.money.calls.keys_of("record_agent_payment", agent_id, idempotency_key=day)[0]
        stored = await self.money.client.hgetall(key)
        book = {}
        for field, value in stored.items():
            name = as_text(field)
            if name == "total":
                continue
            state, account_id, amount, paid_at_ms, ledger_seq, updated_at_ms = as_text(value).split("|")
            book[name] = DayEntry(
                state, account_id, int(amount), int(paid_at_ms), int(ledger_seq), int(updated_at_ms), 1, 0
            )
        return book

    async def cancel(self, agent_id: str, transaction_id: str, paid_at_ms: int) -> Answer:
        entry = await self.entry(agent_id, transaction_id, paid_at_ms)
        if entry is None:
            return Answer(result=Result.TRANSACTION_UNKNOWN, message="transaction_id: no such payment at that time")
        if entry.state == "cancelled":
            return Answer(result=Result.OK, receipt=self._receipt(agent_id, transaction_id, entry))
        if entry.state != "applied":
            return Answer(result=Result.CANCEL_NOT_ALLOWED, message=f"transaction_id: the payment is {entry.state}")
        key = payment_key(agent_id, transaction_id) + ":c"
        if not await self.money.keyed_call_made(entry.account_id, key):  # a retry skips the checks
            if self.money.clock.now_ms() > entry.updated_at_ms + self.settings.cancel_window_s * 1000:
                return Answer(result=Result.CANCEL_WINDOW_PASSED, message="transaction_id: too late to cancel")
            account = await self.money.account(entry.account_id)
            if account is None or account.status == AccountStatus.TERMINATED:
                return Answer(result=Result.CANCEL_NOT_ALLOWED, message="account_id: the line is terminated")
            if account.balance - account.reserved < entry.amount:
                return Answer(result=Result.CANCEL_NOT_ALLOWED, message="amount_minor: already spent")
        reason = f"cancel agent {agent_id} {transaction_id}"
        try:
            await self.money.take_back(entry.account_id, entry.amount, reason, key)
        except CreditdError as error:
            return Answer(result=Result.CANCEL_NOT_ALLOWED, message=error.message)
        payment = Payment(
            transaction_id=transaction_id,
            account_id=entry.account_id,
            amount_minor=entry.amount,
            paid_at_ms=entry.paid_at_ms,
        )
        cancelled = await self._step(agent_id, payment, "cancelled", self.agent(agent_id).daily_limit_minor)
        return Answer(result=Result.OK, receipt=self._receipt(agent_id, transaction_id, cancelled))
