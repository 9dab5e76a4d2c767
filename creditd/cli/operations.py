"""`creditd tiers recompute` and `creditd report` (arrears, loans, settlement): batch jobs straight
against Redis (creditd/core/jobs.py), with a progress bar on stderr and the result on stdout."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import msgspec
import redis
from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from creditd.cli import edge, render
from creditd.cli.common import open_redis, redis_options
from creditd.cli.payments import echo_table
from creditd.cli.usage import instant_ms
from creditd.clock import Clock
from creditd.core import attribution, jobs
from creditd.payments.audit import revenue_by_channel
from creditd.store.calls import Calls
from creditd.store.scan import count_accounts
from creditd.v1 import creditd_pb2 as pb

batch_size_option = click.option(
    "--batch-size",
    default=jobs.DEFAULT_BATCH_SIZE,
    show_default=True,
    type=click.IntRange(1, jobs.MAX_BATCH_SIZE),
    help="accounts per pipelined round trip",
)


@click.group(cls=edge.Group)
def tiers() -> None:
    """Credit tiers by average monthly top-up."""


@tiers.command("recompute")
@redis_options
@batch_size_option
def tiers_recompute(redis_url: str | None, data_dir: Path | None, config: Path | None, batch_size: int) -> None:
    """Put every account in the tier its top-ups earn; its credit limit follows unless overridden."""
    settings, client = open_redis(redis_url, data_dir, config)
    try:
        with click.progressbar(length=count_accounts(client), label="recomputing tiers", file=sys.stderr) as bar:
            summary = jobs.recompute_tiers(
                client, Calls(settings.redis.partitions), Clock().now_ms(), "cli:tiers", batch_size, bar.update
            )
    except redis.RedisError as error:
        raise click.ClickException(edge.redis_error_message(error)) from None
    finally:
        client.close()
    tiers_text = ", ".join(f"{name} {count}" for name, count in summary.by_tier.items()) or "none"
    click.echo(
        f"{summary.accounts} accounts, {summary.changed} changed, {summary.failed} failed; by tier: {tiers_text}"
    )
    if summary.window_trimmed:
        click.echo(
            f"warning: {summary.window_trimmed} account(s) had ledger entries of the window trimmed by retention "
            "(limits.max_ledger_entries): their average is too low"
        )
    sys.exit(1 if summary.failed else 0)


@click.group(cls=edge.Group)
def report() -> None:
    """Reports for the people who run the service."""


@report.command("arrears")
@redis_options
@batch_size_option
@click.option("--json", "as_json", is_flag=True, help="one JSON document instead of a table")
@click.option(
    "--by", "group_by", type=click.Choice(["dealer", "provider"]), help="the debt per dealer or per provider instead"
)
def report_arrears(
    redis_url: str | None,
    data_dir: Path | None,
    config: Path | None,
    batch_size: int,
    as_json: bool,
    group_by: str | None,
) -> None:
    """Accounts in debt or suspended: debt, days in the state, the next step and when. --by: the debt
    per dealer, or per provider (by their share of each account's charges since it was last in credit)."""
    settings, client = open_redis(redis_url, data_dir, config)
    now_ms = Clock().now_ms()
    try:
        with click.progressbar(length=count_accounts(client), label="reading accounts", file=sys.stderr) as bar:
            rows = jobs.arrears(client, Calls(settings.redis.partitions), now_ms, batch_size, bar.update)
        grouped = None
        if group_by == "dealer":
            grouped = attribution.arrears_by_dealer(rows)
        elif group_by == "provider":
            grouped = attribution.arrears_by_provider(client, settings, rows)
    except redis.RedisError as error:
        raise click.ClickException(edge.redis_error_message(error)) from None
    finally:
        client.close()
    if grouped is not None:
        click.echo(msgspec.json.encode(grouped).decode() if as_json else render.amounts_table(group_by or "", grouped))
    elif as_json:
        click.echo(msgspec.json.encode(rows).decode())
    else:
        click.echo(render.arrears_table(rows))


@report.command("loans")
@redis_options
@batch_size_option
@click.option("--json", "as_json", is_flag=True, help="one JSON document instead of a table")
def report_loans(
    redis_url: str | None, data_dir: Path | None, config: Path | None, batch_size: int, as_json: bool
) -> None:
    """Accounts owing for emergency credit (Borrow): what they owe, the largest first, and the total."""
    settings, client = open_redis(redis_url, data_dir, config)
    try:
        with click.progressbar(length=count_accounts(client), label="reading accounts", file=sys.stderr) as bar:
            rows = jobs.loans(client, Calls(settings.redis.partitions), Clock().now_ms(), batch_size, bar.update)
    except redis.RedisError as error:
        raise click.ClickException(edge.redis_error_message(error)) from None
    finally:
        client.close()
    if as_json:
        click.echo(msgspec.json.encode(rows).decode())
        return
    click.echo(f"{'account':20}  {'status':18} {'tier':8} {'balance':>12} {'owed':>12}")
    for row in rows:
        status = pb.AccountStatus.Name(row.status)  # type: ignore[arg-type]
        click.echo(f"{row.account_id:20}  {status:18} {row.tier or '-':8} {row.balance:>12} {row.owed:>12}")
    click.echo(f"{len(rows)} account(s) owe {sum(row.owed for row in rows)} in all")


@report.command("settlement")
@redis_options
@click.option("--from", "from_text", required=True, help="window start, ISO 8601 (UTC unless an offset is given)")
@click.option("--to", "to_text", required=True, help="window end (exclusive)")
@click.option("--provider", help="also this provider's settlement (the provider named by tariffs' provider)")
@click.option("--json", "as_json", is_flag=True, help="one JSON document instead of text")
def report_settlement(
    redis_url: str | None,
    data_dir: Path | None,
    config: Path | None,
    from_text: str,
    to_text: str,
    provider: str | None,
    as_json: bool,
) -> None:
    """Money received in a window by payment channel (agent, promptpay, bank; cancellations
    deducted), and with --provider that provider's revenue in the window less the arrears
    apportioned to it now."""
    window = (instant_ms(from_text, "--from"), instant_ms(to_text, "--to"))
    settings, client = open_redis(redis_url, data_dir, config)
    result = None
    try:
        channels = revenue_by_channel(client, settings.redis.partitions, window)
        if provider is not None:
            rows = jobs.arrears(client, Calls(settings.redis.partitions), Clock().now_ms())
            owed = attribution.arrears_by_provider(client, settings, rows)
            result = attribution.settlement(client, settings, provider, window, owed)
    except redis.RedisError as error:
        raise click.ClickException(edge.redis_error_message(error)) from None
    finally:
        client.close()
    total = sum(row.amount_minor for row in channels)
    if as_json:
        document = {"channels": channels, "received_minor": total, "currency": settings.payments.currency}
        click.echo(msgspec.json.encode(document | ({"provider": result} if result else {})).decode())
        return
    table = [[row.channel, row.payments, row.cancelled, row.amount_minor] for row in channels]
    echo_table(["CHANNEL", "PAYMENTS", "CANCELLED", "AMOUNT_MINOR"], table)
    click.echo(f"received {total} {settings.payments.currency}")
    if result:
        click.echo(f"provider {provider}: revenue {result.revenue}, arrears {result.arrears}, net {result.net}")


def write_audit_metrics(path: Path, violations: int, accounts: int) -> None:
    """The audit's result as a Prometheus text file (written whole, then renamed into place), for the
    alerts CreditdAuditViolations and CreditdAuditNotRun (monitoring/alerts.yml)."""
    registry = CollectorRegistry()
    Gauge("creditd_audit_violations", "Broken invariants the last audit found", registry=registry).set(violations)
    Gauge("creditd_audit_accounts", "Accounts the last audit checked", registry=registry).set(accounts)
    Gauge(
        "creditd_audit_last_run_timestamp_seconds", "When the last audit finished (Unix time)", registry=registry
    ).set_to_current_time()
    write_to_textfile(str(path), registry)
