"""The subscriber's own account, for the self-service portal: sign-in by a one-time code, sessions,
and what a subscriber may do for themselves (creditd/api/self_service.py is the gRPC edge).

A sign-in code (six digits) is stored only as a keyed hash (core/sign_in_codes.py; issue_sign_in_code
also bounds how many are sent) and queued, sealed under the same server key, for the notifier as a
`sign_in_code` notice on SMS, and e-mail when the subscriber has an address; the notifier sends it at
once (quiet hours do not hold it). Asking a code answers alike whether or not the number is ours. A right
code opens a session: the subscriber's token is '<account_id>.<random>' and Redis keeps only the
SHA-256 of the random part, so neither a Redis dump nor a log holds a usable token. Every later call
is resolved to its account through the token; a token Redis does not hold is Unauthenticated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import secrets

import msgspec

from creditd.clock import Clock
from creditd.config.plans import Bundle, LoanOffer
from creditd.config.settings import Settings
from creditd.core.accounts import Accounts
from creditd.core.notices import NoticeEvent, queue_notice, retention_of
from creditd.core.offers import recommend
from creditd.core.sign_in_codes import SignInKey, load_sign_in_key
from creditd.core.sign_in_limits import SignInLimits
from creditd.core.usage_summary import AccountUsage, account_usage
from creditd.core.voucher_claims import VoucherClaims
from creditd.errors import CreditdError, InvalidArgument, ResourceExhausted, Unauthenticated
from creditd.logs import caller
from creditd.store.calls import Calls
from creditd.store.codes import Code
from creditd.store.connection import AnyRedis
from creditd.store.functions import Functions, SessionFunctions
from creditd.store.keys import notifier_key, partition_of
from creditd.store.replies import AccountRecord, checked_reply

log = logging.getLogger(__name__)
CODE_LENGTH = 6
# issue_sign_in_code's refusals that would tell whether a number is ours: answered as a success.
UNTOLD_REFUSALS = frozenset({Code.USER_UNKNOWN, Code.ACCOUNT_TERMINATED, Code.TOO_MANY})
TOKEN_BYTES = 32
MAX_TOKEN_LENGTH = 128


class SignedIn(msgspec.Struct, frozen=True):
    signed_in: int
    tries_left: int
    session_expires_at_ms: int


@dataclasses.dataclass(frozen=True)
class Subscriber:
    account_id: str
    accounts: Accounts  # its function calls refused once the session has ended
    vouchers: VoucherClaims


class CatalogueEntry(msgspec.Struct, frozen=True):
    bundle: Bundle
    recommended: bool


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class SelfService:
    def __init__(
        self, client: AnyRedis, functions: Functions, accounts: Accounts, settings: Settings, clock: Clock
    ) -> None:
        self.client, self.functions, self.accounts, self.clock = client, functions, accounts, clock
        self.settings = settings
        self.calls = Calls(settings.redis.partitions)
        self.limits = SignInLimits(client, settings.limits, clock)

    # -- signing in

    @functools.cached_property
    def key(self) -> SignInKey:
        """Read (or made) at the first sign-in, not at start: a server nobody signs in to needs none."""
        return load_sign_in_key(self.settings.security.sign_in_key_path, self.settings.redis.data_dir)

    async def send_code(self, account_id: str, address: str) -> int:
        """Sends a new code; returns when it stops working (Unix ms). The same answer whether or not
        the number is ours, or may have a code now (terminated, too many sent): telling them apart
        would tell strangers who our subscribers are. Only what names no account is an error, and
        an address over its budget of codes (or everyone over theirs)."""
        if not await self.limits.take_code(address):
            raise ResourceExhausted("sign-in: too many codes asked; try again later")
        code = f"{secrets.randbelow(10**CODE_LENGTH):0{CODE_LENGTH}d}"
        now_ms = self.clock.now_ms()
        command = self.calls.issue_sign_in_code(account_id, self.key.digest(account_id, code), now_ms, caller())
        reply = checked_reply(raw := await self.functions.pipeline.call(*command))
        if isinstance(reply, CreditdError):
            if isinstance(raw, list) and raw and raw[0] in UNTOLD_REFUSALS:
                log.info("no sign-in code sent to %s: %s", account_id, reply.message)
                await self._as_if_sent(account_id)
                return now_ms + self.settings.limits.sign_in_code_lifetime_s * 1000
            raise reply
        expires_at_ms = int(msgspec.json.decode(reply.body)["expires_at_ms"])
        card = await self.accounts.get(account_id)
        notice_id = f"signin.{now_ms}.{secrets.token_hex(8)}"
        sealed = self.key.seal(notice_id, code)
        notice = NoticeEvent(notice_id, "sign_in_code", account_id, now_ms, sealed)
        partition = partition_of(account_id, self.settings.redis.partitions)
        pipe = self.client.pipeline(transaction=False)
        for channel in ["sms"] + (["email"] if card.contact_email else []):
            record_key = notifier_key("delivery", partition, idempotency_key=f"{notice.id}/{channel}")
            due_key = notifier_key("deliveries_due", partition)
            retention_s = retention_of(notice.kind, self.settings)
            queue_notice(pipe, record_key, due_key, notice, channel, now_ms, "sign-in code", retention_s)
        await pipe.execute()
        return expires_at_ms

    async def _as_if_sent(self, account_id: str) -> None:
        """The round trips of a code sent (the card, then the notice's pipeline), writing nothing, so
        that an answer's time does not tell either."""
        with contextlib.suppress(CreditdError):
            await self.accounts.get(account_id)
        partition = partition_of(account_id, self.settings.redis.partitions)
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(notifier_key("deliveries_due", partition))
        pipe.zcard(notifier_key("deliveries_due", partition))
        await pipe.execute()

    async def sign_in(self, account_id: str, code: str, address: str) -> tuple[str, SignedIn]:
        """('<account_id>.<token>', outcome) when the code is right, ('', outcome) when not. An
        address over its budget of failed sign-ins (or everyone over theirs) may not try."""
        if len(code) != CODE_LENGTH or not code.isascii() or not code.isdigit():
            raise InvalidArgument(f"code: {CODE_LENGTH} digits")
        if not await self.limits.may_try(address):
            raise ResourceExhausted("sign-in: too many failed sign-ins; try again later")
        token = secrets.token_urlsafe(TOKEN_BYTES)
        digest = self.key.digest(account_id, code)
        command = self.calls.sign_in(account_id, digest, sha256(token), self.clock.now_ms(), caller())
        outcome = msgspec.json.decode((await self.functions.call(command)).body, type=SignedIn)
        if not outcome.signed_in:
            await self.limits.count_failure(address)
        return (f"{account_id}.{token}" if outcome.signed_in else ""), outcome

    def _session(self, session_token: str) -> tuple[str, str]:
        """(account id, SHA-256 of the random part) of '<account_id>.<random>'; account ids may hold
        dots, the random part (URL-safe base64) never does."""
        account_id, _, token = session_token.rpartition(".")
        if not account_id or not token or len(session_token) > MAX_TOKEN_LENGTH:
            raise Unauthenticated("session_token: not a session token; sign in")
        return account_id, sha256(token)

    async def account_of(self, session_token: str) -> str:
        """The account whose subscriber holds this session; Unauthenticated when none does."""
        return (await self.subscriber(session_token)).account_id

    async def subscriber(self, session_token: str) -> Subscriber:
        """The signed-in subscriber, with the calls made for their session: a token Redis does not
        hold is Unauthenticated at once, and every function call made then is refused if the session
        ends before it runs (the check is in the function call itself)."""
        account_id, token_hash = self._session(session_token)
        session_key = self.calls.keys_of("sign_out", account_id, idempotency_key=token_hash)[0]
        if not await self.client.exists(session_key):
            raise Unauthenticated("session_token: signed out or expired; sign in again")
        functions = SessionFunctions(self.functions, session_key)
        accounts = Accounts(self.calls, functions, self.clock)
        retention_s = self.settings.limits.topup_key_retention_s
        vouchers = VoucherClaims(self.client, self.calls, functions, accounts, self.clock, retention_s)
        return Subscriber(account_id, accounts, vouchers)

    async def sign_out(self, session_token: str) -> None:
        account_id, token_hash = self._session(session_token)
        await self.functions.call(self.calls.sign_out(account_id, token_hash, caller()))

    # -- what a subscriber may do

    async def usage(self, account_id: str) -> AccountUsage:
        return await account_usage(self.client, self.calls, account_id)

    async def catalogue(self, card: AccountRecord) -> list[CatalogueEntry]:
        """The plan's bundles, the one that would have covered the last 30 days of data first."""
        plan = self.settings.plans.get(card.plan)
        if plan is None:
            return []
        usage = await self.usage(card.account_id)
        offer = recommend(plan, usage.days, self.clock.now_ms(), card.preferences.time_zone)
        entries = [CatalogueEntry(b, offer is not None and b.bundle_id == offer.bundle_id) for b in plan.bundles]
        return sorted(entries, key=lambda entry: not entry.recommended)

    def loan_offers(self, card: AccountRecord) -> list[LoanOffer]:
        """The plan's loan offers the subscriber may borrow now: for their tier (an offer naming no
        tier is for all), and keeping what they would owe within the offer's maximum (borrow.lua
        checks both again)."""
        plan = self.settings.plans.get(card.plan)
        return [
            offer
            for offer in (plan.loan_offers if plan else [])
            if (not offer.tiers or card.tier in offer.tiers)
            and card.loan_outstanding + offer.amount_minor + offer.fee_minor <= offer.max_outstanding_minor
        ]
