"""`creditd diameter`: the Diameter Gy/Ro front end (creditd/diameter/), onto the Redis a `creditd serve`
uses, until SIGTERM or SIGINT (then it answers what is in flight and sends DPR to every peer)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import urllib.request
from pathlib import Path

import click
import msgspec
import uvloop
from prometheus_client.parser import text_string_to_metric_families

from creditd import logs
from creditd.cli import edge
from creditd.cli.common import log_format_option, log_level_option, redis_options, settings_from_options, tls_options
from creditd.config.settings import Settings
from creditd.diameter.http import HttpEndpoint
from creditd.diameter.server import DiameterServer
from creditd.errors import CreditdError
from creditd.store.embedded import embedded_url

log = logging.getLogger("creditd")


async def _run(settings: Settings, redis_url: str) -> None:
    server = DiameterServer(settings, redis_url, settings.diameter.listen)
    metrics_listen = settings.diameter.metrics_listen
    endpoint = HttpEndpoint(metrics_listen, server.health) if metrics_listen else None
    if endpoint is not None:  # first, so that a probe sees NOT_SERVING (starting) rather than nothing
        endpoint.start()
        log.info("diameter metrics on http://%s/metrics, readiness on /health", metrics_listen)
    try:
        await server.start()
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signal_number, stopping.set)
        await stopping.wait()
        log.info("signal received: answering in-flight requests, then DPR to every peer")
        await server.stop()
    finally:
        if endpoint is not None:
            endpoint.stop()


@click.group(invoke_without_command=True)
@click.option("--listen", help="HOST:PORT for Diameter over TCP [default: [diameter] listen, 127.0.0.1:3868]")
@click.option("--metrics-listen", help="HOST:PORT for /metrics and /health [default: [diameter] metrics_listen, none]")
@log_level_option
@log_format_option
@redis_options
@tls_options
@click.pass_context
def diameter(
    context: click.Context,
    listen: str | None,
    metrics_listen: str | None,
    log_level: str,
    log_format: str,
    redis_url: str | None,
    data_dir: Path | None,
    config: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_client_ca: Path | None,
) -> None:
    """Serve Diameter credit control (Gy for data, Ro for IMS voice) onto creditd's Redis."""
    if context.invoked_subcommand is not None:
        return
    logs.configure(log_level, log_format)
    try:
        settings = settings_from_options(config, None, redis_url, data_dir, None, (tls_cert, tls_key, tls_client_ca))
        overrides = {key: value for key, value in (("listen", listen), ("metrics_listen", metrics_listen)) if value}
        settings = msgspec.structs.replace(settings, diameter=msgspec.structs.replace(settings.diameter, **overrides))
        url = settings.redis.url or embedded_url(Path(settings.redis.data_dir))
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_run(settings, url))
    except CreditdError as error:
        log.error("creditd diameter cannot start: %s", error.message)
        sys.exit(2)


@diameter.command("status")
@click.option("--metrics", "metrics_address", required=True, help="HOST:PORT of the process' metrics_listen")
def status(metrics_address: str) -> None:
    """The peers of a running `creditd diameter`: open connections, requests answered, watchdog failures,
    and whether Redis answers (read from its /metrics)."""
    try:
        with urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=5) as reply:
            page = reply.read().decode()
    except OSError as error:
        raise click.ClickException(edge.metrics_error_message(metrics_address, error)) from None
    click.echo(render_status(page))


def render_status(page: str) -> str:
    peers: dict[str, dict[str, float]] = {}
    redis_up = None
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            peer = sample.labels.get("peer")
            if sample.name == "creditd_redis_up":
                redis_up = sample.value
            elif peer and sample.name in STATUS_COLUMNS:
                row = peers.setdefault(peer, dict.fromkeys(STATUS_COLUMNS.values(), 0.0))
                row[STATUS_COLUMNS[sample.name]] += sample.value
    lines = [f"redis: {'up' if redis_up else 'DOWN (answering 3004)' if redis_up is not None else 'unknown'}"]
    lines.append(f"{'peer':40} {'connections':>11} {'requests':>9} {'watchdog failures':>17}")
    for peer, row in sorted(peers.items()):
        lines.append(f"{peer:40} {row['connections']:11.0f} {row['requests']:9.0f} {row['watchdog']:17.0f}")
    return "\n".join(lines)


STATUS_COLUMNS = {
    "creditd_diameter_connections": "connections",
    "creditd_diameter_requests_total": "requests",
    "creditd_diameter_watchdog_failures_total": "watchdog",
}
