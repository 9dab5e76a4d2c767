"""Sessions stored by the version before the packed form (a hash: named fields, one '|'-joined
'reservation:<rating_group>' field per open grant, one 'prepaid:<rating_group>' = '<units>|<tariff>'
field per group) go on after an upgrade: a retransmission gets the stored answer, the next UPDATE and
TERMINATE charge as for a packed session and release the old reservations, the sweeper releases an
old orphan, and the auditor reads both forms. So do sessions packed as the nested array of the
version before the flat one (reservations as a list of rows): the next write packs them flat.

How: two accounts make the same requests, one session per account on its own gateway; before each
step under test, one account's session is rewritten as the older version wrote it (from what the
packed session holds, field by field, by the older text format, written out here and not through
creditd/store/session_codec.py). Answers, cards and audits of the twins must then agree."""

from __future__ import annotations

import msgspec
import pytest

from creditd.store.connection import AnySyncRedis
from creditd.store.keys import Keys
from creditd.store.session_codec import StoredSession, read_session
from creditd.v1 import creditd_pb2 as pb
from tests.harness import DATA, INITIAL, MB, TERMINATE, UPDATE, VOICE, Harness

pytestmark = pytest.mark.asyncio
OLD, NEW = "66855500001", "66855500002"
GATEWAYS = {OLD: "gw-old", NEW: "gw-new"}
VALIDITY_S, GRACE_S = 600, 60  # the shared test settings' (tests/test_sweeper.py)
LAST_ANSWER = StoredSession.__struct_fields__.index("last_answer")


def old_reservation_text(row: object) -> str:
    """lua/lib/rating.lua's text of a reservation in the older hash."""
    fields = ["money", "bucket_units", "bucket_id", "price_minor", "block_size", "unit", "validity_time_s"]
    fields += ["deadline_ms", "throttled", "tariff", "change_ms", "price_after", "block_after", "tariff_after"]
    fields += ["zone", "destination"]
    values = [getattr(row, name) for name in fields]
    return "|".join(("1" if value else "0") if isinstance(value, bool) else str(value) for value in values)


def older_answer(stored: bytes) -> str:
    """The answer as the versions before the gRPC edge's protobuf answers stored it: JSON, the array
    of creditd/store/replies.py's AnswerRecord (written out here from the protobuf)."""
    if stored.startswith(b"["):
        return stored.decode()
    answer = pb.ChargeAnswer.FromString(stored)
    grants = [
        [grant.rating_group, grant.result, grant.unit, grant.granted, grant.validity_time_s, grant.final_unit_action]
        + [grant.redirect_url, int(grant.throttled), grant.max_bitrate_kbps, grant.charged, grant.tariff]
        + [grant.tariff_time_change_ms, grant.quota_threshold, grant.quota_holding_time_s]
        for grant in answer.grants
    ]
    return msgspec.json.encode([answer.result, answer.account_status, answer.error, grants]).decode()


def rewrite_as_hash(creditd: Harness, account_id: str, session_id: str) -> StoredSession:
    """Replaces the packed session by the hash the older version kept for it (with its expiry)."""
    key = creditd.server_keys().session(account_id, GATEWAYS[account_id], session_id)
    session = read_session(creditd.redis, key)
    assert session is not None and creditd.redis.type(key) == b"string"
    ttl_ms = creditd.redis.pttl(key)
    fields = {
        "account_id": session.account_id,
        "gateway_id": session.gateway_id,
        "state": session.state,
        "opened_at_ms": str(session.opened_at_ms),
        "last_number": str(session.last_number),
        "last_fingerprint": session.last_fingerprint,
        "last_answer": older_answer(session.last_answer),
    }
    fields |= {"close_reason": session.close_reason} if session.close_reason else {}
    fields |= {f"reservation:{row.rating_group}": old_reservation_text(row) for row in session.reservations}
    fields |= {f"prepaid:{paid.rating_group}": f"{paid.units}|{paid.tariff}" for paid in session.prepaid}
    creditd.redis.delete(key)
    creditd.redis.hset(key, mapping=fields)
    if ttl_ms > 0:
        creditd.redis.pexpire(key, ttl_ms)
    return session


def session_type(creditd: Harness, account_id: str, session_id: str) -> bytes:
    return creditd.redis.type(creditd.server_keys().session(account_id, GATEWAYS[account_id], session_id))


async def both(
    creditd: Harness, session_id: str, kind: int, number: int, units: list[tuple[int, int, int]]
) -> pb.ChargeAnswer:
    """The same request from both accounts; their answers agree."""
    old, new = [
        await creditd.charge(session_id, kind, number, account, units, gateway_id=GATEWAYS[account])
        for account in (OLD, NEW)
    ]
    assert old == new
    return old


