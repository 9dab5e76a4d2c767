"""The payments' metrics (creditd_payments_*), in creditd's registry: fixed small label sets, never
an account, agent or reference."""

from __future__ import annotations

from prometheus_client import Counter

from creditd.metrics import REGISTRY

# operation: check, pay, cancel, intent, webhook; outcome: a result name (payments.agents.Result,
# lower case), or unauthorised, bad_request, temporary_error.
REQUESTS = Counter(
    "creditd_payments_requests",
    "Requests to the payments front by operation and outcome",
    ["operation", "outcome"],
    registry=REGISTRY,
)
# channel: agent, promptpay, bank. Repeats answered from records are not counted.
APPLIED = Counter(
    "creditd_payments_applied", "Payments applied (top-ups made) by channel", ["channel"], registry=REGISTRY
)
APPLIED_AMOUNT = Counter(
    "creditd_payments_applied_amount_minor",
    "Money applied by payments, minor units, by channel",
    ["channel"],
    registry=REGISTRY,
)
INTENTS = Counter("creditd_payments_intents_created", "PromptPay payment intents created", registry=REGISTRY)
# outcome: applied, replayed, bad_signature, bad_request, unknown_reference, expired, amount_mismatch,
# already_paid.
WEBHOOKS = Counter(
    "creditd_payments_webhooks", "PromptPay webhook deliveries by outcome", ["outcome"], registry=REGISTRY
)
# outcome: applied, duplicate, unmatched.
STATEMENT_ENTRIES = Counter(
    "creditd_payments_statement_entries",
    "Bank statement credits imported by outcome",
    ["outcome"],
    registry=REGISTRY,
)
