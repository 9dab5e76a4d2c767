"""`creditd serve` fails fast and loud, and never hangs on the way out. Each test runs the real command:

- a start-up failure (the metrics port taken by another creditd or, for `creditd notify`, by any
  program; the gRPC port, or a front's (Nchf), held by another program; a Redis URL that refuses; a
  data dir that cannot be one; a TLS file that is not PEM) ends the process within 5 s with exit
  status 1 and one log line naming what failed and where, leaving nothing listening on its gRPC port
  and its embedded Redis stopped;
- SIGTERM during start-up (as soon as the embedded Redis is up) and while its Redis is frozen (SIGSTOP,
  a request in flight) ends it within drain_timeout_s + 2 s, exit status 0, with the embedded Redis
  stopped by it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from creditd.devtools.ports import free_port
from creditd.resources import default_config_path
from creditd.store.embedded import embedded_pid
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc
from tests.processes import alive, kill_hard, start_server, stop, wait_serving

START_FAILURE_BOUND_S = 5.0
DRAIN_TIMEOUT_S = 2


def serve(tmp_path: Path, name: str, *arguments: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "creditd", "serve", "--data-dir", str(tmp_path / name), *arguments]
    return subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
    )


def wait_for_line(process: subprocess.Popen[str], text: str, lines: list[str]) -> None:
    assert process.stderr is not None
    for line in process.stderr:
        lines.append(line)
        if text in line:
            return
    raise AssertionError(f"creditd ended before logging {text!r}: {''.join(lines)}")


def port_is_listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def assert_failed_fast(process: subprocess.Popen[str], started: float, data_dir: Path, message: str) -> str:
    try:
        _, errors = process.communicate(timeout=START_FAILURE_BOUND_S + 5)
    finally:
        if process.poll() is None:
            process.kill()
    took = time.monotonic() - started
    failures = [line for line in errors.splitlines() if "cannot start" in line]
    assert process.returncode == 1, errors
    assert took < START_FAILURE_BOUND_S, (took, errors)
    assert len(failures) == 1 and message in failures[0], errors
    pid = embedded_pid(data_dir)
    assert pid is None or not alive(pid), "the embedded Redis outlived a creditd that could not start"
    return errors


def test_a_second_server_on_the_same_metrics_port_exits_naming_it(tmp_path: Path) -> None:
    metrics_port, first_port, second_port = free_port(), free_port(), free_port()
    first = start_server(tmp_path / "first", first_port, "--metrics-listen", f"127.0.0.1:{metrics_port}")
    try:
        wait_serving(first_port, first)
        started = time.monotonic()
        second = serve(
            tmp_path,
            "second",
            "--listen",
            f"127.0.0.1:{second_port}",
            "--metrics-listen",
            f"127.0.0.1:{metrics_port}",
        )
        assert_failed_fast(second, started, tmp_path / "second", f"metrics: port 127.0.0.1:{metrics_port} is in use")
        assert not port_is_listening(second_port), "the second server left its gRPC port open"
        assert first.poll() is None
    finally:
        stop(first, tmp_path / "first")


def test_a_grpc_port_held_by_another_program_is_named(tmp_path: Path) -> None:
    with socket.socket() as holder:  # no SO_REUSEPORT: creditd workers share a port, strangers do not
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        started = time.monotonic()
        process = serve(tmp_path, "data", "--listen", f"127.0.0.1:{port}", "--metrics-listen", "")
        assert_failed_fast(process, started, tmp_path / "data", f"gRPC port 127.0.0.1:{port} cannot be bound")


def test_a_front_that_cannot_start_stops_the_whole_server(tmp_path: Path) -> None:
    """serve --chf-listen on a port another program holds: the gRPC edge, already up, is stopped too."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port, grpc_port = holder.getsockname()[1], free_port()
        started = time.monotonic()
        process = serve(
            tmp_path,
            "data",
            *("--listen", f"127.0.0.1:{grpc_port}", "--metrics-listen", "", "--chf-listen", f"127.0.0.1:{port}"),
        )
        assert_failed_fast(process, started, tmp_path / "data", f"chf.listen: port 127.0.0.1:{port} cannot be bound")
        assert not port_is_listening(grpc_port)


