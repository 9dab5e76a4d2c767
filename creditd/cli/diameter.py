"""`creditd diameter`: the Diameter Gy/Ro front end (creditd/diameter/), onto the Redis a `creditd serve`
uses, until SIGTERM or SIGINT (then it answers what is in flight and sends DPR to every peer)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import click
import msgspec
import uvloop
from prometheus_client import start_http_server

from creditd import logs, metrics
from creditd.cli.common import redis_options, settings_from_options
from creditd.diameter.server import DiameterServer
from creditd.errors import CreditdError
from creditd.settings import Settings
from creditd.store.embedded import embedded_url

log = logging.getLogger("creditd")


async def _run(settings: Settings, redis_url: str) -> None:
    server = DiameterServer(settings, redis_url, settings.diameter.listen)
    await server.start()
    metrics_listen = settings.diameter.metrics_listen
    if metrics_listen:
        host, _, port = metrics_listen.rpartition(":")
        start_http_server(int(port), host, registry=metrics.REGISTRY)
        log.info("diameter metrics on http://%s/metrics", metrics_listen)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stopping.set)
    await stopping.wait()
    log.info("signal received: answering in-flight requests, then DPR to every peer")
    await server.stop()


@click.command()
@click.option("--listen", help="HOST:PORT for Diameter over TCP [default: [diameter] listen, 127.0.0.1:3868]")
@click.option("--metrics-listen", help="HOST:PORT for /metrics [default: [diameter] metrics_listen, none]")
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
    help="the least severe log lines written",
)
@redis_options
def diameter(
    listen: str | None,
    metrics_listen: str | None,
    log_level: str,
    redis_url: str | None,
    data_dir: Path | None,
    config: Path | None,
) -> None:
    """Serve Diameter credit control (Gy for data, Ro for IMS voice) onto creditd's Redis."""
    logs.configure(log_level, "text")
    try:
        settings = settings_from_options(config, None, redis_url, data_dir, None)
        overrides = {key: value for key, value in (("listen", listen), ("metrics_listen", metrics_listen)) if value}
        settings = msgspec.structs.replace(settings, diameter=msgspec.structs.replace(settings.diameter, **overrides))
        url = settings.redis.url or embedded_url(Path(settings.redis.data_dir))
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_run(settings, url))
    except CreditdError as error:
        log.error("creditd diameter cannot start: %s", error.message)
        sys.exit(2)
