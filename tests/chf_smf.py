"""An SMF-shaped Nchf client for the tests: ChargingDataRequests as an SMF (or SMSF, IMS node) builds
them, sent over a real HTTP/2 (prior knowledge) or HTTP/1.1 connection to a live `creditd chf`, and the
chf server of a test, in the test's event loop with the harness's clock."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
from granian.constants import Interfaces
from granian.server.embed import Server

from creditd.chf.server import ChfServer
from creditd.clock import Clock
from creditd.config.settings import Settings
from creditd.devtools.ports import free_port
from creditd.store.calls import Calls, NewAccount
from creditd.store.connection import AnySyncRedis
from creditd.store.functions import call_all_sync

API = "/nchf-convergedcharging/v3"
SMF_NAME = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
HOME_PLMN = {"mcc": "520", "mnc": "03"}
_time_stamps = itertools.count()


@contextlib.asynccontextmanager
async def started_chf(settings: Settings, redis_url: str, clock: Clock) -> AsyncIterator[str]:
    """A chf server on a free loopback port; yields its base URL."""
    port = free_port()
    chf_settings = msgspec.structs.replace(settings.chf, listen=f"127.0.0.1:{port}")
    server = ChfServer(msgspec.structs.replace(settings, chf=chf_settings), redis_url, clock)
    await server.start()
    try:
        yield f"{'https' if settings.security.tls else 'http'}://127.0.0.1:{port}"
    finally:
        await server.stop()


def h2_client(base_url: str) -> httpx.AsyncClient:
    """One cleartext HTTP/2 connection with prior knowledge (no upgrade), as an SMF keeps."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    return httpx.AsyncClient(base_url=base_url, http1=False, http2=True, limits=limits, timeout=10)


def h1_client(base_url: str) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    return httpx.AsyncClient(base_url=base_url, http1=True, http2=False, limits=limits, timeout=10)


def time_stamp() -> str:
    """A distinct invocationTimeStamp per create (it is part of what names the session)."""
    return f"2026-12-03T10:00:{next(_time_stamps) % 60:02d}.{next(_time_stamps):06d}Z"


def used(
    local_sequence_number: int,
    *,
    volume: int = 0,
    time: int = 0,
    service_id: int | None = None,
    triggers: tuple[str, ...] = (),
) -> dict[str, Any]:
    container: dict[str, Any] = {"localSequenceNumber": local_sequence_number}
    if volume:
        container["totalVolume"] = volume
        container["uplinkVolume"] = volume // 4
        container["downlinkVolume"] = volume - volume // 4
    if time:
        container["time"] = time
    if service_id is not None:
        container["serviceId"] = service_id
    if triggers:
        container["triggers"] = [{"triggerType": t, "triggerCategory": "IMMEDIATE_REPORT"} for t in triggers]
    return container


def unit_usage(
    rating_group: int,
    *,
    requested_volume: int | None = None,
    requested_time: int | None = None,
    containers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    usage: dict[str, Any] = {"ratingGroup": rating_group}
    requested: dict[str, Any] = {}
    if requested_volume is not None:
        requested["totalVolume"] = requested_volume
    if requested_time is not None:
        requested["time"] = requested_time
    if requested_volume is not None or requested_time is not None:
        usage["requestedUnit"] = requested
    if containers:
        usage["usedUnitContainer"] = containers
    return usage


def pdu_request(
    account_id: str,
    number: int,
    units: list[dict[str, Any]],
    *,
    created_at: str,
    serving_plmn: dict[str, str] | None = None,
    gpsi: bool = False,
    notify_uri: str = "http://127.0.0.1:1/notify",
) -> dict[str, Any]:
    """A PDU session's ChargingDataRequest from an SMF (pduSessionID 5, DNN internet)."""
    session: dict[str, Any] = {"pduSessionID": 5, "dnnId": "internet", "hPlmnId": HOME_PLMN}
    location = {
        "nrLocation": {
            "tai": {"plmnId": serving_plmn or HOME_PLMN, "tac": "00a1"},
            "ncgi": {"plmnId": serving_plmn or HOME_PLMN, "nrCellId": "00000a0b1"},
        }
    }
    pdu: dict[str, Any] = {"chargingId": 77, "pduSessionInformation": session, "userLocationinfo": location}
    request: dict[str, Any] = {
        "nfConsumerIdentification": {"nodeFunctionality": "SMF", "nFName": SMF_NAME, "nFPLMNID": HOME_PLMN},
        "invocationTimeStamp": created_at,
        "invocationSequenceNumber": number,
        "notifyUri": notify_uri,
        "multipleUnitUsage": units,
        "pDUSessionChargingInformation": pdu,
    }
    if gpsi:
        pdu["userInformation"] = {"servedGPSI": f"msisdn-{account_id}"}
        request["subscriberIdentifier"] = "imsi-520031234567890"
    else:
        request["subscriberIdentifier"] = f"imsi-{account_id}"
    return request


def ref_of(location: str) -> str:
    return location.rsplit("/", 1)[1]


def start_chf_process(redis_url: str, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """A whole `creditd chf` process; its user kills it in a finally block."""
    log = open(log_path, "ab")  # noqa: SIM115 - the child owns it
    command = [sys.executable, "-m", "creditd", "chf", "--redis", redis_url, "--listen", f"127.0.0.1:{port}"]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def create_accounts(client: AnySyncRedis, settings: Settings, account_ids: list[str], balance: int) -> None:
    """Accounts made by the create_account function itself, for tests without a gRPC server."""
    calls = Calls(settings.redis.partitions)
    now_ms = time.time_ns() // 1_000_000
    commands = [
        calls.create_account(NewAccount(account_id, "standard", balance), now_ms, "test") for account_id in account_ids
    ]
    for reply in call_all_sync(client, commands):
        assert not isinstance(reply, Exception), reply


class NotifySink:
    """The SMF's notification endpoint: granian serving cleartext HTTP/2 (and HTTP/1.1) on a free port,
    recording each POST's JSON body and HTTP version; the first `failures` requests are answered 503."""

    def __init__(self, failures: int = 0) -> None:
        self.received: list[dict[str, Any]] = []
        self.http_versions: list[str] = []
        self.failures = failures
        self.requests = 0
        self.arrived = asyncio.Event()
        self._server: Server | None = None
        self._serving: asyncio.Task[None] | None = None
        self.url = ""

    async def __aenter__(self) -> NotifySink:
        port = free_port()
        self._server = Server(self, port=port, interface=Interfaces.RSGI, websockets=False, log_enabled=False)
        self._serving = asyncio.create_task(self._server.serve())
        async with asyncio.timeout(10):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    break
                except OSError:
                    await asyncio.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}/smf/notify"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None and self._serving is not None
        self._server.stop()  # type: ignore[no-untyped-call]
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(self._serving, 5)

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        body = await protocol()
        self.requests += 1
        self.http_versions.append(scope.http_version)
        if self.requests <= self.failures:
            protocol.response_empty(503, [])
            return
        self.received.append(json.loads(body))
        self.arrived.set()
        protocol.response_empty(204, [])

    async def wait_for(self, count: int, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout_s):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.received
