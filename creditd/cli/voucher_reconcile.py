"""`creditd voucher reconcile`: finishes the voucher redemptions that stopped between the claim and
the top-up (creditd/core/voucher_claims.py), as the sweeper does each pass: each is paid once, or the
voucher released when its account cannot be paid."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from creditd.cli.common import redis_options, settings_from_options
from creditd.clock import Clock
from creditd.core.voucher_claims import MAX_RECONCILE_BATCH, Reconciled, voucher_claims
from creditd.store.connection import connect
from creditd.store.embedded import embedded_url
from creditd.store.functions import DirectFunctions


async def _reconcile(redis_url: str | None, data_dir: Path | None, config: Path | None, batch: int) -> Reconciled:
    settings = settings_from_options(config, None, redis_url, data_dir, None)
    client = connect(settings.redis.url or embedded_url(Path(settings.redis.data_dir)), settings.redis)
    try:
        return await voucher_claims(client, DirectFunctions(client), settings, Clock()).reconcile(batch)
    finally:
        await client.aclose()


@click.command("reconcile")
@redis_options
@click.option(
    "--batch",
    type=click.IntRange(1, MAX_RECONCILE_BATCH),
    default=200,
    show_default=True,
    help="stopped redemptions looked at per round",
)
def reconcile(redis_url: str | None, data_dir: Path | None, config: Path | None, batch: int) -> None:
    """Pay, or release, the vouchers whose redemption stopped more than a minute ago."""
    done = asyncio.run(_reconcile(redis_url, data_dir, config, batch))
    click.echo(
        f"completed {done.completed}, released {done.released}, dropped {done.dropped} (never claimed),"
        f" left {done.left} (see the log)"
    )
