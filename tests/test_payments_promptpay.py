"""PromptPay QR payments over real HTTP to the payments front, on the suite's real Redis.

The payload: published Thai QR examples are read back (data objects and CRC) by
creditd.payments.emvqr, and its generator rebuilds a published bill payment byte for byte; the QR
the front serves for an intent (SVG) is rasterised by rsvg-convert and decoded by zbarimg (Debian
librsvg2-bin and zbar-tools, installed by .ci/run), and the decoded payload carries the biller id,
the intent's reference and amount, with a valid CRC.
The webhook: 20 deliveries at once, of two transactions for one intent in shuffled order, make one
top-up, and the intent belongs to one transaction; 20 of one transaction: one applied, 19 replayed.
A tampered body, a bad amount, an unknown reference and an expired intent are refused, recorded
(webhook_outcomes, creditd payments list) and change nothing else (DUMP)."""

from __future__ import annotations

import asyncio
import random
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from creditd.config.settings import Settings
from creditd.payments.emvqr import PayloadError, bill_payment_payload, parse_payload
from creditd.store.keys import payments_key
from tests.harness import Harness, dump
from tests.payments import (
    WEBHOOK_SECRET,
    config_file,
    create_intent,
    deliver,
    payment_settings,
    run_cli,
    running_front,
    signed_request,
    top_ups,
)

ACCOUNT = "66844440001"
# Published examples of the Thai QR Code standard: PromptPay to a mobile number and a bank
# bill payment (github.com/ThaiQR/ThaiQR-Go, test/thaiqr_test.go), PromptPay to a bank account
# (thai-qr-payment.js.org/guide/payload/).
PUBLISHED_MOBILE = "00020101021229370016A0000006770101110113006691234567853037645406100.005802TH6304D803"
PUBLISHED_BILL = (
    "00020101021230710016A00000067701011201150112345678912330212REF1234567890312REF987654321"
    "53037645406200.005802TH5906THAIQR6304F528"
)
PUBLISHED_ACCOUNT = "00020101021229370016A0000006770101110413014123456789053037645406100.005802TH6304901D"


def test_published_payloads_read_back_with_their_crc() -> None:
    mobile = parse_payload(PUBLISHED_MOBILE)
    assert mobile["29"] == {"00": "A000000677010111", "01": "0066912345678"}
    assert (mobile["01"], mobile["53"], mobile["54"], mobile["58"], mobile["63"]) == (
        "12",
        "764",
        "100.00",
        "TH",
        "D803",
    )
    assert parse_payload(PUBLISHED_ACCOUNT)["29"] == {"00": "A000000677010111", "04": "0141234567890"}
    bill = parse_payload(PUBLISHED_BILL)
    assert bill["30"] == {"00": "A000000677010112", "01": "011234567891233", "02": "REF123456789", "03": "REF987654321"}
    assert (bill["54"], bill["59"]) == ("200.00", "THAIQR")
    rebuilt = bill_payment_payload("011234567891233", "REF123456789", "REF987654321", 20_000, "THAIQR")
    assert rebuilt == PUBLISHED_BILL
    for broken in (PUBLISHED_BILL[:-1] + "9", PUBLISHED_BILL.replace("200.00", "300.00")):
        with pytest.raises(PayloadError, match="63: CRC mismatch"):
            parse_payload(broken)


def _decode_svg(svg: bytes, directory: Path) -> str:
    for tool, package in (("rsvg-convert", "librsvg2-bin"), ("zbarimg", "zbar-tools")):
        if shutil.which(tool) is None:
            pytest.skip(f"LOUD: {tool} is missing: install Debian {package} (.ci/run does)")
    (directory / "qr.svg").write_bytes(svg)
    png = directory / "qr.png"
    subprocess.run(["rsvg-convert", "-b", "white", "-o", str(png), str(directory / "qr.svg")], check=True, timeout=30)
    decoded = subprocess.run(["zbarimg", "-q", "--raw", str(png)], capture_output=True, timeout=30, check=True)
    return decoded.stdout.decode().strip()


