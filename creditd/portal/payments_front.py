"""The portal's client of the payments front (`creditd payments serve`, creditd/paygate/) at
[portal] payments_url: it creates PromptPay payment intents and reads them back whole, each request
signed with [payments.promptpay] intent_secret as the front expects (payments/signing.py). At most
MAX_CONNECTIONS requests at once, each within CALL_TIMEOUT_S."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from creditd.config.payments import PaymentSettings
from creditd.errors import ConfigError
from creditd.payments.signing import signature

INTENTS_PATH = "/promptpay/v1/intents"
CALL_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 16


class FrontRefused(Exception):
    """The front refused the request (HTTP 400): field is the one its message names."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


class FrontUnavailable(Exception):
    """The front cannot be reached, is busy, or does not take our signature: for the operators' log."""


class PaymentsFront:
    def __init__(self, url: str, payments: PaymentSettings) -> None:
        self.url = url.rstrip("/")
        self.secret = payments.promptpay.intent_secret
        self.min_amount_minor = payments.promptpay.min_amount_minor
        self.max_amount_minor = payments.promptpay.max_amount_minor
        if not self.secret:
            raise ConfigError("payments.promptpay.intent_secret: needed when portal.payments_url is set")
        limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)
        self.client = httpx.AsyncClient(timeout=CALL_TIMEOUT_S, limits=limits)

    def signed(self, path: str, body: bytes) -> dict[str, str]:
        stamp = str(int(time.time()))
        return {"X-Timestamp": stamp, "X-Signature": signature(self.secret, stamp, path, body)}

    async def create_intent(self, account_id: str, amount_minor: int) -> dict[str, Any]:
        """The new intent (reference, amount_minor, currency, expires_at, payload)."""
        body = json.dumps({"account_id": account_id, "amount_minor": amount_minor}).encode()
        headers = self.signed(INTENTS_PATH, body) | {"Content-Type": "application/json"}
        answer = await self._send("POST", INTENTS_PATH, body, headers)
        if answer.status_code == 400:
            raise FrontRefused(str(answer.json().get("message", "")).split(":", 1)[0])
        if answer.status_code != 201:
            raise FrontUnavailable(f"creating an intent: HTTP {answer.status_code} {answer.text[:200]}")
        document: dict[str, Any] = answer.json()
        return document

    async def intent(self, reference: str) -> dict[str, Any] | None:
        """The intent whole (its account and payload too; state pending, paid or expired), None when
        the front knows no such reference."""
        path = f"{INTENTS_PATH}/{reference}"
        answer = await self._send("GET", path, b"", self.signed(path, b""))
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise FrontUnavailable(f"reading an intent: HTTP {answer.status_code} {answer.text[:200]}")
        document: dict[str, Any] = answer.json()
        return document

    async def _send(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        try:
            return await self.client.request(method, self.url + path, content=body, headers=headers)
        except httpx.HTTPError as error:
            raise FrontUnavailable(f"{method} {path}: {type(error).__name__} {error}") from None
