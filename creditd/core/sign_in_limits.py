"""Sign-in rate limits kept in Redis, so every server process (and so every portal process behind
them) counts against the same budgets: per client address, sign-in codes asked and failed sign-ins;
for all addresses together, the same two (a distributed guess at codes meets the global budget of
failures). Per number, issue_sign_in_code bounds the codes and sign_in the tries of each code.

Counters are fixed windows of limits.sign_in_window_s: a string per (kind, address, window) that
expires with its window, created with SET NX PX before INCR so that none is ever left without an
expiry. An address is counted only while the global budget of its kind holds, so at most that many
counters exist per window: memory stays bounded whatever the number of addresses. An IPv6 address is
counted by its /64 (one subscriber's network); an IPv4-mapped one as the IPv4 address.
"""

from __future__ import annotations

import ipaddress

from creditd.clock import Clock
from creditd.config.limits import Limits
from creditd.store.connection import AnyRedis
from creditd.store.keys import KEY_PATTERNS

ALL = "*"


def address_bucket(address: str) -> str:
    """What one client is counted as: an IPv4 address, an IPv6 /64, or 'unknown'."""
    try:
        parsed = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return "unknown"
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


class SignInLimits:
    def __init__(self, client: AnyRedis, limits: Limits, clock: Clock) -> None:
        self.client, self.limits, self.clock = client, limits, clock
        self.window_ms = limits.sign_in_window_s * 1000

    def _key(self, kind: str, subject: str) -> str:
        window = self.clock.now_ms() // self.window_ms
        return KEY_PATTERNS["limit"].format(idempotency_key=f"{kind}:{subject}:{window}")

    async def _within(self, kind: str, address: str, per_address: int, overall: int) -> bool:
        pipe = self.client.pipeline(transaction=False)  # two slots: no MGET on a cluster
        pipe.get(self._key(kind, ALL))
        pipe.get(self._key(kind, address_bucket(address)))
        everyone, this_address = await pipe.execute()
        return int(everyone or 0) < overall and int(this_address or 0) < per_address

    async def _count(self, kind: str, address: str) -> None:
        pipe = self.client.pipeline(transaction=False)
        for key in (self._key(kind, ALL), self._key(kind, address_bucket(address))):
            pipe.set(key, 0, nx=True, px=self.window_ms)
            pipe.incr(key)
        await pipe.execute()

    async def take_code(self, address: str) -> bool:
        """True, and counted, when address may ask one more sign-in code now."""
        limits = self.limits
        if not await self._within("code", address, limits.sign_in_codes_per_address, limits.sign_in_codes_global):
            return False
        await self._count("code", address)
        return True

    async def may_try(self, address: str) -> bool:
        """Whether address may try a code now (its failures and everyone's within budget)."""
        limits = self.limits
        return await self._within("failed", address, limits.failed_sign_ins_per_address, limits.failed_sign_ins_global)

    async def count_failure(self, address: str) -> None:
        await self._count("failed", address)
