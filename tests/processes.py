"""Starting and stopping whole `creditd serve` processes for tests that need a real process (crash,
CLI, start-up refusals). Every process started here is killed in a finally block by its user."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from creditd.store.embedded import embedded_pid

START_TIMEOUT_S = 30.0
CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 50), ("grpc.max_reconnect_backoff_ms", 300)]


def start_server(data_dir: Path, port: int, *extra: str, log_path: Path | None = None) -> subprocess.Popen[bytes]:
    log = open(log_path or data_dir.parent / f"creditd-{port}.log", "ab")  # noqa: SIM115 - the child owns it
    command = [
        sys.executable,
        "-m",
        "creditd",
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        "--data-dir",
        str(data_dir),
        "--metrics-listen",
        "",  # tests run several servers: none may take the default metrics port
        *extra,
    ]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def wait_serving(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"creditd exited with {process.returncode} before serving")
            try:
                if (
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                time.sleep(0.05)
    raise RuntimeError(f"creditd did not serve on port {port} within {START_TIMEOUT_S} s")


def embedded_redis_pid(data_dir: Path) -> int:
    pid = embedded_pid(data_dir)
    assert pid is not None, f"no embedded redis pid in {data_dir}"
    return pid


def kill_hard(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def stop(process: subprocess.Popen[bytes], data_dir: Path | None = None) -> None:
    """SIGTERM, then SIGKILL; and the embedded Redis of data_dir if it outlived its creditd."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if data_dir is not None and (pid := embedded_pid(data_dir)) is not None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.05)
        kill_hard(pid)


def alive(pid: int) -> bool:
    """Running: a zombie (exited, not yet reaped by whoever adopted it) does not count."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status
