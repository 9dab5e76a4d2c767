"""Converters between the proto messages and the core's records: no logic beyond renaming."""

from __future__ import annotations

from typing import Any

import msgspec

from creditd.config.plans import LoanOffer
from creditd.core.feed import FeedEvent
from creditd.core.self_service import CatalogueEntry
from creditd.core.usage import Usage
from creditd.core.usage_summary import AccountUsage
from creditd.store.calls import BucketSpec, ChargeLike, ChargeSpec, NewAccount, PreferencesSpec, UnitSpec
from creditd.store.replies import (
    AccountRecord,
    AnswerRecord,
    GrantRecord,
    GroupRecord,
    LedgerEntryRecord,
    TopUpRecord,
)
from creditd.v1 import creditd_pb2 as pb

# The records carry the enums as plain ints (the parity tests keep the numbers equal); the stubs
# type each proto enum field as its own int subtype.
RESULT, STATUS = pb.ResultCode.ValueType, pb.AccountStatus.ValueType
UNIT, POLICY = pb.Unit.ValueType, pb.ExhaustionPolicy.ValueType
NOTIFICATION_KINDS = {"REAUTH": pb.Notification.REAUTH, "ABORT_SESSION": pb.Notification.ABORT_SESSION}


def charge_spec(request: pb.ChargeRequest, max_units_per_request: int) -> ChargeSpec:
    """The request's fields, each read once: a field read from a proto message makes a new Python
    value each time (some 800 instructions), and a Charge's fields are read by the edge's checks, the
    command and the answer. Units past one more than the limit are not read (the checks refuse the
    request for its count alone). The slice is a list: upb's container has no iterator."""
    units = [
        UnitSpec(unit.rating_group, unit.requested, unit.used, unit.service_id, unit.used_after_tariff_change)
        for unit in request.units[: max_units_per_request + 1]
    ]
    return ChargeSpec(
        request.session_id,
        request.request_type,
        request.request_number,
        request.account_id,
        request.gateway_id,
        units,
        request.called_party,
        request.visited_plmn,
    )


def _add_grant(answer: Any, grant: GrantRecord) -> None:
    # Added in place: a UnitGrant made apart and put in the answer's list is copied into it. The
    # message is Any: the record's enums are plain ints (the parity tests keep the numbers equal).
    answer.grants.add(
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
        tariff=grant.tariff,
        tariff_time_change_ms=grant.tariff_time_change_ms,
        quota_threshold=grant.quota_threshold,
        quota_holding_time_s=grant.quota_holding_time_s,
    )


def answer_message(request: ChargeLike, record: AnswerRecord) -> pb.ChargeAnswer:
    """A charge's JSON answer as a ChargeAnswer: the gRPC edge's way for an answer stored as JSON
    (api/answers.py); the function writes the others' bytes itself."""
    answer = pb.ChargeAnswer(
        session_id=request.session_id,
        request_number=request.request_number,
        result=RESULT(record.result),
        account_status=STATUS(record.account_status),
        error=record.error,
    )
    for grant in record.grants:
        _add_grant(answer, grant)
    return answer


def refused_answer(request: ChargeLike, result: int, message: str) -> pb.ChargeAnswer:
    return pb.ChargeAnswer(
        session_id=request.session_id, request_number=request.request_number, result=RESULT(result), error=message
    )


def account_message(record: AccountRecord) -> pb.Account:
    """The subscriber card."""
    buckets = [
        pb.Bucket(
            bucket_id=bucket.bucket_id,
            unit=UNIT(bucket.unit),
            remaining=bucket.remaining,
            reserved=bucket.reserved,
            rating_groups=bucket.rating_group_list(),
            zones=bucket.zone_list(),
            expires_at_ms=bucket.expires_at_ms,
            priority=bucket.priority,
            exhaustion_policy=POLICY(bucket.exhaustion_policy),
            amount=bucket.amount,
        )
        for bucket in record.buckets
    ]
    return pb.Account(
        account_id=record.account_id,
        plan=record.plan,
        currency=record.currency,
        status=STATUS(record.status),
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
        dealer=record.dealer,
        preferences=pb.Preferences(
            language=record.preferences.language,
            time_zone=record.preferences.time_zone,
            channels=record.preferences.channels.split(",") if record.preferences.channels else [],
            marketing_opt_in=record.preferences.marketing_opt_in,
            quiet_hours_start=record.preferences.quiet_hours_start,
            quiet_hours_end=record.preferences.quiet_hours_end,
        ),
        created_at_ms=record.created_at_ms,
        ledger_seq=record.ledger_seq,
        billing_cycle_day=record.billing_cycle_day,
        credit_limit_override=record.credit_limit_override,
        data_overage_spent=record.data_overage_spent_minor,
        data_overage_cap=record.data_overage_cap_minor,
        loan_outstanding=record.loan_outstanding,
        bonus_instalments=[
            pb.BonusInstalment(
                bonus_id=entry.bonus_id,
                instalments_left=entry.instalments_left,
                instalment_amount=entry.instalment_minor,
                next_at_ms=entry.next_at_ms,
            )
            for entry in record.bonus_instalments
        ],
        group_id=record.group_id,
        group_holding=record.group_holding,
        next_status=STATUS(record.next_status),
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
        dealer=request.dealer,
    )


