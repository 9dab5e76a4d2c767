"""The portal's defences: session and CSRF cookies (Secure when the public URL is https), CSRF tokens on
every form, security headers on every answer, and the visitor's address (forwarded headers believed
from trusted proxies only), which creditd's sign-in limits and call budgets count by."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets

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
    """Sent with every answer: no script (but the PromptPay page's own, promptpay_pages.PAGE_POLICY),
    no framing, no type sniffing, no referrer, nothing kept in a cache (every page is a subscriber's
    own); HSTS when served over https. Styles are inline (one <style> and bar widths), so style-src
    allows them; nothing else is loaded."""
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
                own = message.get("headers", [])
                # A page that set its own policy keeps it (the PromptPay page runs our script); the
                # rest of what the app set in our headers' names is replaced.
                keep = {b"content-security-policy"} & {name.lower() for name, _ in own}
                added = [(name, value) for name, value in self.headers if name not in keep]
                names = {name for name, _ in added}
                kept = [(name, value) for name, value in own if name.lower() not in names]
                message = {**message, "headers": kept + added}
            await send(message)

        await self.app(scope, receive, with_headers)


def trusted_networks(proxies: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return [ipaddress.ip_network(proxy, strict=False) for proxy in proxies]
    except ValueError as error:
        raise ConfigError(f"portal.trusted_proxies: {error}") from None


def client_address(peer: str, forwarded_for: str, trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> str:
    """The visitor's address: the peer's, unless the peer is a trusted proxy; then the last address
    of X-Forwarded-For that is not a trusted proxy (what is left of it was written by the visitor,
    who may write anything there)."""

    def is_trusted(address: str) -> bool:
        try:
            parsed = ipaddress.ip_address(address.strip().strip("[]"))
        except ValueError:
            return False
        return any(parsed in network for network in trusted)

    if not is_trusted(peer):
        return peer
    for hop in reversed([hop.strip() for hop in forwarded_for.split(",") if hop.strip()]):
        if not is_trusted(hop):
            return hop[:64]
    return peer
