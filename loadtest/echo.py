"""The gRPC floor: a bare grpc.aio server on uvloop speaking creditd's CreditControl with constant
answers and no work behind them, started with the same server options as creditd, its service added
as creditd's are (generic handlers only, creditd/api/handlers.py), and its start-up objects frozen
out of the garbage collector as creditd's are.

    python -m loadtest.echo --listen 127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import grpc
import uvloop

from creditd import collector
from creditd.api.handlers import generic_handlers_only
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc

GRANT = pb.UnitGrant(rating_group=1, result=pb.SUCCESS, unit=pb.BYTES, granted=10_000_000, validity_time_s=600)


class EchoCreditControl(pb_grpc.CreditControlServicer):
    async def Charge(self, request: pb.ChargeRequest, context: grpc.aio.ServicerContext) -> pb.ChargeAnswer:
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


async def serve(listen: str) -> None:
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 4 * 1024 * 1024)])
    pb_grpc.add_CreditControlServicer_to_server(EchoCreditControl(), generic_handlers_only(server))
    server.add_insecure_port(listen)
    await server.start()
    collector.freeze_after_start_up()
    stopping = asyncio.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(number, stopping.set)
    await stopping.wait()
    await server.stop(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(parser.parse_args().listen))


if __name__ == "__main__":
    main()
