"""The quota lifecycle of docs/design.md end to end over gRPC against a real server and Redis: grants in
whole blocks limited by available money, commits of real usage (even beyond the grant, into debt),
final grants, CREDIT_LIMIT_REACHED, several rating groups per request, EVENT all-or-nothing, and the
one-way suspension that the same call applies when credit runs out; a full ledger trimmed to its newest
entries, at every append or once a batch. Prices are the sample plan's:
data 10 per MB, voice 100 per 60 s, SMS 50, incoming voice free. Every test ends with a clean audit."""

from __future__ import annotations

import msgspec
import pytest

from creditd.config.settings import Settings
from creditd.v1 import creditd_pb2 as pb
from tests.harness import DATA, EVENT, INITIAL, MB, SMS, TERMINATE, UPDATE, VOICE, VOICE_IN, Harness, started_server

pytestmark = pytest.mark.asyncio
ACCOUNT = "66811110000"
REDIRECT_URL = "http://127.0.0.1:8080/top-up"


async def test_session_reserves_commits_in_blocks_and_releases(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=1000)
    first = await creditd.charge("s1", INITIAL, 0, ACCOUNT, [(DATA, 0, 0)])
    assert first.result == pb.SUCCESS and first.account_status == pb.ACTIVE
    (grant,) = first.grants
    assert (grant.granted, grant.unit, grant.validity_time_s, grant.charged) == (10 * MB, pb.BYTES, 600, 0)
    assert grant.final_unit_action == pb.UnitGrant.NONE
    assert (await creditd.get(ACCOUNT)).reserved == 100

    second = await creditd.charge("s1", UPDATE, 1, ACCOUNT, [(DATA, 0, 2_500_000)])
    assert second.grants[0].charged == 30  # 2.5 MB rounds up to 3 blocks
    card = await creditd.get(ACCOUNT)
    assert (card.balance, card.reserved, card.available, card.open_sessions) == (970, 100, 870, 1)

    # 1 byte more: within the third block, already paid (whole blocks per session, not per report)
    last = await creditd.charge("s1", TERMINATE, 2, ACCOUNT, [(DATA, 0, 1)])
    assert last.result == pb.SUCCESS and last.grants[0].charged == 0 and last.grants[0].granted == 0
    card = await creditd.get(ACCOUNT)
    assert (card.balance, card.reserved, card.open_sessions) == (970, 0, 0)
    kinds = [(entry.kind, entry.amount) for entry in await creditd.ledger(ACCOUNT)]
    assert kinds == [("charge", -30), ("opening", 1000)]
    creditd.assert_audit_clean()


async def test_several_rating_groups_in_one_request(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=10_000)
    answer = await creditd.charge("s1", INITIAL, 0, ACCOUNT, [(DATA, 3 * MB, 0), (VOICE, 120, 0), (VOICE_IN, 0, 0)])
    assert [(g.rating_group, g.result, g.granted) for g in answer.grants] == [
        (DATA, pb.SUCCESS, 3 * MB),
        (VOICE, pb.SUCCESS, 120),
        (VOICE_IN, pb.SUCCESS, 3600),
    ]
    assert (await creditd.get(ACCOUNT)).reserved == 30 + 200
    update = await creditd.charge("s1", UPDATE, 1, ACCOUNT, [(VOICE, 0, 61)])
    assert [(g.rating_group, g.charged, g.granted) for g in update.grants] == [(VOICE, 200, 300)]
    # data was not reported: its reservation stays
    assert (await creditd.get(ACCOUNT)).reserved == 30 + 500
    done = await creditd.charge("s1", TERMINATE, 2, ACCOUNT, [(DATA, 0, MB), (VOICE_IN, 0, 900)])
    assert [(g.rating_group, g.charged) for g in done.grants] == [(DATA, 10), (VOICE_IN, 0)]
    card = await creditd.get(ACCOUNT)
    assert (card.balance, card.reserved) == (10_000 - 200 - 10, 0)
    creditd.assert_audit_clean()


