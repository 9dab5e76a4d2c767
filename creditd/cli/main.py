"""The `creditd` command: serve, and a small client to try it by hand (account, charge)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
import uuid
from pathlib import Path

import click
import grpc
import msgspec
import redis
import uvloop

from creditd import collector, logs
from creditd.api.server import CreditdServer
from creditd.chf.server import ChfServer
from creditd.cli import edge, render
from creditd.cli.accounts import account
from creditd.cli.campaign import campaign
from creditd.cli.chf import chf
from creditd.cli.common import (
    DEFAULT_SERVER,
    call,
    log_format_option,
    log_level_option,
    open_redis,
    redis_options,
    server_option,
    settings_from_options,
    stubs,
    tls_options,
)
from creditd.cli.console import console
from creditd.cli.diameter import diameter
from creditd.cli.notify import notify
from creditd.cli.operations import report, tiers, write_audit_metrics
from creditd.cli.payments import payments
from creditd.cli.portal import portal
from creditd.cli.usage import rerate, usage
from creditd.cli.voucher_reconcile import reconcile as voucher_reconcile
from creditd.cli.vouchers import voucher
from creditd.cli.workers import ServeOptions, children_of, run_workers
from creditd.clock import Clock
from creditd.config.settings import Settings, load_settings
from creditd.core.audit import Auditor
from creditd.diameter.server import DiameterServer
from creditd.errors import ConfigError, CreditdError
from creditd.notifier.templates import Templates
from creditd.payments.audit import audit_payments
from creditd.resources import default_config_path
from creditd.store.embedded import EmbeddedRedis
from creditd.store.library import render_library
from creditd.store.scan import count_accounts
from creditd.v1 import creditd_pb2 as pb

log = logging.getLogger("creditd")


@click.group(cls=edge.Group)
def main() -> None:
    """creditd: real-time prepaid balance and credit control."""


main.add_command(account)
main.add_command(tiers)
main.add_command(report)
main.add_command(usage)
main.add_command(rerate)
main.add_command(notify)
main.add_command(campaign)
voucher.add_command(voucher_reconcile)
main.add_command(voucher)
main.add_command(portal)
main.add_command(console)
main.add_command(diameter)
main.add_command(payments)
main.add_command(chf)


async def _reload(server: CreditdServer, config: Path) -> None:
    try:
        await server.reload_plans(load_settings(config))
    except CreditdError as error:
        log.error("config reload refused, keeping the running config: %s", error.message)


async def _run(settings: Settings, redis_url: str, config: Path, diameter_listen: str = "", chf: bool = False) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):  # before starting: a signal then stops the start
        loop.add_signal_handler(signal_number, stopping.set)
    hung_up = asyncio.Event()  # a SIGHUP while starting (its default would end the process): reloaded once up
    loop.add_signal_handler(signal.SIGHUP, hung_up.set)
    if _signalled_early.is_set():
        stopping.set()
    server = CreditdServer(settings, redis_url, settings.server.listen)
    diameter_front = DiameterServer(settings, redis_url, diameter_listen) if diameter_listen else None
    chf_front = ChfServer(settings, redis_url) if chf else None

    async def start() -> None:
        await server.start()
        if diameter_front is not None:
            await diameter_front.start()
        if chf_front is not None:
            await chf_front.start()

    async def stop(grace_s: float | None = None) -> None:
        # the fronts first (Diameter sends DPR to its peers), while the core still answers
        if chf_front is not None:
            await chf_front.stop()
        if diameter_front is not None:
            await diameter_front.stop(grace_s)
        await server.stop(grace_s)

    starting = asyncio.ensure_future(start())
    signalled = asyncio.ensure_future(stopping.wait())
    await asyncio.wait((starting, signalled), return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        starting.cancel()  # CreditdServer.start stops what it had started when the cancel lands in it
        with contextlib.suppress(asyncio.CancelledError, CreditdError):
            await starting
        await stop(0)  # and this what had started when start ended first
        log.info("signal received during start-up: stopped")
        return
    signalled.cancel()
    if starting.exception() is not None:  # the gRPC edge may be up when a front fails
        await stop(0)
        starting.result()
    collector.freeze_after_start_up()
    reloads: set[asyncio.Task[None]] = set()

    def reload_on_hangup() -> None:
        task = loop.create_task(_reload(server, config))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload_on_hangup)
    if hung_up.is_set():
        reload_on_hangup()
    await stopping.wait()
    log.info("signal received: draining in-flight requests (up to %s s)", settings.server.drain_timeout_s)
    await stop()


# SIGTERM or SIGINT before the event loop takes the signals over (the embedded Redis starting): noted
# here and acted on at the next step, since an exception raised from a signal handler may land in
# code that swallows it (logging does).
_signalled_early = threading.Event()


def _note_signal(_signal_number: int, _frame: object) -> None:
    _signalled_early.set()


@main.command()
@click.option("--listen", help=f"HOST:PORT to serve gRPC on [default: {DEFAULT_SERVER}]")
@click.option("--redis", "redis_url", help="Redis URL; default: $CREDITD_REDIS_URL, else an embedded server")
@click.option(
    "--config", type=click.Path(path_type=Path), help="TOML config [default: the shipped config/creditd.toml]"
)
@click.option("--data-dir", type=click.Path(path_type=Path), help="embedded Redis data directory [default: ./data]")
@click.option("--metrics-listen", help="HOST:PORT for /metrics; '' for none [default: 127.0.0.1:9464]")
@log_level_option
@log_format_option
@tls_options
@click.option(
    "--chf-listen",
    help="HOST:PORT to serve Nchf (5G converged charging) on too, as `creditd chf` does (with --workers > 1: "
    "one `creditd chf` process beside the workers)",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="server processes on the same port, sharing one Redis",
)
@click.option(
    "--diameter-listen",
    default="",
    help="HOST:PORT: also serve Diameter Gy/Ro here ([diameter] table; with --workers > 1: one `creditd diameter` "
    "process beside the workers)",
)
def serve(
    listen: str | None,
    redis_url: str | None,
    config: Path | None,
    data_dir: Path | None,
    metrics_listen: str | None,
    log_level: str,
    log_format: str,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_client_ca: Path | None,
    workers: int,
    diameter_listen: str,
    chf_listen: str | None,
) -> None:
    """Serve CreditControl and Accounts over gRPC.

    Any failure while starting ends the process with exit status 1 (2 for an invalid config) and one
    log line naming what failed; whatever had started (the embedded Redis too) is stopped first."""
    logs.configure(log_level, log_format)
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, _note_signal)
    embedded: EmbeddedRedis | None = None
    try:
        settings = settings_from_options(
            config, listen, redis_url, data_dir, metrics_listen, (tls_cert, tls_key, tls_client_ca)
        )
        if chf_listen:
            settings = msgspec.structs.replace(settings, chf=msgspec.structs.replace(settings.chf, listen=chf_listen))
        url = settings.redis.url
        if not url:
            redis_settings = settings.redis
            embedded = EmbeddedRedis(
                Path(redis_settings.data_dir),
                redis_settings.start_timeout_s,
                redis_settings.embedded_allocator,
                redis_settings.durability,
            )
            url = embedded.start()
            log.info(
                "embedded redis started (data dir %s, AOF on, appendfsync %s)", embedded.data_dir, embedded.appendfsync
            )
        if _signalled_early.is_set():
            log.info("signal received during start-up: stopped")
            return
        if workers > 1:
            options = ServeOptions(
                workers,
                url,
                settings.server.listen,
                settings.metrics.listen,
                config or default_config_path(),
                settings.redis.data_dir,
                log_level,
                log_format,
                (tls_cert, tls_key, tls_client_ca),
                chf_listen or "",
                diameter_listen,
            )
            sys.exit(run_workers(children_of(options)))
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_run(settings, url, config or default_config_path(), diameter_listen, bool(chf_listen)))
    except ConfigError as error:
        log.error("creditd cannot start: %s", error.message)
        sys.exit(2)
    except CreditdError as error:
        log.error("creditd cannot start: %s", error.message)
        sys.exit(1)
    except OSError as error:  # a data dir or file it cannot use: the error names the path
        log.error("creditd cannot start: %s", error)
        sys.exit(1)
    finally:
        if embedded is not None:
            embedded.stop()
            log.info("embedded redis stopped")


@main.command("check-config")
@click.argument("path", type=click.Path(path_type=Path))
def check_config(path: Path) -> None:
    """Validate a config file offline; exit 2 naming the bad field."""
    try:
        settings = load_settings(path)
        render_library(settings)
        templates = Templates(Path(settings.notifications.templates_dir)).check()
    except CreditdError as error:
        click.echo(f"invalid: {error.message}", err=True)
        sys.exit(2)
    tariffs = sum(len(plan.tariffs) for plan in settings.plans.values())
    prefixes = sum(len(destination.prefixes) for destination in settings.destinations.values())
    click.echo(
        f"ok: {path}: {len(settings.plans)} plan(s), {tariffs} tariff(s), {len(settings.destinations)} "
        f"destination(s) with {prefixes} prefix(es), {len(settings.zones)} zone(s), {len(settings.timings)} timing(s), "
        f"{templates} notice template(s)"
    )


@main.command()
@redis_options
@click.option(
    "--metrics-file",
    type=click.Path(path_type=Path),
    help="also write the result for Prometheus (node_exporter's textfile directory, e.g. .../creditd_audit.prom)",
)
def audit(redis_url: str | None, data_dir: Path | None, config: Path | None, metrics_file: Path | None) -> None:
    """Check the invariants of every account and the payments' books (creditd payments audit); print
    each violation; exit 1 when there is any."""
    settings, client = open_redis(redis_url, data_dir, config)
    try:
        with click.progressbar(length=count_accounts(client), label="auditing accounts", file=sys.stderr) as bar:
            report = Auditor(client, settings.redis.partitions).run(
                Clock().now_ms(), settings.sweeper.grace_period_s, progress=bar.update
            )
        books = audit_payments(client, settings.redis.partitions)
    except redis.RedisError as error:
        raise click.ClickException(edge.redis_error_message(error)) from None
    finally:
        client.close()
    violations = report.violations + [f"payments: {violation}" for violation in books.violations]
    if metrics_file is not None:
        write_audit_metrics(metrics_file, len(violations), report.accounts)
    for violation in violations:
        click.echo(f"VIOLATION {violation}")
    click.echo(
        f"{report.accounts} accounts, {report.open_sessions} open sessions, balances {report.total_balance}, "
        f"reserved {report.total_reserved}, {books.payments} applied payments, {books.top_ups} payment top-ups, "
        f"{len(books.unfinished)} unfinished: {len(violations)} violation(s)"
    )
    sys.exit(1 if violations else 0)


@main.group()
def events() -> None:
    """Follow the event feed of a running server."""


@events.command("tail")
@click.option("--from", "from_id", default="", help="resume after this event id [default: from now]")
@click.option("--count", type=int, help="stop after this many events [default: follow until Ctrl-C]")
@server_option
def events_tail(from_id: str, count: int | None, server: str) -> None:
    """Print events as they happen, one line each, oldest first."""
    accounts, _ = stubs(server)
    stream = accounts.WatchEvents(pb.WatchEventsRequest(from_id=from_id))
    try:
        for number, event in enumerate(stream, start=1):
            click.echo(render.event_line(event))
            if count is not None and number >= count:
                break
    except grpc.RpcError as error:
        raise click.ClickException(edge.rpc_error_message(error, server)) from None
    finally:
        stream.cancel()


@main.command()
@click.argument("account_id", callback=edge.identifier("account_id"))
@click.option(
    "--rating-group", default=1, show_default=True, type=click.IntRange(0, 2**32 - 1), help="service's rating group"
)
@click.option(
    "--requested",
    default=0,
    show_default=True,
    type=click.IntRange(0, None),
    help="units asked per grant (seconds, bytes or events, by the tariff); 0 = the tariff's default",
)
@click.option(
    "--used",
    default=1_000_000,
    show_default=True,
    type=click.IntRange(0, None),
    help="units reported used per UPDATE and TERMINATE (seconds, bytes or events)",
)
@click.option(
    "--updates",
    default=2,
    show_default=True,
    type=click.IntRange(0, 1000),
    help="UPDATEs between INITIAL and TERMINATE",
)
@click.option(
    "--called-party",
    default="",
    callback=edge.called_party,
    help="the other party of a call or SMS (E.164); prices by destination",
)
@click.option(
    "--visited-plmn", default="", callback=edge.visited_plmn, help="MCC+MNC of the serving network; empty: home"
)
@click.option(
    "--gateway-id",
    default="cli",
    show_default=True,
    callback=edge.identifier("gateway_id"),
    help="the asking gateway's id",
)
@click.option("--session-id", callback=edge.session_id, help="the session's id [default: a new random one]")
@server_option
def charge(
    account_id: str,
    rating_group: int,
    requested: int,
    used: int,
    updates: int,
    called_party: str,
    visited_plmn: str,
    gateway_id: str,
    session_id: str | None,
    server: str,
) -> None:
    """Play one session (INITIAL, UPDATEs, TERMINATE) and print every answer; charges are in minor units
    (satang for THB). A refused INITIAL opens no session: the command stops there and exits 1."""
    _, credit_control = stubs(server)
    session_id = session_id or f"cli-{uuid.uuid4().hex[:12]}"
    kinds = [pb.ChargeRequest.INITIAL] + [pb.ChargeRequest.UPDATE] * updates + [pb.ChargeRequest.TERMINATE]
    for number, kind in enumerate(kinds):
        unit = pb.UnitRequest(
            rating_group=rating_group,
            requested=0 if kind == pb.ChargeRequest.TERMINATE else requested,
            used=0 if kind == pb.ChargeRequest.INITIAL else used,
        )
        request = pb.ChargeRequest(
            session_id=session_id,
            request_type=kind,
            request_number=number,
            account_id=account_id,
            gateway_id=gateway_id,
            units=[unit],
            called_party=called_party,
            visited_plmn=visited_plmn,
        )
        answer = call(credit_control.Charge, request)
        click.echo(render.charge_answer(kind, answer))
        if kind == pb.ChargeRequest.INITIAL and answer.result != pb.SUCCESS:
            click.echo("refused at INITIAL: no session was opened, nothing more is sent", err=True)
            sys.exit(1)
