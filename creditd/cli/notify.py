"""`creditd notify`: the notifier process (creditd/notifier/service.py) until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import click
import uvloop

from creditd import logs
from creditd.cli.common import redis_options, settings_from_options
from creditd.clock import Clock
from creditd.errors import CreditdError
from creditd.notifier.service import Notifier
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
    try:
        await Notifier(client, settings, Clock(), owner).run(stopping)
    finally:
        await client.aclose()


@click.command()
@redis_options
def notify(redis_url: str | None, data_dir: Path | None, config: Path | None) -> None:
    """Tell subscribers what happened to their account, on their channels, in their language."""
    logs.configure("INFO", "text")
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_run(redis_url, data_dir, config))
    except CreditdError as error:
        raise click.ClickException(error.message) from None
