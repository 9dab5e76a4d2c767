"""`creditd portal`: the subscribers' self-service web page (creditd/portal/), served by uvicorn until
SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
import msgspec
import uvicorn
import uvloop

from creditd import logs
from creditd.cli import edge
from creditd.config.fronts import PortalSettings
from creditd.config.settings import load_settings
from creditd.display_names import Names, load_names, missing
from creditd.errors import ConfigError, CreditdError
from creditd.portal.app import create_app
from creditd.portal.client import open_channel
from creditd.resources import default_config_path


async def serve(settings: PortalSettings, region: str, names: Names) -> None:
    host, _, port = settings.listen.rpartition(":")
    if not port.isdigit():
        raise ConfigError("portal.listen: HOST:PORT")
    channel = open_channel(settings)
    try:
        config = uvicorn.Config(
            create_app(settings, channel, region, names),
            host=host or "127.0.0.1",
            port=int(port),
            lifespan="off",
            log_level="info",
            proxy_headers=False,  # X-Forwarded-For is believed from portal.trusted_proxies only (portal/security.py)
        )
        await uvicorn.Server(config).serve()
    finally:
        await channel.close()


@click.command(cls=edge.Command)
@click.option("--listen", default=None, help="HOST:PORT to serve on (default: [portal] listen, 127.0.0.1:8080)")
@click.option("--server", default=None, help="creditd's gRPC HOST:PORT (default: [portal] server)")
@click.option("--config", type=click.Path(path_type=Path), default=None, help="creditd.toml ([portal] section)")
def portal(listen: str | None, server: str | None, config: Path | None) -> None:
    """Serve the subscribers' self-service page: balance, usage, history, bundles, vouchers."""
    logs.configure("INFO", "text")
    try:
        path = config or default_config_path()
        loaded = load_settings(path)
        overrides = {key: value for key, value in (("listen", listen), ("server", server)) if value}
        settings = msgspec.structs.replace(loaded.portal, **overrides)
        names = load_names(path.parent / settings.names_dir)
        unnamed = missing(loaded, names)
        if unnamed:
            raise ConfigError(f"{path.parent / settings.names_dir}: no display name for {', '.join(unnamed[:10])}")
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(settings, loaded.numbers.region, names))
    except CreditdError as error:
        raise click.ClickException(error.message) from None