def test_a_redis_url_that_refuses_is_named(tmp_path: Path) -> None:
    refused = f"redis://127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    process = serve(
        tmp_path, "data", "--redis", refused, "--listen", f"127.0.0.1:{free_port()}", "--metrics-listen", ""
    )
    assert_failed_fast(process, started, tmp_path / "data", "cannot reach redis://127.0.0.1")


def test_a_data_dir_that_cannot_be_one_is_named(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    started = time.monotonic()
    process = serve(tmp_path, "a-file/data", "--listen", f"127.0.0.1:{free_port()}", "--metrics-listen", "")
    assert_failed_fast(process, started, tmp_path / "a-file" / "data", str(tmp_path / "a-file" / "data"))


def test_a_tls_file_that_is_not_pem_is_named(tmp_path: Path) -> None:
    files = {name: tmp_path / f"{name}.pem" for name in ("cert", "key", "ca")}
    for path in files.values():
        path.write_text("not a certificate")
    port = free_port()
    started = time.monotonic()
    process = serve(
        tmp_path,
        "data",
        *("--listen", f"127.0.0.1:{port}", "--metrics-listen", ""),
        *("--tls-cert", str(files["cert"]), "--tls-key", str(files["key"]), "--tls-client-ca", str(files["ca"])),
    )
    assert_failed_fast(process, started, tmp_path / "data", f"tls: the key {files['key']} is not a PEM file")
    assert not port_is_listening(port)


def test_the_notifier_names_a_metrics_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        started = time.monotonic()
        command = [sys.executable, "-m", "creditd", "notify", "--data-dir", str(tmp_path / "data")]
        process = subprocess.Popen(
            [*command, "--metrics-listen", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        assert_failed_fast(process, started, tmp_path / "data", f"metrics: port 127.0.0.1:{port} cannot be bound")


def short_drain_config(tmp_path: Path) -> Path:
    config = tmp_path / "creditd.toml"
    shipped = default_config_path().read_text()
    assert "drain_timeout_s = 10 " in shipped
    config.write_text(shipped.replace("drain_timeout_s = 10 ", f"drain_timeout_s = {DRAIN_TIMEOUT_S} ", 1))
    return config


def test_sigterm_during_start_up_stops_creditd_and_its_redis(tmp_path: Path) -> None:
    process = serve(tmp_path, "data", "--listen", f"127.0.0.1:{free_port()}", "--metrics-listen", "")
    lines: list[str] = []
    try:
        wait_for_line(process, "embedded redis started", lines)
        pid = embedded_pid(tmp_path / "data")
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        _, errors = process.communicate(timeout=DRAIN_TIMEOUT_S + 10)
        took = time.monotonic() - started
    finally:
        stop(process, tmp_path / "data")  # type: ignore[arg-type]
    assert process.returncode == 0, "".join(lines) + errors
    assert took < 10 + 2, took  # the shipped drain_timeout_s
    assert pid is not None and not alive(pid), "the embedded Redis outlived creditd"
    assert "embedded redis stopped" in errors


@pytest.mark.asyncio
async def test_sigterm_with_redis_frozen_ends_within_the_drain_time(tmp_path: Path) -> None:
    port, data_dir = free_port(), tmp_path / "data"
    process = start_server(data_dir, port, "--config", str(short_drain_config(tmp_path)))
    redis_pid = None
    try:
        await asyncio.to_thread(wait_serving, port, process)
        redis_pid = embedded_pid(data_dir)
        assert redis_pid is not None
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            accounts = pb_grpc.AccountsStub(channel)
            await accounts.CreateAccount(pb.CreateAccountRequest(account_id="66800000001", plan="standard"))
            os.kill(redis_pid, signal.SIGSTOP)
            in_flight = asyncio.ensure_future(
                accounts.GetAccount(pb.GetAccountRequest(account_id="66800000001"), timeout=30)
            )
            await asyncio.sleep(0.3)
            process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            code = await asyncio.to_thread(process.wait, DRAIN_TIMEOUT_S + 10)
            took = time.monotonic() - started
            outcome = await asyncio.gather(in_flight, return_exceptions=True)
        assert code == 0
        assert took < DRAIN_TIMEOUT_S + 2, took
        assert not alive(redis_pid), "the embedded Redis outlived creditd"
        assert isinstance(outcome[0], grpc.aio.AioRpcError), outcome
    finally:
        if redis_pid is not None and alive(redis_pid):
            kill_hard(redis_pid)
        stop(process, data_dir)
