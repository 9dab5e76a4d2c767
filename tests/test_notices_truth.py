"""Notices tell what was true at their event, and nothing a later event made meaningless. Against a real
creditd, the real notifier and a real HTTP endpoint (the webhook channel), on the server's frozen clock,
in each of the four languages:

- a low-balance warning held by the quiet hours, then made moot by a top-up, is dropped with its reason
  recorded (suppressed, "superseded"), and the top-up's confirmation goes out with the balance it left;
- a suspension notice whose delivery failed (the endpoint answered 503), retried after the line was
  resumed, is dropped ("superseded: the account is ACTIVE now") while the resumption is told;
- an operator's FRAUD or ADMIN suspension is told without "top up" (a top-up lifts neither): no
  top-up URL, and the words of customer care;
- two top-ups and an emergency credit within notifications.min_interval_s are all confirmed (the
  interval holds warnings back, never a confirmation of money moved), the loan with what was lent,
  its fee, what is owed and the balance it left;
- with no channel configured, the notifier writes each notice to its log (the console channel) and says
  so when it starts;
- a bundle is named as the subscriber knows it (config/names), never by its config id;
- one account's notices on a channel go out in event order across a retry and a restart: a top-up
  confirmation refused for now (503) holds the next one behind it (state `held`), and after the
  retry, by a new notifier, both go out in the order of the top-ups;
- a sign-in code notice handled after the subscriber asked for a newer code is dropped ("a newer
  sign-in code was issued") and only the newer code is sent, which signs in; one handled after its
  5 minutes is dropped ("the code expired")."""

from __future__ import annotations

import logging

import msgspec
import pytest

from creditd.config.settings import Settings
from creditd.display_names import load_names
from creditd.formatting import money
from creditd.notifier.service import Notifier
from creditd.resources import default_config_path
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc
from tests.harness import Harness, ServerAt
from tests.portal import last_code, sms_notifier, texts_to
from tests.test_channels import http_server
from tests.test_notifier import notifier_for, posted
from tests.test_rating import bangkok_ms

pytestmark = pytest.mark.asyncio
LANGUAGES = ["en", "th", "ru", "zh"]
CARE_WORDS = {"en": "customer care", "th": "ศูนย์บริการลูกค้า", "ru": "службу поддержки", "zh": "客服"}


async def subscriber(creditd: Harness, account_id: str, language: str, balance: int, **quiet: str) -> None:
    await creditd.create_account(account_id, balance=balance)
    preferences = pb.Preferences(channels=["webhook"], language=language, **quiet)
    await creditd.accounts.SetPreferences(pb.SetPreferencesRequest(account_id=account_id, preferences=preferences))


def notice_records(creditd: Harness, account_id: str) -> dict[str, tuple[str, str]]:
    """kind -> (state, reason) of the account's delivery records."""
    found = {}
    for key in creditd.redis.scan_iter(match="cd:*notice*", count=1000, _type="hash"):
        record = creditd.redis.hgetall(key)
        if b"event" not in record:
            continue
        event = msgspec.json.decode(record[b"event"])
        if event["account_id"] == account_id:
            found[event["kind"]] = (record[b"state"].decode(), record[b"reason"].decode())
    return found


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_warning_made_moot_is_dropped_and_a_confirmation_tells_its_own_balance(
    server_at: ServerAt, settings: Settings, language: str
) -> None:
    account_id = f"668161{LANGUAGES.index(language):05d}"
    with http_server() as endpoint:
        async with server_at(bangkok_ms("2027-03-10T23:00:00")) as creditd:
            notifier = notifier_for(creditd, f"http://127.0.0.1:{endpoint.server_port}/", settings)
            quiet = {"quiet_hours_start": "22:00", "quiet_hours_end": "07:00"}
            await subscriber(creditd, account_id, language, 2_050, **quiet)
            await creditd.accounts.Adjust(
                pb.AdjustRequest(account_id=account_id, amount=-100, reason="test", idempotency_key="a1")
            )  # 2 050 -> 1 950: below 2 000 (low_balance), held by the quiet hours
            await notifier.pass_once()
            assert posted(endpoint) == []
            await creditd.top_up(account_id, 10_000, "t1")  # 119.50: the warning no longer holds
            creditd.clock.advance(8 * 3600)
            await notifier.pass_once()
            notices = posted(endpoint)
            assert [notice["kind"] for notice in notices] == ["topup"], notices
            assert "119.50" in notices[0]["text"] or "119,50" in notices[0]["text"], notices[0]["text"]
            state, reason = notice_records(creditd, account_id)["low_balance"]
            assert state == "suppressed" and reason.startswith("superseded: the balance is above"), reason