@pytest.mark.asyncio
async def test_the_intents_qr_is_read_by_a_real_reader(creditd: Harness, settings: Settings, tmp_path: Path) -> None:
    await creditd.create_account(ACCOUNT)
    own = payment_settings(settings)
    async with running_front(creditd, own) as url:
        created = await create_intent(url, 12_345, ACCOUNT)
        assert created.status_code == 201, created.text
        intent = created.json()
        async with httpx.AsyncClient(timeout=10) as client:
            svg = await client.get(url + intent["qr_svg"])
    assert svg.headers["content-type"] == "image/svg+xml"
    decoded = await asyncio.to_thread(_decode_svg, svg.content, tmp_path)
    assert decoded == intent["payload"]
    fields = parse_payload(decoded)
    assert fields["30"] == {
        "00": "A000000677010112",
        "01": own.payments.promptpay.biller_id,
        "02": intent["reference"],
        "03": ACCOUNT,
    }
    assert (fields["01"], fields["53"], fields["54"], fields["58"]) == ("12", "764", "123.45", "TH")


@pytest.mark.asyncio
async def test_twenty_concurrent_deliveries_in_any_order_make_one_top_up(creditd: Harness, settings: Settings) -> None:
    await creditd.create_account(ACCOUNT)
    async with running_front(creditd, payment_settings(settings)) as url:
        intent = (await create_intent(url, 5_000, ACCOUNT)).json()
        deliveries = [
            {"transaction_id": transaction, "reference": intent["reference"], "amount_minor": 5_000}
            for transaction in ["PP-A"] * 10 + ["PP-B"] * 10
        ]
        random.Random(34).shuffle(deliveries)
        async with httpx.AsyncClient(timeout=10) as client:
            answers = await asyncio.gather(*(deliver(client, url, document) for document in deliveries))
            status = (await client.get(f"{url}/promptpay/v1/intents/{intent['reference']}")).json()
        by_transaction: dict[str, set[str]] = {}
        for document, answer in zip(deliveries, answers, strict=True):
            by_transaction.setdefault(str(document["transaction_id"]), set()).add(answer.json()["outcome"])
        owner = "PP-A" if "applied" in by_transaction["PP-A"] or "replayed" in by_transaction["PP-A"] else "PP-B"
        other = "PP-B" if owner == "PP-A" else "PP-A"
        assert by_transaction[owner] <= {"applied", "replayed"} and by_transaction[other] == {"already_paid"}
        assert status["state"] == "paid"
        assert await top_ups(creditd, ACCOUNT) == [(5_000, f"promptpay qr:{intent['reference']}")]
        # one transaction delivered 20 times at once: applied once, replayed 19 times
        second = (await create_intent(url, 7_000, ACCOUNT)).json()
        document = {"transaction_id": "PP-C", "reference": second["reference"], "amount_minor": 7_000}
        async with httpx.AsyncClient(timeout=10) as client:
            answers = await asyncio.gather(*(deliver(client, url, document) for _ in range(20)))
        outcomes = sorted(answer.json()["outcome"] for answer in answers)
        assert outcomes == ["applied"] + ["replayed"] * 19
        assert (await creditd.get(ACCOUNT)).balance == 12_000


