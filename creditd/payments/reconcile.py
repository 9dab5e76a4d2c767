"""Reconciliation of an agent's daily registry (CSV) with its day book.

The registry is the agent's list of the payments it took on a day: a header line
'transaction_id,account_id,amount_minor,time' and one payment a line (time RFC 3339 with offset, on
that day in payments.time_zone). The whole file is checked before anything is applied: a bad line
is an error naming its number and field.

Each payment falls in one outcome:
- matched: in both, same account and amount, applied here;
- missing_ours: in the registry, not applied here (absent, or claimed by a pay cut off halfway):
  applied now by the same path as pay (so once, whatever the number of runs), above the agent's
  limits too, since the registry proves the money was taken; 'refused' when the account refuses it;
- missing_theirs: applied here, absent from the registry;
- mismatch: in both, with another amount or account, or here cancelled or failed.
A second run finds the payments it applied matched and changes nothing.
"""

from __future__ import annotations

import csv
import enum
import io
import re

import msgspec

from creditd.payments.agents import (
    Agents,
    BadRequest,
    DayEntry,
    Payment,
    Result,
    check_account_id,
    check_transaction_id,
    parse_time_ms,
)

HEADER = ["transaction_id", "account_id", "amount_minor", "time"]
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_LINES = 1_000_000


class Outcome(enum.IntFlag):
    """Each outcome's bit in the command's exit status (matched: 0)."""

    MATCHED = 0
    MISSING_OURS = 4
    MISSING_THEIRS = 8
    MISMATCH = 16


class RegistryLine(msgspec.Struct, frozen=True):
    line: int
    payment: Payment


class Row(msgspec.Struct, frozen=True, kw_only=True):
    transaction_id: str
    outcome: str  # matched, missing_ours, missing_theirs, mismatch
    theirs_account_id: str = ""
    theirs_amount_minor: int | None = None
    ours_account_id: str = ""
    ours_amount_minor: int | None = None
    ours_state: str = ""
    action: str = ""  # applied now, refused: <why>, or ''


def parse_registry(text: str, day: str, agents: Agents) -> list[RegistryLine]:
    """The registry's payments; BadRequest naming the line and field of the first bad one."""
    if not DAY.match(day):
        raise BadRequest("date: YYYY-MM-DD")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [cell.strip() for cell in rows[0]] != HEADER:
        raise BadRequest(f"line 1: the header must be {','.join(HEADER)}")
    if len(rows) > MAX_LINES:
        raise BadRequest(f"registry: more than {MAX_LINES} lines")
    lines, seen = [], set()
    for number, cells in enumerate(rows[1:], start=2):
        if not cells:
            continue
        if len(cells) != len(HEADER):
            raise BadRequest(f"line {number}: {len(HEADER)} fields expected, {len(cells)} found")
        try:
            payment = _payment_of([cell.strip() for cell in cells])
        except BadRequest as error:
            raise BadRequest(f"line {number}: {error.message}") from None
        if agents.day_of(payment.paid_at_ms) != day:
            raise BadRequest(f"line {number}: time: not on {day} in {agents.settings.time_zone}")
        if payment.transaction_id in seen:
            raise BadRequest(f"line {number}: transaction_id: listed twice")
        seen.add(payment.transaction_id)
        lines.append(RegistryLine(number, payment))
    return lines


def _payment_of(cells: list[str]) -> Payment:
    transaction_id, account_id, amount, time = cells
    if not amount.isdigit() or int(amount) < 1 or len(amount) > 15:
        raise BadRequest("amount_minor: a positive integer in minor units")
    return Payment(
        transaction_id=check_transaction_id(transaction_id),
        account_id=check_account_id(account_id),
        amount_minor=int(amount),
        paid_at_ms=parse_time_ms(time),
    )


async def reconcile(
    agents: Agents, agent_id: str, day: str, lines: list[RegistryLine], unlimited_minor: int
) -> list[Row]:
    """Compares and applies what is missing here; one row per payment, the registry's order first."""
    book = await agents.day_book(agent_id, day)
    rows = []
    for line in lines:
        payment = line.payment
        rows.append(await _reconcile_line(agents, agent_id, payment, book.get(payment.transaction_id), unlimited_minor))
    listed = {line.payment.transaction_id for line in lines}
    for transaction_id, entry in sorted(book.items()):
        if transaction_id not in listed and entry.state == "applied":
            rows.append(_row(transaction_id, "missing_theirs", None, entry))
    return rows


def _row(transaction_id: str, outcome: str, payment: Payment | None, entry: DayEntry | None, action: str = "") -> Row:
    return Row(
        transaction_id=transaction_id,
        outcome=outcome,
        theirs_account_id=payment.account_id if payment else "",
        theirs_amount_minor=payment.amount_minor if payment else None,
        ours_account_id=entry.account_id if entry else "",
        ours_amount_minor=entry.amount if entry else None,
        ours_state=entry.state if entry else "",
        action=action,
    )


async def _reconcile_line(
    agents: Agents, agent_id: str, payment: Payment, entry: DayEntry | None, unlimited_minor: int
) -> Row:
    same = entry is not None and (entry.account_id, entry.amount) == (payment.account_id, payment.amount_minor)
    if entry is not None and (not same or entry.state in ("failed", "cancelled")):
        return _row(payment.transaction_id, "mismatch", payment, entry)
    if entry is not None and entry.state == "applied":
        return _row(payment.transaction_id, "matched", payment, entry)
    answer = await agents.pay(agent_id, payment, daily_limit_minor=unlimited_minor)
    if answer.result != Result.OK or answer.receipt is None:
        return _row(payment.transaction_id, "missing_ours", payment, entry, f"refused: {answer.message}")
    applied = await agents.entry(agent_id, payment.transaction_id, payment.paid_at_ms)
    return _row(payment.transaction_id, "missing_ours", payment, applied, "applied now")


def exit_status(rows: list[Row]) -> int:
    """The outcomes' bits or-ed: 0 when every payment matched."""
    status = Outcome.MATCHED
    for row in rows:
        status |= Outcome[row.outcome.upper()]
    return int(status)


REPORT_COLUMNS = [
    "transaction_id",
    "outcome",
    "theirs_account_id",
    "theirs_amount_minor",
    "ours_account_id",
    "ours_amount_minor",
    "ours_state",
    "action",
]


def report_cells(row: Row) -> list[str]:
    return ["" if value is None else str(value) for value in (getattr(row, name) for name in REPORT_COLUMNS)]


def report_csv(rows: list[Row]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REPORT_COLUMNS)
    writer.writerows(report_cells(row) for row in rows)
    return out.getvalue()
