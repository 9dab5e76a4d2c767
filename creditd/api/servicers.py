"""gRPC servicers: proto in, domain call, proto out. No balance logic lives here."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from creditd import logs, metrics
from creditd.api import validation
from creditd.api.auth import Authorizer
from creditd.api.client_limits import ClientLimits
from creditd.api.streams import Watchers, grpc_stream_errors, watch_events, watch_notifications
from creditd.core.accounts import Accounts, BucketSpec, NewAccount
from creditd.core.charging import Quota
from creditd.errors import CreditdError, InvalidArgument, Unavailable, grpc_status_of
from creditd.settings import Limits
from creditd.store.replies import AccountRecord, AnswerRecord
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

Reply = TypeVar("Reply")


def grpc_errors(method: Callable[..., Awaitable[Reply]]) -> Callable[..., Awaitable[Reply]]:
    """Turns creditd errors into gRPC status codes with the error's message as details, and counts
    and times every call."""
    name = method.__name__

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Reply:
        started = time.perf_counter()
        metadata = dict(context.invocation_metadata() or ())
        logs.REQUEST_ID.set(logs.new_request_id(str(metadata.get("x-request-id", ""))))
        logs.SESSION_ID.set(getattr(request, "session_id", ""))
        try:
            caller = self.authorizer.check(context, name)
            logs.CALLER.set(caller)
            if self.rate_limited:
                self.client_limits.take_token(caller)
            with self.client_limits.in_flight(caller):
                reply = await method(self, request, context)
            metrics.REQUESTS.labels(name, "OK").inc()
            return reply
        except CreditdError as error:
            status = grpc_status_of(error)
            metrics.REQUESTS.labels(name, status.name).inc()
            if status == grpc.StatusCode.INTERNAL:
                log.error("%s failed: %s", name, error.message)
            else:
                log.info("%s refused (%s): %s", name, status.name, error.message)
            await context.abort(status, error.message)
            raise AssertionError("unreachable: abort raises") from error
        finally:
            metrics.REQUEST_DURATION.labels(name).observe(time.perf_counter() - started)

    return wrapper


def answer_message(request: pb.ChargeRequest, record: AnswerRecord) -> pb.ChargeAnswer:
    grants = [
        pb.UnitGrant(
            rating_group=grant.rating_group,
            result=grant.result,
            unit=grant.unit,
            granted=grant.granted,
            validity_time_s=grant.validity_time_s,
            final_unit_action=grant.final_unit_action,
            redirect_url=grant.redirect_url,
            throttled=grant.throttled == 1,
            max_bitrate_kbps=grant.max_bitrate_kbps,
            charged=grant.charged,
        )
        for grant in record.grants
    ]
    return pb.ChargeAnswer(
        session_id=request.session_id,
        request_number=request.request_number,
        result=record.result,
        grants=grants,
        account_status=record.account_status,
        error=record.error,
    )


def refused_answer(request: pb.ChargeRequest, result: int, message: str) -> pb.ChargeAnswer:
    return pb.ChargeAnswer(
        session_id=request.session_id, request_number=request.request_number, result=result, error=message
    )


class CreditControlService(pb_grpc.CreditControlServicer):
    rate_limited = False  # gateways are bounded by calls in flight, not by rate

    def __init__(
        self, quota: Quota, limits: Limits, watchers: Watchers, authorizer: Authorizer, client_limits: ClientLimits
    ) -> None:
        self.authorizer = authorizer
        self.client_limits = client_limits
        self._quota = quota
        self._limits = limits
        self._watchers = watchers

    @grpc_errors
    async def Charge(self, request: pb.ChargeRequest, context: grpc.aio.ServicerContext) -> pb.ChargeAnswer:
        try:
            validation.check_charge(request, self._limits)
        except InvalidArgument as error:
            metrics.count_charge(request.request_type, pb.INVALID_REQUEST)
            log.info("Charge %s refused: %s", request.request_number, error.message)
            return refused_answer(request, pb.INVALID_REQUEST, error.message)
        outcome = await self._quota.charge(request)
        metrics.count_charge(request.request_type, outcome.answer.result)
        return answer_message(request, outcome.answer)

    @grpc_errors
    async def ChargeBatch(
        self, request: pb.ChargeBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.ChargeBatchAnswer:
        validation.check_batch(request.requests, self._limits)
        metrics.BATCH_REQUESTS.observe(len(request.requests))
        answers: list[pb.ChargeAnswer | None] = [None] * len(request.requests)
        valid: list[int] = []
        for index, item in enumerate(request.requests):
            try:
                validation.check_charge(item, self._limits)
                valid.append(index)
            except InvalidArgument as error:
                answers[index] = refused_answer(item, pb.INVALID_REQUEST, error.message)
        outcomes = await self._quota.charge_many([request.requests[index] for index in valid])
        for index, outcome in zip(valid, outcomes, strict=True):
            item = request.requests[index]
            if isinstance(outcome, Unavailable):
                raise outcome  # Redis is away: the whole batch is retried, safely, with the same ids
            if isinstance(outcome, CreditdError):
                log.error("ChargeBatch item %s/%s failed: %s", item.session_id, item.request_number, outcome)
                answers[index] = refused_answer(item, pb.UNABLE_TO_COMPLY, outcome.message)
            else:
                answers[index] = answer_message(item, outcome.answer)
        for item, answer in zip(request.requests, answers, strict=True):
            assert answer is not None, "every batch item is answered"
            metrics.count_charge(item.request_type, answer.result)
        return pb.ChargeBatchAnswer(answers=answers)

    @grpc_stream_errors
    async def WatchNotifications(
        self, request: pb.WatchNotificationsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Notification]:
        validation.check_id(request.gateway_id, "gateway_id")
        async for notification in watch_notifications(self._watchers, request):
            yield notification


def account_message(record: AccountRecord, now_ms: int) -> pb.Account:
    """The subscriber card; now_ms decides which billing cycle the data overage spend is of."""
    buckets = [
        pb.Bucket(
            bucket_id=bucket.bucket_id,
            unit=bucket.unit,
            remaining=bucket.remaining,
            reserved=bucket.reserved,
            rating_groups=bucket.rating_group_list(),
            expires_at_ms=bucket.expires_at_ms,
            priority=bucket.priority,
            exhaustion_policy=bucket.exhaustion_policy,
            amount=bucket.amount,
        )
        for bucket in record.buckets
    ]
    return pb.Account(
        account_id=record.account_id,
        plan=record.plan,
        currency=record.currency,
        status=record.status,
        status_reason=record.status_reason,
        balance=record.balance,
        reserved=record.reserved,
        available=record.available,
        credit_limit=record.credit_limit,
        tier=record.tier,
        buckets=buckets,
        open_sessions=record.open_sessions,
        status_since_ms=record.status_since_ms,
        contact=pb.Contact(name=record.contact_name, email=record.contact_email, phone=record.contact_phone),
        created_at_ms=record.created_at_ms,
        ledger_seq=record.ledger_seq,
        billing_cycle_day=record.billing_cycle_day,
        credit_limit_override=record.credit_limit_override,
        data_overage_spent=record.data_overage_spent_minor(now_ms),
        data_overage_cap=record.data_overage_cap_minor,
        next_status=record.next_status,
        next_status_at_ms=record.next_status_at_ms,
    )


def new_account(request: pb.CreateAccountRequest) -> NewAccount:
    buckets = [
        BucketSpec(
            bucket_id=bucket.bucket_id,
            unit=bucket.unit,
            amount=bucket.remaining,
            rating_groups=list(bucket.rating_groups),
            expires_at_ms=bucket.expires_at_ms,
            priority=bucket.priority,
            exhaustion_policy=bucket.exhaustion_policy,
        )
        for bucket in request.buckets
    ]
    return NewAccount(
        account_id=request.account_id,
        plan=request.plan,
        initial_balance=request.initial_balance,
        credit_limit=request.credit_limit if request.HasField("credit_limit") else None,
        billing_cycle_day=request.billing_cycle_day if request.HasField("billing_cycle_day") else None,
        contact_name=request.contact.name,
        contact_email=request.contact.email,
        contact_phone=request.contact.phone,
        buckets=buckets,
    )


class AccountsService(pb_grpc.AccountsServicer):
    rate_limited = True

    def __init__(
        self,
        accounts: Accounts,
        limits: Limits,
        metric_channels: frozenset[str],
        watchers: Watchers,
        authorizer: Authorizer,
        client_limits: ClientLimits,
    ) -> None:
        self.authorizer = authorizer
        self.client_limits = client_limits
        self._accounts = accounts
        self._limits = limits
        self._metric_channels = metric_channels
        self._watchers = watchers

    def _card(self, record: AccountRecord) -> pb.Account:
        return account_message(record, self._accounts.clock.now_ms())

    @grpc_errors
    async def CreateAccount(self, request: pb.CreateAccountRequest, context: grpc.aio.ServicerContext) -> pb.Account:
        validation.check_create_account(request, self._limits)
        return self._card(await self._accounts.create(new_account(request)))

    @grpc_errors
    async def GetAccount(self, request: pb.GetAccountRequest, context: grpc.aio.ServicerContext) -> pb.Account:
        validation.check_id(request.account_id, "account_id")
        return self._card(await self._accounts.get(request.account_id))

    @grpc_errors
    async def TopUp(self, request: pb.TopUpRequest, context: grpc.aio.ServicerContext) -> pb.TopUpAnswer:
        validation.check_top_up(request, self._limits)
        record = await self._accounts.top_up(
            request.account_id, request.amount, request.channel, request.idempotency_key
        )
        log.info("top-up %s of %d on %s via %s%s", request.idempotency_key, request.amount, request.account_id,
                 request.channel, " (replayed: nothing applied)" if record.replayed else "")  # fmt: skip
        if not record.replayed:
            channel = metrics.channel_label(request.channel, self._metric_channels)
            metrics.TOP_UPS.labels(channel).inc()
            metrics.TOP_UP_AMOUNT.labels(channel).inc(request.amount)
        return pb.TopUpAnswer(
            account=self._card(record.account), replayed=record.replayed == 1, ledger_seq=record.ledger_seq
        )

    @grpc_errors
    async def PurchaseBundle(self, request: pb.PurchaseBundleRequest, context: grpc.aio.ServicerContext) -> pb.Account:
        validation.check_purchase_bundle(request)
        record = await self._accounts.purchase_bundle(request.account_id, request.bundle_id, request.idempotency_key)
        log.info("bundle %s bought for %s (%s)", request.bundle_id, request.account_id, request.idempotency_key)
        return self._card(record)

    @grpc_errors
    async def SetStatus(self, request: pb.SetStatusRequest, context: grpc.aio.ServicerContext) -> pb.Account:
        validation.check_set_status(request)
        return self._card(await self._accounts.set_status(request.account_id, request.status, request.reason))

    @grpc_errors
    async def SetCreditLimit(self, request: pb.SetCreditLimitRequest, context: grpc.aio.ServicerContext) -> pb.Account:
        validation.check_set_credit_limit(request, self._limits)
        credit_limit = request.credit_limit if request.HasField("credit_limit") else None
        return self._card(await self._accounts.set_credit_limit(request.account_id, credit_limit))

    @grpc_errors
    async def ListLedger(self, request: pb.ListLedgerRequest, context: grpc.aio.ServicerContext) -> pb.ListLedgerAnswer:
        validation.check_list_ledger(request, self._limits)
        limit = request.limit or self._limits.default_ledger_page
        entries = await self._accounts.list_ledger(request.account_id, limit, request.before_seq)
        return pb.ListLedgerAnswer(
            entries=[
                pb.LedgerEntry(
                    seq=entry.seq,
                    time_ms=entry.time_ms,
                    kind=entry.kind,
                    amount=entry.amount,
                    balance_after=entry.balance_after,
                    reference=entry.reference,
                    actor=entry.actor,
                )
                for entry in entries
            ]
        )

    @grpc_stream_errors
    async def WatchEvents(
        self, request: pb.WatchEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Event]:
        async for event in watch_events(self._watchers, request):
            yield event
