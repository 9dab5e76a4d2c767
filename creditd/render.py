"""Plain-text rendering of answers for the CLI."""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from creditd.v1 import creditd_pb2 as pb


def _time(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def account_card(account: pb.Account) -> str:
    lines = [
        f"account    {account.account_id}   plan {account.plan}   currency {account.currency}",
        f"status     {pb.AccountStatus.Name(account.status)} ({account.status_reason})"
        f" since {_time(account.status_since_ms)} UTC",
        f"balance    {account.balance}   reserved {account.reserved}   available {account.available}"
        f"   credit limit {account.credit_limit}",
        f"sessions   {account.open_sessions} open",
    ]
    for bucket in account.buckets:
        expiry = _time(bucket.expires_at_ms) if bucket.expires_at_ms else "never"
        lines.append(
            f"bucket     {bucket.bucket_id}: {bucket.remaining} {pb.Unit.Name(bucket.unit)} left, "
            f"{bucket.reserved} reserved, expires {expiry}"
        )
    return "\n".join(lines)


def ledger_table(entries: Iterable[pb.LedgerEntry]) -> str:
    rows = [f"{'seq':>6}  {'time (UTC)':19}  {'kind':8}  {'amount':>12}  {'balance':>12}  reference"]
    for entry in entries:
        rows.append(
            f"{entry.seq:>6}  {_time(entry.time_ms):19}  {entry.kind:8}  {entry.amount:>12}  "
            f"{entry.balance_after:>12}  {entry.reference}"
        )
    return "\n".join(rows)


def charge_answer(kind: int, answer: pb.ChargeAnswer) -> str:
    head = (
        f"{pb.ChargeRequest.RequestType.Name(kind):9} #{answer.request_number}: "
        f"{pb.ResultCode.Name(answer.result)}  account {pb.AccountStatus.Name(answer.account_status)}"
    )
    if answer.error:
        head += f"  error: {answer.error}"
    parts = [head]
    for grant in answer.grants:
        line = (
            f"    rating group {grant.rating_group}: {pb.ResultCode.Name(grant.result)} granted {grant.granted} "
            f"{pb.Unit.Name(grant.unit)} for {grant.validity_time_s} s, charged {grant.charged}"
        )
        if grant.final_unit_action:
            line += f", FINAL -> {pb.UnitGrant.FinalUnitAction.Name(grant.final_unit_action)} {grant.redirect_url}"
        if grant.throttled:
            line += f", throttled to {grant.max_bitrate_kbps} kbps"
        parts.append(line)
    return "\n".join(parts)


def event_line(event: pb.Event) -> str:
    attributes = " ".join(f"{name}={value}" for name, value in sorted(event.attributes.items()))
    return f"{event.id}  {_time(event.time_ms)}  {event.kind:18} {event.account_id:16} {attributes}"
