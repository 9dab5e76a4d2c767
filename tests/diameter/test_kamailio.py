"""Interop with clients nobody here wrote: kamailio 5.6 (ims_charging) as the IMS S-CSCF asking creditd over
Diameter Ro, SIPp placing the calls (configs in interop/, rendered with free ports). Proves, with the
balance, ledger and usage records read back over gRPC afterwards:
- a call on a funded line is allowed and billed exactly for its length by the sample plan's tariff
  (100 satang per started minute to a Thai number);
- a call on a line that cannot pay one minute is refused with SIP 402 and nothing is charged;
- a call that outlives its balance is ended by kamailio at the end of its final grant (9 s: one block
  of a plan that sells calls by the 10 s, less the 1 s final-grant margin; the sample plan's minute
  would hold the suite a minute for the same proof) with every second reported, and the account is
  left within its credit limit (0): kamailio splits the last block into a CCR-U and a CCR-T, and the
  core charges whole blocks of a session's use, not of each report.
Skipped, loudly, only when kamailio, its IMS modules or SIPp are not installed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import pytest

from creditd.config.settings import Settings
from creditd.diameter.codec import Message
from creditd.diameter.dictionary import Code
from creditd.diameter.server import DiameterServer
from creditd.v1 import creditd_pb2 as pb
from tests.diameter.conftest import DiameterAt
from tests.diameter.kamailio import Kamailio, missing, running_kamailio
from tests.harness import THAI_NUMBER, Harness

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.slow,
    pytest.mark.skipif(bool(missing()), reason=f"KAMAILIO INTEROP NOT RUN: {missing()}"),
]
# kamailio's caller (P-Asserted-Identity sip:+491701234567@test.local) as creditd maps it.
CALLER = "491701234567"
KAMAILIO_HOST = "scscf.test.local"
# The sample plan with calls sold by the 10 s instead of the minute, at the same price a block.
TEN_SECOND_PLAN = "standard_ten_second_blocks"
BLOCK_S = 10

Exchange = list[tuple[Message, Message]]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared settings and TEN_SECOND_PLAN."""
    standard = settings.plans["standard"]
    tariffs = [
        msgspec.structs.replace(tariff, block_size=BLOCK_S) if tariff.unit == "SECONDS" else tariff
        for tariff in standard.tariffs
    ]
    plans = {**settings.plans, TEN_SECOND_PLAN: msgspec.structs.replace(standard, tariffs=tariffs)}
    return msgspec.structs.replace(settings, plans=plans)


def _recording(front: DiameterServer) -> Exchange:
    """Every CCR the front answers, with its answer (the handler is taken before kamailio connects)."""
    seen: Exchange = []
    handler: Callable[[Message, str], Awaitable[Message]] = front.credit_control

    async def recorded(request: Message, gateway_id: str) -> Message:
        answer = await handler(request, gateway_id)
        seen.append((request, answer))
        return answer

    front.credit_control = recorded  # type: ignore[method-assign]
    return seen


async def _wait_for_peer(front: DiameterServer) -> None:
    deadline = time.monotonic() + 20
    while not any(connection.peer_host == KAMAILIO_HOST for connection in front.connections):
        assert time.monotonic() < deadline, "kamailio's cdp did not connect (CER) within 20 s"
        await asyncio.sleep(0.1)


def _used_seconds(exchange: Exchange) -> int:
    total = 0
    for request, _ in exchange:
        for mscc in request.all(Code.MULTIPLE_SERVICES_CREDIT_CONTROL):
            for usage in mscc.children(Code.USED_SERVICE_UNIT):
                time_avp = usage.child(Code.CC_TIME)
                total += time_avp.value if time_avp and isinstance(time_avp.value, int) else 0
    return total


def grants_of(answer: Message) -> list[int]:
    found = []
    for mscc in answer.all(Code.MULTIPLE_SERVICES_CREDIT_CONTROL):
        gsu = mscc.child(Code.GRANTED_SERVICE_UNIT)
        amount = gsu.child(Code.CC_TIME) if gsu else None
        if amount is not None and isinstance(amount.value, int):
            found.append(amount.value)
    return found


def _kinds(exchange: Exchange) -> list[int]:
    kinds = []
    for request, _ in exchange:
        kind = request.first(Code.CC_REQUEST_TYPE)
        kinds.append(kind.value if kind and isinstance(kind.value, int) else 0)
    return kinds


