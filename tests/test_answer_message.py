"""The gRPC answer carries every field of the function's grant: answer_message names the fields most
grants leave at their defaults only when they are not, so each is checked here on its own, set to a
value other than its default, against the proto field of the same name (a field skipped or
misnamed would read back as the default). The grant record's fields are read from its own
definition, so a field added to it without a place in the answer fails the test."""

from __future__ import annotations

import pytest

from creditd.api.messages import answer_message
from creditd.store.replies import AnswerRecord, GrantRecord
from creditd.v1 import creditd_pb2 as pb

# a value other than the default for each field, of the field's type; `throttled` travels as 0/1
NON_DEFAULT = {
    "rating_group": 7,
    "result": pb.CREDIT_LIMIT_REACHED,
    "unit": pb.SECONDS,
    "granted": 120,
    "validity_time_s": 300,
    "final_unit_action": pb.UnitGrant.REDIRECT,
    "redirect_url": "https://top-up.example/",
    "throttled": 1,
    "max_bitrate_kbps": 256,
    "charged": 99,
    "tariff": "night",
    "tariff_time_change_ms": 1_764_806_400_000,
    "quota_threshold": 30,
    "quota_holding_time_s": 60,
}
DEFAULTS = {name: "" if isinstance(value, str) else 0 for name, value in NON_DEFAULT.items()}
REQUEST = pb.ChargeRequest(session_id="s-1", request_number=3, account_id="a-1", gateway_id="gw-1")


def test_every_grant_field_has_a_value_here() -> None:
    assert set(NON_DEFAULT) == set(GrantRecord.__struct_fields__)


@pytest.mark.parametrize("field", list(NON_DEFAULT))
def test_a_field_set_alone_reaches_the_answer(field: str) -> None:
    grant = GrantRecord(**(DEFAULTS | {field: NON_DEFAULT[field]}))
    answer = answer_message(REQUEST, AnswerRecord(pb.SUCCESS, pb.ACTIVE, "", [grant]))
    (message,) = answer.grants
    expected = NON_DEFAULT[field] == 1 if field == "throttled" else NON_DEFAULT[field]
    assert getattr(message, field) == expected
    for other in NON_DEFAULT:
        if other != field:
            assert getattr(message, other) == (False if other == "throttled" else DEFAULTS[other]), other


def test_the_answer_carries_the_request_and_the_record() -> None:
    grants = [GrantRecord(**NON_DEFAULT), GrantRecord(**(DEFAULTS | {"rating_group": 2}))]
    record = AnswerRecord(pb.END_USER_SERVICE_DENIED, pb.ONE_WAY_SUSPENDED, "no credit", grants)
    answer = answer_message(REQUEST, record)
    assert (answer.session_id, answer.request_number) == ("s-1", 3)
    assert (answer.result, answer.account_status, answer.error) == (
        pb.END_USER_SERVICE_DENIED,
        pb.ONE_WAY_SUSPENDED,
        "no credit",
    )
    assert [grant.rating_group for grant in answer.grants] == [7, 2]
    assert answer.grants[0].throttled and answer.grants[0].redirect_url == "https://top-up.example/"
