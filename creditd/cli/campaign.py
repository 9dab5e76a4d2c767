"""`creditd campaign send`: queues a promotion for the notifier (creditd/notifier/campaign.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import click

from creditd.cli import edge
from creditd.cli.common import open_redis, redis_options
from creditd.errors import CreditdError
from creditd.notifier.campaign import MAX_CAMPAIGN_ACCOUNTS, Cohort, check_campaign, send_campaign
from creditd.notifier.templates import Templates


@click.group(cls=edge.Group)
def campaign() -> None:
    """Promotions to a cohort of subscribers (marketing: opted-in subscribers only)."""


@campaign.command("send")
@redis_options
@click.option("--template", required=True, help="NAME of <language>/campaigns/NAME.txt under the templates")
@click.option("--campaign-id", default="", help="sending an id again queues only whom it missed; default NAME-yyyymmdd")
@click.option("--plan", default="", help="only subscribers of this plan")
@click.option("--tier", default="", help="only subscribers in this credit tier")
@click.option("--limit", type=int, default=MAX_CAMPAIGN_ACCOUNTS, help="at most this many subscribers")
@click.option("--rate", type=float, default=10.0, show_default=True, help="notices handed off per second, at most")
def send(
    redis_url: str | None,
    data_dir: Path | None,
    config: Path | None,
    template: str,
    campaign_id: str,
    plan: str,
    tier: str,
    limit: int,
    rate: float,
) -> None:
    """Queue the campaign for the notifier (`creditd notify` delivers it): due times spaced by the
    rate, moved out of each subscriber's quiet hours."""
    settings, client = open_redis(redis_url, data_dir, config)
    try:
        if plan and plan not in settings.plans:
            raise click.BadParameter(f"no plan {plan!r} in the config", param_hint="--plan")
        tiers = {
            t.name for p in settings.plans.values() for t in p.credit_tiers if not plan or p is settings.plans[plan]
        }
        if tier and tier not in tiers:
            raise click.BadParameter(f"no credit tier {tier!r} in the plans", param_hint="--tier")
        templates = Templates(Path(settings.notifications.templates_dir))
        now_ms = int(time.time() * 1000)
        campaign_id = campaign_id or f"{template}-{datetime.now(UTC):%Y%m%d}"
        cohort = Cohort(plan=plan, tier=tier, limit=limit)
        check_campaign(template, templates.campaigns, campaign_id, cohort, rate)
        result = send_campaign(client, settings, template, campaign_id, cohort, rate, now_ms)
    except CreditdError as error:
        raise click.ClickException(error.message) from None
    finally:
        client.close()
    click.echo(f"campaign {campaign_id}: {result.accounts_queued} subscribers, {result.notices_queued} notices queued")
    click.echo(
        f"skipped: {result.already_queued} queued before, {result.not_opted_in} not opted in, "
        f"{result.outside_cohort} outside the cohort"
    )
    if result.accounts_queued:
        first, last = (datetime.fromtimestamp(ms / 1000, UTC) for ms in (result.first_due_ms, result.last_due_ms))
        click.echo(f"due from {first:%Y-%m-%d %H:%M:%S} to {last:%Y-%m-%d %H:%M:%S} UTC")
