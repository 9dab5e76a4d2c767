"""store/resp.py packs a function call in RESP with the words its partition's calls share kept from
the first call: what it writes must be, byte for byte, what hiredis packs from the whole command.
Checked for every function's layout (with and without leading partition keys), over many partitions,
with tuple and list arguments, across the kept heads' limit, and through a real Redis, which must
run the packed charge as the unpacked one. The sweeper's range reads likewise: byte for byte
hiredis' packing of each read, across the kept heads' limit, and answered by a real Redis as the
same reads sent word by word."""

from __future__ import annotations

import hiredis
import pytest
from redis.cluster import RedisCluster
from redis.exceptions import ResponseError

from creditd.config.settings import Settings
from creditd.store import resp
from creditd.store.calls import KEY_LAYOUTS, SESSION_CALL, Calls, NewAccount, fcall_words
from creditd.store.codes import Code
from creditd.store.connection import AnySyncRedis
from creditd.store.keys import PARTITION_KEY_NAMES, Keys, deadlines_of_partition, due_of_partition, partition_lease
from creditd.store.replies import ANSWER_DECODER, decode_reply
from creditd.store.resp import CallPacker, RangeReadPacker, leading_partition_keys, range_read
from creditd.v1 import creditd_pb2 as pb
from tests.harness import dump
from tests.test_charge_checks_agree import request

PARTITIONS = 64


def whole(command: tuple[str, tuple[str, ...], tuple[object, ...]]) -> bytes:
    packed: bytes = hiredis.pack_command(fcall_words(command))  # type: ignore[arg-type]
    return packed


def test_session_calls_share_their_six_partition_keys_and_other_layouts_none_leading() -> None:
    counts = leading_partition_keys(KEY_LAYOUTS)
    assert counts["charge"] == counts["release_orphan"] == 6
    assert SESSION_CALL[:6] == ("deadlines", "events", "stats", "due", "blacklist", "usage")
    for function, count in counts.items():
        assert all(name in PARTITION_KEY_NAMES for name in KEY_LAYOUTS[function][:count])
        assert len(KEY_LAYOUTS[function]) == count or KEY_LAYOUTS[function][count] not in PARTITION_KEY_NAMES
    assert "top_up" not in counts  # its account key comes first: packed whole


@pytest.mark.parametrize("function", sorted(KEY_LAYOUTS))
def test_every_layout_packs_as_hiredis_packs_the_whole_command(function: str) -> None:
    keys, packer = Keys(PARTITIONS), CallPacker()
    for number in range(200):  # many partitions, each met several times (its head kept, then reused)
        account_id = f"6681{number % 80:07d}"
        if function == "claim_partition":  # a lease's key names its role, not an account's field
            layout: tuple[str, ...] = (partition_lease(number % PARTITIONS, "sweeper"),)
        else:
            layout = keys.layout(KEY_LAYOUTS[function], account_id, "gw-1", f"s-{number}", f"key-{number}")
        for args in ((1_800_000_000_000, b"\x93\x01\x02\x03", "actor"), [number, f"text {number}"], ()):
            command = (function, layout, args)
            assert packer.pack(command) == whole(command), (function, args)  # type: ignore[arg-type]


def test_a_pipeline_of_several_calls_is_their_packs_joined() -> None:
    calls, packer = Calls(PARTITIONS), CallPacker()
    commands = [
        calls.charge(request(session_id=f"s-{number}", account_id=f"6681{number:07d}"), 1, "test")
        for number in range(5)
    ]
    assert packer.pack_all(commands) == b"".join(whole(command) for command in commands)  # type: ignore[arg-type]
    assert packer.pack_all(commands[:1]) == whole(commands[0])  # type: ignore[arg-type]


def test_heads_past_the_limit_are_forgotten_and_packed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resp, "MAX_KEPT_HEADS", 3)
    calls, packer = Calls(PARTITIONS), CallPacker()
    for number in range(40):
        command = calls.charge(request(account_id=f"6681{number:07d}"), number, "test")
        assert packer.pack(command) == whole(command)  # type: ignore[arg-type]
        assert len(packer._heads) <= 3


def _raw_reply(redis_client: AnySyncRedis, key: str, packed: bytes) -> object:
    """The reply to bytes written as they are, on a connection to the server that holds key."""
    client = (
        redis_client.get_node_from_key(key).redis_connection if isinstance(redis_client, RedisCluster) else redis_client
    )
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        connection.send_packed_command([packed])
        return connection.read_response()
    finally:
        pool.release(connection)


def test_redis_runs_the_packed_charge_as_the_unpacked_one(redis_client: AnySyncRedis, settings: Settings) -> None:
    """The packed bytes, written on a raw connection, reach the charge function with its keys in
    their places: a well-formed request for an unknown account passes every check and is answered
    USER_UNKNOWN, writing nothing, exactly as the same call sent word by word."""
    function, keys, args = Calls(settings.redis.partitions).charge(request(), 1_800_000_000_000, "test")
    before = dump(redis_client)
    raw = _raw_reply(redis_client, keys[0], CallPacker().pack((function, keys, args)))
    assert raw == redis_client.fcall(function, len(keys), *keys, *args)
    answer = ANSWER_DECODER.decode(decode_reply(raw).body)
    assert answer.result == Code.USER_UNKNOWN, answer
    assert dump(redis_client) == before


