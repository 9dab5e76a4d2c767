"""The portal's defences: session and CSRF cookies, CSRF tokens on every form, and a bound on the
sign-in codes one client address may ask for (creditd bounds them per number)."""

from __future__ import annotations

import collections
import hashlib
import hmac
import ipaddress
import secrets
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from creditd.errors import ConfigError

SESSION_COOKIE = "creditd_session"
SEED_COOKIE = "creditd_form"  # before sign-in: what the CSRF token of the sign-in forms is bound to


def csrf_token(secret: bytes, bound_to: str) -> str:
    """A form's token: an HMAC of the session (or, before sign-in, the form seed cookie), so a page of
    another site, which cannot read our cookies, cannot make one."""
    return hmac.new(secret, bound_to.encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: bytes, bound_to: str, given: str) -> bool:
    return bool(bound_to) and hmac.compare_digest(csrf_token(secret, bound_to).encode(), given.encode())


def new_seed() -> str:
    return secrets.token_urlsafe(24)


def is_https(public_url: str) -> bool:
    return public_url.lower().startswith("https://")


def check_public_url(listen: str, public_url: str) -> None:
    """A portal others can reach is served over https (its TLS proxy's), else its cookies would travel
    in clear: ConfigError for a listen address off loopback without an https public_url."""
    host = listen.rsplit(":", 1)[0].strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not is_https(public_url):
        raise ConfigError(f"portal.public_url: an https:// address is needed to listen on {listen}")


def security_headers(public_url: str) -> list[tuple[bytes, bytes]]:
    """Sent with every answer: no script at all, no framing, no type sniffing, no referrer, nothing
    kept in a cache (every page is a subscriber's own); HSTS when served over https. Styles are
    inline (one <style> and bar widths), so style-src allows them; nothing else is loaded."""
    headers = [
        (
            b"content-security-policy",
            b"default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
            b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"cache-control", b"no-store"),
    ]
    if is_https(public_url):
        headers.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
    return headers


class SecurityHeaders:
    """ASGI middleware adding security_headers to every HTTP answer (the router's 404s included)."""

    def __init__(self, app: ASGIApp, public_url: str) -> None:
        self.app, self.headers = app, security_headers(public_url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in self.headers}
                kept = [(name, value) for name, value in message.get("headers", []) if name.lower() not in names]
                message = {**message, "headers": kept + self.headers}
            await send(message)

        await self.app(scope, receive, with_headers)


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
