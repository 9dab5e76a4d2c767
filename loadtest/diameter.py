"""Diameter mode: CCR/s and CPU per CCR of `creditd diameter` and of Redis, beside unary gRPC Charge on
`creditd serve`, same sessions, same Redis, same machine, one after the other.

`python -m loadtest.diameter [--duration 10] [--connections 4] [--sessions 16]` starts `creditd serve`
(with its embedded Redis in a temporary directory) and `creditd diameter` on loopback, creates the
accounts, then runs closed-loop data sessions (INITIAL, UPDATEs, TERMINATE; 1 MB per request) for each
edge in turn: over N Diameter connections (CCRs pipelined on each) and over N gRPC channels, then both
again paced at half the lower of the two rates (latency at half load). Prints one line per phase;
everything it started is stopped on the way out."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import click
import grpc
import uvloop

from creditd.devtools.configs import write_shipped_config
from creditd.devtools.ports import free_port
from creditd.diameter.codec import FLAG_REQUEST, HEADER_BYTES, Message, decode, encode, make
from creditd.diameter.dictionary import Code, Command
from creditd.store.embedded import embedded_pid, embedded_url
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc
from loadtest.cpu import cpu_seconds
from loadtest.runner import stop, wait_serving

MB = 1_000_000
UPDATES = 3
GATEWAY = "pgw.load.test"
_ids = itertools.count(1)


class Tally:
    def __init__(self) -> None:
        self.latencies_s: list[float] = []
        self.failures = 0


def _ccr(session_id: str, kind: int, number: int, account_id: str) -> Message:
    units = []
    if kind != 3:
        units.append(make(Code.REQUESTED_SERVICE_UNIT, [make(Code.CC_TOTAL_OCTETS, MB)]))
    if kind != 1:
        units.append(make(Code.USED_SERVICE_UNIT, [make(Code.CC_TOTAL_OCTETS, MB)]))
    number_id = next(_ids)
    return Message(
        Command.CREDIT_CONTROL,
        4,
        FLAG_REQUEST,
        number_id,
        number_id,
        [
            make(Code.SESSION_ID, session_id),
            make(Code.ORIGIN_HOST, GATEWAY),
            make(Code.ORIGIN_REALM, "load.test"),
            make(Code.DESTINATION_REALM, "creditd"),
            make(Code.AUTH_APPLICATION_ID, 4),
            make(Code.SERVICE_CONTEXT_ID, "32251@3gpp.org"),
            make(Code.CC_REQUEST_TYPE, kind),
            make(Code.CC_REQUEST_NUMBER, number),
            make(
                Code.SUBSCRIPTION_ID, [make(Code.SUBSCRIPTION_ID_TYPE, 0), make(Code.SUBSCRIPTION_ID_DATA, account_id)]
            ),
            make(Code.MULTIPLE_SERVICES_CREDIT_CONTROL, [*units, make(Code.RATING_GROUP, 1)]),
        ],
    )


class DiameterConnection:
    """One connection with requests pipelined on it, answers matched by hop-by-hop id."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.waiting: dict[int, asyncio.Future[Message]] = {}
        self.reading = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            head = await self.reader.readexactly(HEADER_BYTES)
            rest = await self.reader.readexactly(int.from_bytes(head[1:4], "big") - HEADER_BYTES)
            message = decode(head + rest, 1 << 24)
            future = self.waiting.pop(message.hop_by_hop, None)
            if future is not None and not future.done():
                future.set_result(message)

    async def ask(self, message: Message) -> Message:
        future = asyncio.get_running_loop().create_future()
        self.waiting[message.hop_by_hop] = future
        self.writer.write(encode(message))
        return await future


async def _open_diameter(port: int) -> DiameterConnection:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    connection = DiameterConnection(reader, writer)
    cer = Message(
        Command.CAPABILITIES_EXCHANGE,
        0,
        FLAG_REQUEST,
        0,
        0,
        [
            make(Code.ORIGIN_HOST, GATEWAY),
            make(Code.ORIGIN_REALM, "load.test"),
            make(Code.VENDOR_ID, 0),
            make(Code.PRODUCT_NAME, "loadtest"),
            make(Code.AUTH_APPLICATION_ID, 4),
        ],
    )
    answer = await connection.ask(cer)
    assert answer.first(Code.RESULT_CODE) == make(Code.RESULT_CODE, 2001), answer
    return connection


Ask = Callable[[str, int, int, str], Awaitable[bool]]


async def _sessions(ask: Ask, accounts: list[str], tally: Tally, until: float, prefix: str, interval_s: float) -> None:
    """Sessions one after the other until `until`; with interval_s, one request per interval (paced)."""
    next_at = time.perf_counter()
    for session in itertools.count():
        account_id = accounts[session % len(accounts)]
        session_id = f"{prefix}-{session}"
        for number, kind in enumerate([1] + [2] * UPDATES + [3]):
            if time.monotonic() > until and kind == 1:
                return
            if interval_s:
                next_at += interval_s
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            started = time.perf_counter()
            ok = await ask(session_id, kind, number, account_id)
            tally.latencies_s.append(time.perf_counter() - started)
            tally.failures += not ok


