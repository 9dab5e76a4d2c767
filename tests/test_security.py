"""Mutual TLS and roles over real TLS connections: every role against every RPC (allowed ones are not
refused for permission; the others get PERMISSION_DENIED before Redis is touched), a client with a
certificate mapped to no role, a stranger whose certificate another CA signed, and a client without
a certificate are refused. Plaintext off loopback is refused at start-up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import msgspec
import pytest
import pytest_asyncio
import redis.cluster

from creditd.api.auth import ALL_METHODS, METHODS_OF_ROLE
from creditd.api.server import CreditdServer
from creditd.client_channel import open_channel
from creditd.config.settings import Settings
from creditd.errors import ConfigError
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc
from tests.certificates import ROLES, Pki, make_pki
from tests.harness import INITIAL, VOICE, charge_request, daytime_clock, dump

pytestmark = pytest.mark.asyncio
ACCOUNT = "66817170000"


def secure_settings(settings: Settings, pki: Pki) -> Settings:
    cert, key, ca = pki.server_paths()
    security = msgspec.structs.replace(
        settings.security, tls_cert_path=str(cert), tls_key_path=str(key), tls_client_ca_path=str(ca), roles=ROLES
    )
    limits = msgspec.structs.replace(
        settings.limits, max_in_flight_per_client=2, accounts_calls_per_client_s=5, accounts_burst_per_client=30
    )
    return msgspec.structs.replace(settings, security=security, limits=limits)


@pytest_asyncio.fixture
async def secure_server(tmp_path: Path, redis_server, redis_client, settings: Settings) -> AsyncIterator[tuple]:
    pki = make_pki(tmp_path)
    server = CreditdServer(secure_settings(settings, pki), redis_server.url, "127.0.0.1:0", daytime_clock())
    await server.start()
    try:
        yield server, pki
    finally:
        await server.stop(0)


def channel_for(server: CreditdServer, pki: Pki, client: str | None) -> grpc.aio.Channel:
    pair = pki.clients.get(client) if client else None
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.certificate,
        private_key=pair.key if pair else None,
        certificate_chain=pair.certificate if pair else None,
    )
    return grpc.aio.secure_channel(f"localhost:{server.port}", credentials)


CALLS = {
    "Charge": lambda cc, ac, ss: cc.Charge(charge_request("sec-1", INITIAL, 0, ACCOUNT, [(VOICE, 0, 0)])),
    "ChargeBatch": lambda cc, ac, ss: cc.ChargeBatch(pb.ChargeBatchRequest()),
    "CreateAccount": lambda cc, ac, ss: ac.CreateAccount(
        pb.CreateAccountRequest(account_id="66817179999", plan="standard")
    ),
    "GetAccount": lambda cc, ac, ss: ac.GetAccount(pb.GetAccountRequest(account_id=ACCOUNT)),
    "TopUp": lambda cc, ac, ss: ac.TopUp(
        pb.TopUpRequest(account_id=ACCOUNT, amount=5, channel="bank", idempotency_key="s1")
    ),
    "PurchaseBundle": lambda cc, ac, ss: ac.PurchaseBundle(pb.PurchaseBundleRequest(account_id=ACCOUNT, bundle_id="b")),
    "SetStatus": lambda cc, ac, ss: ac.SetStatus(
        pb.SetStatusRequest(account_id=ACCOUNT, status=pb.ACTIVE, reason="ADMIN")
    ),
    "SetCreditLimit": lambda cc, ac, ss: ac.SetCreditLimit(
        pb.SetCreditLimitRequest(account_id=ACCOUNT, credit_limit=0)
    ),
    "SetPlan": lambda cc, ac, ss: ac.SetPlan(pb.SetPlanRequest(account_id=ACCOUNT, plan="standard")),
    "ListLedger": lambda cc, ac, ss: ac.ListLedger(pb.ListLedgerRequest(account_id=ACCOUNT)),
    "SetPreferences": lambda cc, ac, ss: ac.SetPreferences(
        pb.SetPreferencesRequest(account_id=ACCOUNT, preferences=pb.Preferences(language="th"))
    ),
    "Borrow": lambda cc, ac, ss: ac.Borrow(
        pb.BorrowRequest(account_id=ACCOUNT, offer_id="emergency_10", idempotency_key="loan-1")
    ),
    "Adjust": lambda cc, ac, ss: ac.Adjust(
        pb.AdjustRequest(account_id=ACCOUNT, amount=5, reason="test", idempotency_key="adj-1")
    ),
    "CreateGroup": lambda cc, ac, ss: ac.CreateGroup(
        pb.CreateGroupRequest(group_id="sec-group", currency="THB", refill_amount=100)
    ),
    "TopUpGroup": lambda cc, ac, ss: ac.TopUpGroup(
        pb.TopUpGroupRequest(group_id="sec-group", amount=5, channel="bank", idempotency_key="g-1")
    ),
    "SetGroupMember": lambda cc, ac, ss: ac.SetGroupMember(
        pb.SetGroupMemberRequest(group_id="sec-group", account_id=ACCOUNT, cap=100)
    ),
    "RemoveGroupMember": lambda cc, ac, ss: ac.RemoveGroupMember(
        pb.RemoveGroupMemberRequest(group_id="sec-group", account_id=ACCOUNT)
    ),
    "GetGroup": lambda cc, ac, ss: ac.GetGroup(pb.GetGroupRequest(group_id="sec-group")),
}
SELF_SERVICE = pb.SessionRequest(session_token=f"{ACCOUNT}.not-a-session")
CALLS |= {
    "RequestSignInCode": lambda cc, ac, ss: ss.RequestSignInCode(pb.RequestSignInCodeRequest(account_id=ACCOUNT)),
    "SignIn": lambda cc, ac, ss: ss.SignIn(pb.SignInRequest(account_id=ACCOUNT, code="123456")),
    "SignOut": lambda cc, ac, ss: ss.SignOut(SELF_SERVICE),
    "GetMyAccount": lambda cc, ac, ss: ss.GetMyAccount(SELF_SERVICE),
    "ListMyLedger": lambda cc, ac, ss: ss.ListMyLedger(pb.ListMyLedgerRequest(session_token="x.y")),
    "GetMyUsage": lambda cc, ac, ss: ss.GetMyUsage(SELF_SERVICE),
    "ListMyBundles": lambda cc, ac, ss: ss.ListMyBundles(SELF_SERVICE),
    "PurchaseMyBundle": lambda cc, ac, ss: ss.PurchaseMyBundle(pb.PurchaseMyBundleRequest(session_token="x.y")),
    "RedeemVoucher": lambda cc, ac, ss: ss.RedeemVoucher(pb.RedeemVoucherRequest(session_token="x.y")),
    "SetMyPreferences": lambda cc, ac, ss: ss.SetMyPreferences(pb.SetMyPreferencesRequest(session_token="x.y")),
    "ListMyLoanOffers": lambda cc, ac, ss: ss.ListMyLoanOffers(pb.SessionRequest(session_token="x.y")),
    "BorrowMyCredit": lambda cc, ac, ss: ss.BorrowMyCredit(pb.BorrowMyCreditRequest(session_token="x.y")),
}
STREAMS = {
    "WatchEvents": lambda cc, ac, ss: ac.WatchEvents(pb.WatchEventsRequest()),
    "WatchUsage": lambda cc, ac, ss: ac.WatchUsage(pb.WatchUsageRequest()),
    "WatchNotifications": lambda cc, ac, ss: cc.WatchNotifications(pb.WatchNotificationsRequest(gateway_id="pgw1")),
}


async def test_every_rpc_of_the_contract_is_checked_here() -> None:
    services = pb.DESCRIPTOR.services_by_name
    contract = {
        method.name for name in ("CreditControl", "Accounts", "SelfService") for method in services[name].methods
    }
    assert set(CALLS) | set(STREAMS) == contract == ALL_METHODS


async def outcome(call) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def stream_outcome(call) -> grpc.StatusCode:
    try:
        await asyncio.wait_for(call.read(), 0.5)
    except TimeoutError:
        call.cancel()
        return grpc.StatusCode.OK  # streaming, nothing to say yet: it was let in
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("role", ["gateway", "topup", "crm", "care", "portal", "admin"])
async def test_each_role_against_each_rpc(secure_server, redis_client, role: str) -> None:
    server, pki = secure_server
    async with channel_for(server, pki, "admin") as admin:
        await pb_grpc.AccountsStub(admin).CreateAccount(
            pb.CreateAccountRequest(account_id=ACCOUNT, plan="standard", initial_balance=1000)
        )
    async with channel_for(server, pki, role) as channel:
        cc, ac = pb_grpc.CreditControlStub(channel), pb_grpc.AccountsStub(channel)
        ss = pb_grpc.SelfServiceStub(channel)
        for method, make in CALLS.items():
            before = dump(redis_client)
            code = await outcome(make(cc, ac, ss))
            if method in METHODS_OF_ROLE[role]:
                assert code != grpc.StatusCode.PERMISSION_DENIED, (role, method)
            else:
                assert code == grpc.StatusCode.PERMISSION_DENIED, (role, method, code)
                assert dump(redis_client) == before, (role, method)
        for method, make in STREAMS.items():
            code = await stream_outcome(make(cc, ac, ss))
            expected_denied = method not in METHODS_OF_ROLE[role]
            assert (code == grpc.StatusCode.PERMISSION_DENIED) == expected_denied, (role, method, code)


async def test_the_care_console_reaches_creditd_with_its_certificate(secure_server, tmp_path: Path) -> None:
    """The console's own channel (client_channel.open_channel, as `creditd console serve --tls-cert
    --tls-key --tls-ca` opens it) carries the care role: the card and an adjustment, not a charge."""
    server, pki = secure_server
    pair = pki.clients["care"]
    (tmp_path / "care.pem").write_bytes(pair.certificate)
    (tmp_path / "care.key").write_bytes(pair.key)
    (tmp_path / "ca.pem").write_bytes(pki.ca.certificate)
    async with channel_for(server, pki, "admin") as admin:
        await pb_grpc.AccountsStub(admin).CreateAccount(
            pb.CreateAccountRequest(account_id=ACCOUNT, plan="standard", initial_balance=1000)
        )
    files = (str(tmp_path / "ca.pem"), str(tmp_path / "care.pem"), str(tmp_path / "care.key"))
    async with open_channel(f"localhost:{server.port}", *files) as channel:
        accounts = pb_grpc.AccountsStub(channel)
        adjust = pb.AdjustRequest(account_id=ACCOUNT, amount=-100, reason="care test", idempotency_key="care-1")
        assert (await accounts.Adjust(adjust)).balance == 900
        assert (await accounts.GetAccount(pb.GetAccountRequest(account_id=ACCOUNT))).balance == 900
        request = charge_request("care-1", INITIAL, 0, ACCOUNT, [(VOICE, 0, 0)])
        assert await outcome(pb_grpc.CreditControlStub(channel).Charge(request)) == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("client", ["nobody", "stranger", None])
async def test_unknown_and_unauthenticated_clients_are_refused(secure_server, redis_client, client: str | None) -> None:
    server, pki = secure_server
    before = dump(redis_client)
    async with channel_for(server, pki, client) as channel:
        code = await outcome(pb_grpc.AccountsStub(channel).GetAccount(pb.GetAccountRequest(account_id=ACCOUNT)))
    if client == "nobody":
        assert code == grpc.StatusCode.PERMISSION_DENIED  # a valid certificate, but no role
    else:
        assert code == grpc.StatusCode.UNAVAILABLE  # the TLS handshake itself fails
    assert dump(redis_client) == before


async def test_plaintext_off_loopback_is_refused(redis_server, settings: Settings) -> None:
    server = CreditdServer(settings, redis_server.url, "0.0.0.0:0", daytime_clock())
    with pytest.raises(ConfigError) as refused:
        await server.start()
    assert "loopback only" in refused.value.message
    await server.stop(0)


async def test_ledger_records_who_made_each_change(secure_server) -> None:
    server, pki = secure_server
    async with channel_for(server, pki, "admin") as admin:
        await pb_grpc.AccountsStub(admin).CreateAccount(
            pb.CreateAccountRequest(account_id=ACCOUNT, plan="standard", initial_balance=1000)
        )
    async with channel_for(server, pki, "topup") as bank:
        top_up = pb.TopUpRequest(account_id=ACCOUNT, amount=250, channel="bank", idempotency_key="b-1")
        await pb_grpc.AccountsStub(bank).TopUp(top_up)
    async with channel_for(server, pki, "gateway") as gateway:
        await pb_grpc.CreditControlStub(gateway).Charge(charge_request("s1", INITIAL, 0, ACCOUNT, [(VOICE, 0, 0)]))
        await pb_grpc.CreditControlStub(gateway).Charge(
            charge_request("s1", pb.ChargeRequest.TERMINATE, 1, ACCOUNT, [(VOICE, 0, 60)])
        )
    async with channel_for(server, pki, "crm") as crm:
        ledger = await pb_grpc.AccountsStub(crm).ListLedger(pb.ListLedgerRequest(account_id=ACCOUNT))
    assert [(entry.kind, entry.actor) for entry in ledger.entries] == [
        ("charge", "pgw1.test"),
        ("topup", "bank.test"),
        ("opening", "ops.test"),
    ]


def pause_writes(client, duration_ms: int) -> None:
    """Every primary holds its clients' writes (a cluster's too: the account may live on any)."""
    if isinstance(client, redis.cluster.RedisCluster):
        client.execute_command(
            "CLIENT", "PAUSE", duration_ms, "WRITE", target_nodes=redis.cluster.RedisCluster.PRIMARIES
        )
    else:
        client.execute_command("CLIENT", "PAUSE", duration_ms, "WRITE")


async def test_a_flooding_gateway_does_not_starve_the_others(secure_server, redis_client) -> None:
    """The flood is certain to outrun its limit whatever the machine's speed: Redis holds every write
    for a second (CLIENT PAUSE WRITE), so the flood's first two Charges stay in flight while the rest
    arrive. The calm gateway's Charges wait out the same pause but are never refused."""
    server, pki = secure_server
    async with channel_for(server, pki, "admin") as admin:
        await pb_grpc.AccountsStub(admin).CreateAccount(
            pb.CreateAccountRequest(account_id=ACCOUNT, plan="standard", initial_balance=10**7)
        )

    def sms(gateway: str, n: int) -> pb.ChargeRequest:
        return charge_request(f"{gateway}-{n}", pb.ChargeRequest.EVENT, 0, ACCOUNT, [(3, 0, 0)], gateway_id=gateway)

    async with channel_for(server, pki, "gateway") as flooding, channel_for(server, pki, "gateway2") as calm:
        flood_stub, calm_stub = pb_grpc.CreditControlStub(flooding), pb_grpc.CreditControlStub(calm)
        pause_writes(redis_client, 1000)
        flood = asyncio.gather(*(outcome(flood_stub.Charge(sms("pgw1", n))) for n in range(400)))
        calm_results = [await calm_stub.Charge(sms("pgw2", n)) for n in range(30)]
        flood_results = await flood
    assert all(answer.result == pb.SUCCESS for answer in calm_results)
    assert flood_results.count(grpc.StatusCode.RESOURCE_EXHAUSTED) > 0  # the flood met its own limit
    assert flood_results.count(grpc.StatusCode.OK) > 0


async def test_accounts_calls_are_rate_limited_per_caller(secure_server) -> None:
    server, pki = secure_server
    async with channel_for(server, pki, "crm") as crm, channel_for(server, pki, "admin") as admin:
        codes = [
            await outcome(pb_grpc.AccountsStub(crm).GetAccount(pb.GetAccountRequest(account_id=ACCOUNT)))
            for _ in range(40)
        ]
        assert codes[:30] == [grpc.StatusCode.NOT_FOUND] * 30  # the burst: let in (no such account)
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes[30:]
        other = await outcome(pb_grpc.AccountsStub(admin).GetAccount(pb.GetAccountRequest(account_id=ACCOUNT)))
        assert other == grpc.StatusCode.NOT_FOUND  # another caller has its own budget
