"""The SelfService gRPC edge (role portal): a subscriber's own account, resolved from the session
token of every call (core/self_service.py), so that the portal reaches no account whose subscriber
has not signed in. Each call is logged with the subscriber, and the actor written into the ledger is
'<portal identity>/<account id>'. The checks are the Accounts ones, on the account the token names.
Budgets of calls are per subscriber: per client address at the door (the portal sends the address
in metadata), then per signed-in account; never one budget for the portal's certificate."""

from __future__ import annotations

import logging

from creditd import logs
from creditd.api import validation
from creditd.api.auth import Authorizer
from creditd.api.client_limits import ClientLimits
from creditd.api.context import Context
from creditd.api.messages import (
    account_message,
    catalogue_message,
    ledger_entry_message,
    loan_offers_message,
    preferences_spec,
    top_up_answer_message,
    usage_summary_message,
)
from creditd.api.rpc import rpc
from creditd.config.fronts import CLIENT_ADDRESS_METADATA
from creditd.config.limits import Limits
from creditd.core.self_service import SelfService, Subscriber
from creditd.core.sign_in_limits import address_bucket
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


def client_address(context: Context) -> str:
    """The subscriber's address, as the portal saw it (behind its trusted proxies); a caller that
    sends none is counted by its own address."""
    metadata = dict(context.invocation_metadata() or ())
    given = str(metadata.get(CLIENT_ADDRESS_METADATA, ""))
    if given:
        return given[:64]
    peer = context.peer() or ""  # 'ipv4:127.0.0.1:5000', 'ipv6:[::1]:5000', 'unix:...'
    kind, _, rest = peer.partition(":")
    return rest.rsplit(":", 1)[0].strip("[]") if kind in ("ipv4", "ipv6") else peer


