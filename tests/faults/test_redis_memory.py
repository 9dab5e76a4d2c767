"""Redis at maxmemory with noeviction (the only policy creditd accepts: eviction would drop accounts):
every write is refused with RESOURCE_EXHAUSTED naming Redis' memory (a ChargeBatch as a whole, as a
unary Charge is) (not INTERNAL, and it does not
open the circuit: Redis answers), reads are still served, nothing is half-written (the account's keys
are byte for byte what they were), and once memory is freed service is normal and the audit clean.

Memory is filled with filler keys written straight to Redis until a write is refused, so the limit is
whatever this server's baseline is plus a margin, not a guess; then the limit is lowered to half of what
is used, so that no write slips through on memory freed meanwhile."""

from __future__ import annotations

import grpc
import pytest
from redis.exceptions import OutOfMemoryError

from creditd.config.settings import Settings
from creditd.devtools.local_topology import LocalServer
from creditd.v1 import creditd_pb2 as pb
from tests.harness import EVENT, SMS, charge_request, dump, library_client, started_server

pytestmark = pytest.mark.asyncio
ACCOUNT = "66856000001"
FILLER_BYTES = 64 * 1024
MAX_FILLER_KEYS = 2_000
HEADROOM_BYTES = 2 * 1024 * 1024


async def test_writes_refused_reads_served_at_maxmemory(tmp_path, settings: Settings) -> None:
    with (
        LocalServer(tmp_path) as redis_server,
        library_client(redis_server.url, settings) as client,
        redis_server.admin(redis_server.server) as admin,
    ):
        async with started_server(settings, redis_server.url, client) as harness:
            await harness.create_account(ACCOUNT, balance=1_000)
            used = int(admin.info("memory")["used_memory"])
            admin.config_set("maxmemory", used + HEADROOM_BYTES)
            filled = 0
            with pytest.raises(OutOfMemoryError):
                for filled in range(MAX_FILLER_KEYS):
                    admin.set(f"filler:{filled}", b"x" * FILLER_BYTES)
            # Then well below what is used: at the limit itself, memory the server frees between two
            # calls (client buffers) let a later write through once, after an earlier one was refused.
            admin.config_set("maxmemory", int(admin.info("memory")["used_memory"]) // 2)
            before = dump(client)

            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await harness.top_up(ACCOUNT, 500, "oom-1")
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "memory" in (refused.value.details() or ""), refused.value.details()
            with pytest.raises(grpc.aio.AioRpcError) as charge_refused:
                await harness.credit_control.Charge(
                    charge_request("oom-sms", EVENT, 0, ACCOUNT, [(SMS, 0, 0)], gateway_id="gw-oom")
                )
            assert charge_refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            batch = pb.ChargeBatchRequest(
                requests=[
                    charge_request(f"oom-b{n}", EVENT, 0, ACCOUNT, [(SMS, 0, 0)], gateway_id="gw-oom") for n in (1, 2)
                ]
            )
            with pytest.raises(grpc.aio.AioRpcError) as batch_refused:  # as a unary Charge: the whole batch
                await harness.credit_control.ChargeBatch(batch)
            assert batch_refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert not harness.server.circuit.is_open  # Redis answered: no reason to refuse everything

            card = await harness.get(ACCOUNT)  # reads still served
            assert card.balance == 1_000
            page = await harness.accounts.ListLedger(pb.ListLedgerRequest(account_id=ACCOUNT, limit=10))
            assert len(page.entries) == 1
            assert dump(client) == before  # nothing half-written

            for key in range(filled + 1):
                admin.delete(f"filler:{key}")
            admin.config_set("maxmemory", 0)
            assert (await harness.top_up(ACCOUNT, 500, "oom-1")).account.balance == 1_500
            harness.assert_audit_clean()
