"""Tariff choice exists twice: in Lua (lua/lib/tariffs.lua tariff_at, which prices every charge) and
in Python (creditd/config/rating.py matching_tariff, which rerating uses to price records again).
One table of contexts feeds both: a plan whose rating group 9 has tariffs of every kind of criterion
(service ids, destinations, zones, a night band across midnight, weekdays, a date) at four levels of
specificity; each context (service id x destination x zone) at instants every 97 minutes over six
days around a holiday and a weekend, and a minute either side of each band edge. Lua's choice is
read from the tariff named in an EVENT's grant (the function called directly with the instant as
its now_ms); Python's from matching_tariff. Every pair must name the same tariff, and the table
must reach every tariff, so it cannot agree by never choosing."""

from __future__ import annotations

import itertools
import tomllib
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from creditd.config.rating import matching_tariff
from creditd.config.settings import parse_settings
from creditd.store.calls import Calls, NewAccount
from creditd.store.codes import Code
from creditd.store.connection import AnySyncRedis
from creditd.store.replies import ANSWER_DECODER, decode_reply
from creditd.v1 import creditd_pb2 as pb
from tests.harness import library_client
from tests.test_rating_config import SHIPPED

GROUP = 9
CONFIG = (
    SHIPPED
    + """
[zones.neighbours]
plmns = ["52501"]

[timings.weekend]
weekdays = ["sat", "sun"]

[timings.new_year]
dates = [2027-01-01]
"""
    + "".join(
        f"""
[[plans.standard.tariffs]]
rating_group = {GROUP}
name = "{name}"
unit = "SECONDS"
price_minor = {price}
block_size = 1
default_grant = 60
validity_time_s = 600
{criteria}
"""
        for name, price, criteria in [
            ("any", 1, ""),
            ("home", 2, 'zones = ["home"]'),
            ("abroad_from_home", 3, 'destinations = ["international"]\nzones = ["home"]'),
            ("home_nights", 4, 'destinations = ["thailand"]\nzones = ["home"]\ntiming = "night"'),
            (
                "weekend_video",
                5,
                'service_ids = [7]\ndestinations = ["thailand"]\nzones = ["home"]\ntiming = "weekend"',
            ),
            ("neighbours", 6, 'zones = ["neighbours"]'),
            ("neighbours_service", 7, 'service_ids = [8]\nzones = ["neighbours"]'),
            ("new_year_roaming", 8, 'zones = ["roaming"]\ntiming = "new_year"'),
        ]
    )
)
# (called party, its destination), (visited PLMN, its zone): as the sample plan's tables define them.
CALLED = [("66812345678", "thailand"), ("14155550100", "international")]
VISITED = [("", "home"), ("52501", "neighbours"), ("23415", "roaming")]
SERVICE_IDS = [0, 7, 8]
ACCOUNT = "66800000909"
LOCAL = ZoneInfo("Asia/Bangkok")


def instants_ms() -> list[int]:
    start = datetime(2026, 12, 30, tzinfo=LOCAL)
    found = {int((start + timedelta(minutes=97 * step)).timestamp() * 1000) for step in range(6 * 24 * 60 // 97)}
    for day, (hour, minute), shift in itertools.product(range(6), [(22, 0), (7, 0), (0, 0)], (-1, 0)):
        edge = start + timedelta(days=day, hours=hour, minutes=minute + shift)
        found.add(int(edge.timestamp() * 1000))
    return sorted(found)


def event(service_id: int, called_party: str, visited_plmn: str, number: int) -> pb.ChargeRequest:
    request = pb.ChargeRequest(
        session_id=f"t{number}",
        request_type=pb.ChargeRequest.EVENT,
        account_id=ACCOUNT,
        gateway_id="gw",
        called_party=called_party,
        visited_plmn=visited_plmn,
    )
    request.units.add(rating_group=GROUP, service_id=service_id, requested=1)
    return request


def test_lua_and_python_choose_the_same_tariff(redis_server: object, redis_client: AnySyncRedis) -> None:
    settings = parse_settings(tomllib.loads(CONFIG), "test")
    plan = settings.plans["standard"]
    calls = Calls(settings.redis.partitions)
    chosen: set[str] = set()
    with library_client(redis_server.url, settings) as client:  # type: ignore[attr-defined]
        create = calls.create_account(NewAccount(ACCOUNT, "standard", initial_balance=10**12), instants_ms()[0], "test")
        assert decode_reply(client.fcall(create[0], len(create[1]), *create[1], *create[2])).code == Code.SUCCESS
        contexts = list(itertools.product(SERVICE_IDS, CALLED, VISITED))
        for number, (instant_ms, (service_id, (called, destination), (plmn, zone))) in enumerate(
            itertools.product(instants_ms(), contexts)
        ):
            function, keys, args = calls.charge(event(service_id, called, plmn, number), instant_ms, "test")
            answer = ANSWER_DECODER.decode(decode_reply(client.fcall(function, len(keys), *keys, *args)).body)
            lua_choice = answer.grants[0].tariff if answer.grants else ""
            expected = matching_tariff(settings, plan, GROUP, service_id, destination, zone, instant_ms)
            when = datetime.fromtimestamp(instant_ms / 1000, UTC).astimezone(LOCAL)
            assert lua_choice == (expected.name if expected else ""), (
                f"service {service_id}, {destination}, {zone}, {when:%a %Y-%m-%d %H:%M}: Lua {lua_choice!r}, "
                f"Python {expected.name if expected else None!r}"
            )
            chosen.add(lua_choice)
    assert chosen == {
        "any",
        "home",
        "abroad_from_home",
        "home_nights",
        "weekend_video",
        "neighbours",
        "neighbours_service",
        "new_year_roaming",
    }