async def cards_agree(creditd: Harness) -> pb.Account:
    old, new = await creditd.get(OLD), await creditd.get(NEW)
    assert (old.balance, old.reserved, old.open_sessions) == (new.balance, new.reserved, new.open_sessions)
    return old


async def open_twins(creditd: Harness) -> pb.ChargeAnswer:
    """Both accounts, each with a session holding a voice and a data reservation and voice units
    prepaid (30 s used of a 60 s block)."""
    for account in (OLD, NEW):
        await creditd.create_account(account, balance=100_000)
    assert (await both(creditd, "s1", INITIAL, 0, [(VOICE, 0, 0), (DATA, 0, 0)])).result == pb.SUCCESS
    updated = await both(creditd, "s1", UPDATE, 1, [(VOICE, 0, 30), (DATA, 0, MB)])
    assert updated.result == pb.SUCCESS
    return updated


async def test_an_old_open_session_replays_charges_and_terminates_as_a_packed_one(creditd: Harness) -> None:
    updated = await open_twins(creditd)
    stored = rewrite_as_hash(creditd, OLD, "s1")
    assert session_type(creditd, OLD, "s1") == b"hash"
    assert {row.rating_group for row in stored.reservations} == {VOICE, DATA}
    assert [(paid.rating_group, paid.units) for paid in stored.prepaid] == [(VOICE, 30)]
    report = creditd.assert_audit_clean()  # the old session's reservations count toward reserved
    assert report.open_sessions == 2 and (await creditd.get(OLD)).reserved > 0

    replayed = await creditd.charge("s1", UPDATE, 1, OLD, [(VOICE, 0, 30), (DATA, 0, MB)], gateway_id=GATEWAYS[OLD])
    assert replayed == updated and session_type(creditd, OLD, "s1") == b"hash"  # a replay writes nothing

    before = await cards_agree(creditd)
    # 20 s more: within the 30 s already paid for, so only the data costs (the old prepaid field is read)
    second = await both(creditd, "s1", UPDATE, 2, [(VOICE, 0, 20), (DATA, 0, MB)])
    voice = next(grant for grant in second.grants if grant.rating_group == VOICE)
    assert (second.result, voice.charged) == (pb.SUCCESS, 0)
    assert session_type(creditd, OLD, "s1") == b"string"  # the write replaced the hash
    after = await cards_agree(creditd)
    assert after.balance < before.balance

    rewrite_as_hash(creditd, OLD, "s1")
    ended = await both(creditd, "s1", TERMINATE, 3, [(VOICE, 0, 15), (DATA, 0, MB)])
    assert ended.result == pb.SUCCESS
    card = await cards_agree(creditd)
    assert (card.reserved, card.open_sessions) == (0, 0)
    creditd.assert_audit_clean()


def rewrite_as_nested(creditd: Harness, account_id: str, session_id: str) -> None:
    """Replaces the flat session by the nested array the version before packed (StoredSession as
    msgspec encodes it: reservations and prepaid units as lists of rows), keeping its expiry."""
    key = creditd.server_keys().session(account_id, GATEWAYS[account_id], session_id)
    session = read_session(creditd.redis, key)
    assert session is not None
    ttl_ms = creditd.redis.pttl(key)
    older = [*msgspec.structs.astuple(session)]
    older[LAST_ANSWER] = older_answer(session.last_answer)
    creditd.redis.set(key, msgspec.msgpack.encode(older), px=ttl_ms if ttl_ms > 0 else None)
    assert creditd.redis.get(key)[:1] == bytes([0x90 + len(StoredSession.__struct_fields__)])


def stored_values(creditd: Harness, account_id: str, session_id: str) -> list[object]:
    """The packed session's values, its last answer as the packed bytes it is (protobuf need not be UTF-8)."""
    key = creditd.server_keys().session(account_id, GATEWAYS[account_id], session_id)
    items = msgspec.msgpack.decode(creditd.redis.get(key), type=list[msgspec.Raw])
    return [bytes(item) if index == LAST_ANSWER else msgspec.msgpack.decode(item) for index, item in enumerate(items)]


