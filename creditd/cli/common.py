"""What the CLI's commands share: settings with command-line overrides, a Redis client for the batch
commands, the gRPC client stubs for the ones that talk to a running server."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import grpc
import msgspec

from creditd.cli.edge import rpc_error_message
from creditd.config.settings import ServerSettings, Settings, load_settings
from creditd.resources import default_config_path
from creditd.store.connection import AnySyncRedis, connect_sync
from creditd.store.embedded import embedded_url
from creditd.v1 import creditd_pb2_grpc as pb_grpc

Answer = TypeVar("Answer")

# Where `creditd serve` listens by default: the client commands call it there.
DEFAULT_SERVER = ServerSettings().listen
CLIENT_TIMEOUT_S = 10.0


def settings_from_options(
    config: Path | None,
    listen: str | None,
    redis_url: str | None,
    data_dir: Path | None,
    metrics_listen: str | None,
    tls: tuple[Path | None, Path | None, Path | None] = (None, None, None),
) -> Settings:
    """The config file, with what the command line and environment override."""
    settings = load_settings(config or default_config_path())
    replace = msgspec.structs.replace
    return replace(
        settings,
        server=replace(settings.server, listen=listen or settings.server.listen),
        redis=replace(
            settings.redis,
            url=redis_url or os.environ.get("CREDITD_REDIS_URL") or settings.redis.url,
            data_dir=str(data_dir) if data_dir else settings.redis.data_dir,
        ),
        metrics=replace(settings.metrics, listen=settings.metrics.listen if metrics_listen is None else metrics_listen),
        security=replace(
            settings.security,
            tls_cert_path=str(tls[0]) if tls[0] else settings.security.tls_cert_path,
            tls_key_path=str(tls[1]) if tls[1] else settings.security.tls_key_path,
            tls_client_ca_path=str(tls[2]) if tls[2] else settings.security.tls_client_ca_path,
        ),
    )


# --log-level of the commands that run a server (serve, chf, diameter).
log_level_option = click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
    help="the least severe log lines written",
)
# --log-format of the commands that run a server (serve, chf, diameter).
log_format_option = click.option(
    "--log-format",
    default="text",
    show_default=True,
    type=click.Choice(["text", "json"]),
    help="text, or one JSON object a line",
)


def tls_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--tls-cert, --tls-key and --tls-client-ca: the [security] table's files, from the command line."""
    for flag, meaning in (
        ("--tls-client-ca", "CA of client certificates"),
        ("--tls-key", "server private key (PEM)"),
        ("--tls-cert", "server certificate (PEM)"),
    ):
        command = click.option(flag, type=click.Path(path_type=Path, exists=True), help=meaning)(command)
    return command


def redis_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--redis, --data-dir and --config, for commands that work on Redis directly."""
    command = click.option("--config", type=click.Path(path_type=Path), help="TOML config [default: the shipped one]")(
        command
    )
    command = click.option(
        "--data-dir", type=click.Path(path_type=Path), help="data dir of a running embedded Redis [./data]"
    )(command)
    return click.option("--redis", "redis_url", help="Redis URL; default: $CREDITD_REDIS_URL, else the embedded one")(
        command
    )


def open_redis(redis_url: str | None, data_dir: Path | None, config: Path | None) -> tuple[Settings, AnySyncRedis]:
    settings = settings_from_options(config, None, redis_url, data_dir, None)
    url = settings.redis.url or embedded_url(Path(settings.redis.data_dir))
    return settings, connect_sync(url, settings.redis)


def stubs(server: str) -> tuple[pb_grpc.AccountsStub, pb_grpc.CreditControlStub]:
    channel = grpc.insecure_channel(server)
    return pb_grpc.AccountsStub(channel), pb_grpc.CreditControlStub(channel)


def call(method: Callable[..., Answer], request: object) -> Answer:
    """One unary call with the CLI's deadline; a gRPC error becomes the command's error message."""
    try:
        return method(request, timeout=CLIENT_TIMEOUT_S)
    except grpc.RpcError as error:
        context = click.get_current_context(silent=True)
        server = context.params.get("server") if context is not None else None
        raise click.ClickException(rpc_error_message(error, server)) from None


server_option = click.option(
    "--server", default=DEFAULT_SERVER, show_default=True, help="HOST:PORT of the running `creditd serve` (gRPC)"
)
