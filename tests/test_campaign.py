"""Campaigns (`creditd campaign send`, creditd/notifier/campaign.py) against a real server and a real HTTP
endpoint, on the server's frozen clock: only subscribers who opted in to marketing, of the plan and tier
asked, up to the limit, are queued; the due times are spaced by the rate; queued at 22:00 Bangkok time,
nothing goes out before the quiet hours end at 08:00, then the notifier delivers each in the
subscriber's language; sending the campaign id again queues nobody twice; a subscriber who opts out
after being queued is not sent it; quiet hours are checked again when a queued notice falls due. The CLI
refuses an unknown template, plan or tier naming the option, and queues a cohort."""

from __future__ import annotations

import asyncio
import sys

import pytest

from creditd.config.settings import Settings
from creditd.notifier.campaign import Cohort, send_campaign
from creditd.store.keys import notifier_key, partition_of
from creditd.v1 import creditd_pb2 as pb
from tests.harness import Harness, ServerAt
from tests.test_channels import http_server
from tests.test_notifier import notifier_for, posted
from tests.test_rating import bangkok_ms

pytestmark = pytest.mark.asyncio
OPTED_IN = ["66811110001", "66811110002", "66811110003"]
NOT_OPTED_IN = "66811110004"


async def subscribers(creditd: Harness) -> None:
    languages = ["th", "en", "zh"]
    for account_id, language in zip(OPTED_IN, languages, strict=True):
        await creditd.create_account(account_id, balance=10_000)
        preferences = pb.Preferences(channels=["webhook"], language=language, marketing_opt_in=True)
        await creditd.accounts.SetPreferences(pb.SetPreferencesRequest(account_id=account_id, preferences=preferences))
    await creditd.create_account(NOT_OPTED_IN, balance=10_000)
    preferences = pb.Preferences(channels=["webhook"], marketing_opt_in=False)
    await creditd.accounts.SetPreferences(pb.SetPreferencesRequest(account_id=NOT_OPTED_IN, preferences=preferences))


async def test_a_campaign_reaches_the_opted_in_cohort_after_quiet_hours_once(
    server_at: ServerAt, settings: Settings
) -> None:
    with http_server() as endpoint:
        async with server_at(bangkok_ms("2027-04-10T22:00:00")) as creditd:
            notifier = notifier_for(creditd, f"http://127.0.0.1:{endpoint.server_port}/", settings)
            await subscribers(creditd)
            now_ms = creditd.clock.now_ms()
            result = send_campaign(creditd.redis, creditd.settings, "songkran", "sk1", Cohort(), 2.0, now_ms)
            assert (result.accounts_queued, result.notices_queued, result.not_opted_in) == (3, 3, 1)
            # all three fall in the quiet hours (21:00-08:00): due at 08:00
            assert result.first_due_ms == result.last_due_ms == bangkok_ms("2027-04-11T08:00:00")
            await notifier.pass_once()
            assert posted(endpoint) == []
            again = send_campaign(creditd.redis, creditd.settings, "songkran", "sk1", Cohort(), 2.0, now_ms)
            assert (again.accounts_queued, again.already_queued) == (0, 3)
            # the third opts out while queued
            preferences = pb.Preferences(channels=["webhook"], language="zh", marketing_opt_in=False)
            await creditd.accounts.SetPreferences(
                pb.SetPreferencesRequest(account_id=OPTED_IN[2], preferences=preferences)
            )
            creditd.clock.advance(10 * 3600)
            await notifier.pass_once()
            sent = {notice["account_id"]: notice for notice in posted(endpoint)}
            assert set(sent) == set(OPTED_IN[:2])
            assert sent[OPTED_IN[0]]["subject"] == "สงกรานต์: เน็ตสองเท่าสัปดาห์นี้"
            assert sent[OPTED_IN[1]]["kind"] == "campaign:songkran" and "THB100.00" in sent[OPTED_IN[1]]["text"]
            record = notifier_key(
                "delivery", partition_of(OPTED_IN[2], 256), idempotency_key=f"campaign.sk1.{OPTED_IN[2]}/webhook"
            )
            assert creditd.redis.hget(record, "state") == b"suppressed"