async def test_a_nested_session_replays_charges_and_terminates_as_a_flat_one(creditd: Harness) -> None:
    updated = await open_twins(creditd)
    flat = stored_values(creditd, NEW, "s1")
    # the flat array: the session's fields and its prepaid rows, then 17 values per reservation
    assert len(flat) == 9 + 2 * 17 and [row[:2] for row in flat[8]] == [[VOICE, 30]]
    assert {flat[9], flat[9 + 17]} == {VOICE, DATA}
    rewrite_as_nested(creditd, OLD, "s1")
    creditd.assert_audit_clean()  # the auditor reads the nested form

    replayed = await creditd.charge("s1", UPDATE, 1, OLD, [(VOICE, 0, 30), (DATA, 0, MB)], gateway_id=GATEWAYS[OLD])
    assert replayed == updated
    second = await both(creditd, "s1", UPDATE, 2, [(VOICE, 0, 20), (DATA, 0, MB)])
    voice = next(grant for grant in second.grants if grant.rating_group == VOICE)
    assert (second.result, voice.charged) == (pb.SUCCESS, 0)  # the nested prepaid row is read
    assert len(stored_values(creditd, OLD, "s1")) == 9 + 2 * 17  # written flat
    await cards_agree(creditd)

    rewrite_as_nested(creditd, OLD, "s1")
    ended = await both(creditd, "s1", TERMINATE, 3, [(VOICE, 0, 15), (DATA, 0, MB)])
    assert ended.result == pb.SUCCESS
    card = await cards_agree(creditd)
    assert (card.reserved, card.open_sessions) == (0, 0)
    assert len(stored_values(creditd, OLD, "s1")) == 9  # closed: no reservation left
    creditd.assert_audit_clean()


async def test_an_old_closed_session_keeps_its_answer_and_stays_closed(creditd: Harness) -> None:
    await open_twins(creditd)
    ended = await both(creditd, "s1", TERMINATE, 2, [(VOICE, 0, 10)])
    retention_ms = creditd.redis.pttl(creditd.server_keys().session(OLD, GATEWAYS[OLD], "s1"))
    assert retention_ms > 0
    closed = rewrite_as_hash(creditd, OLD, "s1")
    assert (closed.state, closed.reservations) == ("closed", [])

    replayed = await creditd.charge("s1", TERMINATE, 2, OLD, [(VOICE, 0, 10)], gateway_id=GATEWAYS[OLD])
    assert replayed == ended
    late = await creditd.charge("s1", UPDATE, 3, OLD, [(VOICE, 0, 10)], gateway_id=GATEWAYS[OLD])
    assert late.result == pb.UNKNOWN_SESSION
    key = creditd.server_keys().session(OLD, GATEWAYS[OLD], "s1")
    assert creditd.redis.type(key) == b"hash" and 0 < creditd.redis.pttl(key) <= retention_ms
    await cards_agree(creditd)


async def test_the_sweeper_releases_an_old_orphan(creditd: Harness) -> None:
    updated = await open_twins(creditd)
    rewrite_as_hash(creditd, OLD, "s1")
    creditd.clock.advance(VALIDITY_S + GRACE_S + 1)
    result = await creditd.server.sweeper.sweep_once()
    assert result.sessions_released == 2
    card = await cards_agree(creditd)
    assert (card.reserved, card.open_sessions) == (0, 0)
    key = creditd.server_keys().session(OLD, GATEWAYS[OLD], "s1")
    closed = read_session(creditd.redis, key)
    assert closed is not None and (closed.state, closed.close_reason, closed.reservations) == ("closed", "orphan", [])
    assert creditd.redis.pttl(key) > 0
    replayed = await creditd.charge("s1", UPDATE, 1, OLD, [(VOICE, 0, 30), (DATA, 0, MB)], gateway_id=GATEWAYS[OLD])
    assert replayed == updated
    report = creditd.audit(now_ms=creditd.clock.now_ms(), grace_period_s=GRACE_S)
    assert report.violations == []


async def test_the_reader_fills_in_a_reservation_from_before_the_rating_engine(redis_client: AnySyncRedis) -> None:
    key = Keys(1).session(OLD, "gw-old", "s9")
    redis_client.hset(
        key,
        mapping={
            "account_id": OLD,
            "gateway_id": "gw-old",
            "state": "open",
            "opened_at_ms": "1000",
            "last_number": "0",
            "last_fingerprint": "f",
            "last_answer": "[2001]",
            f"reservation:{VOICE}": "300|0||5|60|2|600|601000|0",
        },
    )
    session = read_session(redis_client, key)
    assert session is not None and len(session.reservations) == 1
    older = session.reservations[0]
    assert (older.rating_group, older.money, older.deadline_ms, older.throttled) == (VOICE, 300, 601000, False)
    assert (older.tariff, older.change_ms, older.block_after, older.zone) == ("", 0, 1, "home")
    redis_client.delete(key)
