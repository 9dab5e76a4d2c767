"""Nchf mode: PDU-session updates through `creditd chf` over HTTP/2 beside unary gRPC Charge through
`creditd serve`, in the same run, on the same embedded Redis.

    python3 -m loadtest.nchf [--sessions 64] [--updates 40] [--connections 2] [--rounds 1]

It starts an embedded Redis, `creditd serve` and `creditd chf` (each a process of its own, so that
their CPU time is their own), creates one account per session, then runs two phases of the same
work: `sessions` sessions of `updates` UPDATEs each (plus INITIAL and TERMINATE), every update
reporting 1 500 bytes of data and asking for 1 MB. Phase gRPC sends unary Charge; phase Nchf sends
POST .../update over `connections` cleartext HTTP/2 connections (httpx, prior knowledge). For each
it prints requests/s and the CPU µs per request of the serving process and of Redis. The client runs
in this process: on a small machine it competes for the same cores, so requests/s is a floor; CPU
per request is the figure to compare. With --rounds N the two phases alternate N times (others'
work on a shared machine changes between phases; a ratio is taken within each round) and the last
line gives each round's chf / gRPC ratio of CPU per request, their median and spread.

The Nchf phase runs at what httpx's client lets it (about 1 200 requests a second here), the gRPC one at
two to three times that, and a server's CPU per request is lower the more requests share each wake-up
(loadtest's unary Charge costs the server half as much again at half load). Each round therefore
plays the gRPC phase a second time, paced at the rate the Nchf phase reached: "gRPC@Nchf", the
comparison at equal load, whose ratio is printed beside the first.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import click
import grpc
import httpx
import uvloop

from creditd.devtools.ports import free_port
from creditd.store.embedded import EmbeddedRedis
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc
from loadtest.cpu import cpu_seconds
from loadtest.runner import start_creditd, stop, wait_serving
from loadtest.traffic import Pacer

API = "/nchf-convergedcharging/v3"
MB = 1_000_000
USED_BYTES = 1_500


def start_chf(redis_url: str, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "creditd", "chf", "--redis", redis_url, "--listen", f"127.0.0.1:{port}"]
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


async def wait_listening(port: int) -> None:
    for _ in range(600):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"creditd chf did not listen on {port}")


def charge(session_id: str, kind: int, number: int, account_id: str, used: int, requested: int) -> pb.ChargeRequest:
    unit = pb.UnitRequest(rating_group=1, requested=requested, used=used)
    return pb.ChargeRequest(
        session_id=session_id,
        request_type=kind,  # type: ignore[arg-type]
        request_number=number,
        account_id=account_id,
        gateway_id="load",
        units=[unit],
    )


def nchf_body(account_id: str, number: int, created_at: str, used: int, requested: int) -> dict[str, object]:
    usage: dict[str, object] = {"ratingGroup": 1}
    if requested:
        usage["requestedUnit"] = {"totalVolume": requested}
    if used:
        usage["usedUnitContainer"] = [{"localSequenceNumber": number, "totalVolume": used}]
    return {
        "subscriberIdentifier": f"imsi-{account_id}",
        "nfConsumerIdentification": {"nodeFunctionality": "SMF", "nFName": "3fa85f64-5717-4562-b3fc-2c963f66afa6"},
        "invocationTimeStamp": created_at,
        "invocationSequenceNumber": number,
        "multipleUnitUsage": [usage],
        "pDUSessionChargingInformation": {"pduSessionInformation": {"pduSessionID": 5, "dnnId": "internet"}},
    }


async def grpc_session(
    stub: pb_grpc.CreditControlStub, account_id: str, updates: int, counter: itertools.count[int], pacer: Pacer
) -> None:
    session_id = f"load-{next(counter)}"
    await pacer.wait()
    assert (await stub.Charge(charge(session_id, pb.ChargeRequest.INITIAL, 0, account_id, 0, MB))).result == pb.SUCCESS
    for number in range(1, updates + 1):
        await pacer.wait()
        answer = await stub.Charge(charge(session_id, pb.ChargeRequest.UPDATE, number, account_id, USED_BYTES, MB))
        assert answer.result == pb.SUCCESS, answer
    await pacer.wait()
    await stub.Charge(charge(session_id, pb.ChargeRequest.TERMINATE, updates + 1, account_id, USED_BYTES, 0))


async def grpc_sessions(
    stub: pb_grpc.CreditControlStub, accounts: list[str], updates: int, counter: itertools.count[int], pacer: Pacer
) -> None:
    await asyncio.gather(*(grpc_session(stub, account_id, updates, counter, pacer) for account_id in accounts))


async def nchf_session(client: httpx.AsyncClient, account_id: str, updates: int, counter: itertools.count[int]) -> None:
    created_at = f"2026-12-03T10:00:00.{next(counter):09d}Z"
    create = await client.post(API + "/chargingdata", json=nchf_body(account_id, 0, created_at, 0, MB))
    assert create.status_code == 201, create.text
    ref = create.headers["location"].rsplit("/", 1)[1]
    for number in range(1, updates + 1):
        answer = await client.post(
            f"{API}/chargingdata/{ref}/update", json=nchf_body(account_id, number, created_at, USED_BYTES, MB)
        )
        assert answer.status_code == 200, answer.text
    release = nchf_body(account_id, updates + 1, created_at, USED_BYTES, 0)
    assert (await client.post(f"{API}/chargingdata/{ref}/release", json=release)).status_code == 204


async def phase(
    name: str, server_pid: int, redis_pid: int, requests: int, run: Callable[[], Awaitable[object]]
) -> tuple[float, float]:
    """Runs one phase, prints its figures and returns the server's CPU µs per request and the rate."""
    server_before, redis_before, started = cpu_seconds([server_pid]), cpu_seconds([redis_pid]), time.perf_counter()
    await run()
    elapsed_s = time.perf_counter() - started
    server_us = (cpu_seconds([server_pid]) - server_before) * 1e6 / requests
    redis_us = (cpu_seconds([redis_pid]) - redis_before) * 1e6 / requests
    click.echo(
        f"{name:9} {requests:7d} requests in {elapsed_s:6.1f} s: {requests / elapsed_s:7.0f}/s   "
        f"CPU per request: server {server_us:6.0f} µs, redis {redis_us:5.0f} µs"
    )
    return server_us, requests / elapsed_s


