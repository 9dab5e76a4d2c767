"""The notifier against a real creditd server and a real HTTP endpoint (the webhook channel), on the
server's frozen clock: a low balance is told in the subscriber's language with money formatted for
it; a second notice of the kind within the minimum interval is suppressed (both counted in the
metrics); a suspension at 23:00 waits for the end of the quiet hours (no marketing opt-in never
suppresses it) and goes out at 08:00; an endpoint refusing (400) dead-letters at once, one failing
(503) is retried with backoff until it answers; a notifier that handles the same events again (a
restart) sends nothing twice; an e-mail notice in Russian reaches a real SMTP server (aiosmtpd); a
kind the plan marks urgent goes out in the quiet hours while the others wait; an SMTP server that
refuses every connection gets its notice retried with backoff (`notify status` tells why: the channel
and the recorded reason), then dead-lettered, while the webhook of the same event goes out at once
and every (event, channel) keeps a record."""

from __future__ import annotations

import json
from collections.abc import Iterator
from email import message_from_bytes
from email import policy as email_policy

import msgspec
import pytest
from aiosmtpd.controller import Controller

from creditd import metrics
from creditd.config.fronts import EmailChannelSettings
from creditd.config.settings import Settings
from creditd.devtools.ports import free_port
from creditd.notifier.service import Notifier
from creditd.notifier.status import notifier_status
from creditd.resources import default_config_path
from creditd.store.keys import notifier_key, partition_of
from creditd.v1 import creditd_pb2 as pb
from tests.harness import EVENT, SMS, Harness, ServerAt, charge_request
from tests.test_channels import Inbox, http_server
from tests.test_rating import bangkok_ms

pytestmark = pytest.mark.asyncio
ACCOUNT = "66815150000"


def notifier_for(creditd: Harness, url: str, settings: Settings) -> Notifier:
    notifications = msgspec.structs.replace(
        settings.notifications,
        templates_dir=str(default_config_path().parent / "templates"),
        webhook=msgspec.structs.replace(settings.notifications.webhook, url=url, secret="s3cret", timeout_s=5),
        retry_base_s=60,
    )
    own = msgspec.structs.replace(creditd.settings, notifications=notifications)
    return Notifier(creditd.server.redis, own, creditd.clock, "notify-test")


async def open_account(creditd: Harness, balance: int) -> None:
    await creditd.create_account(ACCOUNT, balance=balance)
    preferences = pb.Preferences(channels=["webhook"], language="th")
    await creditd.accounts.SetPreferences(pb.SetPreferencesRequest(account_id=ACCOUNT, preferences=preferences))