async def _call(
    creditd: Harness, diameter_at: DiameterAt, tmp_path: Path, scenario: str, duration_ms: int, timeout_s: float
) -> tuple[int, str, Exchange]:
    async with diameter_at(origin_host="localhost", origin_realm="test.local") as front:
        exchange = _recording(front)
        async with running_kamailio(tmp_path, front.port) as kamailio:
            await _wait_for_peer(front)
            call = await kamailio.call(scenario, THAI_NUMBER, duration_ms, timeout_s)
            await _wait_for_terminate(exchange, kamailio)
    return call.returncode, call.output, exchange


def _describe(exchange: Exchange) -> str:
    lines = []
    for request, answer in exchange:
        lines.append(f"{request.avps}\n -> {answer.avps}")
    return "\n".join(lines)


async def _wait_for_terminate(exchange: Exchange, kamailio: Kamailio) -> None:
    deadline = time.monotonic() + 15
    while 3 not in _kinds(exchange):
        if time.monotonic() > deadline:
            raise AssertionError(f"no CCR-T within 15 s: {_kinds(exchange)}; log {kamailio.log}")
        await asyncio.sleep(0.1)


async def test_a_call_on_a_funded_line_is_billed_for_its_length(
    creditd: Harness, diameter_at: DiameterAt, tmp_path: Path
) -> None:
    await creditd.create_account(CALLER, balance=10_000)
    returncode, output, exchange = await _call(creditd, diameter_at, tmp_path, "uac_ro.xml", 14_000, 60)
    assert returncode == 0, output
    kinds = _kinds(exchange)
    assert kinds[0] == 1 and kinds[-1] == 3, kinds
    used_s = _used_seconds(exchange)
    assert 14 <= used_s <= 16, used_s
    account = await creditd.get(CALLER)
    assert (account.balance, account.reserved) == (10_000 - 100, 0)  # one started minute
    usage = [entry for entry in await creditd.ledger(CALLER) if entry.amount < 0]
    assert sum(entry.amount for entry in usage) == -100


async def test_a_call_on_an_empty_line_is_refused_402(
    creditd: Harness, diameter_at: DiameterAt, tmp_path: Path
) -> None:
    await creditd.create_account(CALLER, balance=50)
    ledger = await creditd.ledger(CALLER)
    returncode, output, exchange = await _call(creditd, diameter_at, tmp_path, "uac_ro.xml", 5_000, 60)
    assert "402" in output or returncode != 0, output
    first_answer = exchange[0][1].first(Code.RESULT_CODE)
    assert first_answer is not None and first_answer.value == 4012
    account = await creditd.get(CALLER)
    assert (account.balance, account.reserved) == (50, 0)
    assert await creditd.ledger(CALLER) == ledger


async def test_a_call_outliving_its_balance_is_ended_within_the_credit_limit(
    creditd: Harness, diameter_at: DiameterAt, tmp_path: Path
) -> None:
    one_block = pb.CreateAccountRequest(account_id=CALLER, plan=TEN_SECOND_PLAN, initial_balance=100)
    await creditd.accounts.CreateAccount(one_block)
    started = time.monotonic()
    returncode, output, exchange = await _call(creditd, diameter_at, tmp_path, "uac_ro_ended.xml", 300_000, 150)
    lasted_s = time.monotonic() - started
    assert returncode == 0, output  # the caller got kamailio's BYE
    assert lasted_s < 60, lasted_s
    used_s = _used_seconds(exchange)
    assert BLOCK_S - 2 <= used_s <= BLOCK_S, used_s  # 9 s granted; kamailio may report one more
    final = grants_of(exchange[0][1])
    assert final == [BLOCK_S - 1], final  # the block 100 satang pays, less the 1 s margin
    account = await creditd.get(CALLER)
    assert account.reserved == 0
    # kamailio reports the final grant in two parts (a CCR-U timer_buffer, 5 s, before its end, then
    # the rest in the CCR-T): the core charges whole blocks of the session's use, so the rest falls in
    # the block already paid and the line ends within its credit limit (0).
    assert _kinds(exchange) == [1, 2, 3], _describe(exchange)
    assert account.balance == 0, _describe(exchange)
