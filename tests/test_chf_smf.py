"""An SMF charges a PDU session through a live `creditd chf` over one HTTP/2 connection (prior
knowledge), and the ledger and usage records are exactly what the session implies.

The session (frozen clock, 21:55 Bangkok): two rating groups (data 1, and a video group 10 whose
price falls at 22:00), quota thresholds in every grant, a tariff time change inside the video grant
reported as two containers (the one closed by TARIFF_TIME_CHANGE, then the one after), a move to a
visited network (the next data grant priced at roaming, the video group not rated there), a last
grant money limits carrying finalUnitIndication REDIRECT, and the release. Each step is also sent
twice: the repeat gets the same body and charges nothing. The ledger's charges and the usage records
(tariff, zone, units, price) are compared with values computed by hand from the tariffs."""

from __future__ import annotations

import asyncio

import pytest

from creditd.core.usage import OLDEST, read_usage, usage_feed
from creditd.resources import default_config_path
from tests.chf_smf import API, h2_client, pdu_request, ref_of, started_chf, time_stamp, unit_usage, used
from tests.harness import MB, Harness, ServerAt
from tests.test_rating import bangkok_ms

pytestmark = pytest.mark.asyncio
DATA, VIDEO = 1, 10
ACCOUNT = "66811112222"
VISITED = {"mcc": "310", "mnc": "260"}
VIDEO_TARIFFS = """
[[plans.standard.tariffs]]
rating_group = 10
name = "video"
zones = ["home"]
unit = "BYTES"
price_minor = 20
block_size = 1_000_000
default_grant = 5_000_000
validity_time_s = 600
quota_threshold_percent = 20
quota_holding_time_s = 300

[[plans.standard.tariffs]]
rating_group = 10
name = "video_night"
zones = ["home"]
timing = "night"
unit = "BYTES"
price_minor = 5
block_size = 1_000_000
default_grant = 5_000_000
validity_time_s = 600
quota_threshold_percent = 20
quota_holding_time_s = 300
"""


async def usage_records(harness: Harness) -> list[tuple[int, int, str, str, int, int]]:
    settings = harness.settings
    feed = usage_feed(harness.server.redis, settings.redis.partitions, settings.events, 2.0)
    await asyncio.sleep(settings.events.settle_ms / 1000 * 3)  # past the feed's settle horizon
    records = [record async for record in read_usage(feed, OLDEST)]
    return [(r.request_number, r.rating_group, r.tariff, r.zone, r.units, r.charged) for r in records]


