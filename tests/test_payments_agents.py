"""The agents' API (creditd/paygate/agent_api.py on creditd/payments/agents.py) over real HTTP to the
payments front served by uvicorn, on the suite's real Redis: check answers min/max; pay applies one
top-up whatever the repeats, across a restart of the front (in the test's loop, and as a
`creditd payments serve` process killed with SIGKILL), and after a stop between the claim and the
top-up; per-payment and daily limits hold, the daily one under concurrent payments; a reused
transaction id, a malformed field, an unknown agent and a bad signature are refused and change
nothing in Redis (DUMP of every key before and after); cancel works inside its window while the
money is unspent, and not after."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from creditd.config.settings import Settings
from creditd.devtools.ports import free_port
from creditd.payments.agents import Agents, Payment
from creditd.payments.money import Money
from creditd.resources import default_config_path
from creditd.store.connection import connect
from tests.harness import Harness, dump, tamper_account
from tests.payments import (
    AGENT,
    SECRET,
    payment_settings,
    post_signed,
    rfc3339,
    running_front,
    signed_headers,
    top_ups,
)

pytestmark = pytest.mark.asyncio
ACCOUNT = "66811110001"


def pay_document(harness: Harness, transaction_id: str, amount: int, account_id: str = ACCOUNT) -> dict[str, object]:
    return {
        "transaction_id": transaction_id,
        "account_id": account_id,
        "amount_minor": amount,
        "time": rfc3339(harness.clock.now_ms()),
    }


async def test_check_answers_whether_and_how_much_an_account_may_be_paid(creditd: Harness, settings: Settings) -> None:
    await creditd.create_account(ACCOUNT)
    async with running_front(creditd, payment_settings(settings)) as url:
        status, answer = await post_signed(url, "/agent/v1/check", {"account_id": ACCOUNT})
        assert (status, answer["result"], answer["min_amount_minor"], answer["max_amount_minor"]) == (
            200,
            0,
            100,
            50_000,
        )
        status, answer = await post_signed(url, "/agent/v1/check", {"account_id": "66800000000"})
        assert (status, answer["result_name"]) == (200, "ACCOUNT_UNKNOWN")
        status, answer = await post_signed(url, "/agent/v1/check", {"account_id": ACCOUNT, "amount_minor": 99})
        assert (answer["result_name"], answer["min_amount_minor"]) == ("AMOUNT_TOO_SMALL", 100)


async def test_pay_applies_once_and_a_repeat_gets_the_same_receipt(creditd: Harness, settings: Settings) -> None:
    await creditd.create_account(ACCOUNT)
    async with running_front(creditd, payment_settings(settings)) as url:
        document = pay_document(creditd, "t-1001", 5000)
        first = await post_signed(url, "/agent/v1/pay", document)
        again = await asyncio.gather(*(post_signed(url, "/agent/v1/pay", document) for _ in range(10)))
    status, answer = first
    assert (status, answer["result"], answer["receipt"]["state"]) == (200, 0, "applied")  # type: ignore[index]
    assert {repr(item) for item in again} == {repr(first)}
    assert await top_ups(creditd, ACCOUNT) == [(5000, "agent shop1:t-1001")]
    assert (await creditd.get(ACCOUNT)).balance == 5000


async def test_pay_retried_across_a_restart_of_the_front_tops_up_once(creditd: Harness, settings: Settings) -> None:
    """The first front stops after paying; a second, with a client of its own, answers the retry
    from the day book. And a payment claimed by a front that stopped before its top-up is finished
    by the retry, once."""
    await creditd.create_account(ACCOUNT)
    own = payment_settings(settings)
    document = pay_document(creditd, "t-2001", 7000)
    async with running_front(creditd, own) as url:
        first = await post_signed(url, "/agent/v1/pay", document)
    async with running_front(creditd, own) as url:
        retried = await post_signed(url, "/agent/v1/pay", document)
    assert retried == first
    client = connect(creditd.server.redis_url, own.redis)
    try:  # the claim of a front stopped right after it: claimed, no money moved
        agents = Agents(Money(client, own.redis.partitions, creditd.clock), own.payments)
        halfway = Payment(
            transaction_id="t-2002", account_id=ACCOUNT, amount_minor=3000, paid_at_ms=creditd.clock.now_ms()
        )
        assert (await agents._step(AGENT, halfway, "claim", 100_000)).state == "claimed"
    finally:
        await client.aclose()
    assert (await creditd.get(ACCOUNT)).balance == 7000
    async with running_front(creditd, own) as url:
        document = {**pay_document(creditd, "t-2002", 3000), "time": rfc3339(halfway.paid_at_ms)}
        answers = await asyncio.gather(*(post_signed(url, "/agent/v1/pay", document) for _ in range(3)))
    assert {answer["receipt"]["state"] for _, answer in answers} == {"applied"}  # type: ignore[index]
    assert await top_ups(creditd, ACCOUNT) == [(7000, "agent shop1:t-2001"), (3000, "agent shop1:t-2002")]


def _start_front_process(config: Path, redis_url: str, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "creditd", "payments", "serve", "--config", str(config)]
    command += ["--redis", redis_url, "--listen", f"127.0.0.1:{port}"]
    process = subprocess.Popen(command, env=os.environ | {"PYTHONPATH": str(Path.cwd())})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, "creditd payments serve ended"
        try:
            httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("creditd payments serve did not start within 20 s")


async def test_pay_retried_across_a_killed_payments_process_tops_up_once(
    creditd: Harness, settings: Settings, tmp_path: Path
) -> None:
    await creditd.create_account(ACCOUNT)
    config = tmp_path / "creditd.toml"
    config.write_text(
        default_config_path().read_text()
        + f'\n[payments.agents.{AGENT}]\nsecret = "{SECRET}"\nmax_amount_minor = 50000\n'
    )
    port = free_port()
    # the process runs on the real clock, not on the harness' (moved to 10:00 in Bangkok)
    document = {**pay_document(creditd, "t-3001", 4000), "time": rfc3339(time.time_ns() // 1_000_000)}
    process = await asyncio.to_thread(_start_front_process, config, creditd.server.redis_url, port)
    try:
        first = await post_signed(f"http://127.0.0.1:{port}", "/agent/v1/pay", document)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    process = await asyncio.to_thread(_start_front_process, config, creditd.server.redis_url, port)
    try:
        retried = await post_signed(f"http://127.0.0.1:{port}", "/agent/v1/pay", document)
    finally:
        process.terminate()
        process.wait(10)
    assert first[1]["result"] == 0 and retried == first
    assert await top_ups(creditd, ACCOUNT) == [(4000, "agent shop1:t-3001")]


async def test_per_payment_limits_and_a_reused_transaction_id_change_nothing(
    creditd: Harness, settings: Settings
) -> None:
    await creditd.create_account(ACCOUNT)
    async with running_front(creditd, payment_settings(settings)) as url:
        assert (await post_signed(url, "/agent/v1/pay", pay_document(creditd, "t-1", 1000)))[1]["result"] == 0
        before = dump(creditd.redis)
        for document, result in (
            (pay_document(creditd, "t-2", 50_001), "AMOUNT_TOO_LARGE"),
            (pay_document(creditd, "t-3", 99), "AMOUNT_TOO_SMALL"),
            (pay_document(creditd, "t-1", 2000), "TRANSACTION_REUSED"),
            (pay_document(creditd, "t-1", 1000, "66811110002"), "TRANSACTION_REUSED"),
            (pay_document(creditd, "t-4", 1000, "66800000000"), "ACCOUNT_UNKNOWN"),
        ):
            status, answer = await post_signed(url, "/agent/v1/pay", document)
            assert (status, answer["result_name"]) == (200, result), answer
        assert dump(creditd.redis) == before


async def test_the_daily_limit_holds_under_concurrent_payments(creditd: Harness, settings: Settings) -> None:
    """Twelve payments of 20 000 at once against a day of 100 000: five are applied, the others
    refused, and the account holds 100 000."""
    await creditd.create_account(ACCOUNT)
    async with running_front(creditd, payment_settings(settings)) as url:
        answers = await asyncio.gather(
            *(post_signed(url, "/agent/v1/pay", pay_document(creditd, f"c-{n}", 20_000)) for n in range(12))
        )
        results = sorted(answer["result_name"] for _, answer in answers)
        assert results == ["DAILY_LIMIT_REACHED"] * 7 + ["OK"] * 5
        assert (await creditd.get(ACCOUNT)).balance == 100_000
        before = dump(creditd.redis)
        status, answer = await post_signed(url, "/agent/v1/pay", pay_document(creditd, "c-last", 100))
        assert answer["result_name"] == "DAILY_LIMIT_REACHED" and dump(creditd.redis) == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("transaction_id", ""),
        ("transaction_id", "t/1"),
        ("transaction_id", "t" * 41),
        ("account_id", "a b"),
        ("account_id", None),
        ("amount_minor", "100"),
        ("amount_minor", 10.5),
        ("amount_minor", -5),
        ("amount_minor", True),
        ("time", "yesterday"),
        ("time", "2026-12-03T10:00:00"),
        ("time", "2020-01-01T00:00:00+07:00"),
        ("colour", "blue"),
    ],
)
async def test_bad_input_names_the_field_and_applies_nothing(
    creditd: Harness, settings: Settings, field: str, value: object
) -> None:
    await creditd.create_account(ACCOUNT)
    async with running_front(creditd, payment_settings(settings)) as url:
        before = dump(creditd.redis)
        document = {**pay_document(creditd, "t-9", 1000), field: value}
        status, answer = await post_signed(url, "/agent/v1/pay", document)
        assert (status, answer["result"]) == (400, 300)
        assert str(answer["message"]).startswith(f"{field}:"), answer
        assert dump(creditd.redis) == before


async def test_unknown_agent_bad_signature_and_tampered_body_are_refused(creditd: Harness, settings: Settings) -> None:
    await creditd.create_account(ACCOUNT)
    async with running_front(creditd, payment_settings(settings)) as url:
        before = dump(creditd.redis)
        path = "/agent/v1/pay"
        body = httpx.Request("POST", "/", json=pay_document(creditd, "t-5", 1000)).content
        headers = signed_headers(AGENT, SECRET, path, body)
        cases = {
            "X-Agent-Id": (signed_headers("nobody", SECRET, path, body), body),
            "X-Signature": (signed_headers(AGENT, "another-secret-0123456", path, body), body),
            "X-Timestamp": (signed_headers(AGENT, SECRET, path, body, int(time.time()) - 3600), body),
            "tampered": (headers, body.replace(b"1000", b"9000")),
        }
        async with httpx.AsyncClient(timeout=10) as client:
            for case, (case_headers, case_body) in cases.items():
                answer = await client.post(url + path, content=case_body, headers=case_headers)
                assert answer.status_code == 401, case
                header = "X-Signature" if case == "tampered" else case
                assert answer.json()["message"].startswith(header + ":"), (case, answer.json())
        assert dump(creditd.redis) == before


async def test_cancel_within_the_window_while_unspent_and_not_after(creditd: Harness, settings: Settings) -> None:
    await creditd.create_account(ACCOUNT)
    own = payment_settings(settings)
    async with running_front(creditd, own) as url:
        paid = [pay_document(creditd, f"k-{n}", 10_000) for n in range(3)]
        for document in paid:
            assert (await post_signed(url, "/agent/v1/pay", document))[1]["result"] == 0
        cancel = {"transaction_id": "k-0", "time": paid[0]["time"]}
        status, answer = await post_signed(url, "/agent/v1/cancel", cancel)
        assert (answer["result"], answer["receipt"]["state"]) == (0, "cancelled")  # type: ignore[index]
        assert await post_signed(url, "/agent/v1/cancel", cancel) == (status, answer)  # a retry: the same
        assert (await creditd.get(ACCOUNT)).balance == 20_000
        # the money of k-1 is spent: 15 000 of the 20 000 left are taken by an adjustment
        await creditd.accounts.Adjust(_adjust(ACCOUNT, -15_000))
        spent = {"transaction_id": "k-1", "time": paid[1]["time"]}
        assert (await post_signed(url, "/agent/v1/cancel", spent))[1]["result_name"] == "CANCEL_NOT_ALLOWED"
        creditd.clock.advance(own.payments.cancel_window_s + 1)
        late = {"transaction_id": "k-2", "time": paid[2]["time"]}
        before = dump(creditd.redis)
        assert (await post_signed(url, "/agent/v1/cancel", late))[1]["result_name"] == "CANCEL_WINDOW_PASSED"
        unknown = {"transaction_id": "k-9", "time": paid[2]["time"]}
        assert (await post_signed(url, "/agent/v1/cancel", unknown))[1]["result_name"] == "TRANSACTION_UNKNOWN"
        assert dump(creditd.redis) == before
        # the cancelled 10 000 was given back to the day: 100 000 - 20 000 more fit, not 30 000 - 1
        fits = pay_document(creditd, "k-3", 50_000)
        assert (await post_signed(url, "/agent/v1/pay", fits))[1]["result"] == 0
        assert (await post_signed(url, "/agent/v1/pay", pay_document(creditd, "k-4", 30_000)))[1]["result"] == 0
    entries = [(entry.kind, entry.amount, entry.reference) for entry in reversed(await creditd.ledger(ACCOUNT))]
    assert [entry for entry in entries if entry[0] == "adjustment"][0] == (
        "adjustment",
        -10_000,
        "shop1:k-0:c cancel agent shop1 k-0",
    )


def _adjust(account_id: str, amount: int) -> object:
    from creditd.v1 import creditd_pb2 as pb

    return pb.AdjustRequest(account_id=account_id, amount=amount, reason="test spend", idempotency_key="spend-1")


@pytest.mark.parametrize(
    ("path", "document", "field"),
    [
        ("/agent/v1/check", {"account_id": "a b"}, "account_id"),
        ("/agent/v1/check", {"account_id": ACCOUNT, "amount_minor": 0}, "amount_minor"),
        ("/agent/v1/check", {}, "account_id"),
        ("/agent/v1/cancel", {"transaction_id": "k 1", "time": "2026-12-03T10:00:00Z"}, "transaction_id"),
        ("/agent/v1/cancel", {"transaction_id": "k-1"}, "time"),
        ("/agent/v1/cancel", {"transaction_id": "k-1", "time": "2026-12-03T10:00:00Z", "amount": 1}, "amount"),
        ("/agent/v1/pay", [1, 2], "body"),
        ("/agent/v1/pay", "x" * 20_000, "body"),
    ],
)
async def test_bad_input_to_check_and_cancel_names_the_field(
    creditd: Harness, settings: Settings, path: str, document: object, field: str
) -> None:
    await creditd.create_account(ACCOUNT)
    async with running_front(creditd, payment_settings(settings)) as url:
        before = dump(creditd.redis)
        status, answer = await post_signed(url, path, document)
        assert (status, answer["result"]) == (400, 300)
        assert str(answer["message"]).startswith(f"{field}:"), answer
        assert dump(creditd.redis) == before


async def test_a_claim_older_than_the_top_up_keys_memory_is_looked_for_in_the_ledger(
    creditd: Harness, settings: Settings
) -> None:
    """A pay cut off after its top-up, retried when top_up may have forgotten the key (4 days on,
    its record deleted as its expiry would): found in the ledger, recorded applied, not paid twice.
    One cut off before its top-up: applied once then."""
    await creditd.create_account(ACCOUNT)
    own = payment_settings(settings)
    client = connect(creditd.server.redis_url, own.redis)
    try:
        agents = Agents(Money(client, own.redis.partitions, creditd.clock), own.payments)
        now_ms = creditd.clock.now_ms()
        topped = Payment(transaction_id="old-1", account_id=ACCOUNT, amount_minor=800, paid_at_ms=now_ms)
        untouched = Payment(transaction_id="old-2", account_id=ACCOUNT, amount_minor=900, paid_at_ms=now_ms)
        for payment in (topped, untouched):
            await agents._step(AGENT, payment, "claim", 100_000)
        await agents.money.top_up(ACCOUNT, 800, "agent", f"{AGENT}:old-1")
        creditd.clock.advance(4 * 86_400)
        record = creditd.server_keys().layout(("record",), ACCOUNT, idempotency_key=f"{AGENT}:old-1")[0]
        assert creditd.redis.delete(record) == 1
        answers = [await agents.pay(AGENT, payment) for payment in (topped, untouched, topped, untouched)]
    finally:
        await client.aclose()
    assert [(answer.result, answer.receipt and answer.receipt.state) for answer in answers] == [(0, "applied")] * 4
    assert await top_ups(creditd, ACCOUNT) == [(800, "agent shop1:old-1"), (900, "agent shop1:old-2")]


@pytest.mark.corrupts_data
async def test_a_stale_claim_the_ledger_no_longer_reaches_is_left_for_review(
    creditd: Harness, settings: Settings
) -> None:
    await creditd.create_account(ACCOUNT)
    own = payment_settings(settings)
    client = connect(creditd.server.redis_url, own.redis)
    try:
        agents = Agents(Money(client, own.redis.partitions, creditd.clock), own.payments)
        stale = Payment(transaction_id="old-3", account_id=ACCOUNT, amount_minor=700, paid_at_ms=creditd.clock.now_ms())
        await agents._step(AGENT, stale, "claim", 100_000)
        creditd.clock.advance(4 * 86_400)
        # the ledger trimmed past the claim: its kept entries are newer than it
        await creditd.top_up(ACCOUNT, 100, "later-1")
        keys = creditd.server_keys()
        creditd.redis.ltrim(keys.ledger(ACCOUNT), -1, -1)
        tamper_account(creditd.redis, keys.account(ACCOUNT), ledger_first_seq=5)
        before = dump(creditd.redis)
        answer = await agents.pay(AGENT, stale)
    finally:
        await client.aclose()
    assert (answer.result, answer.message) == (
        248,
        "agent shop1:old-3: too old to tell whether it was applied: review it",
    )
    assert dump(creditd.redis) == before


async def test_a_repeat_of_a_payment_older_than_the_age_limit_gets_its_answer(
    creditd: Harness, settings: Settings
) -> None:
    await creditd.create_account(ACCOUNT)
    own = payment_settings(settings)
    async with running_front(creditd, own) as url:
        document = pay_document(creditd, "late-1", 2000)
        first = await post_signed(url, "/agent/v1/pay", document)
        creditd.clock.advance(own.payments.max_payment_age_s + 60)
        assert await post_signed(url, "/agent/v1/pay", document) == first
        status, answer = await post_signed(url, "/agent/v1/pay", {**document, "transaction_id": "late-2"})
        assert (status, str(answer["message"]).startswith("time: older than")) == (400, True)
    assert await top_ups(creditd, ACCOUNT) == [(2000, "agent shop1:late-1")]
