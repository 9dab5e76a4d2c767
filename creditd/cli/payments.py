"""`creditd payments ...`: serve the payments front (agents' API, PromptPay), reconcile an agent's
registry, import bank statements and assign what they could not match, list payments."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec
import uvloop

from creditd import logs
from creditd.cli.common import open_redis, redis_options, settings_from_options
from creditd.cli.usage import instant_ms
from creditd.clock import Clock
from creditd.config.settings import Settings
from creditd.errors import CreditdError
from creditd.paygate.app import serve as serve_front
from creditd.payments.agents import Agents, BadRequest, format_time
from creditd.payments.audit import audit_payments, revenue_by_channel
from creditd.payments.camt import StatementError, parse_statement
from creditd.payments.money import Money
from creditd.payments.promptpay import Intent, PromptPay, WebhookOutcome
from creditd.payments.reconcile import (
    REPORT_COLUMNS,
    Row,
    exit_status,
    parse_registry,
    reconcile,
    report_cells,
    report_csv,
)
from creditd.payments.statements import Outcome as StatementOutcome
from creditd.payments.statements import Statements
from creditd.store.connection import AnyRedis, connect
from creditd.store.embedded import embedded_url
from creditd.store.keys import payments_key

Result = TypeVar("Result")
OUTCOMES = ("matched", "missing_ours", "missing_theirs", "mismatch")


def open_settings(redis_url: str | None, data_dir: Path | None, config: Path | None) -> tuple[Settings, str]:
    try:
        settings = settings_from_options(config, None, redis_url, data_dir, None)
    except CreditdError as error:
        raise click.ClickException(error.message) from None
    return settings, settings.redis.url or embedded_url(Path(settings.redis.data_dir))


def run_with_money(
    redis_url: str | None,
    data_dir: Path | None,
    config: Path | None,
    work: Callable[[Settings, Money], Awaitable[Result]],
) -> Result:
    """Runs work on an asyncio Redis client of its own; a creditd error becomes the command's error."""
    settings, url = open_settings(redis_url, data_dir, config)

    async def run() -> Result:
        client = connect(url, settings.redis)
        try:
            return await work(
                settings, Money(client, settings.redis.partitions, Clock(), settings.limits.topup_key_retention_s)
            )
        finally:
            await client.aclose()

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(run())
    except CreditdError as error:
        raise click.ClickException(error.message) from None


@click.group()
def payments() -> None:
    """Payments: agents and terminals, registries, bank statements, PromptPay."""


@payments.command("serve")
@click.option("--listen", help="HOST:PORT [default: payments.listen]")
@redis_options
def serve(listen: str | None, redis_url: str | None, data_dir: Path | None, config: Path | None) -> None:
    """Serve the payments front (agents' API, PromptPay intents and webhook, /metrics) until SIGTERM."""
    logs.configure("INFO", "text")
    settings, url = open_settings(redis_url, data_dir, config)
    if listen:
        settings = msgspec.structs.replace(settings, payments=msgspec.structs.replace(settings.payments, listen=listen))

    async def run() -> None:
        client: AnyRedis = connect(url, settings.redis)
        await serve_front(settings, client)

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run())
    except CreditdError as error:
        raise click.ClickException(error.message) from None