async def test_grant_is_limited_to_whole_affordable_blocks_and_marked_final(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=250)
    answer = await creditd.charge("s1", INITIAL, 0, ACCOUNT, [(VOICE, 1000, 0)])
    (grant,) = answer.grants
    assert grant.granted == 120  # two blocks of 60 s are all that 250 pays for
    assert grant.final_unit_action == pb.UnitGrant.REDIRECT and grant.redirect_url == REDIRECT_URL
    card = await creditd.get(ACCOUNT)
    assert (card.reserved, card.available) == (200, 50)
    small = await creditd.charge("s2", INITIAL, 0, ACCOUNT, [(DATA, 500, 0)])
    assert small.grants[0].granted == MB  # less than a block asks for one block
    creditd.assert_audit_clean()


async def test_credit_limit_reached_when_not_one_block_is_affordable(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=99)
    answer = await creditd.charge("s1", INITIAL, 0, ACCOUNT, [(VOICE, 0, 0)])
    assert answer.result == pb.CREDIT_LIMIT_REACHED
    (grant,) = answer.grants
    assert grant.result == pb.CREDIT_LIMIT_REACHED and grant.granted == 0
    assert grant.final_unit_action == pb.UnitGrant.REDIRECT
    follow_up = await creditd.charge("s1", UPDATE, 1, ACCOUNT, [(VOICE, 0, 0)])
    assert follow_up.result == pb.UNKNOWN_SESSION  # a refused INITIAL opens no session
    card = await creditd.get(ACCOUNT)
    assert (card.balance, card.reserved, card.open_sessions, card.status) == (99, 0, 0, pb.ACTIVE)
    creditd.assert_audit_clean()


async def test_usage_beyond_the_grant_is_charged_into_debt_and_suspends_in_the_same_call(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=100)
    grant = (await creditd.charge("s1", INITIAL, 0, ACCOUNT, [(VOICE, 0, 0)])).grants[0]
    assert grant.granted == 60 and grant.final_unit_action == pb.UnitGrant.REDIRECT
    answer = await creditd.charge("s1", TERMINATE, 1, ACCOUNT, [(VOICE, 0, 600)])
    assert answer.result == pb.SUCCESS and answer.grants[0].charged == 1000
    assert answer.account_status == pb.ONE_WAY_SUSPENDED
    card = await creditd.get(ACCOUNT)
    assert (card.balance, card.status, card.status_reason) == (-900, pb.ONE_WAY_SUSPENDED, "CREDIT")
    assert [entry.kind for entry in await creditd.ledger(ACCOUNT)][:2] == ["status", "charge"]
    creditd.assert_audit_clean()


async def test_one_way_suspension_denies_originating_and_serves_terminating(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=50)
    spent = await creditd.charge("e1", EVENT, 0, ACCOUNT, [(SMS, 0, 0)])
    assert spent.grants[0].charged == 50 and spent.account_status == pb.ONE_WAY_SUSPENDED
    answer = await creditd.charge("s1", INITIAL, 0, ACCOUNT, [(DATA, 0, 0), (VOICE_IN, 0, 0)])
    assert answer.result == pb.SUCCESS
    assert [(g.rating_group, g.result, g.granted) for g in answer.grants] == [
        (DATA, pb.END_USER_SERVICE_DENIED, 0),
        (VOICE_IN, pb.SUCCESS, 3600),
    ]
    sms = await creditd.charge("e2", EVENT, 0, ACCOUNT, [(SMS, 0, 0)])
    assert sms.result == pb.END_USER_SERVICE_DENIED
    creditd.assert_audit_clean()


async def test_top_up_that_makes_available_positive_resumes_at_once(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=100)
    await creditd.charge("s1", INITIAL, 0, ACCOUNT, [(VOICE, 0, 0)])
    await creditd.charge("s1", TERMINATE, 1, ACCOUNT, [(VOICE, 0, 300)])  # balance -400
    not_enough = await creditd.top_up(ACCOUNT, 400, "k1")
    assert not_enough.account.status == pb.ONE_WAY_SUSPENDED and not_enough.account.available == 0
    enough = await creditd.top_up(ACCOUNT, 1, "k2")
    assert (enough.account.status, enough.account.status_reason, enough.account.balance) == (pb.ACTIVE, "TOPUP", 1)
    data = await creditd.charge("s2", INITIAL, 0, ACCOUNT, [(DATA, 0, 0)])
    assert data.result == pb.CREDIT_LIMIT_REACHED  # resumed, but 1 does not pay for a 10-satang block
    creditd.assert_audit_clean()


