"""Notices per second through each channel, and the delivery lag at a steady rate below that.

`python -m loadtest.notices [--notices 2000] [--paced-s 5] [--json PATH]`. For each channel it starts its own Redis
(embedded) with the sample library, opens one account per notice with that channel, and runs the
notifier (creditd/notifier/service.py) in this process against:
- webhook: a local HTTP server that answers 200;
- email: a local SMTP server (aiosmtpd);
- sms: a real Kannel (bearerbox, smsbox, fakesmsc; when installed), or, as `sms-http`,
  a local HTTP server taking Kannel's sendsms form, which shows the notifier's own share.
Two phases per channel: a burst (one top-up, hence one `topup` notice, per account, all written
before the notifier starts; notices/s = notices / time to hand every one off), then a paced run at
half that rate for a few seconds, giving the delivery lag from the event (its stream id's time) to
its hand-off (the channel's send returned: 200 from the HTTP endpoint or Kannel's smsbox, 250 from the
SMTP server), p50 and p99. Plans have no quiet hours here.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import click
import msgspec
import redis
import uvloop
from aiosmtpd.controller import Controller

from creditd.clock import Clock
from creditd.config.fronts import (
    EmailChannelSettings,
    NotificationSettings,
    SmsChannelSettings,
    WebhookChannelSettings,
)
from creditd.config.settings import Settings, load_settings
from creditd.core.notices import NoticeEvent as Event
from creditd.devtools.ports import free_port
from creditd.notifier.dispatch import Channels
from creditd.notifier.service import Notifier
from creditd.notifier.templates import Notice
from creditd.resources import default_config_path
from creditd.store.calls import Calls, NewAccount, PreferencesSpec, fcall_words
from creditd.store.connection import connect
from creditd.store.embedded import EmbeddedRedis
from creditd.store.library import render_library
from creditd.store.replies import AccountRecord
from loadtest.report import run_identity, write_json

PACED_S = 5.0
# A burst, or the paced run's tail, not handed off by then fails the run (the notifier stalled).
BURST_TIMEOUT_S, PACED_TIMEOUT_S = 300.0, 60.0
RESULTS = Path(__file__).parent / "results"


class TimedChannels(Channels):
    """The notifier's channels, noting when each notice was handed off (the channel's send returned)."""

    def __init__(self, config: NotificationSettings) -> None:
        super().__init__(config)
        self.handoffs: list[tuple[str, float]] = []

    async def send(self, notice_id: str, channel: str, event: Event, card: AccountRecord, notice: Notice) -> None:
        await super().send(notice_id, channel, event, card, notice)
        self.handoffs.append((event.id, time.time()))

    def lags_ms(self, after_ms: int) -> list[float]:
        stamped = ((int(event_id.split("-")[0]), at) for event_id, at in self.handoffs)
        return sorted(at * 1000 - event_ms for event_ms, at in stamped if event_ms >= after_ms)


class TimedNotifier(Notifier):
    """The notifier, its hand-offs timed: every notice goes out through Notifier.channels."""

    channels: TimedChannels

    def __init__(self, *arguments: object) -> None:
        super().__init__(*arguments)  # type: ignore[arg-type]
        self.channels = TimedChannels(self.config)


@contextlib.contextmanager
def http_receiver() -> Iterator[int]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"0:")

        do_GET = do_POST = _answer

        def log_message(self, *_: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 512  # the default 5 drops connections the notifier opens at once

    Handler.protocol_version = "HTTP/1.1"  # keep-alive, as a real endpoint would
    Handler.disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall
    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


class SmtpReceiver:
    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802 - aiosmtpd's name
        return "250 OK"


@contextlib.contextmanager
def smtp_receiver() -> Iterator[int]:
    port = free_port()
    controller = Controller(SmtpReceiver(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@contextlib.contextmanager
def kannel_receiver(directory: Path) -> Iterator[str]:
    """A real Kannel (bearerbox, smsbox, fakesmsc), started as the tests start it."""
    from tests.kannel import running_kannel  # one way to start Kannel, the tests'

    directory.mkdir(parents=True, exist_ok=True)
    with running_kannel(directory) as kannel:
        yield kannel.sendsms_url


def channel_settings(settings: Settings, channel: str, endpoint: str, in_flight: int) -> Settings:
    plan = settings.plans["standard"]
    quiet_free = msgspec.structs.replace(plan.preferences, quiet_hours_start=None, quiet_hours_end=None)
    plans = {**settings.plans, "standard": msgspec.structs.replace(plan, preferences=quiet_free)}
    n = settings.notifications
    if channel == "webhook":
        n = msgspec.structs.replace(n, webhook=WebhookChannelSettings(url=endpoint, secret="s"))
    elif channel == "email":
        host, port = endpoint.rsplit(":", 1)
        email = EmailChannelSettings(host=host, port=int(port), starttls=False, sender="notices@example.net")
        n = msgspec.structs.replace(n, email=email)
    else:
        sms = SmsChannelSettings(url=endpoint, username="creditd", password="secret", sender="TOPUP")
        n = msgspec.structs.replace(n, sms=msgspec.structs.replace(sms, dlr_url="http://127.0.0.1:9/dlr?id={id}"))
    templates_dir = str(default_config_path().parent / "templates")
    n = msgspec.structs.replace(n, templates_dir=templates_dir, min_interval_s=0, max_in_flight=in_flight)
    return msgspec.structs.replace(settings, plans=plans, notifications=n)


def open_accounts(client: redis.Redis, calls: Calls, channel: str, count: int, now_ms: int) -> list[str]:
    accounts = [f"6689{n:07d}" for n in range(count)]
    preferences = PreferencesSpec(language="en", channels=("sms" if channel.startswith("sms") else channel,))
    pipe = client.pipeline(transaction=False)
    for account_id in accounts:
        new = NewAccount(account_id, "standard", 10_000, contact_email=f"{account_id}@example.net")
        pipe.execute_command(*fcall_words(calls.create_account(new, now_ms, "load")))
        pipe.execute_command(*fcall_words(calls.set_preferences(account_id, preferences, now_ms, "load")))
    pipe.execute()
    return accounts


def top_up(client: redis.Redis, calls: Calls, accounts: list[str], key: str) -> None:
    pipe = client.pipeline(transaction=False)
    for account_id in accounts:
        pipe.execute_command(*fcall_words(calls.top_up(account_id, 500, "bank", key, Clock().now_ms(), "load")))
    pipe.execute()


async def wait_until(channels: TimedChannels, count: int, timeout_s: float) -> None:
    """Returns when `count` notices were handed off; raises when they were not within timeout_s."""
    deadline = time.monotonic() + timeout_s
    while len(channels.handoffs) < count:
        if time.monotonic() >= deadline:
            raise click.ClickException(
                f"{len(channels.handoffs)} of {count} notices handed off within {timeout_s:g} s (see the log)"
            )
        await asyncio.sleep(0.01)


async def measure_channel(url: str, settings: Settings, channel: str, count: int, paced_s: float) -> dict[str, float]:
    client = redis.Redis.from_url(url)
    client.flushall()
    client.function_load(render_library(settings), replace=True)
    calls = Calls(settings.redis.partitions)
    accounts = open_accounts(client, calls, channel, count, Clock().now_ms())
    top_up(client, calls, accounts, "burst")
    async_client = connect(url, settings.redis)
    notifier = TimedNotifier(async_client, settings, Clock(), "load")
    stopping = asyncio.Event()
    started = time.perf_counter()
    running = asyncio.create_task(notifier.run(stopping))
    await wait_until(notifier.channels, count, BURST_TIMEOUT_S)
    burst_s = time.perf_counter() - started
    rate = count / burst_s
    # paced: half the burst rate, in slices of 50 ms
    paced_from_ms = int(time.time() * 1000)
    per_slice, sent, key = max(1, int(rate / 2 * 0.05)), 0, 0
    deadline = time.monotonic() + paced_s
    while time.monotonic() < deadline:
        batch = accounts[sent % count : sent % count + per_slice]
        key += 1
        top_up(client, calls, batch, f"paced{key}")
        sent += len(batch)
        await asyncio.sleep(0.05)
    await wait_until(notifier.channels, count + sent, PACED_TIMEOUT_S)
    stopping.set()
    await running
    await async_client.aclose()
    client.close()
    lags = notifier.channels.lags_ms(paced_from_ms)
    return {
        "notices_per_s": round(rate, 1),
        "paced_per_s": round(sent / paced_s, 1),
        "lag_p50_ms": round(statistics.median(lags), 1) if lags else -1,
        "lag_p99_ms": round(lags[int(len(lags) * 0.99) - 1], 1) if lags else -1,
        "handed_off": len(notifier.channels.handoffs),
    }


def run_channel(channel: str, count: int, work: Path, in_flight: int, paced_s: float = PACED_S) -> dict[str, float]:
    with contextlib.ExitStack() as stack:
        if channel == "email":
            endpoint = f"127.0.0.1:{stack.enter_context(smtp_receiver())}"
        elif channel == "sms":
            endpoint = stack.enter_context(kannel_receiver(work / "kannel"))
        else:
            port = stack.enter_context(http_receiver())
            endpoint = f"http://127.0.0.1:{port}/" + ("cgi-bin/sendsms" if channel == "sms-http" else "")
        settings = channel_settings(load_settings(default_config_path()), channel, endpoint, in_flight)
        server = stack.enter_context(EmbeddedRedis(work / channel))
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(measure_channel(server.url, settings, channel, count, paced_s))


@click.command()
@click.option("--notices", default=2000, show_default=True, help="notices in the burst per channel")
@click.option("--channels", default="webhook,sms-http,email", show_default=True)
@click.option("--in-flight", default=32, show_default=True, help="the notifier's max_in_flight")
@click.option("--paced-s", default=PACED_S, show_default=True, help="seconds of the paced run per channel")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None)
def main(notices: int, channels: str, in_flight: int, paced_s: float, json_path: Path | None) -> None:
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="creditd-notices-") as work:
        for channel in channels.split(","):
            results[channel] = run_channel(channel, notices, Path(work), in_flight, paced_s)
            r = results[channel]
            click.echo(
                f"{channel:9} {r['notices_per_s']:8.1f} notices/s burst; at {r['paced_per_s']:.0f}/s: "
                f"lag p50 {r['lag_p50_ms']:.0f} ms, p99 {r['lag_p99_ms']:.0f} ms"
            )
    identity = run_identity()
    path = json_path or RESULTS / f"notices-{identity['commit']}-{int(time.time())}.json"
    write_json({"identity": identity, "channels": results}, path)
    click.echo(f"written: {path}")


if __name__ == "__main__":
    main()
