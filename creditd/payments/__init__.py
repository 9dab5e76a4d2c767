"""Payments: money that reaches creditd from payment agents and terminals (agents.py), their daily
registries (reconcile.py), bank statements (statements.py) and PromptPay QR (promptpay.py). Every
payment is applied by the idempotent top_up under a key derived from its external reference, so a
repeat, a retry or a re-import never credits twice; what it is and what became of it is kept in
Redis beside the accounts. No HTTP here: the front for terminals and webhooks is creditd/paygate/."""
