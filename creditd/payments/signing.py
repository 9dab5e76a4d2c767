"""Request signatures: HMAC-SHA256 over '<timestamp>.<path>.<body>' with the signer's secret, hex, in
X-Signature; X-Timestamp is Unix seconds and must be within payments.signature_tolerance_s of ours,
so a captured request cannot be replayed later (and pay, cancel and the webhook are idempotent
anyway)."""

from __future__ import annotations

import hashlib
import hmac


def signature(secret: str, timestamp: str, path: str, body: bytes) -> str:
    message = timestamp.encode() + b"." + path.encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_problem(
    secret: str, timestamp: str, given: str, path: str, body: bytes, now_s: float, tolerance_s: int
) -> str:
    """'' when the signature holds; else what is wrong, naming the header."""
    if not timestamp.isdigit() or len(timestamp) > 12:
        return "X-Timestamp: Unix seconds"
    if abs(now_s - int(timestamp)) > tolerance_s:
        return f"X-Timestamp: more than {tolerance_s} s from the server's clock"
    if not hmac.compare_digest(signature(secret, timestamp, path, body), given.lower()):
        return "X-Signature: does not match the body"
    return ""
