"""Test helpers: gRPC stubs on a real channel, request builders, Redis dumps and the auditor."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager

import grpc
import msgspec
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from creditd.api.server import CreditdServer
from creditd.clock import Clock
from creditd.config.settings import Settings
from creditd.core.audit import Auditor, AuditReport
from creditd.core.charging import Charging
from creditd.store.account_codec import BUCKETS_POSITION, POSITIONS, STORED_COUNT
from creditd.store.account_record import stored_buckets
from creditd.store.calls import Calls
from creditd.store.connection import AnySyncRedis, connect_sync
from creditd.store.keys import Keys
from creditd.store.library import render_library
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc

INITIAL, UPDATE, TERMINATE, EVENT = (
    pb.ChargeRequest.INITIAL,
    pb.ChargeRequest.UPDATE,
    pb.ChargeRequest.TERMINATE,
    pb.ChargeRequest.EVENT,
)
DATA, VOICE, SMS, VOICE_IN = 1, 2, 3, 4
MB = 1_000_000
# The sample plan prices calls and SMS by destination: a Thai number unless a test says otherwise.
THAI_NUMBER = "66812345678"
DAY_MS = 86_400_000
# 10:00 in Bangkok: the sample plan's day tariffs hold for the next twelve hours.
DAYTIME_UTC_MS = 3 * 3_600_000


def daytime_clock() -> Clock:
    """A clock moved forward to the next 10:00 Bangkok time (then running at real speed), so that a
    test's prices do not depend on the hour the suite runs (the night tariff starts at 22:00)."""
    real_ms = time.time_ns() // 1_000_000
    target_ms = real_ms - real_ms % DAY_MS + DAYTIME_UTC_MS
    if target_ms < real_ms:
        target_ms += DAY_MS
    return Clock(target_ms - real_ms)


class FrozenClock(Clock):
    """A clock that moves only when told: a test that compares prices by time band against a model
    must not race the real clock across a band edge."""

    def __init__(self, now_ms: int) -> None:
        super().__init__(now_ms)

    def now_ms(self) -> int:
        return self.offset_ms


def charge_request(
    session_id: str,
    kind: int,
    number: int,
    account_id: str,
    units: list[tuple[int, int, int]],
    gateway_id: str = "gw1",
    called_party: str = THAI_NUMBER,
    visited_plmn: str = "",
) -> pb.ChargeRequest:
    """units: (rating_group, requested, used) per item."""
    return pb.ChargeRequest(
        session_id=session_id,
        request_type=kind,
        request_number=number,
        account_id=account_id,
        gateway_id=gateway_id,
        units=[pb.UnitRequest(rating_group=rg, requested=requested, used=used) for rg, requested, used in units],
        called_party=called_party,
        visited_plmn=visited_plmn,
    )


def as_older_array(stored: list[object], buckets: dict[str, object]) -> list[object]:
    """An account array (creditd/store/account_codec.py) in the form the version before wrote: the
    buckets first, a map of bucket id to its values after the id (or their text), then the fields."""
    fields = stored[BUCKETS_POSITION:STORED_COUNT]
    return [buckets or False, *fields]


def tamper_account(client: redis.Redis, key: str, buckets: dict[str, str] | None = None, **fields: int | str) -> None:
    """Overwrites fields (and bucket texts) of a packed account (lua/lib/account.lua) as a corruption
    would: what the auditor and the functions must notice or refuse. Bucket texts are written as an
    older version did, in the array with the buckets first (both forms are read)."""
    stored = msgspec.msgpack.decode(client.get(key))
    assert isinstance(stored, list), "an account is stored as an array (creditd/store/account_codec.py)"
    if buckets:
        stored = as_older_array(stored, stored_buckets(stored) | buckets)
    for name, value in fields.items():
        stored[POSITIONS[name] - 1] = value
    client.set(key, msgspec.msgpack.encode(stored))


def dump(client: redis.Redis) -> dict[bytes, bytes | None]:
    """Every key's serialized value: equal dumps mean Redis is unchanged (TTLs aside)."""
    return {key: client.dump(key) for key in sorted(client.scan_iter(count=1000))}