async def test_an_smf_pdu_session_is_charged_exactly(server_at: ServerAt, redis_server: object) -> None:
    config = default_config_path().read_text() + VIDEO_TARIFFS
    async with server_at(bangkok_ms("2027-03-10T21:55:00"), config=config) as harness:
        await harness.create_account(ACCOUNT, 1095)
        async with (
            started_chf(harness.settings, redis_server.url, harness.clock) as base,  # type: ignore[attr-defined]
            h2_client(base) as smf,
        ):
            created_at = time_stamp()

            async def send(
                path: str, number: int, units: list[dict[str, object]], **fields: object
            ) -> dict[str, object]:
                body = pdu_request(ACCOUNT, number, units, created_at=created_at, **fields)  # type: ignore[arg-type]
                first = await smf.post(path, json=body)
                assert first.http_version == "HTTP/2"
                ledger = await harness.ledger(ACCOUNT)
                again = await smf.post(path, json=body)  # a retransmission: same answer, nothing charged
                assert (again.status_code, again.content) == (first.status_code, first.content)
                assert await harness.ledger(ACCOUNT) == ledger
                return {
                    "status": first.status_code,
                    "json": first.json() if first.content else None,
                    "location": first.headers.get("location", ""),
                }

            create = await send(
                API + "/chargingdata",
                0,
                [unit_usage(DATA, requested_volume=5 * MB), unit_usage(VIDEO, requested_volume=5 * MB)],
            )
            assert create["status"] == 201
            ref = ref_of(create["location"])
            assert create["location"].endswith(f"{API}/chargingdata/{ref}") and ref.startswith(ACCOUNT + "~")
            data, video = create["json"]["multipleUnitInformation"]
            assert data == {
                "resultCode": "SUCCESS",
                "ratingGroup": DATA,
                "grantedUnit": {"totalVolume": 5 * MB},
                "validityTime": 600,
                "quotaHoldingTime": 300,
                "volumeQuotaThreshold": 1 * MB,
            }
            # the video grant's validity crosses 22:00 Bangkok (15:00 UTC)
            assert video["grantedUnit"] == {"totalVolume": 5 * MB, "tariffTimeChange": "2027-03-10T15:00:00Z"}
            assert video["triggers"] == [{"triggerType": "TARIFF_TIME_CHANGE", "triggerCategory": "DEFERRED_REPORT"}]
            assert video["volumeQuotaThreshold"] == 1 * MB

            harness.clock.advance(360)  # 22:01
            update = f"{API}/chargingdata/{ref}/update"
            first = await send(
                update,
                1,
                [
                    unit_usage(
                        DATA,
                        requested_volume=5 * MB,
                        containers=[used(1, volume=2 * MB), used(2, volume=1 * MB, triggers=("QUOTA_THRESHOLD",))],
                    ),
                    unit_usage(
                        VIDEO,
                        requested_volume=5 * MB,
                        containers=[used(1, volume=1 * MB, triggers=("TARIFF_TIME_CHANGE",)), used(2, volume=3 * MB)],
                    ),
                ],
            )
            assert first["status"] == 200
            assert [u["resultCode"] for u in first["json"]["multipleUnitInformation"]] == ["SUCCESS", "SUCCESS"]

            harness.clock.advance(60)  # the user moves to a visited network
            roaming = await send(
                update,
                2,
                [
                    unit_usage(
                        DATA, requested_volume=5 * MB, containers=[used(3, volume=2 * MB, triggers=("PLMN_CHANGE",))]
                    ),
                    unit_usage(VIDEO, requested_volume=5 * MB, containers=[used(3, volume=2 * MB)]),
                ],
                serving_plmn=VISITED,
            )
            assert roaming["status"] == 200
            data, video = roaming["json"]["multipleUnitInformation"]
            # 1095 - 65 - 30 = 1000 left: two roaming blocks of 500, the last money pays
            assert data["grantedUnit"] == {"totalVolume": 2 * MB}
            assert data["finalUnitIndication"] == {
                "finalUnitAction": "REDIRECT",
                "redirectServer": {
                    "redirectAddressType": "URL",
                    "redirectServerAddress": "http://127.0.0.1:8080/top-up",
                },
            }
            assert video == {"resultCode": "RATING_FAILED", "ratingGroup": VIDEO}

            release = await send(
                f"{API}/chargingdata/{ref}/release",
                3,
                [
                    unit_usage(DATA, containers=[used(4, volume=1 * MB, triggers=("FINAL",))]),
                ],
                serving_plmn=VISITED,
            )
            assert release == {"status": 204, "json": None, "location": ""}
            after = await smf.post(update, json=pdu_request(ACCOUNT, 4, [], created_at=created_at))
            assert after.status_code == 404 and after.json()["cause"] == "RESOURCE_NOT_FOUND"

        ledger = await harness.ledger(ACCOUNT)
        charges = [(entry.reference, entry.amount) for entry in reversed(ledger) if entry.kind == "charge"]
        assert charges == [(f"nchf {ref} 1", -65), (f"nchf {ref} 2", -30), (f"nchf {ref} 3", -500)]
        card = await harness.get(ACCOUNT)
        assert (card.balance, card.reserved, card.open_sessions) == (500, 0, 0)
        assert sorted(await usage_records(harness)) == sorted(
            [
                (1, DATA, "data", "home", 3 * MB, 30),
                (1, VIDEO, "video", "home", 1 * MB, 20),
                (1, VIDEO, "video_night", "home", 3 * MB, 15),
                (2, DATA, "data", "home", 2 * MB, 20),
                (2, VIDEO, "video_night", "home", 2 * MB, 10),
                (3, DATA, "data_roaming", "roaming", 1 * MB, 500),
            ]
        )
