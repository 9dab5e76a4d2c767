"""`creditd voucher create`: prints new top-up voucher codes and stores only their hashes
(creditd/core/vouchers.py, Lua create_voucher)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from creditd.cli import edge
from creditd.cli.common import open_redis, redis_options
from creditd.core.vouchers import code_hash, new_code, printed
from creditd.errors import CreditdError
from creditd.store.calls import Calls
from creditd.store.functions import call_all_sync

BATCH = 500
MAX_COUNT = 1_000_000


@click.group(cls=edge.Group)
def voucher() -> None:
    """Top-up vouchers: printed codes a subscriber redeems once (self-service portal)."""


@voucher.command("create")
@redis_options
@click.option("--count", type=click.IntRange(1, MAX_COUNT), required=True, help="how many codes")
@click.option("--amount", type=int, required=True, help="minor units each (satang for THB)")
@click.option("--currency", default="THB", show_default=True, help="ISO 4217 code of --amount's minor units")
@click.option(
    "--validity-days",
    type=click.IntRange(1, 3 * 366),
    default=365,
    show_default=True,
    help="days a code can be redeemed",
)
@click.option("--batch", default="", help="a name for the print run; default: voucher-<unix time>")
def create(
    redis_url: str | None,
    data_dir: Path | None,
    config: Path | None,
    count: int,
    amount: int,
    currency: str,
    validity_days: int,
    batch: str,
) -> None:
    """Print COUNT new codes (16 digits, the last a check digit), one per line; only their SHA-256 is
    stored, so keep the printout: the codes cannot be shown again."""
    settings, client = open_redis(redis_url, data_dir, config)
    calls, now_ms = Calls(settings.redis.partitions), int(time.time() * 1000)
    batch = batch or f"voucher-{now_ms // 1000}"
    expires_at_ms = now_ms + validity_days * 86_400_000
    try:
        for start in range(0, count, BATCH):
            codes = [new_code() for _ in range(min(BATCH, count - start))]
            commands = [
                calls.create_voucher(code_hash(code), amount, currency, expires_at_ms, batch, now_ms, "cli")
                for code in codes
            ]
            for code, outcome in zip(codes, call_all_sync(client, commands), strict=True):
                if isinstance(outcome, CreditdError):
                    raise click.ClickException(outcome.message)
                click.echo(printed(code))
    finally:
        client.close()
    click.echo(f"{count} voucher(s) of {amount} {currency}, batch {batch}, valid {validity_days} days", err=True)
