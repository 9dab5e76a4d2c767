"""The charge function's two answer formats say the same thing, and the gRPC edge sends the protobuf
one on as protobuf itself would write it (lua/lib/answer.lua, creditd/api/answers.py).

How: twin accounts on a real Redis make the same requests, one asking for JSON and one for protobuf;
the gRPC edge's answer from the protobuf reply must equal, byte for byte, the ChargeAnswer built from
the JSON reply and serialized by protobuf (grants of data, voice and SMS, several units at once, a
final grant with its action, usage charged, refusals with their text, a request number and a session
id whose varints take several bytes). The field numbers Lua writes are read from its source and
checked against the proto. A protobuf answer is not replayed to a front that reads JSON (refused,
writing nothing), a JSON one is (and converted by the edge); a bad answer_format is refused, naming
it, writing nothing. The handlers the server registers for CreditControl are the generated code's
but for Charge's serializer."""

from __future__ import annotations

import re
from typing import Any

import grpc
import pytest

from creditd.api.answers import batch_answer, charge_answer, leading_result, varint
from creditd.api.handlers import service_handler
from creditd.api.messages import answer_message
from creditd.config.settings import Settings
from creditd.resources import lua_directory
from creditd.store.calls import Calls, ChargeSpec, NewAccount, UnitSpec
from creditd.store.codes import AnswerFormat, Code
from creditd.store.connection import AnySyncRedis
from creditd.store.replies import ANSWER_DECODER, decode_reply
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc
from tests.harness import dump

NOW_MS = 1_800_000_000_000
DATA, VOICE, SMS = 1, 2, 3
MB = 1_000_000
THAI_NUMBER = "66812345678"


def _fcall(redis_client: AnySyncRedis, command: tuple[str, tuple[str, ...], tuple[Any, ...]]) -> Any:
    function, keys, args = command
    return redis_client.fcall(function, len(keys), *keys, *args)


class Twins:
    """Two accounts alike, charged alike: one asks for JSON answers, the other for protobuf."""

    def __init__(self, redis_client: AnySyncRedis, settings: Settings, balance: int, tag: str) -> None:
        self.redis, self.calls = redis_client, Calls(settings.redis.partitions)
        self.accounts = {AnswerFormat.JSON: f"6681{tag}001", AnswerFormat.PROTOBUF: f"6681{tag}002"}
        for account_id in self.accounts.values():
            created = _fcall(
                redis_client, self.calls.create_account(NewAccount(account_id, "standard", balance), NOW_MS, "t")
            )
            assert decode_reply(created).code == Code.SUCCESS

    def charge(self, request: ChargeSpec, now_ms: int = NOW_MS) -> pb.ChargeAnswer:
        """The answer of both twins (the edge's bytes from protobuf, equal to protobuf's own
        serialization of the JSON answer); returns it decoded."""
        replies = {}
        for answer_format, account_id in self.accounts.items():
            twin = ChargeSpec(**{**_fields(request), "account_id": account_id})
            replies[answer_format] = _fcall(self.redis, self.calls.charge(twin, now_ms, "t", answer_format))
        from_json = ANSWER_DECODER.decode(decode_reply(replies[AnswerFormat.JSON]).body)
        expected = answer_message(request, from_json).SerializeToString()
        protobuf_body = replies[AnswerFormat.PROTOBUF][2]
        assert protobuf_body[:1] != b"[", protobuf_body
        sent, result = charge_answer(request, replies[AnswerFormat.PROTOBUF])
        assert sent == expected
        assert result == from_json.result
        return pb.ChargeAnswer.FromString(sent)


def _fields(request: ChargeSpec) -> dict[str, Any]:
    return {name: getattr(request, name) for name in ChargeSpec.__struct_fields__}


def spec(session_id: str, request_type: int, number: int, *units: UnitSpec, called_party: str = "") -> ChargeSpec:
    return ChargeSpec(session_id, request_type, number, "", "gw-formats", units, called_party)


