"""Kill -9 the notifier in the middle of a burst of 2 000 notices (2 000 accounts, a top-up each, by SMS
to a real HTTP endpoint in Kannel's sendsms form) and start another: every notice arrives, and the
only ones sent twice are those in flight at the kill (reported; at most notifications.max_in_flight,
the notices one notifier hands off at once). `creditd notify status` then shows every delivery sent and
nothing waiting. The notifier runs as a real process (`creditd notify`) on the real clock, against a
server whose plan has no quiet hours."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import msgspec
import pytest

from creditd.config.settings import load_settings
from creditd.store.connection import AnySyncRedis
from creditd.store.embedded import EmbeddedRedis
from tests.harness import started_server
from tests.test_channels import http_server
from tests.test_rating_config import SHIPPED

pytestmark = pytest.mark.asyncio
NOTICES = 2000
DELIVERY_TIMEOUT_S = 120.0


def config_text(sms_url: str) -> str:
    text = SHIPPED.replace('quiet_hours_start = "21:00"\nquiet_hours_end = "08:00"\n', "")
    assert text != SHIPPED
    text = text.replace("[notifications]\n", "[notifications]\nlease_s = 1.0\npoll_interval_s = 0.1\n", 1)
    return text + (
        f'\n[notifications.sms]\nurl = "{sms_url}"\nusername = "creditd"\npassword = "secret"\nsender = "TOPUP"\n'
        'dlr_url = "http://127.0.0.1:9/dlr?id={id}"\n'
    )


def notice_ids(server: object) -> list[str]:
    ids = []
    for _, path, _, _ in server.seen:  # type: ignore[attr-defined]
        dlr = parse_qs(urlparse(path).query)["dlr-url"][0]
        ids.append(parse_qs(urlparse(dlr).query)["id"][0])
    return ids


def start_notifier(redis_url: str, config: Path) -> subprocess.Popen[bytes]:
    log = (config.parent / "notify.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "creditd", "notify", "--redis", redis_url, "--config", str(config)],
        stdout=log,
        stderr=log,
    )


async def wait_for(condition: Callable[[], bool], what: str | Callable[[], str]) -> None:
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, what() if callable(what) else what
        await asyncio.sleep(0.1)


async def test_a_killed_notifier_loses_nothing_and_repeats_only_what_was_in_flight(
    redis_server: EmbeddedRedis, redis_client: AnySyncRedis, tmp_path: Path
) -> None:
    with http_server() as gateway:
        config = tmp_path / "creditd.toml"
        config.write_text(config_text(f"http://127.0.0.1:{gateway.server_port}/cgi-bin/sendsms"))
        loaded = load_settings(config)
        settings = msgspec.structs.replace(
            loaded,
            sweeper=msgspec.structs.replace(loaded.sweeper, enabled=False),
            metrics=msgspec.structs.replace(loaded.metrics, listen=""),
            redis=msgspec.structs.replace(loaded.redis, max_clock_skew_ms=0),
            # 4 000 Accounts calls to set the burst up, faster than a caller may by default
            limits=msgspec.structs.replace(
                loaded.limits, accounts_calls_per_client_s=100_000, accounts_burst_per_client=100_000
            ),
        )
        async with started_server(settings, redis_server.url, redis_client) as creditd:
            accounts = [f"6681717{n:04d}" for n in range(NOTICES)]
            for start in range(0, NOTICES, 100):
                await asyncio.gather(
                    *(creditd.create_account(a, balance=10_000) for a in accounts[start : start + 100])
                )
                await asyncio.gather(*(creditd.top_up(a, 500, "t1") for a in accounts[start : start + 100]))

            first = start_notifier(redis_server.url, config)
            try:
                await wait_for(lambda: len(gateway.seen) >= 200, "the first notifier sent nothing")  # type: ignore[attr-defined]
            finally:
                first.send_signal(signal.SIGKILL)
                first.wait(10)
            at_kill = len(notice_ids(gateway))
            assert at_kill < NOTICES, "the kill came after the burst: nothing was left to resume"

            second = start_notifier(redis_server.url, config)
            try:
                await wait_for(
                    lambda: len(set(notice_ids(gateway))) >= NOTICES,
                    lambda: (
                        f"notices lost: {len(set(notice_ids(gateway)))} of {NOTICES} arrived; log: "
                        + (config.parent / "notify.log").read_text()[-2000:]
                    ),
                )
                await asyncio.sleep(0.5)
            finally:
                second.send_signal(signal.SIGTERM)
                second.wait(20)
            ids = notice_ids(gateway)
            twice = {notice: count for notice, count in Counter(ids).items() if count > 1}
            print(f"notices: {len(set(ids))} distinct, {len(ids) - len(set(ids))} sent twice (killed after {at_kill})")
            in_flight = settings.notifications.max_in_flight
            # A kill between two hand-offs leaves nothing in flight: then nothing is sent twice, which is right too.
            assert len(set(ids)) == NOTICES and len(twice) <= in_flight and all(n == 2 for n in twice.values()), twice

            status = subprocess.run(
                [sys.executable, "-m", "creditd", "notify", "status", "--redis", redis_server.url, "--json"],
                capture_output=True,
                text=True,
                timeout=120,
            )
            found = json.loads(status.stdout)
            assert found["records_by_state"] == {"sent": NOTICES} and found["due_later"] == 0, found
            assert found["dead_letters"] == 0 and found["unhandled_events"] == 0
