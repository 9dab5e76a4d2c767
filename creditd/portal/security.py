"""The portal's defences: session and CSRF cookies, CSRF tokens on every form, and a bound on the
sign-in codes one client address may ask for (creditd bounds them per number)."""

from __future__ import annotations

import collections
import hashlib
import hmac
import ipaddress
import secrets
import time

SESSION_COOKIE = "creditd_session"
SEED_COOKIE = "creditd_form"  # before sign-in: what the CSRF token of the sign-in forms is bound to
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def csrf_token(secret: bytes, bound_to: str) -> str:
    """A form's token: an HMAC of the session (or, before sign-in, the form seed cookie), so a page of
    another site, which cannot read our cookies, cannot make one."""
    return hmac.new(secret, bound_to.encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: bytes, bound_to: str, given: str) -> bool:
    return bool(bound_to) and hmac.compare_digest(csrf_token(secret, bound_to).encode(), given.encode())


def new_seed() -> str:
    return secrets.token_urlsafe(24)


def secure_cookies(host: str) -> bool:
    """Secure cookies everywhere but on loopback (a development portal over plain HTTP)."""
    name = host.rsplit(":", 1)[0].strip("[]") if host.count(":") <= 1 or host.startswith("[") else host
    if name in LOOPBACK_HOSTS:
        return False
    try:
        return not ipaddress.ip_address(name).is_loopback
    except ValueError:
        return True


class AddressLimiter:
    """At most `limit` sign-in codes per client address per window, in this process."""

    def __init__(self, limit: int, window_s: float, max_addresses: int = 100_000) -> None:
        self.limit, self.window_s, self.max_addresses = limit, window_s, max_addresses
        self._asked: dict[str, collections.deque[float]] = {}

    def allow(self, address: str) -> bool:
        now = time.monotonic()
        asked = self._asked.setdefault(address, collections.deque())
        while asked and asked[0] <= now - self.window_s:
            asked.popleft()
        if len(asked) >= self.limit:
            return False
        asked.append(now)
        if len(self._asked) > self.max_addresses:  # forget the idle ones rather than grow without bound
            self._asked = {a: q for a, q in self._asked.items() if q and q[-1] > now - self.window_s}
        return True
