"""Loopback ports for servers that tests and benchmarks start with a fixed port (a cluster's nodes,
sentinels, a creditd child process), and waiting for such a child to listen on one.

A port found free by binding port 0 comes from the kernel's ephemeral range, which outgoing
connections draw their source ports from too: between the probe and the server's bind, a client
connection may take it ("Address already in use"; seen in CI while a cluster started). Ports here come
from below that range, which the kernel never hands out on its own, and never twice in one process.
The suite runs on pytest-xdist workers (README): each worker draws from a slice of its own
(PYTEST_XDIST_WORKER gwN of PYTEST_XDIST_WORKER_COUNT), so that two never probe one port at once.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
from pathlib import Path

HOST = "127.0.0.1"
LOWEST_PORT = 10_000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
DEFAULT_EPHEMERAL_START = 32_768
ATTEMPTS = 1_000
_handed_out: set[int] = set()


def _ephemeral_start() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_EPHEMERAL_START


def port_range() -> tuple[int, int]:
    """[lowest, highest) of the ports free_port draws from here: below the ephemeral range, this
    worker's slice of it under pytest-xdist."""
    return _worker_range(LOWEST_PORT, max(LOWEST_PORT + 1_000, _ephemeral_start()))


def _worker_range(lowest: int, highest: int) -> tuple[int, int]:
    """This pytest-xdist worker's slice of [lowest, highest); the whole range outside xdist."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER", ""), os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if not (worker.startswith("gw") and worker[2:].isdigit() and count.isdigit() and int(count) > 0):
        return lowest, highest
    width = (highest - lowest) // int(count)
    start = lowest + int(worker[2:]) % int(count) * width
    return start, start + width


def free_port() -> int:
    """A loopback port nothing listens on now, outside the ephemeral range, not handed out before."""
    lowest, highest = port_range()
    for _ in range(ATTEMPTS):
        port = random.randrange(lowest, highest)
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free loopback port below {highest} after {ATTEMPTS} attempts")


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """Returns once the child process listens on the loopback port. ChildProcessError at once if it
    ends first (a module that does not import, a port already taken), rather than after the whole
    time-out; TimeoutError when timeout_s pass."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ChildProcessError(f"exited with {process.returncode} before listening on port {port}")
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout_s:g} s")
