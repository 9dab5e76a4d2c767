"""PromptPay over HTTP: POST /promptpay/v1/intents (the portal, signed with promptpay.intent_secret)
creates a payment intent; GET /promptpay/v1/intents/<reference> tells its state (pending, paid,
expired), and, to a request signed with promptpay.intent_secret (the portal's, showing the
subscriber their QR and whether it is paid), also its account and payload; GET
/promptpay/v1/intents/<reference>/qr.svg is its Thai QR as SVG (segno); POST /promptpay/v1/webhook
takes the provider's confirmation (signed with promptpay.webhook_secret). The webhook answers 200
for applied or replayed, 409 for a refusal (unknown reference, expired, amount mismatch, already
paid), 400 for a malformed body, 401 for a bad signature; each recorded."""

from __future__ import annotations

import io
import re
import time

import segno
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from creditd import contract
from creditd.errors import Unavailable
from creditd.paygate.http import json_answer, json_object, read_body
from creditd.payments import counters
from creditd.payments.agents import BadRequest, check_account_id, check_amount, format_time
from creditd.payments.promptpay import Intent, PromptPay, WebhookOutcome, outcome_document
from creditd.payments.signing import signature_problem

PROVIDER_TRANSACTION = contract.ID.regex()
REFERENCE_TEXT = re.compile(r"^[A-Z0-9]{1,20}$")


def intent_document(intent: Intent, payload: str = "") -> dict[str, object]:
    document: dict[str, object] = {
        "reference": intent.reference,
        "state": intent.state,
        "amount_minor": intent.amount_minor,
        "currency": intent.currency,
        "expires_at": format_time(intent.expires_at_ms),
        "qr_svg": f"/promptpay/v1/intents/{intent.reference}/qr.svg",
    }
    if intent.paid_at_ms:
        document["paid_at"] = format_time(intent.paid_at_ms)
    if payload:
        document["account_id"] = intent.account_id
        document["payload"] = payload
    return document


def qr_svg(payload: str) -> bytes:
    out = io.BytesIO()
    segno.make(payload, error="m", micro=False).save(out, kind="svg", scale=6, border=4, title="PromptPay")
    return out.getvalue()


def _signature_problem(request: Request, secret: str, body: bytes, tolerance_s: int) -> str:
    if not secret:
        return "X-Signature: no secret is configured here"
    timestamp, given = request.headers.get("x-timestamp", ""), request.headers.get("x-signature", "")
    return signature_problem(secret, timestamp, given, request.url.path, body, time.time(), tolerance_s)


def promptpay_routes(promptpay: PromptPay) -> list[Route]:
    settings = promptpay.settings
    tolerance_s = settings.signature_tolerance_s

    async def create(request: Request) -> Response:
        try:
            body = await read_body(request, settings.max_body_bytes)
            problem = _signature_problem(
                request, settings.promptpay.intent_secret, body, settings.signature_tolerance_s
            )
            if problem:
                counters.REQUESTS.labels("intent", "unauthorised").inc()
                return json_answer({"message": problem}, 401)
            fields = json_object(body, frozenset({"account_id", "amount_minor"}))
            intent = await promptpay.create_intent(
                check_account_id(fields.get("account_id")), check_amount(fields.get("amount_minor"))
            )
        except BadRequest as error:
            counters.REQUESTS.labels("intent", "bad_request").inc()
            return json_answer({"message": error.message}, 400)
        except Unavailable:
            counters.REQUESTS.labels("intent", "temporary_error").inc()
            return json_answer({"message": "temporarily unavailable: retry"}, 503)
        counters.REQUESTS.labels("intent", "ok").inc()
        return json_answer(intent_document(intent, promptpay.payload(intent)), 201)

    async def show(request: Request) -> Response:
        signed = "x-signature" in request.headers
        if signed:
            problem = _signature_problem(request, settings.promptpay.intent_secret, b"", tolerance_s)
            if problem:
                return json_answer({"message": problem}, 401)
        intent = await promptpay.intent(request.path_params["reference"])
        if intent is None:
            return json_answer({"message": "reference: unknown"}, 404)
        document = intent_document(intent, promptpay.payload(intent) if signed else "")
        if intent.state == "pending" and promptpay.money.clock.now_ms() > intent.expires_at_ms:
            document["state"] = "expired"  # the webhook refuses it from now on
        return json_answer(document)

    async def qr(request: Request) -> Response:
        intent = await promptpay.intent(request.path_params["reference"])
        if intent is None:
            return json_answer({"message": "reference: unknown"}, 404)
        return Response(qr_svg(promptpay.payload(intent)), media_type="image/svg+xml")

    async def webhook(request: Request) -> Response:
        try:
            body = await read_body(request, settings.max_body_bytes)
        except BadRequest as error:
            await promptpay.record(WebhookOutcome(outcome="bad_request", message=error.message))
            return json_answer({"outcome": "bad_request", "message": error.message}, 400)
        problem = _signature_problem(request, settings.promptpay.webhook_secret, body, tolerance_s)
        if problem:
            await promptpay.record(WebhookOutcome(outcome="bad_signature", message=problem))
            return json_answer({"outcome": "bad_signature", "message": problem}, 401)
        try:
            fields = json_object(body, frozenset({"transaction_id", "reference", "amount_minor"}))
            transaction_id, reference = fields.get("transaction_id"), fields.get("reference")
            if not isinstance(transaction_id, str) or not PROVIDER_TRANSACTION.fullmatch(transaction_id):
                raise BadRequest("transaction_id: 1 to 64 of A-Z a-z 0-9 . _ : -")
            if not isinstance(reference, str) or not REFERENCE_TEXT.match(reference):
                raise BadRequest("reference: 1 to 20 of A-Z 0-9")
            amount_minor = check_amount(fields.get("amount_minor"))
        except BadRequest as error:
            await promptpay.record(WebhookOutcome(outcome="bad_request", message=error.message))
            return json_answer({"outcome": "bad_request", "message": error.message}, 400)
        try:
            outcome = await promptpay.confirm(transaction_id, reference, amount_minor)
        except Unavailable:
            return json_answer({"outcome": "temporary_error", "message": "temporarily unavailable: retry"}, 503)
        return json_answer(outcome_document(outcome), 200 if outcome.accepted else 409)

    return [
        Route("/promptpay/v1/intents", create, methods=["POST"]),
        Route("/promptpay/v1/intents/{reference}", show, methods=["GET"]),
        Route("/promptpay/v1/intents/{reference}/qr.svg", qr, methods=["GET"]),
        Route("/promptpay/v1/webhook", webhook, methods=["POST"]),
    ]
