"""The charge checks exist on both sides of the store: at the edge (creditd/api/validation.py, so a
bad request costs no Redis call) and in lua/functions/charge.lua (so no caller can write what the
edge would refuse). One table of bad requests is fed to both: each is refused by the edge with
INVALID_ARGUMENT and by the Lua function, called directly with the arguments the store's builder
makes, with INVALID_REQUEST, both naming the same field with the same message, and the Lua call
writes nothing. A well-formed request passes both, so the table cannot pass by refusing all."""

from __future__ import annotations

import pytest

from creditd.api.messages import charge_spec
from creditd.api.validation import check_charge
from creditd.config.settings import Settings
from creditd.errors import InvalidArgument
from creditd.store.calls import Calls
from creditd.store.codes import Code
from creditd.store.connection import AnySyncRedis
from creditd.store.replies import ANSWER_DECODER, decode_reply
from creditd.v1 import creditd_pb2 as pb
from tests.harness import dump

NOW_MS = 1_800_000_000_000
DATA, VOICE = 1, 2


def request(**changes: object) -> pb.ChargeRequest:
    """A well-formed INITIAL for voice, with `changes` applied (units as (group, requested, used))."""
    units = changes.pop("units", [(VOICE, 60, 0)])
    message = pb.ChargeRequest(
        session_id="s-1",
        request_type=pb.ChargeRequest.INITIAL,
        request_number=0,
        account_id="66812345678",
        gateway_id="gw-1",
        called_party="+66812345679",
        visited_plmn="",
    )
    for group, requested, used in units:  # type: ignore[attr-defined]
        message.units.add(rating_group=group, requested=requested, used=used)
    for name, value in changes.items():
        setattr(message, name, value)
    return message


# (what is wrong, the request, the message both sides give)
BAD = [
    ("session id with a space", request(session_id="s 1"), "session_id: contains characters other than printable"),
    ("session id too long", request(session_id="s" * 129), "session_id: longer than 128 characters"),
    ("account id with a slash", request(account_id="a/b"), "account_id: contains characters other than A-Z"),
    ("gateway id too long", request(gateway_id="g" * 65), "gateway_id: longer than 64 characters"),
    ("empty gateway id", request(gateway_id=""), "gateway_id: must not be empty"),
    ("empty session id", request(session_id=""), "session_id: must not be empty"),
    ("account id with a space", request(account_id="6681 2345678"), "account_id: contains characters other than A-Z"),
    # two faults: both sides name the same one (the edge tests the three ids at once, then one by one)
    ("bad session and account ids", request(session_id="s 1", account_id="a/b"), "account_id: contains characters"),
    ("bad gateway and session ids", request(gateway_id="", session_id="s 1"), "gateway_id: must not be empty"),
    ("bad called party and PLMN", request(called_party="1a", visited_plmn="1"), "called_party: at most 15 digits"),
    ("bad request type and ids", request(request_type=9, account_id=""), "request_type: must be between 1 and 4"),
    ("called party with letters", request(called_party="12ab"), "called_party: at most 15 digits (E.164)"),
    ("called party in Thai digits", request(called_party="+๐๘๑๒"), "called_party: at most 15 digits (E.164)"),
    ("called party with two +", request(called_party="++66"), "called_party: at most 15 digits (E.164)"),
    ("called party of 16 digits", request(called_party="+1" + "2" * 15), "called_party: at most 15 digits (E.164)"),
    ("visited PLMN of 4 digits", request(visited_plmn="5200"), "visited_plmn: MCC+MNC, 5 or 6 digits"),
    ("visited PLMN of 7 digits", request(visited_plmn="5200101"), "visited_plmn: MCC+MNC, 5 or 6 digits"),
    ("visited PLMN with a letter", request(visited_plmn="520a1"), "visited_plmn: MCC+MNC, 5 or 6 digits"),
    ("visited PLMN in Thai digits", request(visited_plmn="๕๒๐๐๑"), "visited_plmn: MCC+MNC, 5 or 6 digits"),
    ("a rating group twice", request(units=[(VOICE, 60, 0), (VOICE, 60, 0)]), "units[1].rating_group: appears twice"),
    ("used units in an INITIAL", request(units=[(VOICE, 60, 5)]), "units[0].used: must be 0 in INITIAL and EVENT"),
    (
        "requested units in a TERMINATE",
        request(request_type=pb.ChargeRequest.TERMINATE, request_number=1, units=[(DATA, 10, 5)]),
        "units[0].requested: must be 0 in TERMINATE requests",
    ),
    (
        "too many rating groups",
        request(units=[(group, 1, 0) for group in range(17)]),
        "units: must be between 0 and 16",
    ),
]


def _lua_refusal(redis_client: AnySyncRedis, settings: Settings, message: pb.ChargeRequest) -> tuple[int, str]:
    before = dump(redis_client)
    code, answer_message = _lua_answer(redis_client, settings, message)
    assert dump(redis_client) == before, "a refused charge wrote something"
    return code, answer_message


def _lua_answer(redis_client: AnySyncRedis, settings: Settings, message: pb.ChargeRequest) -> tuple[int, str]:
    """The charge answer's result code and message (a refused charge still answers SUCCESS at the
    function level: the refusal is the answer, which a retransmission replays)."""
    function, keys, args = Calls(settings.redis.partitions).charge(message, NOW_MS, "test")
    reply = decode_reply(redis_client.fcall(function, len(keys), *keys, *args))
    assert reply.code == Code.SUCCESS, reply.message
    answer = ANSWER_DECODER.decode(reply.body)
    return answer.result, answer.error


@pytest.mark.parametrize(("wrong", "message", "expected"), BAD, ids=[case[0] for case in BAD])
def test_edge_and_lua_refuse_alike(
    redis_client: AnySyncRedis, settings: Settings, wrong: str, message: pb.ChargeRequest, expected: str
) -> None:
    with pytest.raises(InvalidArgument) as edge:
        check_charge(charge_spec(message, settings.limits.max_units_per_request), settings.limits)
    code, lua_message = _lua_refusal(redis_client, settings, message)
    assert code == Code.INVALID_REQUEST, lua_message
    assert str(edge.value).startswith(expected), str(edge.value)
    assert lua_message == str(edge.value)


def test_a_well_formed_request_passes_both(redis_client: AnySyncRedis, settings: Settings) -> None:
    check_charge(charge_spec(request(), settings.limits.max_units_per_request), settings.limits)
    code, message = _lua_answer(redis_client, settings, request())
    assert code == Code.USER_UNKNOWN, message  # past every check: the account does not exist