async def test_operator_suspension_is_never_resumed_by_a_top_up(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=1000)
    suspend = pb.SetStatusRequest(account_id=ACCOUNT, status=pb.ONE_WAY_SUSPENDED, reason="FRAUD")
    assert (await creditd.accounts.SetStatus(suspend)).status_reason == "FRAUD"
    answer = await creditd.top_up(ACCOUNT, 500, "k1")
    assert (answer.account.status, answer.account.balance) == (pb.ONE_WAY_SUSPENDED, 1500)
    two_way = pb.SetStatusRequest(account_id=ACCOUNT, status=pb.TWO_WAY_SUSPENDED, reason="ADMIN")
    await creditd.accounts.SetStatus(two_way)
    denied = await creditd.charge("s1", INITIAL, 0, ACCOUNT, [(VOICE_IN, 0, 0)])
    assert denied.result == pb.END_USER_SERVICE_DENIED  # two-way: even incoming calls
    resume = pb.SetStatusRequest(account_id=ACCOUNT, status=pb.ACTIVE, reason="ADMIN")
    assert (await creditd.accounts.SetStatus(resume)).status == pb.ACTIVE
    creditd.assert_audit_clean()


async def test_event_is_all_or_nothing_across_rating_groups(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=120)
    refused = await creditd.charge("e1", EVENT, 0, ACCOUNT, [(SMS, 2, 0), (DATA, 3 * MB, 0)])
    assert refused.result == pb.CREDIT_LIMIT_REACHED  # 100 + 30 > 120
    assert all(g.charged == 0 and g.granted == 0 for g in refused.grants)
    assert (await creditd.get(ACCOUNT)).balance == 120
    paid = await creditd.charge("e2", EVENT, 0, ACCOUNT, [(SMS, 2, 0)])
    assert (paid.result, paid.grants[0].granted, paid.grants[0].charged) == (pb.SUCCESS, 2, 100)
    assert (await creditd.get(ACCOUNT)).balance == 20
    creditd.assert_audit_clean()


async def test_unknown_rating_group_fails_rating_and_others_are_served(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=1000)
    answer = await creditd.charge("s1", INITIAL, 0, ACCOUNT, [(99, 0, 0), (DATA, 0, 0)])
    assert answer.result == pb.SUCCESS
    assert [(g.rating_group, g.result) for g in answer.grants] == [(99, pb.RATING_FAILED), (DATA, pb.SUCCESS)]
    only_unknown = await creditd.charge("s2", INITIAL, 0, ACCOUNT, [(99, 0, 0)])
    assert only_unknown.result == pb.RATING_FAILED
    creditd.assert_audit_clean()


async def test_unknown_account_and_unknown_session(creditd: Harness) -> None:
    unknown = await creditd.charge("s1", INITIAL, 0, "66899999999", [(DATA, 0, 0)])
    assert unknown.result == pb.USER_UNKNOWN and "account_id" in unknown.error
    await creditd.create_account(ACCOUNT, balance=1000)
    no_session = await creditd.charge("nope", UPDATE, 1, ACCOUNT, [(DATA, 0, 5)])
    assert no_session.result == pb.UNKNOWN_SESSION and "session_id" in no_session.error
    assert (await creditd.get(ACCOUNT)).balance == 1000


async def test_open_sessions_per_account_are_limited(creditd: Harness) -> None:
    limit = creditd.settings.limits.max_sessions_per_account
    await creditd.create_account(ACCOUNT, balance=10**9)
    from tests.harness import charge_request

    batch = [charge_request(f"s{n}", INITIAL, 0, ACCOUNT, [(VOICE_IN, 0, 0)]) for n in range(limit + 1)]
    answers = (await creditd.credit_control.ChargeBatch(pb.ChargeBatchRequest(requests=batch))).answers
    results = [answer.result for answer in answers]
    assert results.count(pb.SUCCESS) == limit and results.count(pb.RESOURCES_EXCEEDED) == 1
    assert (await creditd.get(ACCOUNT)).open_sessions == limit
    creditd.assert_audit_clean()