async def _run_edge(
    name: str,
    asks: list[Ask],
    accounts: list[str],
    sessions: int,
    duration_s: float,
    pids: list[int],
    rate: float = 0.0,
) -> tuple[str, float]:
    """One edge's figures line and its rate; with `rate`, paced at that many requests a second."""
    tally = Tally()
    interval_s = len(asks) * sessions / rate if rate else 0.0
    until = time.monotonic() + duration_s
    before = (time.perf_counter(), *(cpu_seconds([pid]) for pid in pids))
    await asyncio.gather(
        *(
            _sessions(ask, accounts[index :: len(asks)], tally, until, f"{name}-{index}-{slot}", interval_s)
            for index, ask in enumerate(asks)
            for slot in range(sessions)
        )
    )
    after = (time.perf_counter(), *(cpu_seconds([pid]) for pid in pids))
    count = len(tally.latencies_s)
    wall_s = after[0] - before[0]
    front_us, redis_us = ((after[i] - before[i]) / count * 1e6 for i in (1, 2))
    quantiles = statistics.quantiles(tally.latencies_s, n=100)
    line = (
        f"{name:14} {count / wall_s:8.0f} req/s  front {front_us:6.0f} µs/req  redis {redis_us:5.0f} µs/req  "
        f"p50 {quantiles[49] * 1000:5.1f} ms  p99 {quantiles[98] * 1000:5.1f} ms  failures {tally.failures}"
    )
    return line, count / wall_s


def _config(directory: Path, port: int) -> Path:
    diameter = f"""
[diameter]
listen = "127.0.0.1:{port}"
max_in_flight_per_connection = 1024
peers = [{{ origin_host = "{GATEWAY}", origin_realm = "load.test" }}]
"""
    return write_shipped_config(directory / "creditd.toml", diameter)


async def _measure(directory: Path, duration_s: float, connections: int, sessions: int, accounts: int) -> None:
    grpc_port, diameter_port = free_port(), free_port()
    data_dir = directory / "data"
    config = _config(directory, diameter_port)
    serve = subprocess.Popen(
        [sys.executable, "-m", "creditd", "serve", "--listen", f"127.0.0.1:{grpc_port}", "--metrics-listen", ""]
        + ["--log-level", "WARNING", "--data-dir", str(data_dir), "--config", str(config)],
        stdin=subprocess.DEVNULL,
    )
    front: subprocess.Popen[bytes] | None = None
    try:
        await wait_serving(f"127.0.0.1:{grpc_port}", serve)
        url = embedded_url(data_dir)
        front = subprocess.Popen(
            [sys.executable, "-m", "creditd", "diameter", "--config", str(config), "--redis", url]
            + ["--log-level", "WARNING"],
            stdin=subprocess.DEVNULL,
        )
        redis_pid = embedded_pid(data_dir)
        assert redis_pid is not None
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") for _ in range(connections)]
        ids = [f"load{index:05d}" for index in range(accounts)]
        account_stub = pb_grpc.AccountsStub(channels[0])
        for account_id in ids:
            request = pb.CreateAccountRequest(account_id=account_id, plan="standard", initial_balance=10**11)
            await account_stub.CreateAccount(request)
        for _ in range(100):
            with contextlib.suppress(OSError):
                links = [await _open_diameter(diameter_port) for _ in range(connections)]
                break
            await asyncio.sleep(0.1)

        def diameter_ask(link: DiameterConnection) -> Ask:
            async def ask(session_id: str, kind: int, number: int, account_id: str) -> bool:
                answer = await link.ask(_ccr(session_id, kind, number, account_id))
                return answer.first(Code.RESULT_CODE) == make(Code.RESULT_CODE, 2001)

            return ask

        def grpc_ask(channel: grpc.aio.Channel) -> Ask:
            stub = pb_grpc.CreditControlStub(channel)

            async def ask(session_id: str, kind: int, number: int, account_id: str) -> bool:
                unit = pb.UnitRequest(rating_group=1, requested=MB if kind != 3 else 0, used=MB if kind != 1 else 0)
                request = pb.ChargeRequest(
                    session_id=session_id,
                    request_type=kind,
                    request_number=number,
                    account_id=account_id,
                    gateway_id=GATEWAY,
                    units=[unit],
                )
                return (await stub.Charge(request)).result == pb.SUCCESS

            return ask

        assert front is not None
        click.echo(f"{connections} connections x {sessions} sessions, {duration_s:g} s per edge, {accounts} accounts")
        diameter_asks = [diameter_ask(link) for link in links]
        grpc_asks = [grpc_ask(channel) for channel in channels]
        diameter_pids, grpc_pids = [front.pid, redis_pid], [serve.pid, redis_pid]
        line, diameter_rate = await _run_edge("diameter", diameter_asks, ids, sessions, duration_s, diameter_pids)
        click.echo(line)
        line, grpc_rate = await _run_edge("grpc-unary", grpc_asks, ids, sessions, duration_s, grpc_pids)
        click.echo(line)
        half = min(diameter_rate, grpc_rate) / 2
        click.echo(f"both paced at {half:.0f} req/s (half the lower rate):")
        for name, asks, pids in (("diameter-half", diameter_asks, diameter_pids), ("grpc-half", grpc_asks, grpc_pids)):
            line, _ = await _run_edge(name, asks, ids, sessions, duration_s, pids, half)
            click.echo(line)
        for channel in channels:
            await channel.close()
        for link in links:
            link.reading.cancel()
            link.writer.close()
    finally:
        if front is not None:
            stop(front)
        stop(serve)


@click.command()
@click.option("--duration", default=10.0, show_default=True, help="seconds per edge")
@click.option("--connections", default=4, show_default=True, help="Diameter connections / gRPC channels")
@click.option("--sessions", default=16, show_default=True, help="concurrent sessions per connection")
@click.option("--accounts", default=200, show_default=True)
def main(duration: float, connections: int, sessions: int, accounts: int) -> None:
    """Diameter CCR vs unary gRPC Charge: throughput, CPU per request of the front and of Redis."""
    with (
        tempfile.TemporaryDirectory(prefix="creditd-diameter-load-") as directory,
        asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
    ):
        runner.run(_measure(Path(directory), duration, connections, sessions, accounts))


if __name__ == "__main__":
    main()
