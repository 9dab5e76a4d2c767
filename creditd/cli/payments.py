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
from creditd.cli.common import redis_options, settings_from_options
from creditd.clock import Clock
from creditd.errors import CreditdError
from creditd.paygate.app import serve as serve_front
from creditd.payments.agents import Agents, BadRequest
from creditd.payments.money import Money
from creditd.payments.reconcile import (
    REPORT_COLUMNS,
    Row,
    exit_status,
    parse_registry,
    reconcile,
    report_cells,
    report_csv,
)
from creditd.settings import Settings
from creditd.store.connection import AnyRedis, connect
from creditd.store.embedded import embedded_url

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
            return await work(settings, Money(client, settings.redis.partitions, Clock()))
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