def test_the_protobuf_answer_is_the_json_answer_as_protobuf_writes_it(
    redis_client: AnySyncRedis, settings: Settings
) -> None:
    twins = Twins(redis_client, settings, balance=100_000, tag="10")
    opened = twins.charge(
        spec("s1", pb.ChargeRequest.INITIAL, 0, UnitSpec(DATA), UnitSpec(VOICE), called_party=THAI_NUMBER)
    )
    assert opened.result == pb.SUCCESS and {grant.rating_group for grant in opened.grants} == {DATA, VOICE}
    assert all(grant.granted and grant.validity_time_s and grant.tariff for grant in opened.grants), opened
    updated = twins.charge(
        spec(
            "s1",
            pb.ChargeRequest.UPDATE,
            1,
            UnitSpec(DATA, used=3 * MB),
            UnitSpec(VOICE, used=200),
            called_party=THAI_NUMBER,
        )
    )
    assert all(grant.charged for grant in updated.grants), updated  # usage charged: multi-byte varints
    ended = twins.charge(spec("s1", pb.ChargeRequest.TERMINATE, 2, UnitSpec(DATA, used=MB), called_party=THAI_NUMBER))
    assert ended.result == pb.SUCCESS
    assert (
        twins.charge(spec("e1", pb.ChargeRequest.EVENT, 0, UnitSpec(SMS, requested=1), called_party=THAI_NUMBER)).result
        == pb.SUCCESS
    )
    # refused by the function, with its text: an UPDATE of no session, a unit asked twice
    unknown = twins.charge(spec("s9", pb.ChargeRequest.UPDATE, 1, UnitSpec(DATA, used=1)))
    assert unknown.result == pb.UNKNOWN_SESSION and unknown.error.startswith("session_id:"), unknown
    twice = twins.charge(spec("s8", pb.ChargeRequest.INITIAL, 0, UnitSpec(DATA), UnitSpec(DATA)))
    assert twice.result == pb.INVALID_REQUEST and "appears twice" in twice.error, twice
    # the largest request number and the longest session id: varints of five and two bytes
    longest = "s" * settings.limits.max_session_id_length
    assert twins.charge(spec(longest, pb.ChargeRequest.INITIAL, 2**32 - 1, UnitSpec(DATA))).result == pb.SUCCESS


def test_a_final_grant_carries_its_action_in_both_formats(redis_client: AnySyncRedis, settings: Settings) -> None:
    twins = Twins(redis_client, settings, balance=150, tag="20")
    opened = twins.charge(spec("s1", pb.ChargeRequest.INITIAL, 0, UnitSpec(VOICE), called_party=THAI_NUMBER))
    grant = opened.grants[0]
    assert grant.final_unit_action != pb.UnitGrant.NONE, opened  # all the balance pays for
    broke = twins.charge(spec("s2", pb.ChargeRequest.INITIAL, 0, UnitSpec(VOICE), called_party=THAI_NUMBER))
    assert broke.result != pb.SUCCESS, broke