async def test_a_retried_suspension_notice_is_dropped_once_the_line_is_resumed(
    server_at: ServerAt, settings: Settings
) -> None:
    account_id = "66816200001"
    with http_server(503) as endpoint:  # the first notice is refused for now: it is retried
        async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
            notifier = notifier_for(creditd, f"http://127.0.0.1:{endpoint.server_port}/", settings)
            await subscriber(creditd, account_id, "en", 1_000)
            await creditd.accounts.SetStatus(
                pb.SetStatusRequest(account_id=account_id, status=pb.ONE_WAY_SUSPENDED, reason="ADMIN")
            )
            await notifier.pass_once()
            assert notice_records(creditd, account_id)["suspended_one_way"][0] == "retrying"
            await creditd.accounts.SetStatus(
                pb.SetStatusRequest(account_id=account_id, status=pb.ACTIVE, reason="ADMIN")
            )
            creditd.clock.advance(3600)
            await notifier.pass_once()
            kinds = [notice["kind"] for notice in posted(endpoint)]
            assert kinds == ["suspended_one_way", "resumed"], kinds  # the first refused, never sent again
            state, reason = notice_records(creditd, account_id)["suspended_one_way"]
            assert (state, reason) == ("suppressed", "superseded: the account is ACTIVE now")


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_fraud_or_admin_suspension_does_not_ask_for_a_top_up(
    server_at: ServerAt, settings: Settings, language: str
) -> None:
    with http_server() as endpoint:
        async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
            notifier = notifier_for(creditd, f"http://127.0.0.1:{endpoint.server_port}/", settings)
            for number, reason in enumerate(("FRAUD", "ADMIN")):
                account_id = f"66816{3 + number}{LANGUAGES.index(language):05d}"
                await subscriber(creditd, account_id, language, 1_000)
                await creditd.accounts.SetStatus(
                    pb.SetStatusRequest(account_id=account_id, status=pb.ONE_WAY_SUSPENDED, reason=reason)
                )
                await notifier.pass_once()
                (notice,) = [notice for notice in posted(endpoint) if notice["account_id"] == account_id]
                assert notice["kind"] == "suspended_one_way"
                assert "top-up" not in notice["text"].split("A top-up does not")[0].lower()
                assert "http" not in notice["text"] and CARE_WORDS[language] in notice["text"], notice["text"]


async def test_confirmations_are_never_held_back_by_the_interval(server_at: ServerAt, settings: Settings) -> None:
    with http_server() as endpoint:
        async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
            assert creditd.settings.notifications.min_interval_s > 0
            notifier = notifier_for(creditd, f"http://127.0.0.1:{endpoint.server_port}/", settings)
            for index, language in enumerate(LANGUAGES):
                account_id = f"668164{index:05d}"
                await subscriber(creditd, account_id, language, 5_000)
                for step in ("1", "2"):  # each top-up repays the loan before it: one may borrow again
                    await creditd.top_up(account_id, 10_000 * (1 + int(step)), f"t{step}-{language}")
                    loan = pb.BorrowRequest(account_id=account_id, offer_id="emergency_10", idempotency_key=step)
                    await creditd.accounts.Borrow(loan)
                await notifier.pass_once()
                told = [notice for notice in posted(endpoint) if notice["account_id"] == account_id]
                topups = [notice["text"] for notice in told if notice["kind"] == "topup"]
                assert len(topups) == 2 and money(20_000, "THB", language) in topups[0], topups
                assert money(30_000, "THB", language) in topups[1], topups
                loans = [notice["text"] for notice in told if notice["kind"] == "loan_granted"]
                assert len(loans) == 2, (language, loans)
                for amount in (1_000, 100, 1_100, 26_000):  # lent, its fee, owed, the balance it left
                    assert money(amount, "THB", language) in loans[0], (language, loans[0])


async def test_with_no_channel_configured_notices_go_to_the_log(
    server_at: ServerAt, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    account_id = "66816500001"
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
        notifications = msgspec.structs.replace(
            settings.notifications, templates_dir=str(default_config_path().parent / "templates")
        )
        assert not (notifications.sms.url or notifications.email.host or notifications.webhook.url)
        own = msgspec.structs.replace(creditd.settings, notifications=notifications)
        notifier = Notifier(creditd.server.redis, own, creditd.clock, "notify-console")
        assert notifier.channels_in_use() == ["console"]
        await subscriber(creditd, account_id, "en", 5_000)
        caplog.set_level(logging.INFO)
        await creditd.top_up(account_id, 20_000, "t1")
        await notifier.pass_once()
        lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("console notice")]
        assert any(account_id in line and "250.00" in line for line in lines), lines
        assert notice_records(creditd, account_id)["topup"][0] == "sent"


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_bundle_is_named_as_the_subscriber_knows_it(
    server_at: ServerAt, settings: Settings, language: str
) -> None:
    account_id = f"668166{LANGUAGES.index(language):05d}"
    names = load_names(default_config_path().parent / "names")
    with http_server() as endpoint:
        async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
            webhook = notifier_for(creditd, f"http://127.0.0.1:{endpoint.server_port}/", settings)
            notifier = Notifier(webhook.client, webhook.settings, creditd.clock, "notify-names", names)
            await subscriber(creditd, account_id, language, 50_000)
            await creditd.accounts.PurchaseBundle(
                pb.PurchaseBundleRequest(account_id=account_id, bundle_id="voice_100min", idempotency_key="b1")
            )
            await notifier.pass_once()
            (notice,) = [notice for notice in posted(endpoint) if notice["kind"] == "bundle_purchased"]
            assert "voice_100min" not in notice["text"], notice["text"]
            assert names[language].bundles["voice_100min"] in notice["text"], notice["text"]


