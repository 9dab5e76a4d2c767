"""gRPC servicers: proto in, domain call, proto out. No balance logic lives here."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from creditd import metrics
from creditd.api import validation
from creditd.api.answers import answer_of_body, batch_answer, charge_answer
from creditd.api.auth import Authorizer
from creditd.api.client_limits import ClientLimits
from creditd.api.context import Context
from creditd.api.messages import (
    account_message,
    charge_spec,
    group_message,
    ledger_entry_message,
    new_account,
    preferences_spec,
    refused_answer,
    top_up_answer_message,
)
from creditd.api.metrics_endpoint import count_charge
from creditd.api.rpc import public_message, rpc
from creditd.api.streams import Watchers, watch_events, watch_notifications, watch_usage
from creditd.config.limits import Limits
from creditd.core.accounts import Accounts
from creditd.core.charging import Charging
from creditd.core.groups import Groups
from creditd.errors import CreditdError, InvalidArgument, ResourceExhausted, Unavailable
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


class CreditControlService(pb_grpc.CreditControlServicer):
    rate_limited = False  # gateways are bounded by calls in flight, not by rate
    # the methods whose answers are returned as bytes, which grpc sends as they are (api/handlers.py)
    ANSWERED_AS_BYTES = frozenset({"Charge", "ChargeBatch"})

    def __init__(
        self,
        charging: Charging,
        limits: Limits,
        watchers: Watchers,
        authorizer: Authorizer,
        client_limits: ClientLimits,
    ) -> None:
        self.authorizer = authorizer
        self.client_limits = client_limits
        self._charging = charging
        self._limits = limits
        self._watchers = watchers

    # The answer as bytes (ANSWERED_AS_BYTES): most are the function's own (api/answers.py).
    @rpc
    async def Charge(self, request: pb.ChargeRequest, context: Context) -> bytes:
        spec = charge_spec(request, self._limits.max_units_per_request)
        try:
            validation.check_charge(spec, self._limits)
        except InvalidArgument as error:
            count_charge(spec.request_type, pb.INVALID_REQUEST)
            log.info("Charge %s refused: %s", spec.request_number, error.message)
            return refused_answer(spec, pb.INVALID_REQUEST, error.message).SerializeToString()
        answer, result = charge_answer(spec, await self._charging.send(spec))
        count_charge(spec.request_type, result)
        return answer

    @rpc
    async def ChargeBatch(self, request: pb.ChargeBatchRequest, context: Context) -> bytes:
        validation.check_batch(request.requests, self._limits)
        items = request.requests[:]  # a list: see charge_spec
        metrics.BATCH_REQUESTS.observe(len(items))
        specs = [charge_spec(item, self._limits.max_units_per_request) for item in items]
        answers: list[bytes] = [b""] * len(specs)
        results: list[int | None] = [None] * len(specs)
        valid: list[int] = []
        for index, spec in enumerate(specs):
            try:
                validation.check_charge(spec, self._limits)
                valid.append(index)
            except InvalidArgument as error:
                answers[index] = refused_answer(spec, pb.INVALID_REQUEST, error.message).SerializeToString()
                results[index] = pb.INVALID_REQUEST
        replies = await self._charging.send_many([specs[index] for index in valid])
        for index, reply in zip(valid, replies, strict=True):
            spec = specs[index]
            if isinstance(reply, Unavailable | ResourceExhausted):
                # Redis is away or full, for every item alike: the batch is answered as a unary Charge
                # would be, and retried whole, safely, with the same ids
                raise reply
            if isinstance(reply, CreditdError):
                log.error("ChargeBatch item %s/%s failed: %s", spec.session_id, spec.request_number, reply)
                answer = refused_answer(spec, pb.UNABLE_TO_COMPLY, public_message(reply))
                answers[index], results[index] = answer.SerializeToString(), pb.UNABLE_TO_COMPLY
            else:
                answers[index], results[index] = answer_of_body(spec, reply.body)
        for spec, result in zip(specs, results, strict=True):
            assert result is not None, "every batch item is answered"
            count_charge(spec.request_type, result)
        return batch_answer(answers)

    @rpc
    async def WatchNotifications(
        self, request: pb.WatchNotificationsRequest, context: Context
    ) -> AsyncIterator[pb.Notification]:
        validation.check_id(request.gateway_id, "gateway_id")
        async for notification in watch_notifications(self._watchers, request):
            yield notification


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
        groups: Groups,
    ) -> None:
        self.authorizer = authorizer
        self.client_limits = client_limits
        self._accounts = accounts
        self._groups = groups
        self._limits = limits
        self._metric_channels = metric_channels
        self._watchers = watchers

    @rpc
    async def CreateAccount(self, request: pb.CreateAccountRequest, context: Context) -> pb.Account:
        validation.check_create_account(request, self._limits)
        return account_message(await self._accounts.create(new_account(request)))

    @rpc
    async def GetAccount(self, request: pb.GetAccountRequest, context: Context) -> pb.Account:
        validation.check_id(request.account_id, "account_id")
        return account_message(await self._accounts.get(request.account_id))

    @rpc
    async def TopUp(self, request: pb.TopUpRequest, context: Context) -> pb.TopUpAnswer:
        validation.check_top_up(request, self._limits)
        record = await self._accounts.top_up(
            request.account_id, request.amount, request.channel, request.idempotency_key
        )
        log.info(
            "top-up %s of %d on %s via %s%s",
            request.idempotency_key,
            request.amount,
            request.account_id,
            request.channel,
            " (replayed: nothing applied)" if record.replayed else "",
        )
        if not record.replayed:
            channel = metrics.channel_label(request.channel, self._metric_channels)
            metrics.TOP_UPS.labels(channel).inc()
            metrics.TOP_UP_AMOUNT.labels(channel).inc(request.amount)
        return top_up_answer_message(record)

    @rpc
    async def PurchaseBundle(self, request: pb.PurchaseBundleRequest, context: Context) -> pb.Account:
        validation.check_purchase_bundle(request)
        record = await self._accounts.purchase_bundle(request.account_id, request.bundle_id, request.idempotency_key)
        log.info("bundle %s bought for %s (%s)", request.bundle_id, request.account_id, request.idempotency_key)
        return account_message(record)

    @rpc
    async def SetStatus(self, request: pb.SetStatusRequest, context: Context) -> pb.Account:
        validation.check_set_status(request)
        return account_message(await self._accounts.set_status(request.account_id, request.status, request.reason))

    @rpc
    async def SetPlan(self, request: pb.SetPlanRequest, context: Context) -> pb.Account:
        validation.check_set_plan(request)
        return account_message(await self._accounts.set_plan(request.account_id, request.plan))

    @rpc
    async def SetCreditLimit(self, request: pb.SetCreditLimitRequest, context: Context) -> pb.Account:
        validation.check_set_credit_limit(request, self._limits)
        credit_limit = request.credit_limit if request.HasField("credit_limit") else None
        return account_message(await self._accounts.set_credit_limit(request.account_id, credit_limit))

    @rpc
    async def ListLedger(self, request: pb.ListLedgerRequest, context: Context) -> pb.ListLedgerAnswer:
        validation.check_list_ledger(request, self._limits)
        limit = request.limit or self._limits.default_ledger_page
        entries = await self._accounts.list_ledger(request.account_id, limit, request.before_seq)
        return pb.ListLedgerAnswer(entries=[ledger_entry_message(entry) for entry in entries])

    @rpc
    async def WatchEvents(self, request: pb.WatchEventsRequest, context: Context) -> AsyncIterator[pb.Event]:
        async for event in watch_events(self._watchers, request):
            yield event

    @rpc
    async def WatchUsage(self, request: pb.WatchUsageRequest, context: Context) -> AsyncIterator[pb.UsageRecord]:
        async for record in watch_usage(self._watchers, request):
            yield record

    @rpc
    async def SetPreferences(self, request: pb.SetPreferencesRequest, context: Context) -> pb.Account:
        validation.check_preferences(request)
        return account_message(await self._accounts.set_preferences(request.account_id, preferences_spec(request)))

    @rpc
    async def Borrow(self, request: pb.BorrowRequest, context: Context) -> pb.TopUpAnswer:
        validation.check_borrow(request)
        record = await self._accounts.borrow(request.account_id, request.offer_id, request.idempotency_key)
        log.info(
            "loan %s (%s) to %s%s",
            request.offer_id,
            request.idempotency_key,
            request.account_id,
            " (replayed: nothing lent)" if record.replayed else "",
        )
        return top_up_answer_message(record)

    @rpc
    async def CreateGroup(self, request: pb.CreateGroupRequest, context: Context) -> pb.Group:
        validation.check_create_group(request, self._limits)
        return group_message(await self._groups.create(request.group_id, request.currency, request.refill_amount))

    @rpc
    async def TopUpGroup(self, request: pb.TopUpGroupRequest, context: Context) -> pb.TopUpGroupAnswer:
        validation.check_top_up_group(request, self._limits)
        record = await self._groups.top_up(request.group_id, request.amount, request.channel, request.idempotency_key)
        return pb.TopUpGroupAnswer(
            group=group_message(record.group), replayed=record.replayed == 1, ledger_seq=record.ledger_seq
        )

    @rpc
    async def SetGroupMember(self, request: pb.SetGroupMemberRequest, context: Context) -> pb.Group:
        validation.check_set_group_member(request, self._limits)
        return group_message(await self._groups.set_member(request.group_id, request.account_id, request.cap))

    @rpc
    async def RemoveGroupMember(self, request: pb.RemoveGroupMemberRequest, context: Context) -> pb.Group:
        validation.check_group_member(request)
        return group_message(await self._groups.remove_member(request.group_id, request.account_id))

    @rpc
    async def GetGroup(self, request: pb.GetGroupRequest, context: Context) -> pb.Group:
        validation.check_id(request.group_id, "group_id")
        return group_message(await self._groups.get(request.group_id))

    @rpc
    async def Adjust(self, request: pb.AdjustRequest, context: Context) -> pb.AdjustAnswer:
        validation.check_adjust(request, self._limits)
        record = await self._accounts.adjust(
            request.account_id, request.amount, request.reason, request.idempotency_key
        )
        log.info(
            "adjustment %s of %d on %s%s",
            request.idempotency_key,
            request.amount,
            request.account_id,
            " (replayed: nothing applied)" if record.replayed else "",
        )
        return pb.AdjustAnswer(replayed=record.replayed == 1, ledger_seq=record.ledger_seq, balance=record.balance)
