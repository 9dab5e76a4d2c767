"""`creditd serve --chf-listen HOST:PORT` serves Nchf beside gRPC in one process (its own embedded
Redis): an account made over gRPC is charged by an SMF's create over h2c, the charge is on the gRPC
card, SIGTERM stops both with exit 0. With --workers 2 the parent runs one `creditd chf` and one
`creditd diameter` beside the workers: an SMF's create and release over HTTP/1.1 land on the gRPC card,
a Diameter peer passes its CER, SIGTERM gets it a DPR and ends every child with exit 0; a companion
that cannot start (its port taken) stops the whole serve, exit 1, with one line naming it."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
from pathlib import Path

import grpc
import httpx
import pytest

from creditd.devtools.ports import free_port, wait_listening
from creditd.diameter.dictionary import Command
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc
from tests.chf_smf import API, h1_client, pdu_request, ref_of, time_stamp, unit_usage, used
from tests.diameter.client import config_with_peer, connected
from tests.harness import MB
from tests.processes import alive, start_server, stop, wait_serving

pytestmark = pytest.mark.slow
ACCOUNT = "66877778888"


def test_serve_with_chf_listen(tmp_path: Path) -> None:
    grpc_port, chf_port = free_port(), free_port()
    process = start_server(tmp_path / "data", grpc_port, "--chf-listen", f"127.0.0.1:{chf_port}")
    try:
        wait_serving(grpc_port, process)
        wait_listening(chf_port, process)
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            accounts = pb_grpc.AccountsStub(channel)
            accounts.CreateAccount(pb.CreateAccountRequest(account_id=ACCOUNT, plan="standard", initial_balance=1000))
            created_at = time_stamp()
            with httpx.Client(base_url=f"http://127.0.0.1:{chf_port}", http1=False, http2=True) as smf:
                create = smf.post(
                    API + "/chargingdata", json=pdu_request(ACCOUNT, 0, [unit_usage(1)], created_at=created_at)
                )
                assert (create.status_code, create.http_version) == (201, "HTTP/2"), create.text
                ref = create.headers["location"].rsplit("/", 1)[1]
                units = [unit_usage(1, containers=[used(1, volume=2 * MB)])]
                release = smf.post(
                    f"{API}/chargingdata/{ref}/release", json=pdu_request(ACCOUNT, 1, units, created_at=created_at)
                )
                assert release.status_code == 204
            card = accounts.GetAccount(pb.GetAccountRequest(account_id=ACCOUNT))
            assert (card.balance, card.open_sessions) == (1000 - 20, 0)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        stop(process, tmp_path / "data")


@pytest.mark.asyncio
async def test_workers_with_chf_and_diameter_companions(tmp_path: Path) -> None:
    """`serve --workers 2 --chf-listen --diameter-listen`: two gRPC workers and one chf and one diameter
    process, all on the embedded Redis; SIGHUP reloads the workers and leaves the companions be (it
    would end them); SIGTERM reaches each (the Diameter peer gets a DPR), exit 0 and no child (nor the
    Redis) left."""
    data_dir, log_path = tmp_path / "data", tmp_path / "serve.log"
    grpc_port, chf_port, diameter_port = free_port(), free_port(), free_port()
    config = config_with_peer(tmp_path, free_port(), free_port())
    companions = ("--chf-listen", f"127.0.0.1:{chf_port}", "--diameter-listen", f"127.0.0.1:{diameter_port}")
    command = ("--workers", "2", "--config", str(config), *companions)
    process = start_server(data_dir, grpc_port, *command, log_path=log_path)
    try:
        await asyncio.to_thread(wait_serving, grpc_port, process)
        await asyncio.to_thread(wait_listening, chf_port, process)
        await asyncio.to_thread(wait_listening, diameter_port, process)
        await logged(log_path, "creditd listening on", 2)  # both workers, so that each takes SIGHUP
        process.send_signal(signal.SIGHUP)
        await logged(log_path, "config reloaded", 2)
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        assert len(children) == 5, children  # the embedded Redis, two workers, chf, diameter
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            accounts = pb_grpc.AccountsStub(channel)
            await accounts.CreateAccount(
                pb.CreateAccountRequest(account_id=ACCOUNT, plan="standard", initial_balance=1000)
            )
            async with h1_client(f"http://127.0.0.1:{chf_port}") as smf:
                created_at = time_stamp()
                create = await smf.post(
                    API + "/chargingdata", json=pdu_request(ACCOUNT, 0, [unit_usage(1)], created_at=created_at)
                )
                assert create.status_code == 201, create.text
                units = [unit_usage(1, containers=[used(1, volume=2 * MB)])]
                release = await smf.post(
                    f"{API}/chargingdata/{ref_of(create.headers['location'])}/release",
                    json=pdu_request(ACCOUNT, 1, units, created_at=created_at),
                )
                assert release.status_code == 204, release.text
            card = await accounts.GetAccount(pb.GetAccountRequest(account_id=ACCOUNT))
            assert (card.balance, card.open_sessions) == (1000 - 20, 0)
        async with connected(diameter_port) as peer:
            process.send_signal(signal.SIGTERM)
            disconnect = await peer.read(15)
            assert disconnect.command == Command.DISCONNECT_PEER
            await peer.send(disconnect.answer([]))
        assert await asyncio.to_thread(process.wait, 30) == 0  # 129 had SIGHUP ended a companion
        assert [pid for pid in children if alive(int(pid))] == []
    finally:
        stop(process, data_dir)


async def logged(log_path: Path, text: str, times: int) -> None:
    for _ in range(600):
        if log_path.read_text().count(text) >= times:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} not logged {times} times within 30 s:\n{log_path.read_text()}")


def test_a_companion_that_cannot_start_stops_the_serve(tmp_path: Path) -> None:
    """The chf port taken: `creditd chf` exits 1; the parent names it in one line, stops the workers and
    the embedded Redis, and exits non-zero."""
    data_dir, grpc_port, log_path = tmp_path / "data", free_port(), tmp_path / "serve.log"
    with socket.create_server(("127.0.0.1", 0)) as taken:
        chf_listen = f"127.0.0.1:{taken.getsockname()[1]}"
        process = start_server(data_dir, grpc_port, "--workers", "2", "--chf-listen", chf_listen, log_path=log_path)
        try:
            assert process.wait(60) == 1
        finally:
            stop(process, data_dir)
    log = log_path.read_text()
    assert f"chf on {chf_listen} exited with status 1 before any stop signal: stopping the others" in log, log
    left = subprocess.run(["pgrep", "-f", "--", f"--data-dir {data_dir}"], capture_output=True, text=True)
    assert left.stdout == "", "a worker or the chf outlived the parent"
    assert "embedded redis stopped" in log, log  # logged once stop() has waited for it to end
