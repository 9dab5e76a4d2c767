"""The agents' API: POST /agent/v1/check, /agent/v1/pay, /agent/v1/cancel, each signed with the
agent's secret (payments/signing.py); the answers carry a stable result code (payments.agents.Result) and,
for pay and cancel, the receipt. HTTP 200 for every business answer (refusals included), 400 for a
malformed request (its message names the field; nothing applied), 401 for an unknown agent or a bad
signature, 503 when Redis cannot be reached (retry: pay and cancel are idempotent)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from creditd.errors import Unavailable
from creditd.paygate.http import json_answer, json_object, read_body
from creditd.payments import counters
from creditd.payments.agents import (
    Agents,
    Answer,
    BadRequest,
    Payment,
    Result,
    check_account_id,
    check_amount,
    check_transaction_id,
    format_time,
    parse_time_ms,
)
from creditd.payments.signing import signature_problem

log = logging.getLogger(__name__)
Handler = Callable[[Agents, str, dict[str, Any]], Awaitable[Answer]]


def answer_document(answer: Answer) -> dict[str, Any]:
    document: dict[str, Any] = {"result": int(answer.result), "result_name": Result(answer.result).name}
    if answer.message:
        document["message"] = answer.message
    if answer.min_amount_minor is not None:
        document["min_amount_minor"] = answer.min_amount_minor
        document["max_amount_minor"] = answer.max_amount_minor
    if answer.receipt is not None:
        receipt = answer.receipt
        document["receipt"] = {
            "receipt_id": f"{receipt.agent_id}/{receipt.transaction_id}",
            "agent_id": receipt.agent_id,
            "transaction_id": receipt.transaction_id,
            "account_id": receipt.account_id,
            "amount_minor": receipt.amount_minor,
            "currency": receipt.currency,
            "time": format_time(receipt.paid_at_ms),
            "state": receipt.state,
            "ledger_seq": receipt.ledger_seq,
            "recorded_at": format_time(receipt.recorded_at_ms),
        }
    return document


async def check(agents: Agents, agent_id: str, fields: dict[str, Any]) -> Answer:
    account_id = check_account_id(fields.get("account_id"))
    amount = fields.get("amount_minor")
    return await agents.check(agent_id, account_id, None if amount is None else check_amount(amount))


async def pay(agents: Agents, agent_id: str, fields: dict[str, Any]) -> Answer:
    payment = Payment(
        transaction_id=check_transaction_id(fields.get("transaction_id")),
        account_id=check_account_id(fields.get("account_id")),
        amount_minor=check_amount(fields.get("amount_minor")),
        paid_at_ms=parse_time_ms(fields.get("time")),
    )
    try:
        agents.check_payment_time(payment.paid_at_ms)
    except BadRequest:
        # a repeat of a payment made (a retry after a long outage) still gets its answer
        known = await agents.entry(agent_id, payment.transaction_id, payment.paid_at_ms)
        if known is None or (known.account_id, known.amount) != (payment.account_id, payment.amount_minor):
            raise
    return await agents.pay(agent_id, payment)


async def cancel(agents: Agents, agent_id: str, fields: dict[str, Any]) -> Answer:
    transaction_id = check_transaction_id(fields.get("transaction_id"))
    return await agents.cancel(agent_id, transaction_id, parse_time_ms(fields.get("time")))


FIELDS = {
    "check": frozenset({"account_id", "amount_minor"}),
    "pay": frozenset({"transaction_id", "account_id", "amount_minor", "time"}),
    "cancel": frozenset({"transaction_id", "time"}),
}


def endpoint(agents: Agents, operation: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    settings = agents.settings

    async def run(request: Request) -> Response:
        try:
            body = await read_body(request, settings.max_body_bytes)
            agent_id = request.headers.get("x-agent-id", "")
            agent = settings.agents.get(agent_id)
            if agent is None:
                counters.REQUESTS.labels(operation, "unauthorised").inc()
                return json_answer({"result": Result.BAD_REQUEST, "message": "X-Agent-Id: unknown agent"}, 401)
            problem = signature_problem(
                agent.secret,
                request.headers.get("x-timestamp", ""),
                request.headers.get("x-signature", ""),
                request.url.path,
                body,
                time.time(),
                settings.signature_tolerance_s,
            )
            if problem:
                counters.REQUESTS.labels(operation, "unauthorised").inc()
                return json_answer({"result": Result.BAD_REQUEST, "message": problem}, 401)
            answer = await handler(agents, agent_id, json_object(body, FIELDS[operation]))
        except BadRequest as error:
            counters.REQUESTS.labels(operation, "bad_request").inc()
            return json_answer({"result": Result.BAD_REQUEST, "message": error.message}, 400)
        except Unavailable as error:
            log.warning("agent %s: redis unavailable: %s", operation, error.message)
            counters.REQUESTS.labels(operation, "temporary_error").inc()
            return json_answer({"result": Result.TEMPORARY_ERROR, "message": "temporarily unavailable: retry"}, 503)
        counters.REQUESTS.labels(operation, Result(answer.result).name.lower()).inc()
        return json_answer(answer_document(answer))

    return run


def agent_routes(agents: Agents) -> list[Route]:
    handlers: dict[str, Handler] = {"check": check, "pay": pay, "cancel": cancel}
    return [
        Route(f"/agent/v1/{operation}", endpoint(agents, operation, handler), methods=["POST"])
        for operation, handler in handlers.items()
    ]
