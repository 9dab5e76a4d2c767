"""The [payments] table of the configuration (creditd/settings.py reads it): the payments front
(`creditd payments serve`), its agents (terminal networks, agent shops) with their secrets and
limits, PromptPay QR payments and bank statement imports."""

from __future__ import annotations

import re
import zoneinfo
from typing import Annotated

import msgspec

from creditd.config.types import Struct
from creditd.errors import ConfigError

# An agent id: it goes into the top-ups' idempotency key '<agent_id>:<transaction_id>' (64 at most).
AGENT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,16}$"
Money = Annotated[int, msgspec.Meta(ge=1, le=10**15)]
Secret = Annotated[str, msgspec.Meta(min_length=16, max_length=256)]


class AgentSettings(Struct, frozen=True):
    """One payment agent (a terminal network, an agent shop): signs its requests with its secret."""

    secret: Secret
    min_amount_minor: Money = 100
    max_amount_minor: Money = 1_000_000
    # What the agent may take in one day (its time zone: payments.time_zone), cancelled payments given back.
    daily_limit_minor: Money = 10_000_000


class PromptPaySettings(Struct, frozen=True):
    """PromptPay QR bill payments: the operator's biller id, and the provider's webhook."""

    # The biller id PromptPay knows the operator by: tax id (13 digits) and suffix (2 digits).
    biller_id: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{15}$")] = "010753600031508"
    merchant_name: Annotated[str, msgspec.Meta(pattern=r"^[ -~]{1,25}$")] = "CREDITD"
    merchant_city: Annotated[str, msgspec.Meta(pattern=r"^[ -~]{1,15}$")] = "BANGKOK"
    # Signs the provider's confirmations (payments front's signing scheme); empty: the webhook refuses all.
    webhook_secret: Annotated[str, msgspec.Meta(max_length=256)] = ""
    # Signs the portal's requests for a new intent; empty: intents cannot be created.
    intent_secret: Annotated[str, msgspec.Meta(max_length=256)] = ""
    intent_validity_s: Annotated[int, msgspec.Meta(ge=60, le=86400)] = 900
    min_amount_minor: Money = 100
    max_amount_minor: Money = 5_000_000
    # Payment intents and webhook outcomes kept this long (and listed by `creditd payments list`).
    retention_s: Annotated[int, msgspec.Meta(ge=86400, le=366 * 86400)] = 90 * 86400
    # Webhook outcomes kept in the log, newest first.
    max_outcomes: Annotated[int, msgspec.Meta(ge=100, le=1_000_000)] = 10_000


class BankSettings(Struct, frozen=True):
    """Bank statements (camt.053 / camt.054): a credit names its account by the reference prefix
    followed by the account id in its remittance information ('TOPUP-66812345678')."""

    reference_prefix: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9]{1,16}-$")] = "TOPUP-"
    max_file_bytes: Annotated[int, msgspec.Meta(ge=1024, le=512 * 1024 * 1024)] = 50 * 1024 * 1024
    max_entries: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 100_000
    # Unmatched credits waiting in the queue for `creditd payments assign`, at most.
    max_unmatched: Annotated[int, msgspec.Meta(ge=10, le=1_000_000)] = 100_000
    retention_s: Annotated[int, msgspec.Meta(ge=86400, le=366 * 86400)] = 366 * 86400


class PaymentSettings(Struct, frozen=True):
    listen: str = "127.0.0.1:8090"
    # The currency payments arrive in; an account whose plan has another cannot be paid here.
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")] = "THB"
    # Where an agent's day starts and ends (daily limits, registries).
    time_zone: Annotated[str, msgspec.Meta(max_length=64)] = "Asia/Bangkok"
    # A signed request whose timestamp is further than this from ours is refused (replays).
    signature_tolerance_s: Annotated[int, msgspec.Meta(ge=5, le=3600)] = 300
    # A payment whose time is older than this is refused by `pay` (reconcile applies older ones).
    max_payment_age_s: Annotated[int, msgspec.Meta(ge=60, le=7 * 86400)] = 2 * 86400
    # A payment can be cancelled this long after it was applied, and only while its money is unspent.
    cancel_window_s: Annotated[int, msgspec.Meta(ge=0, le=7 * 86400)] = 900
    # An agent's day book (its transactions, for repeats and reconciliation) is kept this long.
    agent_retention_s: Annotated[int, msgspec.Meta(ge=86400, le=366 * 86400)] = 120 * 86400
    max_body_bytes: Annotated[int, msgspec.Meta(ge=256, le=1_000_000)] = 16_384
    # Requests the front works on at once (the others wait); at most redis.max_connections, since
    # each holds one connection at a time and a Cluster client refuses past its pool.
    max_in_flight: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 8
    agents: Annotated[dict[str, AgentSettings], msgspec.Meta(max_length=10_000)] = msgspec.field(default_factory=dict)
    promptpay: PromptPaySettings = PromptPaySettings()
    bank: BankSettings = BankSettings()


def check_payments(payments: PaymentSettings, max_amount_minor: int, key_retention_s: int) -> None:
    """What the table's types cannot say: agent ids, bounds in order, a time zone that exists, a
    cancel window within which top_up's keys are remembered (a cancel retried is known by its key)."""
    if payments.cancel_window_s > key_retention_s:
        raise ConfigError("payments.cancel_window_s: must not exceed limits.topup_key_retention_s")
    try:
        zoneinfo.ZoneInfo(payments.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"payments.time_zone: unknown time zone {payments.time_zone!r}") from None
    bounded = {f"payments.agents.{agent_id}": agent for agent_id, agent in payments.agents.items()}
    bounded["payments.promptpay"] = payments.promptpay  # type: ignore[assignment]
    for agent_id in payments.agents:
        if not re.match(AGENT_ID_PATTERN, agent_id):
            raise ConfigError(f"payments.agents.{agent_id}: an agent id is 1 to 16 of A-Z a-z 0-9 _ -")
    for where, table in bounded.items():
        if table.min_amount_minor > table.max_amount_minor:
            raise ConfigError(f"{where}.min_amount_minor: must not exceed max_amount_minor")
        if table.max_amount_minor > max_amount_minor:
            raise ConfigError(f"{where}.max_amount_minor: must not exceed limits.max_amount_minor")


def check_agent_tables(document: dict[str, object], source: str) -> None:
    """Each [payments.agents.<id>] table on its own, so that an error names the agent (msgspec's
    path does not name a dict's key)."""
    payments = document.get("payments")
    agents = payments.get("agents") if isinstance(payments, dict) else None
    if not isinstance(agents, dict):
        return
    for agent_id, table in agents.items():
        try:
            msgspec.convert(table, AgentSettings)
        except msgspec.ValidationError as error:
            raise ConfigError(f"{source}: payments.agents.{agent_id}: {error}") from None
