"""`creditd console`: the customer-care staff's web console (creditd/console/), served by uvicorn until
SIGTERM or SIGINT; `creditd console add-staff`: a staff account, its TOTP secret shown once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
import pyotp
import uvicorn
import uvloop

from creditd import logs
from creditd.cli import edge
from creditd.cli.common import open_redis, redis_options
from creditd.client_channel import open_channel
from creditd.console.actions import UsageSource
from creditd.console.app import ConsoleSettings, create_app
from creditd.console.staff import ROLES, StaffError, StaffStore

DEFAULTS = ConsoleSettings()
database_option = click.option(
    "--database",
    type=click.Path(path_type=Path),
    default=Path(DEFAULTS.database_path),
    show_default=True,
    help="the console's SQLite file: staff, sessions, approvals, audit log",
)


@click.group(cls=edge.Group)
def console() -> None:
    """The customer-care console: staff sign in (password and TOTP), find subscribers (number, name,
    voucher, payment reference), see the card on one page and act on it (adjust, gift a bundle, suspend,
    resume, blacklist, resend a notice; money above a threshold and every blacklisting with a
    supervisor's approval); every action in the staff audit log."""


@console.command("serve")
@database_option
@redis_options
@click.option("--listen", default=DEFAULTS.listen, show_default=True, help="HOST:PORT to serve the console on")
@click.option("--server", default=DEFAULTS.server, show_default=True, help="HOST:PORT of the running `creditd serve`")
@click.option(
    "--approval-threshold",
    default=DEFAULTS.approval_threshold_minor,
    show_default=True,
    type=click.IntRange(0, 10**12),
    help="adjustments above this many minor units (satang for THB), either way, need a supervisor",
)
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="the console's client certificate (PEM)")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="its private key (PEM)")
@click.option("--tls-ca", type=click.Path(exists=True, dir_okay=False), help="CA of creditd's server certificate")
@click.option(
    "--session-ttl",
    default=DEFAULTS.session_ttl_s,
    show_default=True,
    type=click.IntRange(60, 86_400),
    help="seconds a staff sign-in lasts",
)
def serve(
    database: Path,
    redis_url: str | None,
    data_dir: Path | None,
    config: Path | None,
    listen: str,
    server: str,
    approval_threshold: int,
    tls_cert: str | None,
    tls_key: str | None,
    tls_ca: str | None,
    session_ttl: int,
) -> None:
    """Serve the console. It talks to creditd with mutual TLS given --tls-cert and --tls-key (a
    certificate whose name [security.roles] maps to the role care), else in plaintext (loopback
    development only: creditd treats it as admin). Usage records (to explain charges), notices sent,
    and the searches by name, voucher and payment read creditd's Redis (--redis, or the embedded
    server's --data-dir); a resent notice is queued there for the notifier."""
    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    logs.configure("INFO", "text")
    host, _, port = listen.rpartition(":")
    if not port.isdigit():
        raise click.BadParameter("listen: HOST:PORT", param_hint="'--listen'")
    creditd_settings, client = open_redis(redis_url, data_dir, config)
    settings = ConsoleSettings(
        listen=listen,
        server=server,
        database_path=str(database),
        approval_threshold_minor=approval_threshold,
        session_ttl_s=session_ttl,
        region=creditd_settings.numbers.region,
        tls_ca_path=tls_ca or "",
        tls_cert_path=tls_cert or "",
        tls_key_path=tls_key or "",
    )
    usage = UsageSource(
        client,
        creditd_settings.redis.partitions,
        creditd_settings.plans,
        creditd_settings.notifications.notice_retention_s,
    )
    store = StaffStore(database, session_ttl)

    async def run() -> None:
        channel = open_channel(server, settings.tls_ca_path, settings.tls_cert_path, settings.tls_key_path)
        try:
            app = create_app(settings, channel, store, usage)
            served = uvicorn.Config(app, host=host or "127.0.0.1", port=int(port), lifespan="off")
            await uvicorn.Server(served).serve()
        finally:
            await channel.close()

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run())
    finally:
        store.close()
        client.close()


@console.command("add-staff")
@database_option
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES), help="agent, supervisor or auditor")
@click.password_option(help="at least 12 characters [asked for when not given]")
def add_staff(database: Path, name: str, role: str, password: str) -> None:
    """Add staff member NAME; prints their TOTP secret and its otpauth:// URI once, for their app."""
    store = StaffStore(database, DEFAULTS.session_ttl_s)
    try:
        secret = store.add(name, role, password)
    except StaffError as error:
        raise click.ClickException(str(error)) from None
    finally:
        store.close()
    click.echo(f"{name} ({role}) added; TOTP secret {secret}")
    click.echo(pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name="creditd console"))
