"""lua/functions/record_agent_payment.lua on its own, with FCALL on the suite's real Redis: the steps
a payment may take (claim -> applied -> cancelled, claim -> failed) and those it may not, each
refusal writing nothing (DUMP); the day's total under the limit, given back by failed and
cancelled; a repeated claim answered from the book, a claim of the same id with another amount or
account refused."""

from __future__ import annotations

import json

import redis

from creditd.store.calls import AgentPaymentStep, Calls
from creditd.store.codes import Code
from tests.harness import dump

NOW = 1_790_000_000_000


def _step(
    client: redis.Redis, action: str, transaction_id: str, amount: int, account: str = "668001", seq: int = 0
) -> tuple[int, str, dict[str, object]]:
    step = AgentPaymentStep(
        action=action,
        transaction_id=transaction_id,
        account_id=account,
        amount=amount,
        paid_at_ms=NOW,
        daily_limit_minor=1000,
        retention_s=86400,
        ledger_seq=seq,
    )
    function, keys, args = Calls(256).record_agent_payment("shop1", "2026-09-21", step, NOW, "tester")
    code, message, body = client.fcall(function, len(keys), *keys, *args)
    return code, message.decode(), json.loads(body) if body else {}


def test_steps_totals_and_refusals(redis_client: redis.Redis) -> None:
    code, _, entry = _step(redis_client, "claim", "t1", 600)
    assert (code, entry["state"], entry["day_total"], entry["replayed"]) == (Code.SUCCESS, "claimed", 600, 0)
    code, message, entry = _step(redis_client, "claim", "t1", 600)
    assert (code, message, entry["replayed"]) == (Code.SUCCESS, "replayed", 1)
    before = dump(redis_client)
    refusals = [
        (("claim", "t2", 401), Code.REFUSED, "amount: over the agent's daily limit of 1000 (600 used)"),
        (("claim", "t1", 601), Code.INVALID_REQUEST, "transaction_id: already used for another account or amount"),
        (("applied", "t9", 100), Code.USER_UNKNOWN, "transaction_id: no such payment on that day"),
        (("cancelled", "t1", 600), Code.REFUSED, "transaction_id: the payment is claimed, it cannot become cancelled"),
    ]
    for (action, transaction_id, amount), want_code, want_message in refusals:
        code, message, _ = _step(redis_client, action, transaction_id, amount)
        assert (code, message) == (want_code, want_message)
    code, message, _ = _step(redis_client, "claim", "t1", 600, account="668002")
    assert (code, message) == (Code.INVALID_REQUEST, "transaction_id: already used for another account or amount")
    assert dump(redis_client) == before
    code, _, entry = _step(redis_client, "applied", "t1", 600, seq=7)
    assert (entry["state"], entry["ledger_seq"]) == ("applied", 7)
    assert _step(redis_client, "claim", "t2", 400)[2]["day_total"] == 1000
    assert _step(redis_client, "failed", "t2", 400)[2]["day_total"] == 600  # given back
    assert _step(redis_client, "applied", "t2", 400)[0] == Code.REFUSED  # failed stays failed
    assert _step(redis_client, "cancelled", "t1", 600)[2]["day_total"] == 0
    code, message, entry = _step(redis_client, "cancelled", "t1", 600)
    assert (code, message, entry["state"]) == (Code.SUCCESS, "replayed", "cancelled")