def echo_table(header: list[str], rows: list[list[Any]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    for row in [header, *rows]:
        click.echo("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@payments.command("reconcile")
@click.option("--agent", "agent_id", required=True, help="the agent's id ([payments.agents.<id>])")
@click.option("--date", "day", required=True, help="the registry's day, YYYY-MM-DD in payments.time_zone")
@click.option("--registry", type=click.Path(path_type=Path, dir_okay=False), required=True, help="the agent's CSV")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path, dir_okay=False), help="also write the report here")
@redis_options
def reconcile_command(
    agent_id: str,
    day: str,
    registry: Path,
    csv_path: Path | None,
    redis_url: str | None,
    data_dir: Path | None,
    config: Path | None,
) -> None:
    """Compare an agent's daily registry with what creditd applied; apply what is missing here.

    Exit status: 0 every payment matched; else the sum of 4 (missing here: applied now, or refused),
    8 (missing in the registry), 16 (amount, account or state differs); 1 for an error (a bad line,
    named), nothing applied then."""

    async def work(settings: Settings, money: Money) -> list[Row]:
        if agent_id not in settings.payments.agents:
            raise click.ClickException(f"--agent: no agent {agent_id!r} in [payments.agents]")
        agents = Agents(money, settings.payments)
        try:
            text = registry.read_text(encoding="utf-8-sig")
            lines = parse_registry(text, day, agents)
        except (BadRequest, UnicodeDecodeError, OSError) as error:
            raise click.ClickException(f"{registry}: {getattr(error, 'message', error)}") from None
        return await reconcile(agents, agent_id, day, lines, settings.limits.max_balance_minor)

    rows = run_with_money(redis_url, data_dir, config, work)
    echo_table([name.upper() for name in REPORT_COLUMNS], [report_cells(row) for row in rows])
    counts = {outcome: sum(row.outcome == outcome for row in rows) for outcome in OUTCOMES}
    click.echo(", ".join(f"{count} {outcome}" for outcome, count in counts.items()))
    if csv_path is not None:
        csv_path.write_text(report_csv(rows))
    sys.exit(exit_status(rows))


@payments.command("import")
@click.argument("statement", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@redis_options
def import_command(statement: Path, redis_url: str | None, data_dir: Path | None, config: Path | None) -> None:
    """Apply the booked credits of an ISO 20022 camt.053 or camt.054 file, each once; queue those
    whose account cannot be told for `creditd payments assign`. Importing it again is harmless."""

    async def work(settings: Settings, money: Money) -> list[StatementOutcome]:
        bank = settings.payments.bank
        if statement.stat().st_size > bank.max_file_bytes:
            raise click.ClickException(f"{statement}: larger than payments.bank.max_file_bytes ({bank.max_file_bytes})")
        try:
            parsed = parse_statement(statement.read_bytes(), bank.max_entries)
        except StatementError as error:
            raise click.ClickException(f"{statement}: {error.message}") from None
        statements = Statements(money, settings.payments)
        click.echo(f"{statement}: {parsed.kind}, {len(parsed.credits)} credit(s), {parsed.skipped} other entries")
        return [await statements.import_credit(credit) for credit in parsed.credits]

    outcomes = run_with_money(redis_url, data_dir, config, work)
    header = ["REFERENCE", "AMOUNT_MINOR", "CURRENCY", "OUTCOME", "ACCOUNT", "DETAIL"]
    rows = [
        [item.servicer_reference, item.amount_minor, item.currency, item.outcome, item.account_id, item.detail]
        for item in outcomes
    ]
    echo_table(header, rows)
    counts = {
        name: sum(item.outcome == name for item in outcomes) for name in ("applied", "duplicate", "unmatched", "review")
    }
    click.echo(", ".join(f"{count} {name}" for name, count in counts.items()))


@payments.command("unmatched")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000), help="rows shown at most")
@redis_options
def unmatched_command(limit: int, redis_url: str | None, data_dir: Path | None, config: Path | None) -> None:
    """List the bank credits waiting for `creditd payments assign`, oldest first."""

    async def work(settings: Settings, money: Money) -> list[dict[str, str]]:
        return await Statements(money, settings.payments).unmatched(limit)

    waiting = run_with_money(redis_url, data_dir, config, work)
    fields = ["servicer_reference", "amount_minor", "currency", "booking_date", "reason", "remittance"]
    echo_table([field.upper() for field in fields], [[item.get(field, "") for field in fields] for item in waiting])


@payments.command("assign")
@click.argument("reference")
@click.argument("account_id")
@click.option("--amount-minor", type=click.IntRange(1, None), help="for a foreign currency: the amount to credit")
@redis_options
def assign_command(
    reference: str,
    account_id: str,
    amount_minor: int | None,
    redis_url: str | None,
    data_dir: Path | None,
    config: Path | None,
) -> None:
    """Apply an unmatched bank credit (its servicer reference) to an account, once."""

    async def work(settings: Settings, money: Money) -> StatementOutcome:
        return await Statements(money, settings.payments).assign(reference, account_id, amount_minor)

    outcome = run_with_money(redis_url, data_dir, config, work)
    click.echo(f"{outcome.servicer_reference}: {outcome.outcome} to {outcome.account_id} ({outcome.detail})")


