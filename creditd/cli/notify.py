"""`creditd notify`: the notifier process (creditd/notifier/service.py) until SIGTERM or SIGINT, with
its Prometheus endpoint; `creditd notify status`: what was delivered and what waits."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

import click
import msgspec
import uvloop
from prometheus_client import start_http_server

from creditd import collector, logs, metrics
from creditd.cli import edge
from creditd.cli.common import open_redis, redis_options, settings_from_options
from creditd.clock import Clock
from creditd.display_names import load_names
from creditd.errors import CreditdError, StartupError
from creditd.notifier.service import Notifier
from creditd.notifier.status import notifier_status
from creditd.resources import default_config_path
from creditd.store.connection import connect
from creditd.store.embedded import embedded_url


async def _run(redis_url: str | None, data_dir: Path | None, config: Path | None) -> None:
    settings = settings_from_options(config, None, redis_url, data_dir, None)
    client = connect(settings.redis.url or embedded_url(Path(settings.redis.data_dir)), settings.redis)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    owner = f"notify-{socket.gethostname()}-{os.getpid()}"[:64]
    names = load_names((config or default_config_path()).parent / settings.portal.names_dir)
    try:
        notifier = Notifier(client, settings, Clock(), owner, names)
        collector.freeze_after_start_up()
        await notifier.run(stopping)
    finally:
        await client.aclose()


@click.group(cls=edge.Group, invoke_without_command=True)
@redis_options
@click.option("--metrics-listen", default="", help="HOST:PORT for Prometheus /metrics; empty: none")
@click.pass_context
def notify(
    context: click.Context, redis_url: str | None, data_dir: Path | None, config: Path | None, metrics_listen: str
) -> None:
    """Tell subscribers what happened to their account, on their channels, in their language."""
    if context.invoked_subcommand is not None:
        return
    logs.configure("INFO", "text")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per notice otherwise
    try:
        if metrics_listen:
            host, _, port = metrics_listen.rpartition(":")
            try:
                start_http_server(int(port), addr=host or "127.0.0.1", registry=metrics.REGISTRY)
            except OSError as error:
                raise StartupError(
                    f"metrics: port {host or '127.0.0.1'}:{port} cannot be bound: {error.strerror}"
                ) from None
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_run(redis_url, data_dir, config))
    except StartupError as error:
        logging.getLogger("creditd").error("creditd notify cannot start: %s", error.message)
        sys.exit(1)
    except CreditdError as error:
        raise click.ClickException(error.message) from None


@notify.command("status")
@redis_options
@click.option("--json", "as_json", is_flag=True, help="one JSON document instead of text")
def status(redis_url: str | None, data_dir: Path | None, config: Path | None, as_json: bool) -> None:
    """Delivery records by state, deliveries due later, dead letters, unhandled events, the age of
    the oldest notice waiting, and why deliveries fail (the most frequent reasons)."""
    settings, client = open_redis(redis_url, data_dir, config)
    try:
        found = notifier_status(client, settings.redis.partitions)
    finally:
        client.close()
    if as_json:
        click.echo(msgspec.json.encode(found).decode())
        return
    states = ", ".join(f"{state} {count}" for state, count in found.records_by_state.items()) or "none"
    click.echo(f"deliveries   {states}")
    click.echo(f"waiting      {found.due_later} due later, {found.unhandled_events} events not handled yet")
    click.echo(f"dead letters {found.dead_letters}")
    for reason, count in found.failure_reasons.items():
        click.echo(f"failing      {count} x {reason}")
    if found.oldest_waiting_ms:
        age_s = max(0.0, time.time() - found.oldest_waiting_ms / 1000)
        click.echo(f"oldest       waiting {age_s:.0f} s")
    sys.stdout.flush()
