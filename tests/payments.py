"""Helpers of the payments tests: settings with agents, the payments front served by uvicorn on a
free loopback port in the test's event loop (stopped on exit), signed requests to it (agents,
PromptPay intents and webhook deliveries), a config file and the CLI for the commands, camt.053/054
statements written from entries, and the top-ups an account's ledger holds."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec
from click.testing import CliRunner

from creditd.cli.main import main
from creditd.clock import Clock
from creditd.config.payments import AgentSettings, PaymentSettings, PromptPaySettings
from creditd.config.settings import Settings
from creditd.devtools.ports import free_port
from creditd.paygate.app import server_of
from creditd.paygate.signing import signature
from creditd.resources import default_config_path
from creditd.store.connection import connect
from tests.harness import Harness

AGENT, SECRET = "shop1", "shop1-secret-0123456789"
OTHER_AGENT, OTHER_SECRET = "kiosk2", "kiosk2-secret-0123456789"
WEBHOOK_SECRET = "provider-secret-0123456789"
INTENT_SECRET = "portal-intent-secret-0123456789"
# The account the bank statements written by camt() name in their remittance information.
STATEMENT_ACCOUNT = "66833330001"


def payment_settings(settings: Settings, **options: object) -> Settings:
    """The suite's settings with two agents (shop1: 100..50 000 a payment, 100 000 a day) and a
    PromptPay webhook secret."""
    agents = {
        AGENT: AgentSettings(secret=SECRET, min_amount_minor=100, max_amount_minor=50_000, daily_limit_minor=100_000),
        OTHER_AGENT: AgentSettings(secret=OTHER_SECRET),
    }
    payments = PaymentSettings(
        agents=agents,
        promptpay=PromptPaySettings(webhook_secret=WEBHOOK_SECRET, intent_secret=INTENT_SECRET),
        **options,
    )  # type: ignore[arg-type]
    return msgspec.structs.replace(settings, payments=payments)


@contextlib.asynccontextmanager
async def running_front(harness: Harness, settings: Settings, clock: Clock | None = None) -> AsyncIterator[str]:
    """The payments front on its own Redis client, as `creditd payments serve` runs it."""
    client = connect(harness.server.redis_url, settings.redis)
    port = free_port()
    server = server_of(settings, client, port, clock or harness.clock)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "the payments front did not start"
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        await client.aclose()


def signed_headers(agent: str, secret: str, path: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "X-Agent-Id": agent,
        "X-Timestamp": stamp,
        "X-Signature": signature(secret, stamp, path, body),
        "Content-Type": "application/json",
    }


async def post_signed(
    url: str, path: str, document: object, agent: str = AGENT, secret: str = SECRET
) -> tuple[int, dict[str, object]]:
    body = json.dumps(document).encode()
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.post(url + path, content=body, headers=signed_headers(agent, secret, path, body))
    return answer.status_code, answer.json()


def rfc3339(time_ms: int) -> str:
    return datetime.fromtimestamp(time_ms / 1000, UTC).isoformat()


async def top_ups(harness: Harness, account_id: str) -> list[tuple[int, str]]:
    """(amount, reference) of the account's top-up ledger entries, oldest first."""
    return [
        (entry.amount, entry.reference) for entry in reversed(await harness.ledger(account_id)) if entry.kind == "topup"
    ]


def config_file(directory: Path, extra: str = "") -> Path:
    """The shipped config with the agents of payment_settings (and extra TOML), for the CLI."""
    path = directory / "creditd.toml"
    agents = (
        f'\n[payments.agents.{AGENT}]\nsecret = "{SECRET}"\nmin_amount_minor = 100\nmax_amount_minor = 50000\n'
        f'daily_limit_minor = 100000\n[payments.agents.{OTHER_AGENT}]\nsecret = "{OTHER_SECRET}"\n'
    )
    path.write_text(default_config_path().read_text() + agents + extra)
    return path


async def run_cli(*args: str) -> tuple[int, str]:
    """`creditd <args>` through click in a thread of its own (the command runs its own event loop):
    exit status and output."""

    def run() -> tuple[int, str]:
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        return result.exit_code, result.output

    return await asyncio.to_thread(run)


@dataclass
class Entry:
    reference: str
    amount: str
    remittance: str = f"Top-up TOPUP-{STATEMENT_ACCOUNT} thanks"
    currency: str = "THB"
    indicator: str = "CRDT"
    status: str = "BOOK"


def camt(entries: list[Entry], kind: str = "053") -> bytes:
    group, container = ("BkToCstmrStmt", "Stmt") if kind == "053" else ("BkToCstmrDbtCdtNtfctn", "Ntfctn")
    body = "".join(
        f"""
      <Ntry>
        <Amt Ccy="{entry.currency}">{entry.amount}</Amt>
        <CdtDbtInd>{entry.indicator}</CdtDbtInd>
        <Sts><Cd>{entry.status}</Cd></Sts>
        <BookgDt><Dt>2026-12-03</Dt></BookgDt>
        <ValDt><Dt>2026-12-03</Dt></ValDt>
        <AcctSvcrRef>{entry.reference}</AcctSvcrRef>
        <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>DMCT</SubFmlyCd></Fmly></Domn></BkTxCd>
        <NtryDtls><TxDtls>
          <Refs><EndToEndId>E2E-{entry.reference}</EndToEndId></Refs>
          <RmtInf><Ustrd>{entry.remittance}</Ustrd></RmtInf>
        </TxDtls></NtryDtls>
      </Ntry>"""
        for entry in entries
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.{kind}.001.08">
  <{group}>
    <GrpHdr><MsgId>MSG-1</MsgId><CreDtTm>2026-12-03T18:00:00+07:00</CreDtTm></GrpHdr>
    <{container}>
      <Id>STMT-1</Id>
      <CreDtTm>2026-12-03T18:00:00+07:00</CreDtTm>
      <Acct><Id><IBAN>TH0000000000000000000001</IBAN></Id><Ccy>THB</Ccy></Acct>{body}
    </{container}>
  </{group}>
</Document>
""".encode()


def signed_request(secret: str, path: str, document: object) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(document).encode()
    stamp = str(int(time.time()))
    headers = {"X-Timestamp": stamp, "X-Signature": signature(secret, stamp, path, body)}
    return body, headers | {"Content-Type": "application/json"}


async def create_intent(url: str, amount: int, account_id: str) -> httpx.Response:
    path = "/promptpay/v1/intents"
    body, headers = signed_request(INTENT_SECRET, path, {"account_id": account_id, "amount_minor": amount})
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(url + path, content=body, headers=headers)


async def deliver(client: httpx.AsyncClient, url: str, document: dict[str, object]) -> httpx.Response:
    path = "/promptpay/v1/webhook"
    body, headers = signed_request(WEBHOOK_SECRET, path, document)
    return await client.post(url + path, content=body, headers=headers)