@payments.command("list")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000), help="rows shown at most")
@redis_options
def list_command(limit: int, redis_url: str | None, data_dir: Path | None, config: Path | None) -> None:
    """The newest PromptPay payment intents and webhook outcomes, and the unmatched bank credits."""

    async def work(settings: Settings, money: Money) -> tuple[list[Intent], list[WebhookOutcome], int]:
        promptpay = PromptPay(money, settings.payments)
        waiting = await money.client.zcard(payments_key("bank_unmatched"))
        return await promptpay.intents(limit), await promptpay.outcomes(limit), waiting

    intents, outcomes, waiting = run_with_money(redis_url, data_dir, config, work)
    click.echo("PAYMENT INTENTS")
    header = ["REFERENCE", "ACCOUNT", "AMOUNT_MINOR", "STATE", "CREATED", "EXPIRES", "TRANSACTION", "LEDGER_SEQ"]
    rows: list[list[Any]] = [
        [
            item.reference,
            item.account_id,
            item.amount_minor,
            item.state,
            format_time(item.created_at_ms),
            format_time(item.expires_at_ms),
            item.transaction_id,
            item.ledger_seq or "",
        ]
        for item in intents
    ]
    echo_table(header, rows)
    click.echo("WEBHOOK OUTCOMES")
    header = ["OUTCOME", "AT", "REFERENCE", "TRANSACTION", "AMOUNT_MINOR", "MESSAGE"]
    rows = [
        [item.outcome, format_time(item.at_ms), item.reference, item.transaction_id, item.amount_minor, item.message]
        for item in outcomes
    ]
    echo_table(header, rows)
    click.echo(f"{waiting} unmatched bank credit(s) wait (creditd payments unmatched)")


@payments.command("audit")
@redis_options
def audit_command(redis_url: str | None, data_dir: Path | None, config: Path | None) -> None:
    """Check that every applied payment has exactly one top-up and every payment top-up its payment;
    print each violation (and each unfinished payment); exit 1 when there is a violation."""
    try:
        settings, client = open_redis(redis_url, data_dir, config)
    except CreditdError as error:
        raise click.ClickException(error.message) from None
    try:
        report = audit_payments(client, settings.redis.partitions)
    finally:
        client.close()
    for line in report.unfinished:
        click.echo(f"UNFINISHED {line}")
    for line in report.violations:
        click.echo(f"VIOLATION {line}")
    click.echo(
        f"{report.payments} applied payments, {report.top_ups} payment top-ups, {len(report.unfinished)} unfinished: "
        f"{len(report.violations)} violation(s)"
    )
    sys.exit(1 if report.violations else 0)


@payments.command("revenue")
@click.option("--from", "from_text", required=True, help="window start, ISO 8601 (UTC unless an offset is given)")
@click.option("--to", "to_text", required=True, help="window end (exclusive)")
@redis_options
def revenue_command(
    from_text: str, to_text: str, redis_url: str | None, data_dir: Path | None, config: Path | None
) -> None:
    """Money received in a window by payment channel (agent, promptpay, bank), cancellations deducted."""
    window = (instant_ms(from_text, "--from"), instant_ms(to_text, "--to"))
    try:
        settings, client = open_redis(redis_url, data_dir, config)
    except CreditdError as error:
        raise click.ClickException(error.message) from None
    try:
        rows = revenue_by_channel(client, settings.redis.partitions, window)
    finally:
        client.close()
    table = [[row.channel, row.payments, row.cancelled, row.amount_minor] for row in rows]
    echo_table(["CHANNEL", "PAYMENTS", "CANCELLED", "AMOUNT_MINOR"], table)
    click.echo(f"total {sum(row.amount_minor for row in rows)} {settings.payments.currency}")