async def test_ledger_pages_newest_first(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=1)
    for n in range(1, 8):
        await creditd.top_up(ACCOUNT, n, f"k{n}")
    page = await creditd.accounts.ListLedger(pb.ListLedgerRequest(account_id=ACCOUNT, limit=3))
    assert [entry.seq for entry in page.entries] == [8, 7, 6]
    older = await creditd.accounts.ListLedger(pb.ListLedgerRequest(account_id=ACCOUNT, limit=3, before_seq=6))
    assert [(entry.seq, entry.amount, entry.balance_after) for entry in older.entries] == [
        (5, 4, 11),
        (4, 3, 7),
        (3, 2, 4),
    ]


async def test_account_created_without_credit_starts_one_way_suspended(creditd: Harness) -> None:
    created = await creditd.create_account(ACCOUNT, balance=0)
    assert (created.status, created.status_reason) == (pb.ONE_WAY_SUSPENDED, "CREDIT")
    with_credit = await creditd.create_account("66811110001", balance=0, credit_limit=500)
    assert (with_credit.status, with_credit.available) == (pb.ACTIVE, 500)
    resumed = await creditd.top_up(ACCOUNT, 1, "first")
    assert resumed.account.status == pb.ACTIVE
    creditd.assert_audit_clean()


def short_ledger(settings: Settings, trim_batch: int) -> Settings:
    limits = msgspec.structs.replace(settings.limits, max_ledger_entries=10, ledger_trim_batch=trim_batch)
    return msgspec.structs.replace(settings, limits=limits)


async def test_ledger_keeps_its_newest_entries_and_carries_the_rest(redis_server, redis_client, settings) -> None:
    short = short_ledger(settings, trim_batch=1)
    async with started_server(short, redis_server.url, redis_client) as creditd:
        await creditd.create_account(ACCOUNT, balance=1000)
        for n in range(1, 26):
            await creditd.top_up(ACCOUNT, n, f"k{n}")
        card = await creditd.get(ACCOUNT)
        assert (card.balance, card.ledger_seq) == (1000 + 25 * 26 // 2, 26)
        assert creditd.redis.llen(creditd.server_keys().ledger(ACCOUNT)) == 10
        page = await creditd.accounts.ListLedger(pb.ListLedgerRequest(account_id=ACCOUNT, limit=4, before_seq=20))
        assert [(entry.seq, entry.amount) for entry in page.entries] == [(19, 18), (18, 17), (17, 16)]
        assert [entry.seq for entry in await creditd.ledger(ACCOUNT, limit=3)] == [26, 25, 24]
        report = creditd.assert_audit_clean()
        assert report.amounts_by_kind["carried"] == 1000 + sum(range(1, 16))


async def test_a_full_ledger_is_trimmed_once_a_batch(redis_server, redis_client, settings) -> None:
    """ledger_trim_batch 5 above max_ledger_entries 10: the ledger grows to 14 entries and the
    append of the 15th trims it back to the newest 10, the trimmed ones' sum carried."""
    async with started_server(short_ledger(settings, trim_batch=5), redis_server.url, redis_client) as creditd:
        await creditd.create_account(ACCOUNT, balance=1000)
        lengths = []
        for n in range(1, 26):
            await creditd.top_up(ACCOUNT, n, f"k{n}")
            lengths.append(creditd.redis.llen(creditd.server_keys().ledger(ACCOUNT)))
        assert lengths == [*range(2, 15), *range(10, 15), *range(10, 15), 10, 11]
        card = await creditd.get(ACCOUNT)
        assert (card.balance, card.ledger_seq) == (1000 + 25 * 26 // 2, 26)
        page = await creditd.accounts.ListLedger(pb.ListLedgerRequest(account_id=ACCOUNT, limit=5, before_seq=20))
        assert [(entry.seq, entry.amount) for entry in page.entries] == [(19, 18), (18, 17), (17, 16), (16, 15)]
        report = creditd.assert_audit_clean()
        assert report.amounts_by_kind["carried"] == 1000 + sum(range(1, 15))
