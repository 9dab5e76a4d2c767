"""Notification preferences on a real server: the card shows the plan's defaults until the account
sets its own (language, time zone, channels, marketing opt-in, quiet hours); SetPreferences replaces
them all, an empty field going back to the plan's default; each change writes a preferences_changed
event; bad values are refused naming the field and change nothing (DUMP unchanged), e-mail needs a
contact e-mail; a terminated account's are refused."""

from __future__ import annotations

import grpc
import pytest

from creditd.v1 import creditd_pb2 as pb
from tests.harness import Harness, dump

pytestmark = pytest.mark.asyncio
ACCOUNT = "66812120000"


async def set_preferences(creditd: Harness, account_id: str = ACCOUNT, **fields: object) -> pb.Account:
    request = pb.SetPreferencesRequest(account_id=account_id, preferences=pb.Preferences(**fields))
    return await creditd.accounts.SetPreferences(request)


def in_force(card: pb.Account) -> tuple[object, ...]:
    p = card.preferences
    return p.language, p.time_zone, list(p.channels), p.marketing_opt_in, p.quiet_hours_start, p.quiet_hours_end


async def test_the_plan_defaults_until_the_account_sets_its_own(creditd: Harness) -> None:
    card = await creditd.create_account(ACCOUNT, balance=100, contact=pb.Contact(email="somchai@example.net"))
    assert in_force(card) == ("th", "Asia/Bangkok", ["sms"], False, "21:00", "08:00")  # the sample plan's
    card = await set_preferences(
        creditd,
        language="th",
        time_zone="Europe/London",
        channels=["email", "sms"],
        marketing_opt_in=True,
        quiet_hours_start="22:00",
        quiet_hours_end="07:00",
    )
    assert in_force(card) == ("th", "Europe/London", ["email", "sms"], True, "22:00", "07:00")
    assert in_force(await creditd.get(ACCOUNT)) == in_force(card)
    card = await set_preferences(creditd, language="zh")  # everything else back to the plan's
    assert in_force(card) == ("zh", "Asia/Bangkok", ["sms"], False, "21:00", "08:00")
    changes = [detail for kind, detail in creditd.events_of(ACCOUNT) if kind == "preferences_changed"]
    assert changes == ["th|Europe/London|email,sms|1|22:00|07:00", "zh|||0||"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"language": "de"}, "preferences.language: one of en, th, ru, zh"),
        ({"time_zone": "Mars/Olympus"}, "preferences.time_zone: unknown time zone"),
        ({"channels": ["fax"]}, "preferences.channels: unknown channel 'fax'"),
        ({"channels": ["sms", "sms"]}, "preferences.channels: a channel appears twice"),
        ({"quiet_hours_start": "22:00"}, "preferences.quiet_hours_end: quiet_hours_start and quiet_hours_end go"),
        ({"quiet_hours_start": "24:00", "quiet_hours_end": "07:00"}, "preferences.quiet_hours_start: HH:MM"),
        ({"channels": ["email"]}, "channels: email needs the account to have a contact e-mail"),
    ],
)
async def test_bad_preferences_are_refused_and_change_nothing(
    creditd: Harness, fields: dict[str, object], message: str
) -> None:
    await creditd.create_account(ACCOUNT, balance=100)
    before = dump(creditd.redis)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await set_preferences(creditd, **fields)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.value.details() or "").startswith(message), error.value.details()
    assert dump(creditd.redis) == before


async def test_a_terminated_account_keeps_its_preferences(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=100)
    await creditd.accounts.SetStatus(pb.SetStatusRequest(account_id=ACCOUNT, status=pb.TERMINATED, reason="ADMIN"))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await set_preferences(creditd, language="ru")
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