@pytest.mark.asyncio
async def test_tampered_mismatched_unknown_and_expired_are_refused_recorded_and_apply_nothing(
    creditd: Harness, settings: Settings, tmp_path: Path
) -> None:
    await creditd.create_account(ACCOUNT)
    own = payment_settings(settings)
    outcomes_key = payments_key("webhook_outcomes").encode()
    async with running_front(creditd, own) as url:
        intent = (await create_intent(url, 5_000, ACCOUNT)).json()
        before = {key: value for key, value in dump(creditd.redis).items() if key != outcomes_key}
        path = "/promptpay/v1/webhook"
        good = {"transaction_id": "PP-1", "reference": intent["reference"], "amount_minor": 5_000}
        body, headers = signed_request(WEBHOOK_SECRET, path, good)
        async with httpx.AsyncClient(timeout=10) as client:
            tampered = await client.post(url + path, content=body.replace(b"5000", b"9000"), headers=headers)
            assert (tampered.status_code, tampered.json()["outcome"]) == (401, "bad_signature")
            for document, outcome in (
                ({**good, "amount_minor": 4_999}, "amount_mismatch"),
                ({**good, "reference": "CDUNKNOWN"}, "unknown_reference"),
                ({**good, "reference": "cd-lower"}, "bad_request"),
            ):
                answer = await deliver(client, url, document)
                assert answer.json()["outcome"] == outcome and answer.status_code in (400, 409), answer.text
            creditd.clock.advance(own.payments.promptpay.intent_validity_s + 1)
            answer = await deliver(client, url, good)
            assert (answer.status_code, answer.json()["outcome"]) == (409, "expired")
        after = {key: value for key, value in dump(creditd.redis).items() if key != outcomes_key}
        assert after == before
        assert await top_ups(creditd, ACCOUNT) == []
    status, output = await run_cli(
        "payments", "list", "--redis", creditd.server.redis_url, "--config", str(config_file(tmp_path))
    )
    assert status == 0, output
    recorded = [line.split()[0] for line in output.split("WEBHOOK OUTCOMES")[1].splitlines()[2:-1] if line]
    assert recorded == ["expired", "bad_request", "unknown_reference", "amount_mismatch", "bad_signature"]
    assert intent["reference"] in output.split("WEBHOOK OUTCOMES")[0]


@pytest.mark.asyncio
async def test_a_bad_intent_request_names_the_field_and_writes_nothing(creditd: Harness, settings: Settings) -> None:
    await creditd.create_account(ACCOUNT)
    async with running_front(creditd, payment_settings(settings)) as url:
        before = dump(creditd.redis)
        for amount, account_id, field in ((99, ACCOUNT, "amount_minor"), (500, "66800000000", "account_id")):
            answer = await create_intent(url, amount, account_id)
            assert answer.status_code == 400 and answer.json()["message"].startswith(field + ":"), answer.text
        assert dump(creditd.redis) == before


@pytest.mark.asyncio
async def test_the_intents_page_shows_the_qr_then_paid(creditd: Harness, settings: Settings) -> None:
    """The page reloads itself every second while it waits; the first load after the provider's
    confirmation says paid, and stops reloading."""
    await creditd.create_account(ACCOUNT)
    async with running_front(creditd, payment_settings(settings)) as url:
        intent = (await create_intent(url, 5_000, ACCOUNT)).json()
        page_url = f"{url}/promptpay/v1/intents/{intent['reference']}/page"
        async with httpx.AsyncClient(timeout=10) as client:
            waiting = (await client.get(page_url)).text
            document = {"transaction_id": "PP-P", "reference": intent["reference"], "amount_minor": 5_000}
            assert (await deliver(client, url, document)).json()["outcome"] == "applied"
            paid = (await client.get(page_url)).text
            unknown = await client.get(f"{url}/promptpay/v1/intents/CDNOSUCH/page")
    assert '<meta http-equiv="refresh" content="1">' in waiting and "<svg" in waiting
    assert "Waiting for payment" in waiting and "50.00 THB" in waiting
    assert "Paid: 50.00 THB" in paid and "refresh" not in paid and "<svg" not in paid
    assert unknown.status_code == 404


@pytest.mark.asyncio
async def test_a_redelivery_after_the_top_up_key_is_forgotten_is_answered_from_the_intent(
    creditd: Harness, settings: Settings
) -> None:
    await creditd.create_account(ACCOUNT)
    async with running_front(creditd, payment_settings(settings)) as url:
        intent = (await create_intent(url, 5_000, ACCOUNT)).json()
        document = {"transaction_id": "PP-L", "reference": intent["reference"], "amount_minor": 5_000}
        async with httpx.AsyncClient(timeout=10) as client:
            assert (await deliver(client, url, document)).json()["outcome"] == "applied"
            record = creditd.server_keys().layout(("record",), ACCOUNT, idempotency_key=f"qr:{intent['reference']}")[0]
            assert creditd.redis.delete(record) == 1  # as its expiry would, a week on
            creditd.clock.advance(8 * 86_400)
            assert (await deliver(client, url, document)).json()["outcome"] == "replayed"
    assert await top_ups(creditd, ACCOUNT) == [(5_000, f"promptpay qr:{intent['reference']}")]
