"""The care console answers "why was I charged ฿27?" on one page, finds subscribers the ways they tell
care who they are, and its card actions each need a reason, a role and, where money moves above the
threshold or an account is blacklisted, a second person.

Against a real creditd (frozen at a Bangkok midday, so no quiet hours hold the notices), its real
notifier (notices logged: no channel configured), and the console served by uvicorn, driven with httpx
(tests/test_console.py's helpers). One subscriber lives a small life: a voucher redeemed, a PromptPay
payment confirmed, a 150 s call to London (3 started minutes at 900 = 2700, ฿27.00), a suspension and
a resume with the agent's reasons, notices sent. One GET of the card then holds the charge with its
tariff, destination, zone, units and arithmetic, the payments, the status history with the staff's
reasons and the notices with their delivery state. The search finds them by number, by part of their
name (two subscribers share it: a list), by the voucher code typed in groups and by the payment
reference; bad input is refused naming the field. A notice is sent again (a new delivery that the
notifier delivers); a made-up one and a sign-in code are refused writing nothing (the code is not on
the card either). A bundle priced below the threshold
is given at once (the balance does not move); one above it waits, moves nothing, and an auditor may not
gift at all; a blacklisting waits until a supervisor other than the requester approves it; a plan
change (to a second plan the test configures) moves the account at once, with the reason beside its
ledger entry, and an unknown plan is refused writing nothing. The name
search stops at its scan limit and says so, and a console file of the first schema gains the new
columns with its rows kept."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from pathlib import Path

import httpx
import msgspec
import pyotp
import pytest

from creditd.config.settings import Settings
from creditd.console.lookup import by_name
from creditd.console.staff import StaffStore
from creditd.core.notices import NoticeEvent, queue_notice
from creditd.core.voucher_claims import voucher_claims
from creditd.core.vouchers import printed
from creditd.notifier.service import Notifier
from creditd.payments.money import Money
from creditd.payments.promptpay import PromptPay
from creditd.resources import default_config_path
from creditd.store.connection import AnySyncRedis
from creditd.store.keys import notifier_key, partition_of
from creditd.v1 import creditd_pb2 as pb
from tests.harness import INITIAL, TERMINATE, VOICE, Harness, ServerAt
from tests.portal import create_voucher
from tests.test_console import PASSWORD, csrf_of, running_console, sign_in
from tests.test_rating import bangkok_ms

ACCOUNT, NAMESAKE, ROGUE = "66812340001", "66812340002", "66812340003"
LONDON = "442079460000"


def logging_notifier(creditd: Harness, settings: Settings) -> Notifier:
    notifications = msgspec.structs.replace(
        settings.notifications, templates_dir=str(default_config_path().parent / "templates")
    )
    own = msgspec.structs.replace(creditd.settings, notifications=notifications)
    return Notifier(creditd.server.redis, own, creditd.clock, "care-test")


def notice_keys(creditd: Harness) -> set[bytes]:
    return set(creditd.redis.scan_iter(match="cd:{p:*}:notice:*", count=1000))


async def a_small_life(creditd: Harness, settings: Settings) -> str:
    """The subscriber's voucher, PromptPay payment and call to London; the payment's reference."""
    await creditd.create_account(ACCOUNT, balance=10_000, contact={"name": "Somchai Jaidee"})
    await creditd.create_account(NAMESAKE, balance=1_000, contact={"name": "Malee Somchai"})
    await creditd.create_account(ROGUE, balance=1_000, contact={"name": "Sim Box"})
    server = creditd.server
    claims = voucher_claims(server.redis, server.functions, settings, creditd.clock)
    code = create_voucher(creditd, 5_000)
    await claims.redeem(ACCOUNT, code)
    promptpay = PromptPay(Money(server.redis, settings.redis.partitions, creditd.clock), settings.payments)
    intent = await promptpay.create_intent(ACCOUNT, 20_000)
    assert (await promptpay.confirm("txn-care-1", intent.reference, 20_000)).outcome == "applied"
    await creditd.charge("call-london", INITIAL, 0, ACCOUNT, [(VOICE, 0, 0)], called_party=LONDON)
    await creditd.charge("call-london", TERMINATE, 1, ACCOUNT, [(VOICE, 0, 150)], called_party=LONDON)
    return code + " " + intent.reference


def with_a_second_plan(settings: Settings) -> Settings:
    """The shipped plans, and standard_2027: the standard plan at twice its prices."""
    standard = settings.plans["standard"]
    tariffs = [msgspec.structs.replace(t, price_minor=t.price_minor * 2) for t in standard.tariffs]
    plans = {**settings.plans, "standard_2027": msgspec.structs.replace(standard, tariffs=tariffs)}
    return msgspec.structs.replace(settings, plans=plans)


@pytest.mark.asyncio
async def test_why_was_i_charged_27_baht_on_one_page(server_at: ServerAt, settings: Settings, tmp_path: Path) -> None:
    async with server_at(bangkok_ms("2027-03-10T12:00:00"), loaded=with_a_second_plan(settings)) as creditd:
        voucher_code, reference = (await a_small_life(creditd, settings)).split(" ")
        notifier = logging_notifier(creditd, settings)
        store = StaffStore(tmp_path / "console.sqlite3", session_ttl_s=1800)
        anna, sara, olga = (
            store.add(name, role, PASSWORD)
            for name, role in [("anna", "agent"), ("sara", "supervisor"), ("olga", "auditor")]
        )
        async with running_console(creditd, store) as url, contextlib.AsyncExitStack() as stack:
            agent = await stack.enter_async_context(httpx.AsyncClient(base_url=url))
            assert (await sign_in(agent, "anna", PASSWORD, pyotp.TOTP(anna).now())).status_code == 303

            # Found the ways subscribers tell care who they are.
            async def search(by: str, typed: str) -> httpx.Response:
                return await agent.get("/", params={"by": by, "q": typed})

            card_path = f"/subscriber/{ACCOUNT}"
            for by, typed in [("voucher", printed(voucher_code)), ("payment", reference.lower()), ("name", "jaidee")]:
                found = await search(by, typed)
                assert (found.status_code, found.headers.get("location")) == (303, card_path), (by, found.text)
            both = await search("name", "  SOMCHAI ")
            assert both.status_code == 200 and re.findall(r'href="/subscriber/(\d+)">\d+</a>: ([^<]+)<', both.text) == [
                (ACCOUNT, "Somchai Jaidee"),
                (NAMESAKE, "Malee Somchai"),
            ]
            for by, typed, status, says in [
                ("voucher", voucher_code[:-1] + str((int(voucher_code[-1]) + 1) % 10), 400, "code:"),
                ("voucher", "0000 0000 0000 0000", 404, "No account has redeemed"),
                ("payment", "CDNOSUCHREFERENCE", 404, "No payment with this reference"),
                ("name", "x", 400, "name: at least 2"),
                ("name", "nobody like this", 404, "No subscriber has this name"),
                ("bogus", "x", 400, "by: one of"),
            ]:
                refused = await search(by, typed)
                assert refused.status_code == status and says in refused.text, (by, typed, refused.text)

            # A suspension and a resume with the agent's reasons, and the notices they caused.
            status_path = f"{card_path}/status"
            for action, reason in [("suspend", "lost phone, asked by caller"), ("resume", "phone found")]:
                done = await agent.post(
                    status_path, data={"action": action, "reason": reason, "csrf": await csrf_of(agent, "/")}
                )
                assert done.status_code == 200, done.text
            while await notifier.pass_once():
                pass

            # One page: the charge explained, payments, status history with reasons, notices.
            page = (await agent.get(card_path)).text
            usage = page.split('id="usage"')[1].split("</table>")[0]
            (row,) = [row for row in re.findall(r"<tr>(.*?)</tr>", usage, re.S) if "call-london" in row]
            assert "voice_out_international" in row and "international, home" in row
            assert "2700 (฿27.00)" in row and "150 SECONDS" in row
            assert "charges 900 per started block of 60 SECONDS; 150 paid SECONDS = 3 block(s) = 2700" in row
            payments = page.split('id="payments"')[1].split("</table>")[0]
            assert (
                "20000" in payments and f"qr:{reference}" in payments and "5000" in payments and "voucher" in payments
            )
            history = page.split('id="status-history"')[1].split("</table>")[0]
            assert "ONE_WAY_SUSPENDED ADMIN" in history and "anna: lost phone, asked by caller" in history
            assert "ACTIVE ADMIN" in history and "anna: phone found" in history
            notices = page.split('id="notices"')[1].split("</table>")[0]
            assert "suspended_one_way" in notices and "topup" in notices and "sms" in notices
            assert "<td>sent</td>" in notices

            # A notice sent again: a new delivery the notifier delivers; a made-up one writes nothing.
            name = re.findall(r'name="notice" value="([^"]+/sms)"', page)[0]
            before = notice_keys(creditd)
            resend_path = f"{card_path}/resend"
            made_up = await agent.post(
                resend_path, data={"notice": "1-1/sms", "reason": "asked", "csrf": await csrf_of(agent, "/")}
            )
            assert made_up.status_code == 400 and "notice: no such notice" in made_up.text
            assert notice_keys(creditd) == before
            code_notice = NoticeEvent("code-1", "sign_in_code", ACCOUNT, creditd.clock.now_ms(), "sealed code")
            partition = partition_of(ACCOUNT, settings.redis.partitions)
            pipe = creditd.redis.pipeline(transaction=False)
            code_key = notifier_key("delivery", partition, idempotency_key="code-1/sms")
            queue_notice(pipe, code_key, notifier_key("deliveries_due", partition), code_notice, "sms", 0, "", 600)
            pipe.execute()
            before = notice_keys(creditd)
            secret = await agent.post(
                resend_path, data={"notice": "code-1/sms", "reason": "asked", "csrf": await csrf_of(agent, "/")}
            )
            assert secret.status_code == 400 and notice_keys(creditd) == before
            assert "sealed code" not in (await agent.get(card_path)).text
            resent = await agent.post(
                resend_path, data={"notice": name, "reason": "did not get it", "csrf": await csrf_of(agent, "/")}
            )
            assert resent.status_code == 200 and "queued again" in resent.text
            (new_key,) = notice_keys(creditd) - before
            assert b".resend-" in new_key and creditd.redis.hget(new_key, "state") == b"deferred"
            while await notifier.pass_once():
                pass
            assert creditd.redis.hget(new_key, "state") == b"sent"

            # Gifts: at once below the threshold (the balance does not move), else waiting.
            balance = (await creditd.get(ACCOUNT)).balance
            gift_path = f"{card_path}/gift"
            small = await agent.post(
                gift_path, data={"bundle": "sms_50", "reason": "outage", "csrf": await csrf_of(agent, "/")}
            )
            assert small.status_code == 200 and "Gave sms_50" in small.text
            account = await creditd.get(ACCOUNT)
            assert account.balance == balance and any(b.bucket_id.startswith("sms_50") for b in account.buckets)
            large = await agent.post(
                gift_path, data={"bundle": "voice_100min", "reason": "churn risk", "csrf": await csrf_of(agent, "/")}
            )
            assert "waits for a supervisor" in large.text
            unknown = await agent.post(
                gift_path, data={"bundle": "gold_bar", "reason": "x", "csrf": await csrf_of(agent, "/")}
            )
            assert unknown.status_code == 400 and "sms_50" in unknown.text
            assert not any(b.bucket_id.startswith("voice_100min") for b in (await creditd.get(ACCOUNT)).buckets)
            ledger_length = len(await creditd.ledger(ACCOUNT))

            auditor = await stack.enter_async_context(httpx.AsyncClient(base_url=url))
            assert (await sign_in(auditor, "olga", PASSWORD, pyotp.TOTP(olga).now())).status_code == 303
            by_auditor = await auditor.post(
                gift_path, data={"bundle": "sms_50", "reason": "x", "csrf": await csrf_of(auditor, "/")}
            )
            assert by_auditor.status_code == 403 and len(await creditd.ledger(ACCOUNT)) == ledger_length

            # Blacklisting always waits for a second person.
            blacklist = await agent.post(
                f"/subscriber/{ROGUE}/blacklist",
                data={"why": "FRAUD", "reason": "SIM box seen by fraud team", "csrf": await csrf_of(agent, "/")},
            )
            assert blacklist.status_code == 200 and "waits for a supervisor" in blacklist.text
            assert (await creditd.get(ROGUE)).status == pb.ACTIVE

            supervisor = await stack.enter_async_context(httpx.AsyncClient(base_url=url))
            assert (await sign_in(supervisor, "sara", PASSWORD, pyotp.TOTP(sara).now())).status_code == 303
            queue = await supervisor.get("/approvals")
            assert "gift of voice_100min" in queue.text and "blacklisting (FRAUD)" in queue.text
            for approval in store.pending():
                decided = await supervisor.post(
                    f"/approvals/{approval.id}", data={"decision": "approve", "csrf": await csrf_of(supervisor, "/")}
                )
                assert decided.status_code == 200 and "approved" in decided.text
            account = await creditd.get(ACCOUNT)
            assert account.balance == balance and any(b.bucket_id.startswith("voice_100min") for b in account.buckets)
            rogue = await creditd.get(ROGUE)
            assert rogue.status == pb.TERMINATED and rogue.status_reason == "FRAUD"
            page = (await supervisor.get(f"/subscriber/{ROGUE}")).text
            history = page.split('id="status-history"')[1].split("</table>")[0]
            assert "TERMINATED FRAUD" in history and "sara: SIM box seen by fraud team" in history

            # A plan change: to a plan of the account's currency only, with the staff's reason.
            plan_path = f"{card_path}/plan"
            ledger_length = len(await creditd.ledger(ACCOUNT))
            unknown_plan = await agent.post(
                plan_path, data={"plan": "gold", "reason": "x", "csrf": await csrf_of(agent, "/")}
            )
            assert unknown_plan.status_code == 400 and "Plan: one of standard, standard_2027" in unknown_plan.text
            assert len(await creditd.ledger(ACCOUNT)) == ledger_length
            form = {"plan": "standard_2027", "reason": "asked for 2027 prices", "csrf": await csrf_of(agent, "/")}
            moved = await agent.post(plan_path, data=form)
            assert moved.status_code == 200 and "Plan now standard_2027 (from standard)" in moved.text
            assert (await creditd.get(ACCOUNT)).plan == "standard_2027"
            (entry,) = [entry for entry in await creditd.ledger(ACCOUNT) if entry.kind == "plan"]
            assert entry.reference == "operator: standard -> standard_2027"
            ledger = moved.text.split('id="ledger"')[1].split("</table>")[0]
            assert "anna: asked for 2027 prices" in ledger
    actions = [(row.staff, row.action) for row in reversed(store.audit_log())]
    for expected in [
        ("anna", "resend notice"),
        ("anna", "gift"),
        ("anna", "gift requested"),
        ("olga", "refused:gift"),
        ("anna", "blacklist requested"),
        ("sara", "gift approved"),
        ("sara", "blacklist approved"),
        ("anna", "change plan"),
    ]:
        assert expected in actions, expected


def test_a_name_search_stops_at_its_limit_and_says_so(redis_client: AnySyncRedis, settings: Settings) -> None:
    partitions = settings.redis.partitions
    for number in range(3):
        account_id = f"6681999000{number}"
        key = f"cd:{{p:{partition_of(account_id, partitions)}}}:acct:{account_id}"
        redis_client.hset(key, mapping={"contact_name": "Zyx  Wvut"})
    stopped = by_name(redis_client, "nobody", scan_limit=2)
    assert stopped.account_ids == [] and "Looked through 2 accounts and stopped" in stopped.note
    whole = by_name(redis_client, "zyx wvut")
    assert whole.account_ids == [f"6681999000{number}" for number in range(3)] and whole.note == ""
    assert set(whole.names.values()) == {"Zyx  Wvut"}


def test_a_console_file_of_the_first_schema_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "console.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE approvals (id INTEGER PRIMARY KEY AUTOINCREMENT, account_id TEXT NOT NULL, "
        "amount_minor INTEGER NOT NULL, reason TEXT NOT NULL, requested_by TEXT NOT NULL, "
        "requested_ms INTEGER NOT NULL, state TEXT NOT NULL DEFAULT 'pending', decided_by TEXT, decided_ms INTEGER);"
        "CREATE TABLE audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL, staff TEXT NOT NULL, "
        "action TEXT NOT NULL, account_id TEXT NOT NULL, detail TEXT NOT NULL, reason TEXT NOT NULL, "
        "address TEXT NOT NULL);"
        "INSERT INTO approvals (account_id, amount_minor, reason, requested_by, requested_ms) "
        "VALUES ('66800000001', 9000, 'goodwill', 'anna', 1);"
        "INSERT INTO audit (time_ms, staff, action, account_id, detail, reason, address) "
        "VALUES (1, 'anna', 'adjustment requested', '66800000001', '9000 (#1)', 'goodwill', '127.0.0.1');"
    )
    old.close()
    store = StaffStore(path, session_ttl_s=60)
    (waiting,) = store.pending()
    assert (waiting.action, waiting.subject, waiting.amount_minor) == ("adjust", "", 9000)
    (row,) = store.audit_log()
    assert (row.action, row.ledger_seq) == ("adjustment requested", 0)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store._db.execute("DELETE FROM audit")