async def test_a_superseded_or_expired_sign_in_code_is_never_sent(server_at: ServerAt, settings: Settings) -> None:
    opening = {"en": "Your sign-in code", "th": "รหัสเข้าสู่ระบบ", "ru": "Ваш код для входа", "zh": "您的登录验证码"}
    with http_server() as gateway:
        async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
            notifier = sms_notifier(creditd, gateway, settings)
            stub = pb_grpc.SelfServiceStub(creditd.channel)
            for index, language in enumerate(LANGUAGES):
                account_id = f"668166{index:05d}"
                await creditd.create_account(account_id, balance=1_000)
                preferences = pb.Preferences(channels=["sms"], language=language)
                await creditd.accounts.SetPreferences(
                    pb.SetPreferencesRequest(account_id=account_id, preferences=preferences)
                )
                for _ in range(2):  # asked twice before the notifier came round
                    await stub.RequestSignInCode(pb.RequestSignInCodeRequest(account_id=account_id))
                await notifier.pass_once()
                (text,) = texts_to(gateway, account_id)
                assert opening[language] in text, text
                assert sorted(code_records(creditd, account_id)) == [
                    ("sent", ""),
                    ("suppressed", "superseded: a newer sign-in code was issued"),
                ]
                signed = await stub.SignIn(pb.SignInRequest(account_id=account_id, code=last_code(gateway, account_id)))
                assert signed.session_token  # the code sent is the newer one
                await stub.RequestSignInCode(pb.RequestSignInCodeRequest(account_id=account_id))
                creditd.clock.advance(301)  # past the code's 5 minutes before the notifier came round
                await notifier.pass_once()
                assert len(texts_to(gateway, account_id)) == 1
                assert ("suppressed", "superseded: the code expired") in code_records(creditd, account_id)


def code_records(creditd: Harness, account_id: str) -> list[tuple[str, str]]:
    """(state, reason) of each sign-in code notice's delivery record."""
    found = []
    for key in creditd.redis.scan_iter(match="cd:*notice*", count=1000, _type="hash"):
        record = creditd.redis.hgetall(key)
        event = msgspec.json.decode(record[b"event"]) if b"event" in record else {}
        if event.get("account_id") == account_id and event["kind"] == "sign_in_code":
            found.append((record[b"state"].decode(), record[b"reason"].decode()))
    return found


async def test_notices_go_out_in_event_order_across_a_retry_and_a_restart(
    server_at: ServerAt, settings: Settings
) -> None:
    with http_server() as endpoint:
        async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
            url = f"http://127.0.0.1:{endpoint.server_port}/"
            for index, language in enumerate(LANGUAGES):
                account_id = f"668167{index:05d}"
                await subscriber(creditd, account_id, language, 5_000)
                endpoint.statuses.append(503)  # type: ignore[attr-defined]  # the first top-up's notice, for now
                await creditd.top_up(account_id, 10_000, f"first-{language}")
                await creditd.top_up(account_id, 20_000, f"second-{language}")
                await notifier_for(creditd, url, settings).pass_once()
                records = notice_records_by_event(creditd, account_id)
                assert [state for state, _ in records] == ["retrying", "held"], records
                assert records[1][1] == "after an earlier notice"
                creditd.clock.advance(61)  # the retry is due (retry_base_s 60)
                await notifier_for(creditd, url, settings).pass_once()  # a new notifier: a restart
                told = [notice["text"] for notice in posted(endpoint) if notice["account_id"] == account_id]
                first, second = money(10_000, "THB", language), money(20_000, "THB", language)
                assert len(told) == 3 and first in told[0] and first in told[1] and second in told[2], told
                assert [state for state, _ in notice_records_by_event(creditd, account_id)] == ["sent", "sent"]


def notice_records_by_event(creditd: Harness, account_id: str) -> list[tuple[str, str]]:
    """(state, reason) of the account's delivery records, in the order of their events."""
    found = []
    for key in creditd.redis.scan_iter(match="cd:*notice:*", count=1000, _type="hash"):
        record = creditd.redis.hgetall(key)
        event = msgspec.json.decode(record[b"event"]) if b"event" in record else {}
        if event.get("account_id") == account_id:
            order = tuple(int(part) for part in event["id"].split("-"))
            found.append((order, record[b"state"].decode(), record[b"reason"].decode()))
    return [(state, reason) for _, state, reason in sorted(found)]