async def test_the_rate_spaces_due_times_and_the_cohort_filters(server_at: ServerAt) -> None:
    async with server_at(bangkok_ms("2027-04-10T12:00:00")) as creditd:
        await subscribers(creditd)
        now_ms = creditd.clock.now_ms()
        limited = send_campaign(creditd.redis, creditd.settings, "songkran", "sk2", Cohort(limit=2), 4.0, now_ms)
        assert limited.accounts_queued == 2 and (limited.first_due_ms, limited.last_due_ms) == (now_ms, now_ms + 250)
        nobody = send_campaign(creditd.redis, creditd.settings, "songkran", "sk3", Cohort(tier="gold"), 4.0, now_ms)
        assert (nobody.accounts_queued, nobody.outside_cohort) == (0, 4)


async def test_quiet_hours_are_checked_again_at_delivery(server_at: ServerAt, settings: Settings) -> None:
    """Queued at noon (due at once), but by delivery the subscribers have made noon quiet: the notices
    wait for the end of their new quiet hours, then go."""
    with http_server() as endpoint:
        async with server_at(bangkok_ms("2027-04-10T12:00:00")) as creditd:
            notifier = notifier_for(creditd, f"http://127.0.0.1:{endpoint.server_port}/", settings)
            await subscribers(creditd)
            now_ms = creditd.clock.now_ms()
            result = send_campaign(creditd.redis, creditd.settings, "songkran", "sk4", Cohort(), 1_000.0, now_ms)
            assert result.accounts_queued == 3 and result.last_due_ms < now_ms + 1_000
            for account_id in OPTED_IN:
                preferences = pb.Preferences(
                    channels=["webhook"],
                    language="th",
                    marketing_opt_in=True,
                    quiet_hours_start="11:00",
                    quiet_hours_end="14:00",
                )
                await creditd.accounts.SetPreferences(
                    pb.SetPreferencesRequest(account_id=account_id, preferences=preferences)
                )
            creditd.clock.advance(1)
            await notifier.pass_once()
            assert posted(endpoint) == []
            for account_id in OPTED_IN:
                record = notifier_key(
                    "delivery", partition_of(account_id, 256), idempotency_key=f"campaign.sk4.{account_id}/webhook"
                )
                assert creditd.redis.hget(record, "state") == b"deferred"
                assert int(creditd.redis.hget(record, "due_ms") or 0) == bangkok_ms("2027-04-10T14:00:00")
            creditd.clock.advance(2 * 3600)
            await notifier.pass_once()
            assert sorted(notice["account_id"] for notice in posted(endpoint)) == OPTED_IN


async def creditd_command(*arguments: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "creditd", *arguments, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, output.decode()


async def test_the_command_checks_its_options_and_queues(creditd: Harness, redis_server: object) -> None:
    await subscribers(creditd)
    common = ["campaign", "send", "--redis", redis_server.url]  # type: ignore[attr-defined]
    code, output = await creditd_command(*common, "--template", "no_such")
    assert code != 0 and "template: no campaigns/no_such.txt" in output and "songkran" in output
    code, output = await creditd_command(*common, "--template", "songkran", "--plan", "gold")
    assert code != 0 and "--plan" in output
    code, output = await creditd_command(*common, "--template", "songkran", "--tier", "platinum")
    assert code != 0 and "--tier" in output
    code, output = await creditd_command(*common, "--template", "songkran", "--rate", "0")
    assert code != 0 and "rate:" in output
    code, output = await creditd_command(*common, "--template", "songkran", "--campaign-id", "cli1", "--rate", "100")
    assert code == 0 and "campaign cli1: 3 subscribers, 3 notices queued" in output, output
    assert "1 not opted in" in output
