"""Which HTTP/2 server carries `creditd chf`: hypercorn or granian, measured on the same tiny ASGI app,
and granian through its own interface (RSGI) with the same app written for it.

    python3 -m loadtest.chf_servers [--requests N] [--concurrency C]

For each server (started in a process of its own, so that its CPU time is its own) one httpx client
opens ONE cleartext HTTP/2 connection (prior knowledge) and sends N POSTs over it, C streams at a time,
then N over HTTP/1.1 keep-alive. It prints requests/s, server CPU µs per request and whether the one
connection carried them all (a GOAWAY ends the run with the count reached). hypercorn runs twice: with
its defaults (keep_alive_max_requests = 1000: it closes a connection after 1 000 requests, with a
GOAWAY) and with the settings `creditd chf` uses. With --together ROUNDS the servers run at once,
each with its own h2c client, ROUNDS times (a shared machine's load then falls on all alike).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time

import httpx

from creditd.devtools.ports import free_port

SERVERS = ("hypercorn-default", "hypercorn", "granian", "granian-rsgi")
BODY = json.dumps({"invocationSequenceNumber": 1, "multipleUnitUsage": [{"ratingGroup": 1}]}).encode()


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    answer = json.dumps({"invocationSequenceNumber": json.loads(body or b"{}").get("invocationSequenceNumber")})
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": answer.encode()})


async def rsgi_app(scope, protocol):  # type: ignore[no-untyped-def]
    body = await protocol()
    answer = json.dumps({"invocationSequenceNumber": json.loads(body or b"{}").get("invocationSequenceNumber")})
    protocol.response_bytes(200, [("content-type", "application/json")], answer.encode())


def serve(kind: str, port: int) -> None:
    import uvloop

    if kind.startswith("granian"):
        from granian.constants import HTTPModes, Interfaces
        from granian.server.embed import Server

        target, interface = (rsgi_app, Interfaces.RSGI) if kind == "granian-rsgi" else (app, Interfaces.ASGI)
        server = Server(target, port=port, interface=interface, http=HTTPModes.auto, log_enabled=False)
        uvloop.run(server.serve())
        return
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    if kind == "hypercorn":
        config.keep_alive_max_requests = 2**62
        config.h2_max_concurrent_streams = 200
    uvloop.run(hypercorn_serve(app, config))  # type: ignore[arg-type]


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(port: int, requests: int, concurrency: int, http2: bool) -> tuple[int, float, str]:
    done = 0
    error = ""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(http1=not http2, http2=http2, limits=limits, timeout=30) as client:
        url = f"http://127.0.0.1:{port}/x"
        started = time.perf_counter()

        async def worker() -> None:
            nonlocal done, error
            while done < requests and not error:
                done += 1
                try:
                    answer = await client.post(url, content=BODY)
                    answer.raise_for_status()
                except httpx.HTTPError as failure:
                    error = f"{type(failure).__name__}: {failure}"[:160]

        await asyncio.gather(*(worker() for _ in range(concurrency if http2 else 1)))
        return done, time.perf_counter() - started, error


def start(kind: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "loadtest.chf_servers", "--serve", kind, "--port", str(port)])
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    return process, port


def measure_together(kinds: list[str], requests: int, concurrency: int, rounds: int) -> None:
    """The servers at once, each with its own h2c client in one event loop: the load of a shared machine
    falls on all of them alike, so their CPU per request compares within each round."""
    started = {kind: start(kind) for kind in kinds}

    async def rounds_of_all() -> None:
        for _ in range(rounds):
            before = {kind: cpu_s(process.pid) for kind, (process, _) in started.items()}
            results = await asyncio.gather(*(drive(port, requests, concurrency, True) for _, port in started.values()))
            figures = []
            for (kind, (process, _)), (count, elapsed_s, error) in zip(started.items(), results, strict=True):
                server_us = (cpu_s(process.pid) - before[kind]) * 1e6 / max(count, 1)
                figures.append(f"{kind} {count / elapsed_s:6.0f}/s {server_us:5.0f} µs/request {error}")
            print(" | ".join(figures), flush=True)

    try:
        asyncio.run(rounds_of_all())
    finally:
        for process, _ in started.values():
            process.terminate()
            process.wait(5)


def measure(kind: str, requests: int, concurrency: int) -> None:
    process, port = start(kind)
    try:
        for http2 in (True, False):
            before = cpu_s(process.pid)
            count, elapsed_s, error = asyncio.run(drive(port, requests, concurrency, http2))
            server_us = (cpu_s(process.pid) - before) * 1e6 / max(count, 1)
            print(
                f"{kind:18} {'h2c' if http2 else 'http/1.1':8} {count:7d} requests {count / elapsed_s:8.0f}/s "
                f"server CPU {server_us:6.0f} µs/request  {'one connection: ' + error if error else 'ok'}",
                flush=True,
            )
    finally:
        process.terminate()
        process.wait(5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--together", type=int, default=0, help="ROUNDS of the servers at once, h2c only")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve:
        serve(options.serve, options.port)
        return
    if options.together:
        measure_together(options.servers.split(","), options.requests, options.concurrency, options.together)
        return
    for kind in options.servers.split(","):
        measure(kind, options.requests, options.concurrency)


if __name__ == "__main__":
    main()
