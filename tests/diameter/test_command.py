"""`creditd diameter` as real processes on the test Redis (a [diameter] table in a config of the test's own):
it serves CCRs and exposes creditd_diameter_* metrics per peer, which `creditd diameter status` reads, and
/health (SERVING);
SIGTERM sends DPR and exits 0; `creditd serve --diameter-listen` serves both edges in one process; and
failover: two front processes, the first killed with SIGKILL right after a CCR-U was sent, the client
retransmits that CCR-U (T bit) to the second and ends the session there: answered the same, charged
once, the balance exact. Data (Gy, 10 satang per MB) keeps prices independent of the hour."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from creditd.devtools.ports import free_port
from creditd.diameter.dictionary import Code, Command
from creditd.store.embedded import EmbeddedRedis
from tests.diameter.client import (
    GY,
    INITIAL,
    TERMINATE,
    UPDATE,
    Client,
    Service,
    ccr,
    cer,
    config_with_peer,
    connected,
    request,
    result_of,
)
from tests.diameter.client import retransmitted as again
from tests.harness import MB, Harness

pytestmark = pytest.mark.slow
SUBSCRIBER = "66822220000"
OCTETS = Code.CC_TOTAL_OCTETS


def _start(directory: Path, redis_url: str) -> tuple[subprocess.Popen[bytes], int, int]:
    port, metrics_port = free_port(), free_port()
    config = config_with_peer(directory, port, metrics_port)
    log = open(directory / f"diameter-{port}.log", "ab")  # noqa: SIM115 - the child owns it
    command = [sys.executable, "-m", "creditd", "diameter", "--config", str(config), "--redis", redis_url]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return process, port, metrics_port


async def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, f"creditd diameter exited with {process.returncode}"
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"creditd diameter did not listen on {port} within 30 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.mark.asyncio
async def test_the_command_serves_counts_and_stops_with_dpr(
    creditd: Harness, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    await creditd.create_account(SUBSCRIBER, balance=1_000)
    process, port, metrics_port = _start(tmp_path, redis_server.url)
    try:
        await _wait_listening(port, process)
        client = await Client.open(port)
        try:
            assert result_of(await client.ask(cer())) == 2001
            answer = await client.ask(ccr("cmd;1", INITIAL, 0, SUBSCRIBER, [Service(1, MB, unit=OCTETS)], context=GY))
            assert result_of(answer) == 2001
            page = await asyncio.to_thread(
                lambda: urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
            )
            assert 'creditd_diameter_requests_total{command="CCR-I",peer="pgw.test.local",result="2001"} 1.0' in page
            assert 'creditd_diameter_connections{peer="pgw.test.local"} 1.0' in page
            assert 'creditd_diameter_request_duration_seconds_count{command="CCR-I",peer="pgw.test.local"} 1.0' in page
            health = await asyncio.to_thread(
                lambda: urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/health", timeout=5).read().decode()
            )
            assert health == "SERVING\n"
            status = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "creditd", "diameter", "status", "--metrics", f"127.0.0.1:{metrics_port}"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert status.returncode == 0, status.stderr
            lines = status.stdout.splitlines()
            assert lines[0] == "redis: up"
            assert lines[2].split() == ["pgw.test.local", "1", "2", "0"], status.stdout  # CER and CCR-I
            process.terminate()
            dpr = await client.read(15)
            assert dpr.command == Command.DISCONNECT_PEER and dpr.is_request
            await client.send(dpr.answer([]))
        finally:
            client.close()
        assert await asyncio.to_thread(process.wait, 15) == 0
    finally:
        _stop(process)


@pytest.mark.asyncio
async def test_failover_after_kill_9_charges_once(
    creditd: Harness, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    await creditd.create_account(SUBSCRIBER, balance=1_000)
    first, first_port, _ = _start(tmp_path, redis_server.url)
    second, second_port, _ = _start(tmp_path, redis_server.url)
    try:
        await _wait_listening(first_port, first)
        await _wait_listening(second_port, second)
        services = [Service(1, 2 * MB, unit=OCTETS)]
        update = ccr("fo;1", UPDATE, 1, SUBSCRIBER, [Service(1, 2 * MB, 2 * MB, unit=OCTETS)], context=GY)
        async with connected(first_port) as client:
            assert result_of(await client.ask(ccr("fo;1", INITIAL, 0, SUBSCRIBER, services, context=GY))) == 2001
            await client.send(update)
            first.kill()  # SIGKILL: the update may or may not have been applied
        async with connected(second_port) as client:
            answer = await client.ask(again(update))
            assert result_of(answer) == 2001
            assert (await client.ask(again(update))).avps == answer.avps
            end = ccr("fo;1", TERMINATE, 2, SUBSCRIBER, [Service(1, None, MB // 2, unit=OCTETS)], context=GY)
            assert result_of(await client.ask(end)) == 2001
            assert result_of(await client.ask(request(Command.DEVICE_WATCHDOG, 0, []))) == 2001
        account = await creditd.get(SUBSCRIBER)
        assert (account.balance, account.reserved) == (1_000 - 20 - 10, 0)  # 2 MB, then a started MB
    finally:
        _stop(first)
        _stop(second)


@pytest.mark.asyncio
async def test_serve_with_diameter_listen_serves_both_edges(
    creditd: Harness, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    """`creditd serve --diameter-listen`: one process, gRPC and Diameter on the same core; SIGTERM
    sends DPR to the Diameter peer and the process exits 0."""
    await creditd.create_account(SUBSCRIBER, balance=1_000)
    grpc_port, diameter_port = free_port(), free_port()
    config = config_with_peer(tmp_path, free_port(), free_port())
    log = open(tmp_path / "serve.log", "ab")  # noqa: SIM115 - the child owns it
    command = [sys.executable, "-m", "creditd", "serve", "--listen", f"127.0.0.1:{grpc_port}", "--metrics-listen", ""]
    command += ["--config", str(config), "--redis", redis_server.url, "--diameter-listen", f"127.0.0.1:{diameter_port}"]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        await _wait_listening(diameter_port, process)
        client = await Client.open(diameter_port)
        try:
            assert result_of(await client.ask(cer())) == 2001
            answer = await client.ask(ccr("serve;1", INITIAL, 0, SUBSCRIBER, [Service(1, MB, unit=OCTETS)], context=GY))
            assert result_of(answer) == 2001
            process.terminate()
            dpr = await client.read(15)
            assert dpr.command == Command.DISCONNECT_PEER
            await client.send(dpr.answer([]))
        finally:
            client.close()
        assert await asyncio.to_thread(process.wait, 30) == 0
    finally:
        _stop(process)
    assert (await creditd.get(SUBSCRIBER)).reserved == 10  # the session is open: 1 MB reserved


def test_the_diameter_load_run_finishes_without_failures() -> None:
    """loadtest.diameter on a tiny shape (a smoke test; no timing is asserted): every phase reports."""
    command = [sys.executable, "-m", "loadtest.diameter", "--duration", "1", "--connections", "1"]
    command += ["--sessions", "2", "--accounts", "4"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = [line for line in run.stdout.splitlines() if " failures " in line]
    assert [line.split()[0] for line in lines] == ["diameter", "grpc-unary", "diameter-half", "grpc-half"], run.stdout
    assert all(line.endswith("failures 0") for line in lines), run.stdout
