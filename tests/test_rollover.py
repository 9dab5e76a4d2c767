"""Rollover (lib/lifecycle.lua, a bundle's rollover_percent and rollover_max_cycles) on a real server
and its sweeper, on a frozen clock: a 1 GB bundle with 50 % rollover for two cycles, bought on
10 March 2027 (the account's billing cycles start on the 10th) with 400 MB used, expires on
9 April with 600 MB left; 300 MB roll over into a bucket that expires at the end of the next cycle
(10 May); unused, 150 MB roll over again until 10 June; the third expiry rolls nothing (two cycles
at most). Each step leaves a ledger entry and an event; a bundle without rollover just expires."""

from __future__ import annotations

import msgspec
import pytest

from creditd.config.settings import Settings
from creditd.v1 import creditd_pb2 as pb
from tests.harness import DATA, INITIAL, TERMINATE, ServerAt
from tests.test_rating import utc_ms

pytestmark = pytest.mark.asyncio
ACCOUNT = "66813130001"
MB = 1_000_000


def rollover_settings(settings: Settings) -> Settings:
    plan = settings.plans["standard"]
    bundles = [
        msgspec.structs.replace(b, rollover_percent=50, rollover_max_cycles=2) if b.bundle_id == "data_1gb" else b
        for b in plan.bundles
    ]
    plans = {**settings.plans, "standard": msgspec.structs.replace(plan, bundles=bundles)}
    return msgspec.structs.replace(settings, plans=plans)


def data_buckets(card: pb.Account) -> list[tuple[str, int, int]]:
    return sorted((b.bucket_id, b.remaining, b.expires_at_ms) for b in card.buckets if b.unit == pb.BYTES)


async def test_what_is_left_rolls_over_for_two_cycles(server_at: ServerAt, settings: Settings) -> None:
    async with server_at(utc_ms("2027-03-10T12:00:00"), loaded=rollover_settings(settings)) as creditd:
        await creditd.create_account(ACCOUNT, balance=50_000)
        buy = pb.PurchaseBundleRequest(account_id=ACCOUNT, bundle_id="data_1gb", idempotency_key="buy-1")
        card = await creditd.accounts.PurchaseBundle(buy)
        (bought, _, _), *_ = data_buckets(card)
        await creditd.charge("d1", INITIAL, 0, ACCOUNT, [(DATA, 400 * MB, 0)])
        await creditd.charge("d1", TERMINATE, 1, ACCOUNT, [(DATA, 0, 400 * MB)])

        creditd.clock.advance(31 * 86400)  # 10 April: expired on 9 April at noon
        await creditd.server.sweeper.sweep_once()
        assert data_buckets(await creditd.get(ACCOUNT)) == [(f"{bought}.r1", 300 * MB, utc_ms("2027-05-10T00:00:00"))]
        creditd.clock.advance(31 * 86400)  # 11 May
        await creditd.server.sweeper.sweep_once()
        assert data_buckets(await creditd.get(ACCOUNT)) == [(f"{bought}.r2", 150 * MB, utc_ms("2027-06-10T00:00:00"))]
        creditd.clock.advance(31 * 86400)  # 11 June: two cycles were all
        await creditd.server.sweeper.sweep_once()
        assert data_buckets(await creditd.get(ACCOUNT)) == []

        ledger = [
            (e.kind, e.reference) for e in reversed(await creditd.ledger(ACCOUNT)) if e.kind in ("expiry", "rollover")
        ]
        assert ledger == [
            ("expiry", f"bucket {bought} expired with {600 * MB} left"),
            ("rollover", f"bucket {bought} rolled {300 * MB} over into {bought}.r1"),
            ("expiry", f"bucket {bought}.r1 expired with {300 * MB} left"),
            ("rollover", f"bucket {bought}.r1 rolled {150 * MB} over into {bought}.r2"),
            ("expiry", f"bucket {bought}.r2 expired with {150 * MB} left"),
        ]
        kinds = [kind for kind, _ in creditd.events_of(ACCOUNT)]
        assert kinds.count("bundle_rolled_over") == 2 and kinds.count("bundle_expired") == 3


async def test_a_bundle_without_rollover_just_expires(server_at: ServerAt, settings: Settings) -> None:
    async with server_at(utc_ms("2027-03-10T12:00:00")) as creditd:
        await creditd.create_account(ACCOUNT, balance=50_000)
        buy = pb.PurchaseBundleRequest(account_id=ACCOUNT, bundle_id="data_1gb", idempotency_key="buy-1")
        await creditd.accounts.PurchaseBundle(buy)
        creditd.clock.advance(31 * 86400)
        await creditd.server.sweeper.sweep_once()
        assert data_buckets(await creditd.get(ACCOUNT)) == []
        assert "rollover" not in [e.kind for e in await creditd.ledger(ACCOUNT)]