def ledger_entry_message(entry: LedgerEntryRecord) -> pb.LedgerEntry:
    return pb.LedgerEntry(
        seq=entry.seq,
        time_ms=entry.time_ms,
        kind=entry.kind,
        amount=entry.amount,
        balance_after=entry.balance_after,
        reference=entry.reference,
        actor=entry.actor,
    )


def event_message(event: FeedEvent) -> pb.Event:
    attributes = dict(event.fields)
    kind, account_id = attributes.pop("kind"), attributes.pop("account_id")
    time_ms = int(attributes.pop("time_ms"))
    return pb.Event(id=event.id, kind=kind, account_id=account_id, time_ms=time_ms, attributes=attributes)


def preferences_spec(request: pb.SetPreferencesRequest) -> PreferencesSpec:
    p = request.preferences
    return PreferencesSpec(
        language=p.language,
        time_zone=p.time_zone,
        channels=list(p.channels),
        marketing_opt_in=p.marketing_opt_in,
        quiet_hours_start=p.quiet_hours_start,
        quiet_hours_end=p.quiet_hours_end,
    )


def usage_message(usage: Usage) -> pb.UsageRecord:
    fields = msgspec.structs.asdict(usage)
    fields["unit"] = UNIT(usage.unit)
    return pb.UsageRecord(**fields)


def notification_message(event: FeedEvent) -> pb.Notification:
    fields = event.fields
    return pb.Notification(
        kind=NOTIFICATION_KINDS[fields["kind"]],
        session_id=fields["session_id"],
        account_id=fields["account_id"],
        reason=fields["detail"],
        id=event.id,
    )


def top_up_answer_message(record: TopUpRecord) -> pb.TopUpAnswer:
    """The answer of a keyed money call: TopUp, Borrow, RedeemVoucher."""
    return pb.TopUpAnswer(
        account=account_message(record.account), replayed=record.replayed == 1, ledger_seq=record.ledger_seq
    )


def usage_summary_message(usage: AccountUsage) -> pb.UsageSummary:
    days = [
        pb.UsageDay(
            day=t.day,
            rating_group=t.rating_group,
            unit=t.unit,  # type: ignore[arg-type]
            zone=t.zone,
            units=t.units,
            charged=t.charged_minor,
            records=t.records,
            destination=t.destination,
        )
        for t in usage.days
    ]
    recent = [
        pb.RecentUsage(
            time_ms=r.time_ms,
            rating_group=r.rating_group,
            unit=r.unit,  # type: ignore[arg-type]
            units=r.units,
            charged=r.charged_minor,
            destination=r.destination,
            zone=r.zone,
        )
        for r in usage.recent
    ]
    return pb.UsageSummary(days=days, recent=recent)


def loan_offers_message(offers: list[LoanOffer], card: AccountRecord) -> pb.LoanOfferCatalogue:
    return pb.LoanOfferCatalogue(
        offers=[
            pb.LoanOffer(
                offer_id=offer.offer_id,
                amount=offer.amount_minor,
                fee=offer.fee_minor,
                max_outstanding=offer.max_outstanding_minor,
            )
            for offer in offers
        ],
        currency=card.currency,
        loan_outstanding=card.loan_outstanding,
    )


def catalogue_message(entries: list[CatalogueEntry], currency: str) -> pb.BundleCatalogue:
    bundles = [
        pb.CatalogueBundle(
            bundle_id=e.bundle.bundle_id,
            price=e.bundle.price_minor,
            unit=pb.Unit.Value(e.bundle.unit),
            amount=e.bundle.amount,
            validity_s=e.bundle.validity_s,
            recommended=e.recommended,
        )
        for e in entries
    ]
    return pb.BundleCatalogue(bundles=bundles, currency=currency)


def group_message(record: GroupRecord) -> pb.Group:
    return pb.Group(
        group_id=record.group_id,
        currency=record.currency,
        balance=record.balance,
        refill_amount=record.refill_minor,
        billing_cycle_day=record.billing_cycle_day,
        ledger_seq=record.ledger_seq,
        members=[
            pb.GroupMember(account_id=m.account_id, cap=m.cap_minor, allocated_this_cycle=m.allocated_minor)
            for m in record.members
        ],
        pending_transfers=[
            pb.GroupTransfer(
                transfer_id=t.transfer_id,
                to_member=t.direction == 1,
                account_id=t.account_id,
                amount=t.amount_minor,
                opened_at_ms=t.opened_at_ms,
                removes_member=bool(t.remove),
            )
            for t in record.pending
        ],
    )
