"""The gRPC floor: a bare grpc.aio server on uvloop speaking creditd's CreditControl (and Accounts'
TopUp, which loadtest's traffic plays beside the Charges) with constant answers and no work behind
them, started with the same server options as creditd, its service added as creditd's are (generic
handlers only, creditd/api/handlers.py), and its start-up objects frozen out of the garbage
collector as creditd's are.

With --redis-url (any one server's URL, as creditd serve takes it), each Charge (and TopUp) first
makes one round trip to that Redis, a PING over creditd's own lean connection
(creditd/store/wire.py): the floor of a server that answers each Charge from one Redis call, against
which creditd's own work per Charge is counted (loadtest.server_instructions).

    python -m loadtest.echo --listen 127.0.0.1:PORT [--redis-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import grpc
import uvloop

from creditd import collector
from creditd.api.handlers import generic_handlers_only
from creditd.config.settings import RedisSettings
from creditd.store.connection import connect, wire_client
from creditd.store.url import redact
from creditd.store.wire import WireClient
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc

GRANT = pb.UnitGrant(rating_group=1, result=pb.SUCCESS, unit=pb.BYTES, granted=10_000_000, validity_time_s=600)


PING = (("PING",),)


async def round_trip(redis: WireClient) -> None:
    """One PING, as creditd's pipeline sends: on the open connection without a coroutine, else connecting."""
    replies = redis.send_now(PING)
    await (replies if replies is not None else redis.execute(PING))


class EchoCreditControl(pb_grpc.CreditControlServicer):
    def __init__(self, redis: WireClient | None = None) -> None:
        self._redis = redis

    async def Charge(self, request: pb.ChargeRequest, context: grpc.aio.ServicerContext) -> pb.ChargeAnswer:
        if self._redis is not None:
            await round_trip(self._redis)
        return pb.ChargeAnswer(
            session_id=request.session_id,
            request_number=request.request_number,
            result=pb.SUCCESS,
            grants=[GRANT],
            account_status=pb.ACTIVE,
        )

    async def ChargeBatch(
        self, request: pb.ChargeBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.ChargeBatchAnswer:
        return pb.ChargeBatchAnswer(answers=[await self.Charge(item, context) for item in request.requests])


class EchoAccounts(pb_grpc.AccountsServicer):
    """TopUp alone: loadtest's traffic tops accounts up (Shape.top_ups_per_s) on whichever server it
    plays, so that each side answers the same RPCs and counts them alike (loadtest.runner.phase)."""

    def __init__(self, redis: WireClient | None = None) -> None:
        self._redis = redis

    async def TopUp(self, request: pb.TopUpRequest, context: grpc.aio.ServicerContext) -> pb.TopUpAnswer:
        if self._redis is not None:
            await round_trip(self._redis)
        account = pb.Account(account_id=request.account_id, balance=request.amount, status=pb.ACTIVE)
        return pb.TopUpAnswer(account=account, ledger_seq=1)


def redis_of(url: str) -> WireClient:
    """The lean connection to a Redis, as creditd serve opens it (store/connection.wire_client)."""
    settings = RedisSettings()
    wire = wire_client(connect(url, settings), url, settings)
    assert wire is not None, f"--redis-url: one server, not a cluster: {redact(url)}"
    return wire


async def serve(listen: str, redis_url: str | None) -> None:
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 4 * 1024 * 1024)])
    redis = redis_of(redis_url) if redis_url is not None else None
    handlers = generic_handlers_only(server)
    pb_grpc.add_CreditControlServicer_to_server(EchoCreditControl(redis), handlers)
    pb_grpc.add_AccountsServicer_to_server(EchoAccounts(redis), handlers)
    server.add_insecure_port(listen)
    await server.start()
    collector.freeze_after_start_up()
    stopping = asyncio.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(number, stopping.set)
    await stopping.wait()
    await server.stop(1)
    if redis is not None:
        await redis.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--redis-url", help="one Redis round trip per Charge, to this Redis")
    arguments = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(arguments.listen, arguments.redis_url))


if __name__ == "__main__":
    main()