def _call(redis_client: AnySyncRedis, command: tuple[str, tuple[str, ...], tuple[object, ...]]) -> object:
    function, keys, args = command
    try:
        return redis_client.fcall(function, len(keys), *keys, *args)
    except ResponseError as error:
        return error


def test_a_session_call_in_the_old_key_order_writes_nothing(redis_client: AnySyncRedis, settings: Settings) -> None:
    """The session calls took the account's keys first before this version. A server of the other
    version (an upgrade that did not stop every old server first) sends them in the other order: the
    keys read as the account and the session are then the partition's (a hash, a sorted set, a
    stream, or none yet): the call fails on what it reads there (WRONGTYPE, or a hash read as an
    older version's account) or is refused (no such session), and writes nothing, on an account
    with an open session: an UPDATE, an INITIAL and an orphan's release."""
    calls = Calls(settings.redis.partitions)
    now_ms = 1_800_000_000_000
    account = NewAccount(account_id="66812345678", plan="standard", initial_balance=100_000)
    assert decode_reply(_call(redis_client, calls.create_account(account, now_ms, "test"))).code == Code.SUCCESS
    opened = decode_reply(_call(redis_client, calls.charge(request(), now_ms, "test")))
    assert ANSWER_DECODER.decode(opened.body).result == Code.SUCCESS
    before = dump(redis_client)
    update = request(request_type=pb.ChargeRequest.UPDATE, request_number=1, units=[(2, 60, 30)])
    for function, keys, args in (
        calls.charge(update, now_ms + 1_000, "test"),
        calls.charge(request(session_id="s-2"), now_ms + 1_000, "test"),  # a new session: nothing read yet
        calls.release_orphan("66812345678", "gw-1", "s-1", now_ms + 10**9, "test"),
    ):
        old_order = (*keys[6:], *keys[:6])
        outcome = _call(redis_client, (function, old_order, args))
        if not isinstance(outcome, ResponseError):  # else WRONGTYPE, or the like
            reply = decode_reply(outcome)
            result = ANSWER_DECODER.decode(reply.body).result if reply.code == Code.SUCCESS else reply.code
            assert result != Code.SUCCESS, (function, reply)
        assert dump(redis_client) == before, function


def _range_reads(count: int) -> list[tuple[str, int]]:
    """A sweeper step's shape: each partition's due index up to now, then its deadlines up to an
    earlier bound; keys met again, bounds shared, a negative bound and a large one."""
    partitions = range(count)
    return [(due_of_partition(p), 1_800_000_000_000) for p in partitions] + [
        (deadlines_of_partition(p), bound) for p in partitions for bound in (-5, 1_799_999_940_000)
    ]


def test_range_reads_pack_as_hiredis_packs_each_read() -> None:
    packer = RangeReadPacker()
    for budget in (1, 63, 1000):
        reads = _range_reads(20)
        expected = b"".join(hiredis.pack_command(range_read(key, until, budget)) for key, until in reads)  # type: ignore[arg-type]
        assert packer.pack(reads, budget) == expected
        assert packer.pack(reads, budget) == expected  # the heads kept from the first
    assert packer.pack([], 5) == b""


def test_range_read_heads_past_the_limit_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resp, "MAX_KEPT_HEADS", 4)
    packer = RangeReadPacker()
    reads = _range_reads(10)
    for start in range(0, len(reads), 3):
        part = reads[start : start + 3]
        expected = b"".join(hiredis.pack_command(range_read(key, until, 7)) for key, until in part)  # type: ignore[arg-type]
        assert packer.pack(part, 7) == expected
        assert len(packer._heads) <= 4


def test_redis_answers_packed_range_reads_as_the_reads_sent_word_by_word(redis_client: AnySyncRedis) -> None:
    """Members due and not yet due in two partitions' indexes: the packed reads, written as they
    are, get the same replies as the same reads sent one by one (members up to each bound, at most
    the count)."""
    due, deadlines = due_of_partition(3), deadlines_of_partition(3)
    if isinstance(redis_client, RedisCluster):
        pytest.skip("one connection reads one node's keys: the packed reads of a cluster go through redis-py")
    redis_client.zadd(due, {"a": 10, "b": 20, "c": 30})
    redis_client.zadd(deadlines, {"x y z": 5, "x y w": 50})
    reads = [(due, 25), (deadlines, 10), (due, 100), (deadlines_of_partition(4), 100)]
    packed = RangeReadPacker().pack(reads, 2)
    pool = redis_client.connection_pool
    connection = pool.get_connection()
    try:
        connection.send_packed_command([packed])
        replies = [connection.read_response() for _ in reads]
    finally:
        pool.release(connection)
    assert replies == [redis_client.execute_command(*range_read(key, until, 2)) for key, until in reads]
    assert replies == [[b"a", b"b"], [b"x y z"], [b"a", b"b"], []]
