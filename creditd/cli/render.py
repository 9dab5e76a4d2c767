"""Plain-text rendering of answers for the CLI."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from creditd.v1 import creditd_pb2 as pb

if TYPE_CHECKING:
    from creditd.core.jobs import ArrearsRow
    from creditd.core.rerate import RerateRow


def _time(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _status(status: int) -> str:
    return pb.AccountStatus.Name(pb.AccountStatus.ValueType(status)) if status else "-"


def _preferences_line(p: pb.Preferences) -> str:
    quiet = f"quiet {p.quiet_hours_start}-{p.quiet_hours_end}" if p.quiet_hours_start else "no quiet hours"
    marketing = "offers welcome" if p.marketing_opt_in else "no offers"
    return f"notices      {p.language} via {', '.join(p.channels) or '-'}   {p.time_zone}   {quiet}   {marketing}"


def account_card(account: pb.Account) -> str:
    """The subscriber card, one labelled line per fact."""
    tier = account.tier or "-"
    limit_source = "operator override" if account.credit_limit_override else f"tier {tier}"
    lines = [
        f"account      {account.account_id}   plan {account.plan}   currency {account.currency}",
        f"contact      {account.contact.name or '-'}   {account.contact.email or '-'}   {account.contact.phone or '-'}",
        f"status       {pb.AccountStatus.Name(account.status)} ({account.status_reason})"
        f" since {_time(account.status_since_ms)} UTC",
        f"balance      {account.balance}   reserved {account.reserved}   available {account.available}",
        f"credit       limit {account.credit_limit} ({limit_source})   tier {tier}",
        f"billing      cycle day {account.billing_cycle_day}   data overage this cycle {account.data_overage_spent}"
        + (f" of {account.data_overage_cap}" if account.data_overage_cap else " (no cap)"),
        f"sessions     {account.open_sessions} open" + (f"   dealer {account.dealer}" if account.dealer else ""),
        _preferences_line(account.preferences),
    ]
    if account.loan_outstanding:
        lines.append(f"loans        {account.loan_outstanding} owed, recovered from the next top-ups")
    if account.group_id:
        lines.append(
            f"group        {account.group_id}: {account.group_holding} of the balance is the group's (spent last)"
        )
    if account.next_status:
        lines.append(f"next step    {_status(account.next_status)} at {_time(account.next_status_at_ms)} UTC if unpaid")
    for bucket in account.buckets:
        expiry = _time(bucket.expires_at_ms) + " UTC" if bucket.expires_at_ms else "never"
        label, unit = ("bonus", account.currency) if bucket.unit == pb.MONEY else ("bucket", pb.Unit.Name(bucket.unit))
        lines.append(
            f"{label:12} {bucket.bucket_id}: {bucket.remaining} of {bucket.amount} {unit} left, "
            f"{bucket.reserved} reserved, expires {expiry}, serves {', '.join(bucket.zones) or 'home'}"
        )
    for entry in account.bonus_instalments:
        lines.append(
            f"instalments  {entry.bonus_id}: {entry.instalments_left} more of {entry.instalment_amount} "
            f"{account.currency}, the next at {_time(entry.next_at_ms)} UTC"
        )
    return "\n".join(lines)


def arrears_table(rows: Sequence[ArrearsRow]) -> str:
    header = f"{'account':20}  {'status':18} {'reason':7} {'debt':>12}  {'days':>5}  next step"
    lines = [header]
    for row in rows:
        step = f"{_status(row.next_status)} at {_time(row.next_status_at_ms)}" if row.next_status else "-"
        lines.append(
            f"{row.account_id:20}  {_status(row.status):18} {row.status_reason:7} {row.debt:>12}  "
            f"{row.days_in_state:>5}  {step}"
        )
    lines.append(f"{len(rows)} account(s), total debt {sum(row.debt for row in rows)}")
    return "\n".join(lines)


def ledger_table(entries: Iterable[pb.LedgerEntry]) -> str:
    rows = [f"{'seq':>6}  {'time (UTC)':19}  {'kind':12}  {'amount':>12}  {'balance':>12}  {'by':12}  reference"]
    for entry in entries:
        rows.append(
            f"{entry.seq:>6}  {_time(entry.time_ms):19}  {entry.kind:12}  {entry.amount:>12}  "
            f"{entry.balance_after:>12}  {entry.actor:12}  {entry.reference}"
        )
    return "\n".join(rows)


def charge_answer(kind: int, answer: pb.ChargeAnswer) -> str:
    head = (
        f"{pb.ChargeRequest.RequestType.Name(pb.ChargeRequest.RequestType.ValueType(kind)):9} "
        f"#{answer.request_number}: "
        f"{pb.ResultCode.Name(answer.result)}"
    )
    if answer.account_status:
        head += f"  account {pb.AccountStatus.Name(answer.account_status)}"
    if answer.error:
        head += f"  error: {answer.error}"
    parts = [head]
    for grant in answer.grants:
        line = (
            f"    rating group {grant.rating_group}: {pb.ResultCode.Name(grant.result)} granted {grant.granted} "
            f"{pb.Unit.Name(grant.unit)} for {grant.validity_time_s} s, charged {grant.charged}"
        )
        if grant.tariff:
            line += f", tariff {grant.tariff}"
        if grant.tariff_time_change_ms:
            line += f", price changes at {_time(grant.tariff_time_change_ms)}"
        if grant.final_unit_action:
            line += f", FINAL -> {pb.UnitGrant.FinalUnitAction.Name(grant.final_unit_action)} {grant.redirect_url}"
        if grant.throttled:
            line += f", throttled to {grant.max_bitrate_kbps} kbps"
        parts.append(line)
    return "\n".join(parts)


def event_line(event: pb.Event) -> str:
    attributes = " ".join(f"{name}={value}" for name, value in sorted(event.attributes.items()))
    return f"{event.id}  {_time(event.time_ms)}  {event.kind:18} {event.account_id:16} {attributes}"


def _posted(row: RerateRow) -> str:
    if row.error:
        return f"error: {row.error}"
    return "replayed" if row.replayed else "yes" if row.posted else "-"


def rerate_table(rows: Sequence[RerateRow], dry_run: bool) -> str:
    lines = [f"{'account':18} {'records':>8} {'charged':>10} {'rerated':>10} {'adjustment':>11}  posted"]
    for row in rows:
        posted = "dry run" if dry_run else _posted(row)
        lines.append(
            f"{row.account_id:18} {row.records:8} {row.charged:10} {row.rerated:10} {row.adjustment:11}  {posted}"
        )
    total = sum(row.adjustment for row in rows)
    unrated = sum(row.unrated for row in rows)
    lines.append(f"{len(rows)} account(s), adjustments total {total}, {unrated} unrated record(s)")
    return "\n".join(lines)


def amounts_table(title: str, amounts: dict[str, int]) -> str:
    lines = [f"{title:24} {'debt':>12}"]
    lines += [f"{name or '(operator / none)':24} {amount:12}" for name, amount in amounts.items()]
    lines.append(f"{'total':24} {sum(amounts.values()):12}")
    return "\n".join(lines)
