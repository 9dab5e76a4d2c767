"""Credit control over a real Diameter socket, checked against the balances and ledger creditd reports over
gRPC: Ro voice CCR-I/U/T billed by the sample plan's tariff (100 satang per started minute), refusals
(4012 on an empty line, 5030 for an unknown subscriber) that write nothing, Gy data with several rating
groups and volume units, a final grant with its Final-Unit-Indication and the final-grant margin, a tariff
change inside a grant (Tariff-Time-Change, Tariff-Change-Usage), SMS events, the visited network,
retransmissions answered the same and charged once (also through a second front process), and
DIAMETER_TOO_BUSY while Redis does not answer."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from diameter.message import Message as ReferenceMessage

from creditd.api import validation
from creditd.config.settings import Settings
from creditd.devtools.local_topology import LocalServer
from creditd.diameter import credit
from creditd.diameter.codec import Avp, make
from creditd.diameter.dictionary import Code
from creditd.diameter.identity import e164_digits, plmn_of_location, user_part
from creditd.diameter.server import DiameterServer
from creditd.store.embedded import EmbeddedRedis
from tests.diameter.client import (
    EVENT,
    GY,
    INITIAL,
    SIP_URI,
    SMS,
    TERMINATE,
    UPDATE,
    Service,
    ccr,
    connected,
    granted,
    grants,
    result_of,
    retransmitted,
)
from tests.diameter.conftest import TEST_DIAMETER, DiameterAt
from tests.faults.proxy import faulty_proxy
from tests.harness import MB, Harness, ServerAt, dump, library_client
from tests.test_rating import bangkok_ms

SUBSCRIBER = "66811110000"
VOICE = 100  # kamailio's Rating-Group, mapped to creditd's voice rating group 2 by the test settings


def test_edge_rules_are_the_grpc_edges() -> None:
    assert credit.ID_PATTERN.pattern == validation.ID_PATTERN.pattern
    assert credit.SESSION_ID_PATTERN.pattern == validation.SESSION_ID_PATTERN.pattern


def test_number_forms() -> None:
    assert user_part("sip:+491701234567@test.local;user=phone") == "+491701234567"
    assert user_part("tel:+66-81-111-0000;phone-context=x") == "+66-81-111-0000"
    assert e164_digits("+66-81-111-0000", "") == "66811110000"
    assert e164_digits("0066811110000", "") == "66811110000"
    assert e164_digits("0811110000", "66") == "66811110000"
    assert e164_digits("alice", "66") is None


@pytest.mark.asyncio
async def test_a_voice_call_is_billed_by_the_minute(creditd: Harness, diameter: DiameterServer) -> None:
    await creditd.create_account(SUBSCRIBER, balance=10_000)
    async with connected(diameter.port) as client:
        answer = await client.ask(ccr("call-1", INITIAL, 0, "+" + SUBSCRIBER, [Service(VOICE, 30)]))
        assert result_of(answer) == 2001
        first = grants(answer)[VOICE]
        assert result_of_mscc(first) == 2001 and granted(first) == 60
        assert first.child(Code.VALIDITY_TIME) is not None
        answer = await client.ask(ccr("call-1", UPDATE, 1, "+" + SUBSCRIBER, [Service(VOICE, 30, 55)]))
        assert result_of(answer) == 2001 and granted(grants(answer)[VOICE]) == 60
        answer = await client.ask(ccr("call-1", TERMINATE, 2, "+" + SUBSCRIBER, [Service(VOICE, None, 20)]))
        assert result_of(answer) == 2001
    account = await creditd.get(SUBSCRIBER)
    assert account.balance == 10_000 - 200  # 75 s: two started minutes at 100
    kinds = [(entry.kind, entry.amount) for entry in await creditd.ledger(SUBSCRIBER)]
    assert sum(amount for kind, amount in kinds if kind != "top_up" and amount < 0) == -200


def result_of_mscc(mscc: Avp) -> int:
    found = mscc.child(Code.RESULT_CODE)
    assert found is not None and isinstance(found.value, int)
    return found.value


@pytest.mark.asyncio
async def test_an_empty_line_is_refused_4012_and_nothing_is_written(creditd: Harness, diameter: DiameterServer) -> None:
    await creditd.create_account(SUBSCRIBER, balance=50)  # not one 100-satang minute
    ledger = await creditd.ledger(SUBSCRIBER)
    async with connected(diameter.port) as client:
        answer = await client.ask(ccr("call-2", INITIAL, 0, SUBSCRIBER, [Service(VOICE, 30)]))
    assert result_of(answer) == 4012 and result_of_mscc(grants(answer)[VOICE]) == 4012
    account = await creditd.get(SUBSCRIBER)
    assert (account.balance, account.reserved) == (50, 0)
    assert await creditd.ledger(SUBSCRIBER) == ledger


@pytest.mark.asyncio
async def test_an_unknown_subscriber_is_5030(creditd: Harness, diameter: DiameterServer) -> None:
    async with connected(diameter.port) as client:
        answer = await client.ask(ccr("call-3", INITIAL, 0, "66899999999", [Service(VOICE, 30)]))
    assert result_of(answer) == 5030


@pytest.mark.asyncio
async def test_sip_uri_subscription_and_kamailio_numbers(creditd: Harness, diameter: DiameterServer) -> None:
    await creditd.create_account(SUBSCRIBER, balance=1_000)
    async with connected(diameter.port) as client:
        uri = f"sip:+{SUBSCRIBER}@ims.test.local"
        answer = await client.ask(ccr("call-4", INITIAL, 0, uri, [Service(VOICE, 30)], subscription_type=SIP_URI))
        assert result_of(answer) == 2001
        answer = await client.ask(
            ccr("call-4", TERMINATE, 1, uri, [Service(VOICE, None, 10)], subscription_type=SIP_URI)
        )
        assert result_of(answer) == 2001
    assert (await creditd.get(SUBSCRIBER)).balance == 900


@pytest.mark.asyncio
async def test_a_retransmission_is_answered_the_same_and_charged_once(
    creditd: Harness, diameter_at: DiameterAt, diameter: DiameterServer
) -> None:
    await creditd.create_account(SUBSCRIBER, balance=10_000)
    async with connected(diameter.port) as client:
        await client.ask(ccr("call-5", INITIAL, 0, SUBSCRIBER, [Service(VOICE, 30)]))
        update = ccr("call-5", UPDATE, 1, SUBSCRIBER, [Service(VOICE, 30, 60)])
        first = await client.ask(update)
        again = await client.ask(retransmitted(update))
        assert again.avps == first.avps
    async with diameter_at() as second, connected(second.port) as client:
        elsewhere = await client.ask(retransmitted(update))
        assert elsewhere.avps == first.avps
    assert (await creditd.get(SUBSCRIBER)).balance == 10_000 - 100


@pytest.mark.asyncio
async def test_gy_data_with_rating_groups_volumes_and_a_final_grant(creditd: Harness, diameter: DiameterServer) -> None:
    # Data: 10 satang per MB, blocks of 1 MB; 30 satang pays three blocks.
    await creditd.create_account(SUBSCRIBER, balance=30)
    octets = Code.CC_TOTAL_OCTETS
    async with connected(diameter.port) as client:
        answer = await client.ask(
            ccr(
                "data-1",
                INITIAL,
                0,
                SUBSCRIBER,
                [Service(1, 0, unit=octets), Service(3, 1, unit=Code.CC_SERVICE_SPECIFIC_UNITS)],
                context=GY,
            )
        )
        assert result_of(answer) == 2001
        data = grants(answer)[1]
        assert granted(data, octets) == 3_000_000
        fui = data.child(Code.FINAL_UNIT_INDICATION)
        assert fui is not None and fui.child(Code.FINAL_UNIT_ACTION) is not None
        answer = await client.ask(
            ccr("data-1", TERMINATE, 1, SUBSCRIBER, [Service(1, None, 2_500_000, unit=octets)], context=GY)
        )
        assert result_of(answer) == 2001
    assert (await creditd.get(SUBSCRIBER)).balance == 0  # 2.5 MB: three started MB


@pytest.mark.parametrize(("used_s", "balance"), [(59, 0), (60, 0), (61, -100)])
@pytest.mark.asyncio
async def test_the_final_grant_margin(creditd: Harness, diameter: DiameterServer, used_s: int, balance: int) -> None:
    """One minute affordable: granted 60 s, answered 59 s (margin 1 s) with a Final-Unit-Indication. A
    client overshooting by up to the margin stays within what was reserved; beyond it, the usage is
    charged as it happened (a commit never fails) and may pass the credit limit."""
    await creditd.create_account(SUBSCRIBER, balance=100)
    async with connected(diameter.port) as client:
        answer = await client.ask(ccr("call-6", INITIAL, 0, SUBSCRIBER, [Service(VOICE, 30)]))
        grant = grants(answer)[VOICE]
        assert granted(grant) == 59 and grant.child(Code.FINAL_UNIT_INDICATION) is not None
        answer = await client.ask(ccr("call-6", TERMINATE, 1, SUBSCRIBER, [Service(VOICE, None, used_s)]))
        assert result_of(answer) == 2001
    assert (await creditd.get(SUBSCRIBER)).balance == balance


@pytest.mark.asyncio
async def test_too_busy_while_redis_does_not_answer(creditd: Harness, settings: Settings, tmp_path: Path) -> None:
    """A Redis of the test's own behind a proxy that stops forwarding: the CCR is answered 3004 with the
    E bit within redis.call_timeout_s, so that the client fails over; nothing is written."""
    tuned = msgspec.structs.replace(
        settings,
        redis=msgspec.structs.replace(settings.redis, call_timeout_s=0.5, health_check_interval_s=0.2),
        diameter=TEST_DIAMETER,
    )
    with (
        LocalServer(tmp_path) as redis_server,
        library_client(redis_server.url, tuned) as client,
        faulty_proxy("127.0.0.1", redis_server.server.port) as proxy,
    ):
        front = DiameterServer(tuned, redis_server.url_via(proxy.port), "127.0.0.1:0", creditd.clock)
        await front.start()
        before = dump(client)
        try:
            async with connected(front.port) as peer:
                proxy.blackhole = True
                answer = await peer.ask(ccr("call-7", INITIAL, 0, SUBSCRIBER, [Service(VOICE, 30)]), 30)
                assert result_of(answer) == 3004 and answer.is_error
                again = await peer.ask(ccr("call-7", INITIAL, 0, SUBSCRIBER, [Service(VOICE, 30)]), 30)
                assert result_of(again) == 3004  # the circuit is open: refused at once
        finally:
            proxy.blackhole = False
            await front.stop(1.0)
        assert dump(client) == before


@pytest.mark.asyncio
async def test_a_gy_session_decoded_by_python_diameter(creditd: Harness, diameter: DiameterServer) -> None:
    """A PGW-shaped session (data in bytes and a second rating group of events, a quota threshold, a
    final grant with FUI REDIRECT, CCR-T): each CCA read by python-diameter agrees with what we meant."""
    await creditd.create_account(SUBSCRIBER, balance=250)
    octets, events = Code.CC_TOTAL_OCTETS, Code.CC_SERVICE_SPECIFIC_UNITS
    async with connected(diameter.port) as client:
        first = ccr("gy;1", INITIAL, 0, SUBSCRIBER, [Service(1, 0, unit=octets), Service(3, 1, unit=events)], GY)
        await client.ask(first)
        initial = ReferenceMessage.from_bytes(client.last_bytes)
        assert initial.result_code == 2001 and initial.cc_request_number == 0
        by_group = {mscc.rating_group: mscc for mscc in initial.multiple_services_credit_control}
        data = by_group[1]
        assert data.result_code == 2001 and data.granted_service_unit.cc_total_octets == 10 * MB
        assert data.volume_quota_threshold == 2 * MB and data.validity_time > 0
        assert by_group[3].result_code != 2001  # no SMS to nobody: refused in its own MSCC only
        update = ccr("gy;1", UPDATE, 1, SUBSCRIBER, [Service(1, 20 * MB, 10 * MB, unit=octets)], GY)
        await client.ask(update)
        last = ReferenceMessage.from_bytes(client.last_bytes)
        (data,) = last.multiple_services_credit_control
        assert data.granted_service_unit.cc_total_octets == 15 * MB  # what the 150 left pays
        assert data.final_unit_indication.final_unit_action == 1  # REDIRECT
        assert data.final_unit_indication.redirect_server.redirect_server_address.startswith("http")
        await client.ask(ccr("gy;1", TERMINATE, 2, SUBSCRIBER, [Service(1, None, 15 * MB, unit=octets)], GY))
        terminate = ReferenceMessage.from_bytes(client.last_bytes)
        assert terminate.result_code == 2001 and terminate.cc_request_type == TERMINATE
    account = await creditd.get(SUBSCRIBER)
    assert (account.balance, account.reserved) == (0, 0)


def test_the_plmn_of_a_user_location_info() -> None:
    assert plmn_of_location(bytes([130, 0x25, 0xF0, 0x30, 0, 1])) == "52003"  # TAI+ECGI, 520/03
    assert plmn_of_location(bytes([128, 0x13, 0x00, 0x14, 0, 1])) == "310410"  # TAI, 310/410
    assert plmn_of_location(bytes([128, 0x13])) is None


@pytest.mark.parametrize(
    ("location", "price"),
    [(bytes([130, 0x25, 0xF0, 0x30, 0, 0, 0, 0]), 10), (bytes([130, 0x13, 0x00, 0x14, 0, 0, 0, 0]), 500)],
)
@pytest.mark.asyncio
async def test_user_location_info_chooses_home_or_roaming(
    creditd: Harness, diameter: DiameterServer, location: bytes, price: int
) -> None:
    """3GPP-User-Location-Info -> visited_plmn: at home (520/03) 10 satang per MB, roaming (310/410) 500."""
    await creditd.create_account(SUBSCRIBER, balance=1_000)
    where = [make(Code.USER_LOCATION_INFO, location)]
    octets = Code.CC_TOTAL_OCTETS
    async with connected(diameter.port) as client:
        opened = ccr("uli;1", INITIAL, 0, SUBSCRIBER, [Service(1, MB, unit=octets)], GY, extra=where)
        assert result_of(await client.ask(opened)) == 2001
        closed = ccr("uli;1", TERMINATE, 1, SUBSCRIBER, [Service(1, None, MB, unit=octets)], GY, extra=where)
        assert result_of(await client.ask(closed)) == 2001
    assert (await creditd.get(SUBSCRIBER)).balance == 1_000 - price


def _sms_to(recipient: str) -> list[Avp]:
    address = make(Code.RECIPIENT_ADDRESS, [make(Code.ADDRESS_TYPE, 1), make(Code.ADDRESS_DATA, recipient)])
    information = make(Code.SMS_INFORMATION, [make(Code.RECIPIENT_INFO, [address])])
    return [make(Code.REQUESTED_ACTION, 0), make(Code.SERVICE_INFORMATION, [information])]


@pytest.mark.asyncio
async def test_sms_events_are_debited_by_destination(creditd: Harness, diameter: DiameterServer) -> None:
    """CCR-EVENT (DIRECT_DEBITING) with the SMS recipient in SMS-Information: 50 satang to a Thai
    number, 300 abroad; one that cannot be paid is refused 4012 and debits nothing."""
    await creditd.create_account(SUBSCRIBER, balance=400)
    units = Code.CC_SERVICE_SPECIFIC_UNITS
    async with connected(diameter.port) as client:
        for number, (recipient, result) in enumerate(
            [("+66812345678", 2001), ("+491701234567", 2001), ("+491701234567", 4012)]
        ):
            event = ccr(
                f"sms;{number}",
                EVENT,
                0,
                SUBSCRIBER,
                [Service(3, 1, unit=units)],
                SMS,
                called="",
                extra=_sms_to(recipient),
            )
            assert result_of(await client.ask(event)) == result, recipient
    assert (await creditd.get(SUBSCRIBER)).balance == 400 - 50 - 300


@pytest.mark.asyncio
async def test_a_tariff_change_inside_a_grant(server_at: ServerAt, redis_server: EmbeddedRedis) -> None:
    """At 21:55 in Bangkok a 600 s grant crosses the 22:00 night tariff: the CCA carries Tariff-Time-Change
    (NTP seconds of 22:00) and Time-Charging-Threshold; usage reported in two USUs split by
    Tariff-Change-Usage is charged 5 minutes at 100 and 5 at 50."""
    change_ms = bangkok_ms("2027-03-10T22:00:00")
    async with server_at(bangkok_ms("2027-03-10T21:55:00")) as harness:
        own = msgspec.structs.replace(harness.settings, diameter=TEST_DIAMETER)
        front = DiameterServer(own, redis_server.url, "127.0.0.1:0", harness.clock)
        await front.start()
        try:
            await harness.create_account(SUBSCRIBER, balance=10_000)
            async with connected(front.port) as client:
                opened = await client.ask(ccr("ttc;1", INITIAL, 0, SUBSCRIBER, [Service(VOICE, 600)]))
                grant = grants(opened)[VOICE]
                assert granted(grant) == 600
                assert grant.child(Code.TARIFF_TIME_CHANGE) == make(
                    Code.TARIFF_TIME_CHANGE, change_ms // 1000 + credit.NTP_OFFSET_S
                )
                assert grant.child(Code.TIME_QUOTA_THRESHOLD) == make(Code.TIME_QUOTA_THRESHOLD, 120)
                harness.clock.advance(600)
                used = [Service(VOICE, None, 600, used_after_change=300)]
                assert result_of(await client.ask(ccr("ttc;1", TERMINATE, 1, SUBSCRIBER, used))) == 2001
        finally:
            await front.stop(1.0)
        assert (await harness.get(SUBSCRIBER)).balance == 10_000 - 5 * 100 - 5 * 50


@pytest.mark.asyncio
async def test_check_balance_answers_without_charging(creditd: Harness, diameter: DiameterServer) -> None:
    """CCR-EVENT with Requested-Action CHECK_BALANCE: Check-Balance-Result ENOUGH_CREDIT (0) for a funded
    line, NO_CREDIT (1) for an empty one, 5030 for no account; nothing reserved, debited or logged."""
    await creditd.create_account(SUBSCRIBER, balance=100)
    await creditd.create_account("66855550000", balance=0)
    ledgers = [await creditd.ledger(SUBSCRIBER), await creditd.ledger("66855550000")]
    check = [make(Code.REQUESTED_ACTION, 2)]
    async with connected(diameter.port) as client:
        for number, (subscriber, expected) in enumerate([(SUBSCRIBER, 0), ("66855550000", 1), ("66899990000", None)]):
            answer = await client.ask(ccr(f"check;{number}", EVENT, 0, subscriber, [Service(VOICE, 60)], extra=check))
            if expected is None:
                assert result_of(answer) == 5030
                continue
            assert result_of(answer) == 2001
            assert answer.first(Code.CHECK_BALANCE_RESULT) == make(Code.CHECK_BALANCE_RESULT, expected)
    account = await creditd.get(SUBSCRIBER)
    assert (account.balance, account.reserved) == (100, 0)
    assert [await creditd.ledger(SUBSCRIBER), await creditd.ledger("66855550000")] == ledgers