async def run(sessions: int, updates: int, connections: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="creditd-nchf-") as directory, EmbeddedRedis(Path(directory)) as redis:
        assert redis.process is not None
        redis_pid = redis.process.pid
        grpc_port, chf_port = free_port(), free_port()
        serve = start_creditd(f"127.0.0.1:{grpc_port}", "--redis", redis.url)
        chf = start_chf(redis.url, chf_port)
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        clients = [
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{chf_port}", http1=False, http2=True, limits=limits, timeout=30
            )
            for _ in range(connections)
        ]
        try:
            await wait_serving(f"127.0.0.1:{grpc_port}", serve)
            await wait_listening(chf_port)
            accounts = [f"6690000{n:04d}" for n in range(sessions)]
            counter = itertools.count()
            requests = sessions * (updates + 2)
            ratios, equal_load_ratios = [], []
            async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                account_stub, stub = pb_grpc.AccountsStub(channel), pb_grpc.CreditControlStub(channel)
                for account_id in accounts:
                    request = pb.CreateAccountRequest(account_id=account_id, plan="standard", initial_balance=10**9)
                    await account_stub.CreateAccount(request)
                for _ in range(rounds):
                    grpc_us, _ = await phase(
                        "gRPC",
                        serve.pid,
                        redis_pid,
                        requests,
                        partial(grpc_sessions, stub, accounts, updates, counter, Pacer(0)),
                    )
                    nchf_us, nchf_rate = await phase(
                        "Nchf",
                        chf.pid,
                        redis_pid,
                        requests,
                        lambda: asyncio.gather(
                            *(
                                nchf_session(clients[i % connections], a, updates, counter)
                                for i, a in enumerate(accounts)
                            )
                        ),
                    )
                    paced_us, _ = await phase(
                        "gRPC@Nchf",
                        serve.pid,
                        redis_pid,
                        requests,
                        partial(grpc_sessions, stub, accounts, updates, counter, Pacer(nchf_rate)),
                    )
                    ratios.append(nchf_us / grpc_us if grpc_us else float("nan"))
                    equal_load_ratios.append(nchf_us / paced_us if paced_us else float("nan"))
            if rounds > 1:
                click.echo(f"chf / gRPC CPU per request, by round: {spread(ratios)}")
                click.echo(f"chf / gRPC at the Nchf phase's rate, by round: {spread(equal_load_ratios)}")
        finally:
            for client in clients:
                await client.aclose()
            stop(chf)
            stop(serve)


def spread(ratios: list[float]) -> str:
    return (
        f"{' '.join(f'{r:.2f}' for r in ratios)}; median {statistics.median(ratios):.2f} "
        f"({min(ratios):.2f}-{max(ratios):.2f})"
    )


@click.command()
@click.option("--sessions", default=64, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--updates", default=40, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--connections", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--rounds", default=1, show_default=True, type=click.IntRange(1, 100))
def main(sessions: int, updates: int, connections: int, rounds: int) -> None:
    """Nchf updates over HTTP/2 beside unary gRPC Charge: requests/s and CPU per request."""
    uvloop.run(run(sessions, updates, connections, rounds))


if __name__ == "__main__":
    main()
