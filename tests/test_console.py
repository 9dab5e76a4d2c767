"""The care console over HTTP: httpx against the real application served by uvicorn on a loopback
port, talking gRPC to a real creditd server, with its SQLite file in the test's directory. Staff sign
in with password and TOTP (a wrong code, a wrong password and a replayed code are refused alike and
audited); a number typed as people say it finds the subscriber; the card page shows the balance and
the ledger; an agent's adjustment below the threshold moves the money at once (the ledger names the
agent and the reason), one above it waits and moves nothing until a supervisor other than the
requester approves it, once; a self-approval and an agent's approval are refused and move nothing; a
form without its CSRF token is refused 403 and moves nothing; an expired session leads back to
sign-in; the audit log records every step and refuses to be edited."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pyotp
import pytest
import uvicorn

from creditd.console.actions import UsageSource
from creditd.console.app import ConsoleSettings, create_app
from creditd.console.staff import StaffStore
from creditd.devtools.ports import free_port
from creditd.v1 import creditd_pb2 as pb
from tests.harness import INITIAL, TERMINATE, VOICE, Harness

ACCOUNT = "66812345678"
CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')
PASSWORD = "correct horse battery"
THRESHOLD = 5_000


@contextlib.asynccontextmanager
async def running_console(creditd: Harness, store: StaffStore) -> AsyncIterator[str]:
    settings = ConsoleSettings(
        server=f"127.0.0.1:{creditd.server.port}", csrf_secret="test-secret", approval_threshold_minor=THRESHOLD
    )
    channel = grpc.aio.insecure_channel(settings.server)
    port = free_port()
    usage = UsageSource(creditd.redis, creditd.settings.redis.partitions, creditd.settings.plans)
    app = create_app(settings, channel, store, usage)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "the console did not start"
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        await channel.close()


async def sign_in(browser: httpx.AsyncClient, name: str, password: str, code: str) -> httpx.Response:
    page = await browser.get("/sign-in")
    token = CSRF.findall(page.text)[0]
    return await browser.post("/sign-in", data={"name": name, "password": password, "code": code, "csrf": token})


async def csrf_of(browser: httpx.AsyncClient, path: str) -> str:
    return CSRF.findall((await browser.get(path)).text)[0]


@pytest.fixture
def store(tmp_path: Path) -> StaffStore:
    return StaffStore(tmp_path / "console.sqlite3", session_ttl_s=1800)


@pytest.mark.asyncio
async def test_sign_in_search_adjust_and_four_eyes(creditd: Harness, store: StaffStore) -> None:
    await creditd.create_account(ACCOUNT, balance=10_000, contact={"name": "Somchai"})
    secrets_of = {
        "anna": store.add("anna", "agent", PASSWORD),
        "sara": store.add("sara", "supervisor", PASSWORD),
        "tom": store.add("tom", "supervisor", PASSWORD),
    }
    async with running_console(creditd, store) as url, contextlib.AsyncExitStack() as stack:
        agent = await stack.enter_async_context(httpx.AsyncClient(base_url=url))
        assert (await agent.get("/")).headers["location"] == "/sign-in"
        refused = await sign_in(agent, "anna", PASSWORD, "000000")
        assert refused.status_code == 401 and "wrong" in refused.text
        refused = await sign_in(agent, "anna", "not the password", pyotp.TOTP(secrets_of["anna"]).now())
        assert refused.status_code == 401
        code = pyotp.TOTP(secrets_of["anna"]).now()
        signed = await sign_in(agent, "anna", PASSWORD, code)
        assert signed.status_code == 303 and signed.headers["location"] == "/"
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
        replayed = await sign_in(httpx.AsyncClient(base_url=url), "anna", PASSWORD, code)
        assert replayed.status_code == 401, "a TOTP code is good once"

        found = await agent.get("/", params={"q": "081-234 5678"})
        assert found.status_code == 303 and found.headers["location"] == f"/subscriber/{ACCOUNT}"
        assert (await agent.get("/", params={"q": "+66 89 000 0000"})).status_code == 404
        card = await agent.get(f"/subscriber/{ACCOUNT}")
        assert card.status_code == 200 and "Somchai" in card.text and "10000" in card.text

        path = f"/subscriber/{ACCOUNT}/adjust"
        no_csrf = await agent.post(path, data={"amount": "-100", "reason": "no token"})
        assert no_csrf.status_code == 403
        small = await agent.post(
            path, data={"amount": "-300", "reason": "double charge", "csrf": await csrf_of(agent, "/")}
        )
        assert small.status_code == 200 and "balance 9700" in small.text
        entry = (await creditd.ledger(ACCOUNT))[0]
        assert entry.amount == -300 and entry.reference.endswith("anna: double charge")
        large = await agent.post(path, data={"amount": "7000", "reason": "goodwill", "csrf": await csrf_of(agent, "/")})
        assert large.status_code == 200 and "waits for a supervisor" in large.text
        assert (await creditd.get(ACCOUNT)).balance == 9_700
        assert (await agent.get("/approvals")).status_code == 403
        (request_id,) = [approval.id for approval in store.pending(ACCOUNT)]
        agent_approves = await agent.post(
            f"/approvals/{request_id}", data={"decision": "approve", "csrf": await csrf_of(agent, "/")}
        )
        assert agent_approves.status_code == 403 and (await creditd.get(ACCOUNT)).balance == 9_700

        sara = await stack.enter_async_context(httpx.AsyncClient(base_url=url))
        assert (await sign_in(sara, "sara", PASSWORD, pyotp.TOTP(secrets_of["sara"]).now())).status_code == 303
        own = await sara.post(
            f"/subscriber/{ACCOUNT}/adjust",
            data={"amount": "-6000", "reason": "fraud refund", "csrf": await csrf_of(sara, "/")},
        )
        assert "waits for a supervisor" in own.text
        own_id = max(approval.id for approval in store.pending(ACCOUNT))
        self_approval = await sara.post(
            f"/approvals/{own_id}", data={"decision": "approve", "csrf": await csrf_of(sara, "/")}
        )
        assert self_approval.status_code == 409 and "four eyes" in self_approval.text
        assert (await creditd.get(ACCOUNT)).balance == 9_700
        approved = await sara.post(
            f"/approvals/{request_id}", data={"decision": "approve", "csrf": await csrf_of(sara, "/approvals")}
        )
        assert approved.status_code == 200 and "adjustment approved" in approved.text
        assert (await creditd.get(ACCOUNT)).balance == 16_700
        entry = (await creditd.ledger(ACCOUNT))[0]
        assert entry.amount == 7_000 and entry.reference.endswith("anna+sara: goodwill")
        again = await sara.post(
            f"/approvals/{request_id}", data={"decision": "approve", "csrf": await csrf_of(sara, "/approvals")}
        )
        assert again.status_code == 409 and (await creditd.get(ACCOUNT)).balance == 16_700

        tom = await stack.enter_async_context(httpx.AsyncClient(base_url=url))
        assert (await sign_in(tom, "tom", PASSWORD, pyotp.TOTP(secrets_of["tom"]).now())).status_code == 303
        refused_own = await tom.post(
            f"/approvals/{own_id}", data={"decision": "refuse", "csrf": await csrf_of(tom, "/approvals")}
        )
        assert refused_own.status_code == 200 and "adjustment refused" in refused_own.text
        assert (await creditd.get(ACCOUNT)).balance == 16_700 and store.pending() == []

        log = await tom.get("/audit")
        assert log.status_code == 200
        actions = [(row.staff, row.action) for row in reversed(store.audit_log())]
        assert ("anna", "sign-in refused") in actions and ("anna", "adjustment") in actions
        assert ("anna", "adjustment requested") in actions and ("anna", "refused:approve") in actions
        assert ("sara", "approval refused") in actions and ("sara", "adjustment approved") in actions
        assert ("tom", "adjustment refused") in actions
        assert all(row.address == "127.0.0.1" for row in store.audit_log())
        assert "adjustment approved" in log.text


@pytest.mark.asyncio
async def test_an_expired_session_signs_out_and_the_audit_log_cannot_be_edited(
    creditd: Harness, tmp_path: Path
) -> None:
    store = StaffStore(tmp_path / "console.sqlite3", session_ttl_s=1)
    secret = store.add("anna", "agent", PASSWORD)
    async with running_console(creditd, store) as url, httpx.AsyncClient(base_url=url) as agent:
        assert (await sign_in(agent, "anna", PASSWORD, pyotp.TOTP(secret).now())).status_code == 303
        assert (await agent.get("/")).status_code == 200
        await asyncio.sleep(1.1)
        assert (await agent.get("/")).headers["location"] == "/sign-in"
    database = sqlite3.connect(tmp_path / "console.sqlite3")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        database.execute("UPDATE audit SET staff = 'nobody'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        database.execute("DELETE FROM audit")
    assert [row.action for row in store.audit_log()] == ["sign-in"]


@pytest.mark.asyncio
async def test_a_sign_in_leaves_the_console_serving_and_a_code_is_good_once(store: StaffStore) -> None:
    """argon2 runs in a thread: a task waiting on the event loop runs before the sign-in ends (it
    could not while the hash held the loop). Two sign-ins with one code at once: argon2 overlaps
    them, and still only one is let in."""
    secret = store.add("anna", "agent", PASSWORD)
    totp, order = pyotp.TOTP(secret), []
    if time.time() % 30 > 28:  # the codes below are read once, within one 30 s step
        await asyncio.sleep(30 - time.time() % 30 + 0.1)
    step_start = int(time.time()) // 30 * 30

    async def sign_in_once() -> None:
        await store.check_sign_in("anna", PASSWORD, totp.at(step_start - 30))  # the step before, for drift
        order.append("signed in")

    async def waiting_task() -> None:
        await asyncio.sleep(0)
        order.append("other task")

    await asyncio.gather(sign_in_once(), waiting_task())
    assert order == ["other task", "signed in"]
    code = totp.at(step_start)
    both = await asyncio.gather(*(store.check_sign_in("anna", PASSWORD, code) for _ in range(2)))
    assert sorted(both, key=str) == [None, ("anna", "agent")], both


def test_serve_takes_a_client_certificate_with_its_key_only(tmp_path: Path) -> None:
    certificate = tmp_path / "care.pem"
    certificate.write_text("not read: refused first")
    command = [sys.executable, "-m", "creditd", "console", "serve", "--tls-cert", str(certificate)]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert refused.returncode == 2 and "--tls-cert and --tls-key go together" in refused.stderr


def test_staff_records_are_checked() -> None:
    store = StaffStore(Path(":memory:"), session_ttl_s=60)
    for name, role, password, message in [
        ("Anna", "agent", PASSWORD, "name:"),
        ("anna", "boss", PASSWORD, "role:"),
        ("anna", "agent", "short", "password:"),
    ]:
        with pytest.raises(Exception, match=message):
            store.add(name, role, password)
    store.add("anna", "agent", PASSWORD)
    with pytest.raises(Exception, match="exists already"):
        store.add("anna", "auditor", PASSWORD)


def test_add_staff_prints_the_totp_secret_once(tmp_path: Path) -> None:
    database = tmp_path / "console.sqlite3"
    command = [sys.executable, "-m", "creditd", "console", "add-staff", "anna", "--role", "agent"]
    added = subprocess.run(
        [*command, "--database", str(database), "--password", PASSWORD], capture_output=True, text=True, timeout=30
    )
    assert added.returncode == 0, added.stderr
    secret = re.findall(r"TOTP secret ([A-Z2-7]+)", added.stdout)[0]
    assert f"otpauth://totp/creditd%20console:anna?secret={secret}" in added.stdout
    store = StaffStore(database, session_ttl_s=60)
    assert asyncio.run(store.check_sign_in("anna", PASSWORD, pyotp.TOTP(secret).now())) == ("anna", "agent")
    again = subprocess.run(
        [*command, "--database", str(database), "--password", PASSWORD], capture_output=True, text=True, timeout=30
    )
    assert again.returncode == 1 and "name: anna exists already" in again.stderr


@pytest.mark.asyncio
async def test_the_card_explains_each_charge(creditd: Harness, store: StaffStore) -> None:
    await creditd.create_account(ACCOUNT, balance=10_000)
    await creditd.create_account("66800000002", balance=10_000)  # another subscriber's calls are not shown
    await creditd.charge("call-1", INITIAL, 0, ACCOUNT, [(VOICE, 0, 0)])
    await creditd.charge("call-1", TERMINATE, 1, ACCOUNT, [(VOICE, 0, 90)])
    await creditd.charge("call-2", INITIAL, 0, "66800000002", [(VOICE, 0, 0)])
    await creditd.charge("call-2", TERMINATE, 1, "66800000002", [(VOICE, 0, 30)])
    secret = store.add("anna", "auditor", PASSWORD)
    async with running_console(creditd, store) as url, httpx.AsyncClient(base_url=url) as auditor:
        assert (await sign_in(auditor, "anna", PASSWORD, pyotp.TOTP(secret).now())).status_code == 303
        card = await auditor.get(f"/subscriber/{ACCOUNT}")
        assert card.status_code == 200 and 'id="usage"' in card.text
        why = re.findall(r"<td>(90 SECONDS \(destination [^<]*)</td>", card.text)
        assert len(why) == 1, card.text
        assert "tariff voice_out charges 100 per started block of 60 SECONDS" in why[0]
        assert "90 paid SECONDS = 2 block(s) = 200" in why[0] and "charged 200 (" not in why[0]
        assert "gw1 call-1 1" in card.text and "call-2" not in card.text
        assert 'id="adjust"' not in card.text, "an auditor has no actions"


@pytest.mark.asyncio
async def test_suspend_and_resume_need_a_reason_and_a_role(creditd: Harness, store: StaffStore) -> None:
    await creditd.create_account(ACCOUNT, balance=1_000)
    agent_secret, auditor_secret = store.add("anna", "agent", PASSWORD), store.add("olga", "auditor", PASSWORD)
    async with running_console(creditd, store) as url, contextlib.AsyncExitStack() as stack:
        agent = await stack.enter_async_context(httpx.AsyncClient(base_url=url))
        auditor = await stack.enter_async_context(httpx.AsyncClient(base_url=url))
        assert (await sign_in(agent, "anna", PASSWORD, pyotp.TOTP(agent_secret).now())).status_code == 303
        assert (await sign_in(auditor, "olga", PASSWORD, pyotp.TOTP(auditor_secret).now())).status_code == 303
        path = f"/subscriber/{ACCOUNT}/status"
        no_reason = await agent.post(path, data={"action": "suspend", "reason": " ", "csrf": await csrf_of(agent, "/")})
        assert no_reason.status_code == 400 and "Reason: required" in no_reason.text
        by_auditor = await auditor.post(
            path, data={"action": "suspend", "reason": "looks odd", "csrf": await csrf_of(auditor, "/")}
        )
        assert by_auditor.status_code == 403
        assert (await creditd.get(ACCOUNT)).status == pb.ACTIVE
        suspended = await agent.post(
            path, data={"action": "suspend-fraud", "reason": "SIM box", "csrf": await csrf_of(agent, "/")}
        )
        assert suspended.status_code == 200 and "Status now TWO_WAY_SUSPENDED (FRAUD)" in suspended.text
        assert (await creditd.get(ACCOUNT)).status == pb.TWO_WAY_SUSPENDED
        resumed = await agent.post(
            path, data={"action": "resume", "reason": "cleared", "csrf": await csrf_of(agent, "/")}
        )
        assert resumed.status_code == 200 and (await creditd.get(ACCOUNT)).status == pb.ACTIVE
    rows = [(row.staff, row.action, row.reason) for row in reversed(store.audit_log())]
    assert ("anna", "suspend-fraud", "SIM box") in rows and ("anna", "resume", "cleared") in rows
    assert ("olga", "refused:status", "") in rows


@pytest.mark.asyncio
async def test_five_wrong_sign_ins_lock_the_name_for_a_while(creditd: Harness, store: StaffStore) -> None:
    secret = store.add("anna", "agent", PASSWORD)
    async with running_console(creditd, store) as url, httpx.AsyncClient(base_url=url) as browser:
        for _ in range(5):
            assert (await sign_in(browser, "anna", "wrong password!", pyotp.TOTP(secret).now())).status_code == 401
        locked = await sign_in(browser, "anna", PASSWORD, pyotp.TOTP(secret).now())
        assert locked.status_code == 429 and "Too many wrong attempts" in locked.text
        assert (await browser.get("/")).headers["location"] == "/sign-in"
    actions = [row.action for row in reversed(store.audit_log())]
    assert actions == ["sign-in refused"] * 5 + ["sign-in locked"]