async def send_sms(creditd: Harness, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        await creditd.credit_control.Charge(charge_request(f"sms{n}", EVENT, 0, ACCOUNT, [(SMS, 0, 0)]))


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def posted(server: object) -> list[dict]:
    return [json.loads(body) for _, _, _, body in server.seen]  # type: ignore[attr-defined]


@pytest.fixture
def endpoint() -> Iterator[object]:
    with http_server() as server:
        yield server


async def test_low_balance_in_thai_then_the_interval_holds_the_next(
    server_at: ServerAt, settings: Settings, endpoint: object
) -> None:
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
        notifier = notifier_for(creditd, f"http://127.0.0.1:{endpoint.server_port}/", settings)  # type: ignore[attr-defined]
        await open_account(creditd, 2_050)
        await send_sms(creditd, 2)  # 2 050 -> 2 000 (at the threshold: the event) -> 1 950
        labels = {"channel": "webhook", "kind": "low_balance"}
        sent_before = sample("creditd_notices_total", result="sent", **labels)
        await notifier.pass_once()
        assert sample("creditd_notices_total", result="sent", **labels) == sent_before + 1
        assert sample("creditd_notice_lag_seconds_count", channel="webhook") >= 1
        notices = posted(endpoint)
        assert [(n["kind"], n["language"]) for n in notices] == [("low_balance", "th")]
        # the balance the event left (฿20.00), not the balance at delivery (฿19.50)
        assert notices[0]["subject"] == "ยอดเงินคงเหลือต่ำ"
        assert "ยอดเงินคงเหลือ ฿20.00 ต่ำกว่า ฿20.00" in notices[0]["text"] and "฿19.50" not in notices[0]["text"]
        await send_sms(creditd, 29, start=2)  # 1 950 -> 500: below 500 within ten minutes
        suppressed_before = sample("creditd_notices_total", result="suppressed", **labels)
        await notifier.pass_once()
        assert len(posted(endpoint)) == 1
        assert sample("creditd_notices_total", result="suppressed", **labels) == suppressed_before + 1
        partition = partition_of(ACCOUNT, creditd.settings.redis.partitions)
        states = {
            key.decode(): creditd.redis.hget(key, "state").decode()
            for key in creditd.redis.scan_iter(notifier_key("delivery", partition, idempotency_key="*"))
        }
        assert sorted(states.values()) == ["sent", "suppressed"]
        # the same events handled again (a restart that lost its position): nothing twice
        creditd.redis.delete(notifier_key("notifier_position", partition))
        await notifier.pass_once()
        assert len(posted(endpoint)) == 1


async def test_a_suspension_at_night_waits_for_the_end_of_quiet_hours(
    server_at: ServerAt, settings: Settings, endpoint: object
) -> None:
    async with server_at(bangkok_ms("2027-03-10T23:00:00")) as creditd:  # the plan's quiet hours: 21-08
        notifier = notifier_for(creditd, f"http://127.0.0.1:{endpoint.server_port}/", settings)  # type: ignore[attr-defined]
        await open_account(creditd, 100)
        await send_sms(creditd, 2)  # to 0: suspended one-way
        assert (await creditd.get(ACCOUNT)).status == pb.ONE_WAY_SUSPENDED
        await notifier.pass_once()
        assert posted(endpoint) == []
        creditd.clock.advance(9 * 3600)  # 08:00
        await notifier.pass_once()
        kinds = sorted(n["kind"] for n in posted(endpoint))
        assert kinds == ["low_balance", "suspended_one_way"]


async def test_a_refusal_dead_letters_and_an_outage_is_retried(server_at: ServerAt, settings: Settings) -> None:
    with http_server(400, 503, 200) as refusing:
        async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
            notifier = notifier_for(creditd, f"http://127.0.0.1:{refusing.server_port}/", settings)
            await open_account(creditd, 2_050)
            await send_sms(creditd, 2)  # low_balance: refused (400)
            await notifier.pass_once()
            partition = partition_of(ACCOUNT, creditd.settings.redis.partitions)
            dead = [entry.decode() for entry in creditd.redis.lrange(notifier_key("dead_letters", partition), 0, -1)]
            assert len(dead) == 1 and "HTTP 400" in dead[0]
            await creditd.top_up(ACCOUNT, 500, "t1")  # a topup notice: 503, then retried
            await notifier.pass_once()
            assert len(refusing.seen) == 2  # type: ignore[attr-defined]
            await notifier.pass_once()
            assert len(refusing.seen) == 2  # type: ignore[attr-defined]  # not due yet
            creditd.clock.advance(61)
            await notifier.pass_once()
            assert [n["kind"] for n in posted(refusing)] == ["low_balance", "topup", "topup"]
            assert creditd.redis.zcard(notifier_key("deliveries_due", partition)) == 0


async def test_an_email_notice_reaches_a_real_smtp_server(server_at: ServerAt, settings: Settings) -> None:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
            smtp = EmailChannelSettings(host="127.0.0.1", port=port, starttls=False, sender="notices@example.net")
            notifications = msgspec.structs.replace(
                settings.notifications, templates_dir=str(default_config_path().parent / "templates"), email=smtp
            )
            own = msgspec.structs.replace(creditd.settings, notifications=notifications)
            notifier = Notifier(creditd.server.redis, own, creditd.clock, "notify-email")
            await creditd.create_account(ACCOUNT, balance=2_050, contact=pb.Contact(email="somchai@example.net"))
            preferences = pb.Preferences(channels=["email"], language="ru")
            await creditd.accounts.SetPreferences(pb.SetPreferencesRequest(account_id=ACCOUNT, preferences=preferences))
            await send_sms(creditd, 2)
            await notifier.pass_once()
            message = message_from_bytes(inbox.messages[0], policy=email_policy.default)
            assert str(message["Subject"]) == "Низкий баланс" and str(message["To"]) == "somchai@example.net"
            assert "20,00\xa0฿, ниже" in message.get_content()
    finally:
        controller.stop()


async def test_an_urgent_kind_is_told_in_quiet_hours_and_the_rest_wait(
    server_at: ServerAt, settings: Settings, endpoint: object
) -> None:
    plan = msgspec.structs.replace(settings.plans["standard"], urgent_notice_kinds=["suspended_one_way"])
    loaded = msgspec.structs.replace(settings, plans={**settings.plans, "standard": plan})
    async with server_at(bangkok_ms("2027-03-10T23:00:00"), loaded=loaded) as creditd:
        notifier = notifier_for(creditd, f"http://127.0.0.1:{endpoint.server_port}/", creditd.settings)  # type: ignore[attr-defined]
        await open_account(creditd, 100)
        await send_sms(creditd, 2)  # low_balance, then suspended one-way
        await notifier.pass_once()
        assert [n["kind"] for n in posted(endpoint)] == ["suspended_one_way"]
        creditd.clock.advance(9 * 3600)
        await notifier.pass_once()
        assert sorted(n["kind"] for n in posted(endpoint)) == ["low_balance", "suspended_one_way"]


async def test_a_channel_down_retries_then_dead_letters_and_the_others_go_on(
    server_at: ServerAt, settings: Settings, endpoint: object
) -> None:
    refusing_port = free_port()  # nothing listens: every connection is refused
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
        smtp = EmailChannelSettings(host="127.0.0.1", port=refusing_port, starttls=False, timeout_s=5)
        own = notifier_for(creditd, f"http://127.0.0.1:{endpoint.server_port}/", settings)  # type: ignore[attr-defined]
        notifications = msgspec.structs.replace(own.settings.notifications, email=smtp, max_attempts=3)
        notifier = Notifier(
            creditd.server.redis,
            msgspec.structs.replace(own.settings, notifications=notifications),
            creditd.clock,
            "notify-down",
        )
        await creditd.create_account(ACCOUNT, balance=2_050, contact=pb.Contact(email="somchai@example.net"))
        preferences = pb.Preferences(channels=["email", "webhook"], language="en")
        await creditd.accounts.SetPreferences(pb.SetPreferencesRequest(account_id=ACCOUNT, preferences=preferences))
        await send_sms(creditd, 2)  # low_balance
        await notifier.pass_once()
        assert [n["kind"] for n in posted(endpoint)] == ["low_balance"]  # the webhook is not held up
        partition = partition_of(ACCOUNT, creditd.settings.redis.partitions)
        records = {
            key.decode().rsplit("/", 1)[1]: creditd.redis.hgetall(key)
            for key in creditd.redis.scan_iter(notifier_key("delivery", partition, idempotency_key="*"))
        }
        assert records["webhook"][b"state"] == b"sent" and records["email"][b"state"] == b"retrying"
        reasons = notifier_status(creditd.redis, creditd.settings.redis.partitions).failure_reasons
        assert reasons == {f"email: {records['email'][b'reason'].decode()}": 1}, reasons  # `notify status` says why
        assert "refused" in records["email"][b"reason"].decode().lower(), records["email"]
        for wait_s in (61, 121):  # backoff 60 s, then 120 s
            creditd.clock.advance(wait_s)
            await notifier.pass_once()
        email = next(creditd.redis.scan_iter(notifier_key("delivery", partition, idempotency_key="*/email")))
        assert creditd.redis.hget(email, "state") == b"dead" and creditd.redis.hget(email, "attempts") == b"3"
        dead = creditd.redis.lrange(notifier_key("dead_letters", partition), 0, -1)
        assert len(dead) == 1 and dead[0].decode().endswith("/email " + creditd.redis.hget(email, "reason").decode())
        assert creditd.redis.zcard(notifier_key("deliveries_due", partition)) == 0
        assert len(posted(endpoint)) == 1


async def test_a_failure_no_channel_foresaw_dead_letters_that_notice_only(
    server_at: ServerAt, settings: Settings, endpoint: object
) -> None:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
            # no sender: smtplib itself fails (IndexError) before anything is sent
            smtp = EmailChannelSettings(host="127.0.0.1", port=port, starttls=False, sender="")
            own = notifier_for(creditd, f"http://127.0.0.1:{endpoint.server_port}/", settings)  # type: ignore[attr-defined]
            notifications = msgspec.structs.replace(own.settings.notifications, email=smtp)
            own_settings = msgspec.structs.replace(own.settings, notifications=notifications)
            notifier = Notifier(creditd.server.redis, own_settings, creditd.clock, "notify-bug")
            await creditd.create_account(ACCOUNT, balance=2_050, contact=pb.Contact(email="somchai@example.net"))
            preferences = pb.Preferences(channels=["email", "webhook"], language="en")
            await creditd.accounts.SetPreferences(pb.SetPreferencesRequest(account_id=ACCOUNT, preferences=preferences))
            await send_sms(creditd, 2)
            assert await notifier.pass_once()  # the pass completes
            assert [n["kind"] for n in posted(endpoint)] == ["low_balance"] and inbox.messages == []
            partition = partition_of(ACCOUNT, creditd.settings.redis.partitions)
            email = next(creditd.redis.scan_iter(notifier_key("delivery", partition, idempotency_key="*/email")))
            assert creditd.redis.hget(email, "state") == b"dead"
            assert creditd.redis.hget(email, "reason").startswith(b"email: IndexError")
    finally:
        controller.stop()
