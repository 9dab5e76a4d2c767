"""`creditd chf`: the 5G Charging Function (TS 32.291 Nchf_ConvergedCharging v3, creditd/chf/) on
cleartext HTTP/2 and HTTP/1.1 until SIGTERM or SIGINT, with its Prometheus endpoint."""

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

from creditd import collector, logs, metrics
from creditd.chf.server import ChfServer
from creditd.cli.common import log_format_option, log_level_option, redis_options, settings_from_options, tls_options
from creditd.errors import CreditdError, StartupError
from creditd.store.embedded import embedded_url

log = logging.getLogger("creditd")


async def _run(server: ChfServer) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await server.start()
    collector.freeze_after_start_up()
    serving = asyncio.ensure_future(server.wait())
    await asyncio.wait((serving, asyncio.ensure_future(stopping.wait())), return_when=asyncio.FIRST_COMPLETED)
    await server.stop()


def _start_metrics(metrics_listen: str) -> None:
    host, _, port = metrics_listen.rpartition(":")
    try:
        start_http_server(int(port), addr=host or "127.0.0.1", registry=metrics.REGISTRY)
    except (OSError, ValueError) as error:
        raise StartupError(f"metrics: {metrics_listen} cannot be bound: {error}") from None


@click.command()
@redis_options
@click.option("--listen", default=None, help="HOST:PORT for Nchf (default: [chf] listen, 127.0.0.1:8090)")
@click.option("--metrics-listen", default="", help="HOST:PORT for Prometheus /metrics; empty: none")
@log_level_option
@log_format_option
@tls_options
def chf(
    redis_url: str | None,
    data_dir: Path | None,
    config: Path | None,
    listen: str | None,
    metrics_listen: str,
    log_level: str,
    log_format: str,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_client_ca: Path | None,
) -> None:
    """Serve 5G converged charging (Nchf_ConvergedCharging v3) for SMF, SMSF and IMS nodes."""
    logs.configure(log_level, log_format)
    try:
        settings = settings_from_options(config, None, redis_url, data_dir, None, (tls_cert, tls_key, tls_client_ca))
        if listen:
            settings = msgspec.structs.replace(settings, chf=msgspec.structs.replace(settings.chf, listen=listen))
        url = settings.redis.url or embedded_url(Path(settings.redis.data_dir))
        server = ChfServer(settings, url)
        if metrics_listen:
            _start_metrics(metrics_listen)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_run(server))
    except StartupError as error:
        log.error("creditd chf cannot start: %s", error.message)
        sys.exit(1)
    except CreditdError as error:
        raise click.ClickException(error.message) from None