def test_a_protobuf_answer_is_replayed_only_to_the_grpc_edge(redis_client: AnySyncRedis, settings: Settings) -> None:
    """A front that reads JSON retransmitting a request the gRPC edge made is refused, writing
    nothing; an answer stored as JSON (a JSON front's, or one stored before protobuf answers) is
    replayed to the edge, which converts it."""
    calls = Calls(settings.redis.partitions)
    account = NewAccount("66813000001", "standard", 100_000)
    assert decode_reply(_fcall(redis_client, calls.create_account(account, NOW_MS, "t"))).code == Code.SUCCESS
    request = ChargeSpec("s1", pb.ChargeRequest.INITIAL, 0, account.account_id, "gw-replay", (UnitSpec(DATA),))
    first = _fcall(redis_client, calls.charge(request, NOW_MS, "t", AnswerFormat.PROTOBUF))
    before = dump(redis_client)
    again = _fcall(redis_client, calls.charge(request, NOW_MS + 1, "t", AnswerFormat.PROTOBUF))
    assert again == [Code.SUCCESS, b"replayed", first[2]]
    refused = ANSWER_DECODER.decode(decode_reply(_fcall(redis_client, calls.charge(request, NOW_MS + 1, "t"))).body)
    assert refused.result == Code.INVALID_REQUEST
    assert refused.error == "session_id: answered through the gRPC edge; retransmit it there", refused
    assert dump(redis_client) == before

    json_request = ChargeSpec("s2", pb.ChargeRequest.INITIAL, 0, account.account_id, "gw-replay", (UnitSpec(DATA),))
    stored = _fcall(redis_client, calls.charge(json_request, NOW_MS, "t"))
    replayed = _fcall(redis_client, calls.charge(json_request, NOW_MS + 1, "t", AnswerFormat.PROTOBUF))
    assert replayed == [Code.SUCCESS, b"replayed", stored[2]] and stored[2][:1] == b"["
    expected = answer_message(json_request, ANSWER_DECODER.decode(stored[2])).SerializeToString()
    assert charge_answer(json_request, replayed) == (expected, Code.SUCCESS)


@pytest.mark.parametrize("answer_format", ["-1", "2", "1.5", "", "protobuf", "1e0"])
def test_a_bad_answer_format_is_refused_in_json_and_writes_nothing(
    redis_client: AnySyncRedis, settings: Settings, answer_format: str
) -> None:
    calls = Calls(settings.redis.partitions)
    account = NewAccount("66814000001", "standard", 100_000)
    assert decode_reply(_fcall(redis_client, calls.create_account(account, NOW_MS, "t"))).code == Code.SUCCESS
    request = ChargeSpec("s1", pb.ChargeRequest.INITIAL, 0, account.account_id, "gw-bad", (UnitSpec(DATA),))
    function, keys, (now_ms, packed, _, actor) = calls.charge(request, NOW_MS, "t")
    before = dump(redis_client)
    reply = redis_client.fcall(function, len(keys), *keys, now_ms, packed, answer_format, actor)
    answer = ANSWER_DECODER.decode(decode_reply(reply).body)
    assert answer.result == Code.INVALID_REQUEST and answer.error.startswith("answer_format: "), answer
    assert dump(redis_client) == before


def test_a_refusal_of_the_request_is_answered_in_the_format_it_asks_for(
    redis_client: AnySyncRedis, settings: Settings
) -> None:
    calls = Calls(settings.redis.partitions)
    request = ChargeSpec("s 1", pb.ChargeRequest.INITIAL, 0, "66815000001", "gw-bad", (UnitSpec(DATA),))
    before = dump(redis_client)
    reply = _fcall(redis_client, calls.charge(request, NOW_MS, "t", AnswerFormat.PROTOBUF))
    answer = pb.ChargeAnswer.FromString(charge_answer(request, reply)[0])
    assert answer.result == pb.INVALID_REQUEST and answer.error.startswith("session_id: "), answer
    assert dump(redis_client) == before


def _lua_source() -> str:
    return (lua_directory() / "lib" / "answer.lua").read_text()


def test_the_field_numbers_lua_writes_are_the_protos() -> None:
    table = re.search(r"local PROTOBUF_FIELD = \{\n(.*?)\n\}", _lua_source(), re.S)
    assert table is not None
    numbers = dict(re.findall(r"^\s*(\w+) = (\d+),$", table.group(1), re.M))
    messages = {"answer": pb.ChargeAnswer.DESCRIPTOR, "grant": pb.UnitGrant.DESCRIPTOR}
    expected = {
        f"{prefix}_{field.name}": str(field.number)
        for prefix, descriptor in messages.items()
        for field in descriptor.fields
        if not (prefix == "answer" and field.name in ("session_id", "request_number"))  # the edge's
    }
    assert numbers == expected
    # the fields Lua writes length-delimited are the strings and the messages
    delimited = set(re.findall(r"name == '(\w+)'", _lua_source()))
    strings_and_messages = {
        f"{prefix}_{field.name}"
        for prefix, descriptor in messages.items()
        for field in descriptor.fields
        if field.type in (field.TYPE_STRING, field.TYPE_MESSAGE) and f"{prefix}_{field.name}" in expected
    }
    assert delimited == strings_and_messages