class SelfServiceServicer(pb_grpc.SelfServiceServicer):
    rate_limited = True

    def __init__(
        self,
        self_service: SelfService,
        limits: Limits,
        authorizer: Authorizer,
        client_limits: ClientLimits,
    ) -> None:
        self.authorizer = authorizer
        self.client_limits = client_limits
        self._self_service = self_service
        self._limits = limits

    def rate_subject(self, caller: str, context: Context) -> str:
        """Whose budget of calls a call takes at the door (rpc._admit): the subscriber's
        address, not the portal's certificate that every subscriber's call comes with."""
        return f"{caller}@{address_bucket(client_address(context))}"

    async def _subscriber(self, session_token: str) -> Subscriber:
        """The signed-in subscriber, who then takes one of their own budget of calls; from here on
        the actor is '<portal>/<account>'. Their calls are refused once the session ends."""
        subscriber = await self._self_service.subscriber(session_token)
        actor = f"{logs.caller()}/{subscriber.account_id}"
        self.client_limits.take_token(actor)
        names = logs.CALL.get()
        assert names is not None, "an RPC's names are set when it is admitted (rpc._admit)"
        names.caller = actor
        return subscriber

    @rpc
    async def RequestSignInCode(
        self, request: pb.RequestSignInCodeRequest, context: Context
    ) -> pb.RequestSignInCodeAnswer:
        validation.check_id(request.account_id, "account_id")
        expires_at_ms = await self._self_service.send_code(request.account_id, client_address(context))
        log.info("sign-in code sent to %s", request.account_id)
        return pb.RequestSignInCodeAnswer(expires_at_ms=expires_at_ms)

    @rpc
    async def SignIn(self, request: pb.SignInRequest, context: Context) -> pb.SignInAnswer:
        validation.check_id(request.account_id, "account_id")
        token, outcome = await self._self_service.sign_in(request.account_id, request.code, client_address(context))
        log.info("sign-in of %s: %s", request.account_id, "signed in" if token else "wrong or expired code")
        return pb.SignInAnswer(
            session_token=token, tries_left=outcome.tries_left, session_expires_at_ms=outcome.session_expires_at_ms
        )

    @rpc
    async def SignOut(self, request: pb.SessionRequest, context: Context) -> pb.SignOutAnswer:
        subscriber = await self._subscriber(request.session_token)
        await self._self_service.sign_out(request.session_token)
        log.info("%s signed out", subscriber.account_id)
        return pb.SignOutAnswer()

    @rpc
    async def GetMyAccount(self, request: pb.SessionRequest, context: Context) -> pb.Account:
        subscriber = await self._subscriber(request.session_token)
        return account_message(await subscriber.accounts.get(subscriber.account_id))

    @rpc
    async def ListMyLedger(self, request: pb.ListMyLedgerRequest, context: Context) -> pb.ListLedgerAnswer:
        subscriber = await self._subscriber(request.session_token)
        account_id = subscriber.account_id
        page = pb.ListLedgerRequest(account_id=account_id, limit=request.limit, before_seq=request.before_seq)
        validation.check_list_ledger(page, self._limits)
        limit = request.limit or self._limits.default_ledger_page
        entries = await subscriber.accounts.list_ledger(account_id, limit, request.before_seq)
        return pb.ListLedgerAnswer(entries=[ledger_entry_message(entry) for entry in entries])

    @rpc
    async def GetMyUsage(self, request: pb.SessionRequest, context: Context) -> pb.UsageSummary:
        subscriber = await self._subscriber(request.session_token)
        return usage_summary_message(await self._self_service.usage(subscriber.account_id))

    @rpc
    async def ListMyBundles(self, request: pb.SessionRequest, context: Context) -> pb.BundleCatalogue:
        subscriber = await self._subscriber(request.session_token)
        card = await subscriber.accounts.get(subscriber.account_id)
        return catalogue_message(await self._self_service.catalogue(card), card.currency)

    @rpc
    async def PurchaseMyBundle(self, request: pb.PurchaseMyBundleRequest, context: Context) -> pb.Account:
        subscriber = await self._subscriber(request.session_token)
        account_id = subscriber.account_id
        purchase = pb.PurchaseBundleRequest(
            account_id=account_id, bundle_id=request.bundle_id, idempotency_key=request.idempotency_key
        )
        validation.check_purchase_bundle(purchase)
        record = await subscriber.accounts.purchase_bundle(account_id, request.bundle_id, request.idempotency_key)
        log.info("bundle %s bought by %s (%s)", request.bundle_id, account_id, request.idempotency_key)
        return account_message(record)

    @rpc
    async def RedeemVoucher(self, request: pb.RedeemVoucherRequest, context: Context) -> pb.TopUpAnswer:
        subscriber = await self._subscriber(request.session_token)
        account_id = subscriber.account_id
        record = await subscriber.vouchers.redeem(account_id, request.code)
        log.info("voucher redeemed by %s%s", account_id, " (replayed: nothing applied)" if record.replayed else "")
        return top_up_answer_message(record)

    @rpc
    async def ListMyLoanOffers(self, request: pb.SessionRequest, context: Context) -> pb.LoanOfferCatalogue:
        subscriber = await self._subscriber(request.session_token)
        card = await subscriber.accounts.get(subscriber.account_id)
        return loan_offers_message(self._self_service.loan_offers(card), card)

    @rpc
    async def BorrowMyCredit(self, request: pb.BorrowMyCreditRequest, context: Context) -> pb.TopUpAnswer:
        subscriber = await self._subscriber(request.session_token)
        account_id = subscriber.account_id
        borrow = pb.BorrowRequest(
            account_id=account_id, offer_id=request.offer_id, idempotency_key=request.idempotency_key
        )
        validation.check_borrow(borrow)
        record = await subscriber.accounts.borrow(account_id, request.offer_id, request.idempotency_key)
        log.info("loan %s borrowed by %s%s", request.offer_id, account_id, " (replayed)" if record.replayed else "")
        return top_up_answer_message(record)

    @rpc
    async def SetMyPreferences(self, request: pb.SetMyPreferencesRequest, context: Context) -> pb.Account:
        subscriber = await self._subscriber(request.session_token)
        account_id = subscriber.account_id
        own = pb.SetPreferencesRequest(account_id=account_id, preferences=request.preferences)
        validation.check_preferences(own)
        return account_message(await subscriber.accounts.set_preferences(account_id, preferences_spec(own)))