class Harness:
    def __init__(self, server: CreditdServer, client: redis.Redis, settings: Settings) -> None:
        self.server = server
        self.redis = client
        self.settings = settings
        self.clock = server.clock
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        self.credit_control = pb_grpc.CreditControlStub(self.channel)
        self.accounts = pb_grpc.AccountsStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()

    async def create_account(self, account_id: str, balance: int = 0, **fields: object) -> pb.Account:
        request = pb.CreateAccountRequest(account_id=account_id, plan="standard", initial_balance=balance, **fields)
        return await self.accounts.CreateAccount(request)

    async def get(self, account_id: str) -> pb.Account:
        return await self.accounts.GetAccount(pb.GetAccountRequest(account_id=account_id))

    async def top_up(self, account_id: str, amount: int, key: str, channel: str = "bank") -> pb.TopUpAnswer:
        return await self.accounts.TopUp(
            pb.TopUpRequest(account_id=account_id, amount=amount, channel=channel, idempotency_key=key)
        )

    async def charge(
        self,
        session_id: str,
        kind: int,
        number: int,
        account_id: str,
        units: list[tuple[int, int, int]],
        gateway_id: str = "gw1",
        called_party: str = THAI_NUMBER,
        visited_plmn: str = "",
    ) -> pb.ChargeAnswer:
        return await self.credit_control.Charge(
            charge_request(session_id, kind, number, account_id, units, gateway_id, called_party, visited_plmn)
        )

    async def ledger(self, account_id: str, limit: int = 100) -> list[pb.LedgerEntry]:
        answer = await self.accounts.ListLedger(pb.ListLedgerRequest(account_id=account_id, limit=limit))
        return list(answer.entries)

    def events_of(self, account_id: str) -> list[tuple[str, str]]:
        """(kind, detail) of the account's events in its partition's outbox, oldest first."""
        entries = self.redis.xrange(self.server_keys().events(account_id))
        return [
            (fields[b"kind"].decode(), fields.get(b"detail", b"").decode())
            for _, fields in entries
            if fields[b"account_id"].decode() == account_id and b"gateway_id" not in fields
        ]

    def server_charging(self) -> Charging:
        """A Charging sharing the server's partitions and clock, to build the exact calls the server makes."""
        return Charging(Calls(self.settings.redis.partitions), self.server.functions, self.clock)

    def server_calls(self) -> Calls:
        return Calls(self.settings.redis.partitions)

    def server_keys(self) -> Keys:
        return Keys(self.settings.redis.partitions)

    def audit(self, now_ms: int | None = None, grace_period_s: int = 0) -> AuditReport:
        return Auditor(self.redis, self.settings.redis.partitions).run(now_ms, grace_period_s)

    def assert_audit_clean(self) -> AuditReport:
        report = self.audit()
        assert report.violations == [], report.violations
        return report


@contextlib.asynccontextmanager
async def started_server(
    settings: Settings, redis_url: str, client: redis.Redis, clock: Clock | None = None
) -> AsyncIterator[Harness]:
    """A server with settings (and a clock) of the test's own (the creditd fixture has the shared ones)."""
    server = CreditdServer(settings, redis_url, "127.0.0.1:0", clock or daytime_clock())
    await server.start()
    harness = Harness(server, client, settings)
    try:
        yield harness
    finally:
        await harness.close()
        await server.stop(0)


@contextlib.contextmanager
def library_client(url: str, settings: Settings) -> Iterator[AnySyncRedis]:
    """A client of the Redis at url, emptied and with the settings' function library loaded."""
    client = connect_sync(url, settings.redis)
    client.flushall()
    client.function_load(render_library(settings), replace=True)
    try:
        yield client
    finally:
        client.close()


async def watch_health(harness: Harness, seen: list[tuple[float, int]], stopping: asyncio.Event) -> None:
    """Records (monotonic time, overall health status) every 50 ms until stopping is set."""
    stub = health_pb2_grpc.HealthStub(harness.channel)
    while not stopping.is_set():
        status = (await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5.0)).status
        seen.append((time.monotonic(), status))
        await asyncio.sleep(0.05)


async def refused_while_full(creditd: Harness, account_id: str, timeout_s: float = 5.0) -> grpc.aio.AioRpcError:
    """The refusal of a GetAccount, asked again until the server counts the streams opened just
    before (an RPC is counted when its handler starts, a moment after the client sent it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            await creditd.get(account_id)
        except grpc.aio.AioRpcError as error:
            return error
        await asyncio.sleep(0.02)
    raise AssertionError(f"GetAccount still served after {timeout_s:g} s with two streams open on a server of two")


# The server_at fixture (conftest.py): a server on a frozen clock at an instant, with settings of the
# test's choosing.
ServerAt = Callable[..., AbstractAsyncContextManager[Harness]]