def test_the_edges_head_and_result_as_protobuf_has_them() -> None:
    assert varint(0) == b"\x00"
    for value in (1, 127, 128, 300, 2001, 16_383, 16_384, 2**32 - 1, 2**53 - 1):
        assert b"\x20" + varint(value) == pb.UnitGrant(granted=value).SerializeToString(), value
    for result in (Code.SUCCESS, Code.RATING_FAILED, Code.SESSION_ENDED):
        body = pb.ChargeAnswer(result=int(result), account_status=pb.ACTIVE).SerializeToString()
        assert leading_result(body) == result
    assert leading_result(pb.ChargeAnswer(account_status=pb.ACTIVE).SerializeToString()) == 0
    with pytest.raises(ValueError, match="middle of its varint"):
        leading_result(b"\x18\xd1")
    # an empty session id and request number 0 are left out, as protobuf leaves them
    body = pb.ChargeAnswer(result=pb.SUCCESS).SerializeToString()
    request = ChargeSpec("", pb.ChargeRequest.INITIAL, 0, "a", "g")
    assert charge_answer(request, [Code.SUCCESS, b"", body]) == (body, Code.SUCCESS)


def test_a_batch_of_answers_is_written_as_protobuf_writes_it() -> None:
    short = pb.ChargeAnswer(session_id="s1", result=pb.SUCCESS)
    long = pb.ChargeAnswer(session_id="s" * 128, request_number=2**32 - 1, error="x" * 200)  # a 2-byte length
    for answers in ([], [short], [short, long, pb.ChargeAnswer()]):
        sent = batch_answer([answer.SerializeToString() for answer in answers])
        assert sent == pb.ChargeBatchAnswer(answers=answers).SerializeToString()


class Recorder:
    """What a generated add function registers: its method handlers by service."""

    def __init__(self) -> None:
        self.handlers: dict[str, dict[str, grpc.RpcMethodHandler[Any, Any]]] = {}

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        del handlers

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        self.handlers[service] = handlers


def test_the_service_handler_serves_what_the_generated_code_does_but_answers_as_bytes() -> None:
    class Servicer(pb_grpc.CreditControlServicer):
        pass

    servicer, recorder = Servicer(), Recorder()
    pb_grpc.add_CreditControlServicer_to_server(servicer, recorder)  # type: ignore[arg-type]
    generated = recorder.handlers["creditd.v1.CreditControl"]
    service = pb.DESCRIPTOR.services_by_name["CreditControl"]
    handler = service_handler(service, servicer, frozenset({"Charge", "ChargeBatch"}))
    assert set(generated) == {method.name for method in service.methods}
    for name, expected in generated.items():
        details = type("Details", (), {"method": f"/creditd.v1.CreditControl/{name}", "invocation_metadata": ()})()
        served = handler.service(details)  # type: ignore[arg-type]
        assert served is not None, name
        assert (served.request_streaming, served.response_streaming) == (
            expected.request_streaming,
            expected.response_streaming,
        ), name
        assert served.request_deserializer == expected.request_deserializer, name
        assert served.unary_unary == expected.unary_unary and served.unary_stream == expected.unary_stream, name
        if name in ("Charge", "ChargeBatch"):
            assert served.response_serializer is bytes
        else:
            assert served.response_serializer == expected.response_serializer, name
    with pytest.raises(ValueError, match="has no method Chrage"):
        service_handler(service, servicer, frozenset({"Chrage"}))
