"""`creditd serve --chf-listen HOST:PORT` serves Nchf beside gRPC in one process (its own embedded
Redis): an account made over gRPC is charged by an SMF's create over h2c, the charge is on the gRPC
card, SIGTERM stops both with exit 0; with --workers 2 it refuses to start (exit 2) naming the option."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import grpc
import httpx
import pytest

from creditd.devtools.ports import free_port
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc
from tests.chf_smf import API, pdu_request, time_stamp, unit_usage, used, wait_listening
from tests.harness import MB
from tests.processes import start_server, stop, wait_serving

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


def test_chf_listen_with_workers_is_refused(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "creditd",
        "serve",
        "--workers",
        "2",
        "--chf-listen",
        "127.0.0.1:1",
        "--data-dir",
        str(tmp_path),
        "--metrics-listen",
        "",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 2 and "--chf-listen" in run.stderr + run.stdout
