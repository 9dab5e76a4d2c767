"""Operating a running `creditd serve`: SIGHUP reloads plans and tariffs while requests keep flowing
(none is dropped, new grants take the new price, a bad file is refused and the old config kept), and
--log-format json writes one JSON object per line carrying the caller's request id and the session
id, and no balance."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import grpc
import pytest

from creditd.devtools.ports import free_port
from creditd.resources import default_config_path
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc
from tests.harness import EVENT, INITIAL, TERMINATE, VOICE, charge_request
from tests.processes import start_server, stop, wait_serving

pytestmark = pytest.mark.asyncio
ACCOUNT = "66816160000"
LONDON = "442079460000"
RELOAD_WAIT_S = 15.0


async def minute_price(stub: pb_grpc.CreditControlStub, n: int) -> int:
    """Plays one session with 60 s of outgoing voice to London (one price day and night: the server
    runs on the real clock); returns what it was charged."""
    await stub.Charge(charge_request(f"probe{n}", INITIAL, 0, ACCOUNT, [(VOICE, 0, 0)], called_party=LONDON))
    answer = await stub.Charge(
        charge_request(f"probe{n}", TERMINATE, 1, ACCOUNT, [(VOICE, 0, 60)], called_party=LONDON)
    )
    return answer.grants[0].charged


async def test_sighup_reloads_tariffs_without_dropping_requests(tmp_path: Path) -> None:
    config = tmp_path / "creditd.toml"
    shipped = default_config_path().read_text()
    config.write_text(shipped)
    data_dir, port = tmp_path / "data", free_port()
    process = start_server(data_dir, port, "--config", str(config))
    try:
        await asyncio.to_thread(wait_serving, port, process)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub, accounts = pb_grpc.CreditControlStub(channel), pb_grpc.AccountsStub(channel)
            await accounts.CreateAccount(
                pb.CreateAccountRequest(account_id=ACCOUNT, plan="standard", initial_balance=10**6)
            )
            assert await minute_price(stub, 0) == 900
            stop_load = asyncio.Event()

            async def load() -> int:
                count = 0
                while not stop_load.is_set():
                    answer = await stub.Charge(charge_request(f"load{count}", EVENT, 0, ACCOUNT, [(3, 0, 0)]))
                    assert answer.result == pb.SUCCESS
                    count += 1
                return count

            running = asyncio.create_task(load())
            config.write_text(shipped.replace("price_minor = 900\n", "price_minor = 1800\n", 1))
            process.send_signal(signal.SIGHUP)
            deadline = asyncio.get_running_loop().time() + RELOAD_WAIT_S
            probe = 1
            while await minute_price(stub, probe) != 1800:
                assert asyncio.get_running_loop().time() < deadline, "the new tariff never took effect"
                probe += 1
                await asyncio.sleep(0.05)

            config.write_text(shipped.replace("price_minor = 900\n", "price_minor = -1\n", 1))
            process.send_signal(signal.SIGHUP)
            await asyncio.sleep(0.5)
            assert await minute_price(stub, 999) == 1800  # the bad file changed nothing
            stop_load.set()
            assert await running > 0
        assert process.poll() is None
    finally:
        stop(process, data_dir)
    log = (tmp_path / f"creditd-{port}.log").read_text()
    assert "config reloaded: 1 plan(s)" in log and "config reload refused" in log and "price_minor" in log
    assert "other changes take effect" not in log


async def test_json_logs_carry_request_and_session_ids(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    log_path = tmp_path / "json.log"
    process = start_server(data_dir, port, "--log-format", "json", log_path=log_path)
    try:
        await asyncio.to_thread(wait_serving, port, process)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub, accounts = pb_grpc.CreditControlStub(channel), pb_grpc.AccountsStub(channel)
            await accounts.CreateAccount(
                pb.CreateAccountRequest(account_id=ACCOUNT, plan="standard", initial_balance=123456)
            )
            bad = charge_request("sess-42", INITIAL, 0, "bad id", [(VOICE, 0, 0)])
            await stub.Charge(bad, metadata=(("x-request-id", "req-7f3a"),))
            top_up = pb.TopUpRequest(account_id=ACCOUNT, amount=500, channel="bank", idempotency_key="t1")
            await accounts.TopUp(top_up, metadata=(("x-request-id", "req-8b"),))
    finally:
        stop(process, data_dir)
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    refused = [line for line in lines if "refused" in line["message"]]
    assert refused[0]["request_id"] == "req-7f3a" and refused[0]["session_id"] == "sess-42"
    assert "account_id" in refused[0]["message"]
    top_up = [line for line in lines if line["message"].startswith("top-up")]
    assert top_up[0]["request_id"] == "req-8b"
    assert not any("123456" in line["message"] or "123956" in line["message"] for line in lines)
