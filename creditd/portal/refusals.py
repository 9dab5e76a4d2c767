"""creditd's refusals told in the subscriber's words: each refusal's details name the field it is
about first ('code: this voucher has been used'); the field, and for a few the reason, choose the
words.py key of a sentence the subscriber understands. The details themselves are for operators
(logged by app.py), never shown."""

from __future__ import annotations

import grpc

# (field, words in the details) -> words.py key; the first match wins, '' matches any details.
BY_FIELD: tuple[tuple[str, str, str], ...] = (
    ("code", "has been used", "voucher_used"),
    ("code", "has expired", "voucher_expired"),
    ("code", "", "voucher_refused"),
    ("bundle_id", "costs", "not_enough_money"),
    ("bundle_id", "already has", "bundle_owned"),
    ("bundle_id", "", "no_such_bundle"),
    ("account_id", "only an ACTIVE account", "only_active"),
    ("account_id", "cannot borrow", "credit_refused"),
    ("offer_id", "", "credit_refused"),
    ("account_id", "", "account_refused"),
    ("language", "", "bad_request"),
    ("channels", "", "bad_request"),
    ("quiet_hours_start", "", "bad_request"),
    ("quiet_hours_end", "", "bad_request"),
)


def refusal(code: grpc.StatusCode, details: str) -> str:
    """The words.py key that tells this refusal."""
    field, _, reason = details.partition(":")
    for known_field, words, key in BY_FIELD:
        if field == known_field and words in reason:
            return key
    return "not_found" if code == grpc.StatusCode.NOT_FOUND else "refused"
