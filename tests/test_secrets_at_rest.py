"""Sign-in codes are never readable at rest (issue #37, finding 1). An embedded server of the test's own,
in a data folder under a world-readable directory, holds a code that was issued, sent by the notifier
to a real HTTP SMS endpoint, and used to sign in: every file of the data folder (the AOF included,
written through WAITAOF) is read and neither the code (as the notice's detail or anywhere between
non-digits) nor its bare SHA-256 is found; the folder is 0700 and its files 0600, and user nobody can
read none of it. A notice sealed under another key is dead-lettered, never sent with a wrong code.
Without a configured key file, processes on one data folder use the same key (DATA_DIR/sign_in.key,
0600, made once): `creditd serve --workers 2` as subprocesses issue and check a code that a notifier
of another process opens and sends."""

from __future__ import annotations

import hashlib
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import msgspec
import pytest

from creditd.clock import Clock
from creditd.config.fronts import SmsChannelSettings
from creditd.config.settings import Settings
from creditd.core.sign_in_codes import SignInKey, load_sign_in_key
from creditd.devtools.ports import free_port
from creditd.notifier.service import Notifier
from creditd.resources import default_config_path
from creditd.store.connection import connect
from creditd.store.embedded import EmbeddedRedis, embedded_url
from creditd.store.keys import notifier_key, partition_of
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc
from tests.harness import FrozenClock, library_client, started_server
from tests.portal import last_code, sms_notifier, texts_to
from tests.processes import start_server, stop, wait_serving
from tests.test_channels import http_server
from tests.test_rating import bangkok_ms

pytestmark = pytest.mark.asyncio
ACCOUNT = "66817170001"


@pytest.fixture
def gateway() -> Iterator[object]:
    with http_server() as server:
        yield server


def every_byte(data_dir: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(data_dir.rglob("*")) if path.is_file())


async def test_the_data_folder_holds_no_sign_in_code(tmp_path: Path, settings: Settings, gateway: object) -> None:
    tmp_path.chmod(0o755)  # what a service's home directory usually is: others may walk into it
    data_dir = tmp_path / "data"
    with EmbeddedRedis(data_dir) as embedded, library_client(embedded.url, settings) as client:
        async with started_server(settings, embedded.url, client, FrozenClock(bangkok_ms("2027-03-10T12:00:00"))) as c:
            await c.create_account(ACCOUNT, balance=100)
            stub = pb_grpc.SelfServiceStub(c.channel)
            await stub.RequestSignInCode(pb.RequestSignInCodeRequest(account_id=ACCOUNT))
            await sms_notifier(c, gateway, settings).pass_once()
            code = last_code(gateway, ACCOUNT)
            signed = await stub.SignIn(pb.SignInRequest(account_id=ACCOUNT, code=code))
            assert signed.session_token  # the code sent is the one creditd checks
            partition = partition_of(ACCOUNT, settings.redis.partitions)
            records = [client.hgetall(key) for key in client.scan_iter(notifier_key("delivery", partition) + "*")]
            details = [msgspec.json.decode(record[b"event"])["detail"] for record in records if record]
            assert details and all(detail.startswith("s1.") and code not in detail for detail in details)
            client.execute_command("WAITAOF", 1, 0, 5000)
        written = every_byte(data_dir)
        assert list(data_dir.glob("appendonlydir/*.aof")), "no AOF in the data folder"
        assert f'"detail":"{code}"'.encode() not in written
        assert not re.search(rb"(?<![0-9])" + code.encode() + rb"(?![0-9])", written)
        assert hashlib.sha256(code.encode()).hexdigest().encode() not in written
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        for path in data_dir.rglob("*"):
            if path.is_file():
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        as_nobody = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", f"cat {data_dir}/*/*.aof"],
            capture_output=True,
            timeout=10,
        )
        assert as_nobody.returncode != 0 and as_nobody.stdout == b""


async def test_a_code_sealed_under_another_key_is_dead_lettered(
    creditd: object, settings: Settings, gateway: object
) -> None:
    await creditd.create_account(ACCOUNT, balance=100)  # type: ignore[attr-defined]
    notifier = sms_notifier(creditd, gateway, settings)  # type: ignore[arg-type]
    notifier.sign_in_key = SignInKey(b"k" * 32)  # the notifier configured with another key file
    stub = pb_grpc.SelfServiceStub(creditd.channel)  # type: ignore[attr-defined]
    await stub.RequestSignInCode(pb.RequestSignInCodeRequest(account_id=ACCOUNT))
    await notifier.pass_once()
    assert texts_to(gateway, ACCOUNT) == []
    partition = partition_of(ACCOUNT, settings.redis.partitions)
    dead = creditd.redis.lrange(notifier_key("dead_letters", partition), 0, -1)  # type: ignore[attr-defined]
    assert any(b"sealed under another key" in letter for letter in dead)


async def test_processes_on_one_data_folder_share_the_default_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    here = load_sign_in_key("", str(data_dir)).digest(ACCOUNT, "123456")
    program = (
        "from creditd.core.sign_in_codes import load_sign_in_key as k;"
        f" print(k('', {str(data_dir)!r}).digest({ACCOUNT!r}, '123456'))"
    )
    there = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=30, check=True)
    assert there.stdout.strip() == here
    assert stat.S_IMODE((data_dir / "sign_in.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700


async def test_a_server_and_a_notifier_in_two_processes_share_the_default_key(
    tmp_path: Path, settings: Settings, gateway: object
) -> None:
    """`creditd serve --data-dir D` (a subprocess, without sign_in_key_path) issues a code; a notifier in
    this process, configured as `creditd notify --data-dir D` would be, opens and sends it."""
    data_dir, port = tmp_path / "data", free_port()
    process = start_server(data_dir, port, "--workers", "2")
    try:
        wait_serving(port, process)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await pb_grpc.AccountsStub(channel).CreateAccount(
                pb.CreateAccountRequest(account_id=ACCOUNT, plan="standard", initial_balance=100)
            )
            stub = pb_grpc.SelfServiceStub(channel)
            await stub.RequestSignInCode(pb.RequestSignInCodeRequest(account_id=ACCOUNT))
            own = msgspec.structs.replace(
                settings,
                redis=msgspec.structs.replace(settings.redis, data_dir=str(data_dir)),
                security=msgspec.structs.replace(settings.security, sign_in_key_path=""),
                notifications=msgspec.structs.replace(
                    settings.notifications,
                    templates_dir=str(default_config_path().parent / "templates"),
                    sms=SmsChannelSettings(url=f"http://127.0.0.1:{gateway.server_port}/cgi-bin/sendsms"),  # type: ignore[attr-defined]
                ),
            )
            client = connect(embedded_url(data_dir), own.redis)
            try:
                await Notifier(client, own, Clock(), "notify-test").pass_once()
            finally:
                await client.aclose()
            code = last_code(gateway, ACCOUNT)
            signed = await stub.SignIn(pb.SignInRequest(account_id=ACCOUNT, code=code))
            assert signed.session_token  # a worker checked the code the notifier sent
    finally:
        stop(process)
